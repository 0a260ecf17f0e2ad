// Temporaries that a killed run leaves behind: every atomic write goes through `<name>.tmp-<pid>`
// (a checkpoint through the directory `checkpoint.tmp-<pid>/`), and a kill or a full disk between the
// write and the rename leaves it there, up to a whole checkpoint (1.3 GB for BERT-base). A new run or a
// resume in the same directory removes those whose process is gone; a live process's are left alone.
import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { processAlive } from './run-lock.js'

const TEMP_NAME = /\.tmp-(\d+)$/

/**
 * Removes `*.tmp-<pid>` files and directories of dead processes from `dir` and from the subdirectories
 * a run writes (`1_Pooling`, `run`). Returns the names removed.
 */
export async function removeStaleTemporaries(dir: string, subdirs: readonly string[] = ['1_Pooling', 'run']): Promise<string[]> {
  const removed: string[] = []
  for (const d of [dir, ...subdirs.map((s) => join(dir, s))]) {
    let names: string[]
    try {
      names = await readdir(d)
    } catch {
      continue // a subdirectory that does not exist (yet)
    }
    for (const name of names) {
      const m = TEMP_NAME.exec(name)
      if (!m) continue
      const pid = Number(m[1])
      if (pid === process.pid || processAlive(pid)) continue
      await rm(join(d, name), { recursive: true, force: true })
      removed.push(d === dir ? name : join(d.slice(dir.length + 1), name))
    }
  }
  return removed
}
