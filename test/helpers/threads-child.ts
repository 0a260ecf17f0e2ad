// Runs a script in a child process with a given CPU thread count, for tests that compare results across
// thread counts (the pool's size is fixed per process). The script is an ES module run in the repository
// root, so it imports the compiled library as './dist/...'; it prints one JSON value, which is returned.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))

export function runWithThreads<T>(script: string, threads: string): T {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, SIMCSEPP_NUM_THREADS: threads },
  })
  if (r.status !== 0) throw new Error(r.stderr)
  return JSON.parse(r.stdout) as T
}
