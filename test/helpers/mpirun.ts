// Launching dist/cli.js under mpirun for the data-parallel tests: Open MPI (what .ci/run installs) or
// MPICH's Hydra, run as root when the machine is root (CI), ranks allowed beyond the cores.
import { spawnSync } from 'node:child_process'
import { cli } from './train-corpus.js'

const version = spawnSync('mpirun', ['--version'], { encoding: 'utf8' })
/** mpirun is Open MPI's (whose ranks carry OMPI_COMM_WORLD_RANK). */
export const openMpi = /Open MPI|OpenRTE/.test(version.stdout ?? '')

/** A skip reason for tests that need mpirun when it is absent. */
export const needsMpirun = { skip: version.status === 0 ? false : 'mpirun not found (CI installs Open MPI: .ci/run)' }

/** The environment for mpirun: root allowed (CI runs as root), the CPU threads shared between the ranks. */
export function mpiEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    OMPI_ALLOW_RUN_AS_ROOT: '1',
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
    SIMCSEPP_NUM_THREADS: process.env.SIMCSEPP_NUM_THREADS ?? '1',
  }
}

/** mpirun's arguments for `node script ...args` (default: `simcsepp ...args`) on `ranks` processes of this machine. */
export function mpirunArgs(ranks: number, args: string[], script = cli): string[] {
  const extra = openMpi ? ['--oversubscribe', '--bind-to', 'none'] : []
  return ['-np', String(ranks), ...extra, process.execPath, script, ...args]
}

/** Runs `simcsepp ...args` on `ranks` processes to the end, with `env` added to mpiEnv(). */
export function mpirun(
  ranks: number,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): { status: number | null; stderr: string; stdout: string } {
  const r = spawnSync('mpirun', mpirunArgs(ranks, args), { encoding: 'utf8', env: { ...mpiEnv(), ...env } })
  return { status: r.status, stderr: r.stderr, stdout: r.stdout }
}
