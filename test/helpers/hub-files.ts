// What the Hub stand-ins of hub-model.test.ts and hub-push.test.ts share: a folder's files, and the two ids the Hub
// gives a file (git's blob id, the LFS sha256).
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

export const gitBlobId = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex')
export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** The files of a folder, by their paths relative to it ('/'-separated). */
export function filesOf(dir: string, under = ''): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  for (const e of readdirSync(join(dir, under), { withFileTypes: true })) {
    const path = under ? `${under}/${e.name}` : e.name
    if (e.isDirectory()) for (const [p, b] of filesOf(dir, path)) out.set(p, b)
    else out.set(path, readFileSync(join(dir, path)))
  }
  return out
}
