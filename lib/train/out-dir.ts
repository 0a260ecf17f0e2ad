// Taking possession of a run's output directory, before anything is written into it:
//   1. the location must be (or become) a writable directory: checked by walking up to the nearest
//      existing ancestor and creating the missing levels one by one (Node's recursive mkdir spins
//      forever under /proc);
//   2. an exclusive lock for the run's lifetime (run-lock.ts);
//   3. temporaries of dead earlier runs are removed (stale-temporaries.ts);
//   4. a directory that already holds a run is never overwritten silently: it takes --resume (that
//      run) or --overwrite (start over, removing the old run's checkpoint and logs).
import { accessSync, constants, existsSync, mkdirSync, statSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { acquireRunLock, type RunLock } from './run-lock.js'
import { removeStaleTemporaries } from './stale-temporaries.js'
import { checkpointDirsOf, RUN_FILES, RUN_STATE_DIR } from './run-layout.js'

export { RUN_FILES } from './run-layout.js'

function explain(e: unknown, path: string): string {
  const code = (e as NodeJS.ErrnoException).code
  if (code === 'EROFS') return `${path} is on a read-only file system`
  if (code === 'EACCES' || code === 'EPERM') return `no permission to write in ${path}`
  if (code === 'ENOSPC') return `no space left on the device of ${path}`
  return `${path}: ${(e as Error).message}`
}

/** Makes `out` a writable directory or throws an Error in the user's terms (never spins, never EEXIST). */
export function ensureWritableDirectory(out: string, flag = '--out'): string {
  const abs = resolve(out)
  const missing: string[] = []
  let at = abs
  while (!existsSync(at)) {
    missing.unshift(at)
    const up = dirname(at)
    if (up === at) break
    at = up
  }
  const st = statSync(at)
  if (!st.isDirectory()) {
    throw new Error(at === abs ? `${flag} ${out} is a file, not a directory` : `${flag} ${out}: ${at} is a file, not a directory`)
  }
  try {
    accessSync(at, constants.W_OK)
  } catch (e) {
    throw new Error(`${flag} ${out}: ${explain(e, at)}`)
  }
  for (const dir of missing) {
    try {
      mkdirSync(dir)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST' && statSync(dir).isDirectory()) continue
      throw new Error(`${flag} ${out}: cannot create ${dir}: ${explain(e, dir)}`)
    }
  }
  return abs
}

export interface OutputDirOptions {
  /** The directory the run resumes from (an output or checkpoint directory), if any. */
  resume?: string
  /** Start over in a directory that holds a run. */
  overwrite?: boolean
  /** Told what was cleaned up. */
  say?: (s: string) => void
}

/** Steps 1-4 above; returns the lock, which the caller releases when the run ends. */
export async function takeOutputDir(out: string, o: OutputDirOptions = {}): Promise<RunLock> {
  const abs = ensureWritableDirectory(out)
  const lock = acquireRunLock(abs)
  try {
    const removed = await removeStaleTemporaries(abs, ['1_Pooling', RUN_STATE_DIR])
    if (removed.length) o.say?.(`removed ${removed.length} temporary file(s) left by an interrupted run: ${removed.join(', ')}`)
    const present = RUN_FILES.filter((f) => existsSync(join(abs, f)))
    const resumesHere = o.resume !== undefined && [abs, ...checkpointDirsOf(abs)].includes(resolve(o.resume))
    if (present.length && !resumesHere) {
      if (!o.overwrite) {
        throw new Error(
          `${out} already holds a training run (${present.join(', ')}): continue it with --resume ${out}, ` +
            `or start over with --overwrite (which deletes that run's checkpoint and logs)`,
        )
      }
      for (const f of present) await rm(join(abs, f), { recursive: true, force: true })
      o.say?.(`--overwrite: removed the previous run's ${present.join(', ')} from ${out}`)
    }
    return lock
  } catch (e) {
    lock.release()
    throw e
  }
}
