// Tiny training runs for the regression corpus (test/corpus/): a temporary directory removed when the
// test file ends, files of sentences from a small grammar, the options of a tiny model trained a few
// steps, and the built command line.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const WORDS = ['the', 'a', 'cat', 'dog', 'bird', 'sees', 'likes', 'red', 'small', 'house', 'tree', 'river']

/** A fresh temporary directory, removed at the end of the test file. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** Writes `count` sentences of 4 to 9 of WORDS (a seeded LCG) to `path`; returns the path. */
export function writeSentences(path: string, count: number, seed = 11): string {
  let s = seed
  const rnd = (n: number) => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % n
  const lines = Array.from({ length: count }, () => Array.from({ length: 4 + rnd(6) }, () => WORDS[rnd(WORDS.length)]).join(' '))
  writeFileSync(path, lines.join('\n') + '\n')
  return path
}

/** train() options for a tiny model, a few steps, a checkpoint every step (add data and out). */
export const TINY_RUN = { config: 'tiny' as const, steps: 3, batchSize: 8, maxLen: 12, evalEvery: 0, saveEvery: 1, seed: 1 }

/** dist/cli.js, and a skip reason for tests that need it when it is not built. */
export const cli = join(process.cwd(), 'dist', 'cli.js')
export const needsCli = { skip: existsSync(cli) ? false : 'dist/cli.js not built' }

/** Runs `simcsepp ...args` to the end. */
export function runCli(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })
  return { status: r.status, stderr: r.stderr }
}

/**
 * A micro model saved into `dir/name` with a vocab.txt of WORDS: small enough for the CUDA emulator (every
 * thread a fiber, every access checked), with two layers, two heads, and sizes that are not multiples of
 * the kernels' tiles (hidden 48, intermediate 80). Returns the directory.
 */
export async function microModel(dir: string, name: string): Promise<string> {
  const { mkdirSync } = await import('node:fs')
  const { buildVocab, writeVocab } = await import('../../lib/train/vocab.js')
  const { BertModel } = await import('../../lib/model/bert.js')
  const { namedConfig } = await import('../../lib/model/config.js')
  const out = join(dir, name)
  mkdirSync(out, { recursive: true })
  const vocab = buildVocab([WORDS.join(' ')], 64)
  await writeVocab(join(out, 'vocab.txt'), vocab)
  const config = {
    ...namedConfig('tiny', vocab.length),
    hiddenSize: 48,
    numAttentionHeads: 2,
    intermediateSize: 80,
    maxPositionEmbeddings: 40,
  }
  const model = BertModel.create(config, { seed: 3 })
  await model.save(out)
  model.dispose()
  return out
}
