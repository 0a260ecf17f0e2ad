// Tiny training runs for the regression corpus (test/corpus/): a temporary directory removed when the
// test file ends, files of sentences from a small grammar, the options of a tiny model trained a few
// steps, and the built command line.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { writeFileSync } from 'node:fs'
import { WORDS } from './sentences.mjs'

export { WORDS, writeSentences } from './sentences.mjs'

/** A fresh temporary directory, removed at the end of the test file. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** What a finished run leaves at the top of its output directory: the model files, and run/ (the run's state). */
export const OUTPUT_TOP_LEVEL = [
  '1_Pooling',
  'README.md',
  'config.json',
  'config_sentence_transformers.json',
  'model.safetensors',
  'modules.json',
  'run',
  'sentence_bert_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.txt',
]

/** train() options for a tiny model, a few steps, a checkpoint every step (add data and out). */
export const TINY_RUN = { config: 'tiny' as const, steps: 3, batchSize: 8, maxLen: 12, evalEvery: 0, saveEvery: 1, seed: 1 }

/** `simcsepp train` flags of a tiny model trained `steps` steps from `data` into `out`, without evaluation. */
export function tinyTrainArgs(data: string, out: string, steps = 3): string[] {
  const fixed = '--config tiny --batch-size 8 --max-len 12 --eval-every 0'.split(' ')
  return ['train', ...fixed, '--data', data, '--steps', String(steps), '--out', out]
}

/** dist/cli.js, and a skip reason for tests that need it when it is not built. */
export const cli = join(process.cwd(), 'dist', 'cli.js')
export const needsCli = { skip: existsSync(cli) ? false : 'dist/cli.js not built' }

/** `simcsepp encode`'s default output (a JSON array of numbers per line) as float32 vectors. */
export function jsonVectors(stdout: string): Float32Array[] {
  return stdout
    .trimEnd()
    .split('\n')
    .map((l) => Float32Array.from(JSON.parse(l) as number[]))
}

/** Runs `simcsepp ...args` to the end. */
export function runCli(args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })
  return { status: r.status, stderr: r.stderr }
}

/** A micro model saved into `dir/name` (helpers/encoder-e2e.mjs's, built with lib/). Returns the directory. */
export async function microModel(dir: string, name: string): Promise<string> {
  const [{ microModel: build }, { BertModel }, { namedConfig }, { buildVocab, writeVocab }] = await Promise.all([
    import('./encoder-e2e.mjs'),
    import('../../lib/model/bert.js'),
    import('../../lib/model/config.js'),
    import('../../lib/train/vocab.js'),
  ])
  const lib = { BertModel, namedConfig, buildVocab, writeVocab } as Parameters<typeof build>[0]
  return build(lib, dir, name)
}

/**
 * A small STS-B file of `count` pairs (genre, file, year, id, score, sentence1, sentence2) from the grammar's
 * words, every third pair two equal sentences. Returns its path.
 */
export function writeStsFile(path: string, count = 30): string {
  writeFileSync(
    path,
    Array.from({ length: count }, (_, i) => {
      const a = [0, 1, 2, 3].map((k) => WORDS[(i * 7 + k * 3) % WORDS.length]).join(' ')
      const b = i % 3 === 0 ? a : [0, 1, 2, 3].map((k) => WORDS[(i * 5 + k) % WORDS.length]).join(' ')
      return ['main-captions', 'x', '2012', String(i), String(i % 6), a, b].join('\t')
    }).join('\n') + '\n',
  )
  return path
}
