// What the Hub stand-ins' tests share (hub-model, hub-push, hub-datasets): a folder's files, the two ids the Hub gives a
// file (git's blob id, the LFS sha256), and the CLI run beside the stand-in.
import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cli } from './train-corpus.js'

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

/**
 * Runs the CLI with `env` as its whole environment; asynchronously, not with spawnSync: the stand-in Hub answers from
 * this process's event loop.
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env })
    let [stdout, stderr] = ['', '']
    child.stdout.on('data', (b: Buffer) => (stdout += b))
    child.stderr.on('data', (b: Buffer) => (stderr += b))
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}
