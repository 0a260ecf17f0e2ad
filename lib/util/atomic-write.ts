// The one way simcsepp replaces a file: write a temporary file beside it, fsync it, rename it over the
// target, then fsync the directory (best effort). A crash or a kill at any moment leaves the old file or
// the new one, never half of one, so a run directory is always loadable.
import { randomBytes } from 'node:crypto'
import { promises as fsp } from 'node:fs'
import { dirname } from 'node:path'

/** Writes `data` to `path` atomically (temporary file, fsync, rename). */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await replaceFileAtomic(path, (tmp) => writeFileSynced(tmp, data))
}

/**
 * Replaces `path` with what `write` puts into the temporary path it is given (for writers that insist
 * on a file name, like the tokenizers library), then renames it into place. The temporary file is
 * removed when anything fails.
 */
export async function replaceFileAtomic(path: string, write: (tmp: string) => void | Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`
  try {
    await write(tmp)
    await fsp.rename(tmp, path)
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => {})
    throw e
  }
  await syncDir(dirname(path))
}

/** Writes a file and fsyncs it before returning. */
export async function writeFileSynced(path: string, data: string | Uint8Array): Promise<void> {
  const fh = await fsp.open(path, 'w')
  try {
    await fh.writeFile(data)
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Persists renames in `dir`; not every platform or filesystem can fsync a directory, hence best effort. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await fsp.open(dir, 'r')
    try {
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch {
    // The renames are still atomic.
  }
}
