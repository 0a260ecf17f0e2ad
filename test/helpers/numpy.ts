// Python's numpy as a reference where this machine has it (python3 -c with numpy imported as np, json too).
import { spawnSync } from 'node:child_process'

/** What `code` prints (one JSON value), or null where python3 or numpy is missing. */
export function numpyJson(code: string): unknown {
  const r = spawnSync('python3', ['-c', `import json, numpy as np\n${code}`], { encoding: 'utf8' })
  return r.status === 0 ? JSON.parse(r.stdout) : null
}

/** tap's skip option for tests that need numpy. */
export const needsNumpy = { skip: numpyJson('print(json.dumps(1))') === 1 ? false : 'python3 with numpy not found' }
