// Re-runs the calling test file in a child process with some environment variables set (or, undefined,
// removed), for settings a process fixes once (SIMCSEPP_GEMM_BF16, SIMCSEPP_ATTENTION_KERNEL, ...). The file
// checks `childFlag` in its environment: set, it prints one JSON value instead of testing, which is returned.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export function runSelfAsChild<T>(selfUrl: string, childFlag: string, env: Record<string, string | undefined>): T {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, [childFlag]: '1', TAP: '0' }
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete childEnv[k]
    else childEnv[k] = v
  }
  const r = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(selfUrl)], {
    encoding: 'utf8',
    env: childEnv,
    maxBuffer: 64 << 20,
  })
  if (r.status !== 0) throw new Error(r.stderr)
  return JSON.parse(r.stdout) as T
}
