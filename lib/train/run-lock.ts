// An exclusive lock on a run's output directory for the run's lifetime: two trainings writing the same
// directory would interleave their logs and mix their checkpoints. The lock is a file created with
// O_EXCL holding the owner's pid, host and start time; a lock whose process is gone (same host, pid no
// longer running) is stale and taken over, so a killed run never blocks the next one.
import { readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'

export const LOCK_FILE = '.simcsepp.lock'

interface LockInfo {
  pid: number
  host: string
  started: string
  command: string
}

export interface RunLock {
  readonly path: string
  /** Removes the lock file (idempotent; also done on process exit). */
  release(): void
}

/** Whether a process with this pid runs on this machine (EPERM: it exists but is someone else's). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'
  }
  // A zombie (exited, not yet reaped: e.g. a rank of a killed MPI job whose reaper is slow) holds nothing.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return true // no /proc (not Linux): kill's answer stands
  }
}

function readLock(path: string): LockInfo | null {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockInfo>
    if (typeof v.pid === 'number' && typeof v.host === 'string') {
      return { pid: v.pid, host: v.host, started: String(v.started ?? '?'), command: String(v.command ?? '?') }
    }
  } catch {
    // unreadable or half-written: treated as stale below
  }
  return null
}

/**
 * Who holds the lock of `dir` now, as 'pid N' (with ' on host H' for another machine's process), or null where no
 * live process does. For commands that read a run's folder and must not while a training writes it.
 */
export function runLockHolder(dir: string): string | null {
  const holder = readLock(join(dir, LOCK_FILE))
  if (!holder) return null
  if (holder.host !== hostname()) return `pid ${holder.pid} on host ${holder.host}, started ${holder.started}`
  return processAlive(holder.pid) && holder.pid !== process.pid ? `pid ${holder.pid}, started ${holder.started}` : null
}

/**
 * Takes the lock of `dir` (which must exist) or throws an Error saying who holds it. A lock of a dead
 * process on this host, or an unreadable lock file, is replaced.
 */
export function acquireRunLock(dir: string, what = 'train'): RunLock {
  const path = join(dir, LOCK_FILE)
  const me: LockInfo = { pid: process.pid, host: hostname(), started: new Date().toISOString(), command: what }
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, JSON.stringify(me) + '\n', { flag: 'wx' })
      return register(path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
    }
    const holder = readLock(path)
    if (holder && holder.pid === process.pid && holder.host === me.host) {
      throw new Error(`${dir} is already in use by a training in this process (started ${holder.started})`)
    }
    if (holder && (holder.host !== me.host || processAlive(holder.pid))) {
      const where = holder.host === me.host ? `pid ${holder.pid}` : `pid ${holder.pid} on host ${holder.host}`
      throw new Error(
        `${dir} is in use by another training (${where}, started ${holder.started}); ` +
          `wait for it to finish, or choose another --out (if that process is gone, delete ${path})`,
      )
    }
    // An unreadable lock may be one another process is writing this very moment: only an old one is stale.
    if (!holder && lockAgeMs(path) < 5000) {
      throw new Error(`${dir} is being locked by another training right now (${path}); choose another --out or retry`)
    }
    // Stale: its process is gone (or the file is old and unreadable). Remove it and try again.
    try {
      unlinkSync(path)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
  }
  throw new Error(`${dir}: could not take the run lock ${path} (another process keeps recreating it)`)
}

function lockAgeMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs
  } catch {
    return Infinity
  }
}

function register(path: string): RunLock {
  let held = true
  const release = () => {
    if (!held) return
    held = false
    process.off('exit', release)
    try {
      unlinkSync(path)
    } catch {
      // already gone
    }
  }
  process.on('exit', release)
  return { path, release }
}
