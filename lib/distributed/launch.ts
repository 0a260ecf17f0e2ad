// Is this process one rank of an MPI launch? The launchers say so in the environment: Open MPI's mpirun
// sets OMPI_COMM_WORLD_SIZE, MPICH's Hydra PMI_SIZE, PMIx launchers (srun, prterun) PMIX_RANK. And which
// GPU is this rank's: the local rank (OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID, SLURM_LOCALID) picks
// one of the visible devices.

/** What the environment says about a launch: the variable seen, and the world size when it is given. */
export interface LaunchInfo {
  variable: string
  size: number | null
}

const SIZE_VARIABLES = ['OMPI_COMM_WORLD_SIZE', 'PMI_SIZE', 'MPI_LOCALNRANKS']
const LOCAL_RANK_VARIABLES = ['OMPI_COMM_WORLD_LOCAL_RANK', 'MPI_LOCALRANKID', 'PMI_LOCAL_RANK', 'SLURM_LOCALID']

/** The launcher's variable, or null when this process was not started by an MPI launcher. */
export function detectLaunch(env: NodeJS.ProcessEnv = process.env): LaunchInfo | null {
  for (const v of SIZE_VARIABLES) {
    const n = Number(env[v])
    if (env[v] !== undefined && Number.isSafeInteger(n)) return { variable: `${v}=${env[v]}`, size: n }
  }
  if (env.PMIX_RANK !== undefined) return { variable: `PMIX_RANK=${env.PMIX_RANK}`, size: null }
  return null
}

/** This rank's index among the ranks of its machine (0 when no launcher says). */
export function localRank(env: NodeJS.ProcessEnv = process.env): number {
  for (const v of LOCAL_RANK_VARIABLES) {
    const n = Number(env[v])
    if (env[v] !== undefined && Number.isSafeInteger(n) && n >= 0) return n
  }
  return 0
}

const LOCAL_SIZE_VARIABLES = ['OMPI_COMM_WORLD_LOCAL_SIZE', 'MPI_LOCALNRANKS', 'PMI_LOCAL_SIZE', 'SLURM_NTASKS_PER_NODE']

/** How many ranks run on this machine (1 when no launcher says). */
export function localSize(env: NodeJS.ProcessEnv = process.env): number {
  for (const v of LOCAL_SIZE_VARIABLES) {
    const n = Number(env[v])
    if (env[v] !== undefined && Number.isSafeInteger(n) && n >= 1) return n
  }
  return 1
}

/**
 * The machine's CPU threads shared between its ranks: SIMCSEPP_NUM_THREADS set to cores / local ranks
 * unless the user set it (each process would otherwise start a thread per core). Must run before the
 * addon's thread pool starts (its first parallel op). Returns the threads per rank.
 */
export function shareCpuThreads(cores: number, env: NodeJS.ProcessEnv = process.env): number {
  if (env.SIMCSEPP_NUM_THREADS) return Number(env.SIMCSEPP_NUM_THREADS)
  const threads = Math.max(1, Math.floor(cores / localSize(env)))
  env.SIMCSEPP_NUM_THREADS = String(threads)
  return threads
}

/**
 * One GPU per rank: CUDA_VISIBLE_DEVICES narrowed to the local rank's device (the local rank-th entry of
 * the list the user gave, else device <local rank>), so that device 0 of every process is its own GPU.
 * Must run before CUDA is first touched. Returns the device chosen.
 */
export function assignGpu(rank: number, env: NodeJS.ProcessEnv = process.env): string {
  const given = env.CUDA_VISIBLE_DEVICES?.split(',').filter((d) => d.trim() !== '')
  const device = given && given.length ? given[rank % given.length] : String(rank)
  env.CUDA_VISIBLE_DEVICES = device
  return device
}

/**
 * UCX's memory hooks off (UCX_MEM_EVENTS=no) unless the user set them. UCX (MPICH's ch4:ucx device, Open
 * MPI's pml/ucx) patches mmap/munmap/brk in the running process to track registered memory; under Node,
 * whose V8 threads map and unmap heap pages concurrently, that patching crashed a rank about once in 30
 * MPICH runs (a segfault inside V8's page allocator or GC). Without the hooks UCX only skips its
 * registration cache for host memory, which a CPU or NCCL data-parallel run does not rely on.
 * Must run before MPI_Init. Returns the value in effect.
 */
export function disableUcxMemoryHooks(env: NodeJS.ProcessEnv = process.env): string {
  env.UCX_MEM_EVENTS ??= 'no'
  return env.UCX_MEM_EVENTS
}

/** Rank r's sentences of a global batch of n over R ranks: [start, end), as even as integers allow. */
export function rankSlice(n: number, ranks: number, rank: number): [number, number] {
  return [Math.floor((rank * n) / ranks), Math.floor(((rank + 1) * n) / ranks)]
}
