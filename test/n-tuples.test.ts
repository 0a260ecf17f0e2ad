// Several hard negatives per example (sentence-transformers' n-tuple format: anchor, positive, negative_1 ..
// negative_k): read from CSV/TSV/JSONL, one view per column in the step, every negative of the batch a column
// of every anchor's InfoNCE (the step's loss is losses.simcse with [k·N, H] hard negatives), micro-batches,
// and a run's log and model card.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { detectFormat, PairFile } from '../lib/data/pairs.js'
import { train } from '../lib/train/train.js'
import * as losses from '../lib/losses.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { cudaStatus } from '../lib/index.js'
import type { StepInfo } from '../lib/train/events.js'
import { compareWeights } from './helpers/compare-weights.js'
import { checkMicroBatches, supervisedStep } from './helpers/supervised-step.js'
import { tempDir, TINY_RUN, WORDS } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-ntuples-')
const write = (name: string, text: string) => {
  const p = join(dir, name)
  writeFileSync(p, text)
  return p
}

/** `count` examples of the small grammar: a sentence, its reversal, then k unrelated sentences. */
function tuples(count: number, k: number, seed = 11): string[][] {
  let s = seed
  const rnd = (n: number) => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % n
  const sentence = () => Array.from({ length: 3 + rnd(6) }, () => WORDS[rnd(WORDS.length)]).join(' ')
  return Array.from({ length: count }, () => {
    const a = sentence()
    return [a, a.split(' ').reverse().join(' '), ...Array.from({ length: k }, sentence)]
  })
}
const header = (k: number) => ['anchor', 'positive', ...Array.from({ length: k }, (_, i) => `negative_${i + 1}`)]

t.test('n-tuples read from CSV, TSV and JSONL: negative_1 .. negative_k in order, other columns ignored', async (t) => {
  const rows = tuples(5, 3)
  // The header lists the negatives out of order, with a score column between them.
  const csv = write(
    'n.csv',
    ['negative_2,anchor,score,negative_1,positive,negative_3', ...rows.map((r) => [r[3], r[0], '0.5', r[2], r[1], r[4]].join(','))].join(
      '\n',
    ) + '\n',
  )
  const tsv = write('n.tsv', [header(3).join('\t'), ...rows.map((r) => r.join('\t'))].join('\n') + '\n')
  const jsonl = write(
    'n.jsonl',
    rows.map((r) => JSON.stringify({ query: r[0], positive: r[1], negative_1: r[2], negative_2: r[3], negative_3: r[4] })).join('\n'),
  )
  for (const [path, format] of [
    [csv, 'csv'],
    [tsv, 'tsv'],
    [jsonl, 'jsonl'],
  ] as const) {
    const file = await PairFile.open(path, format)
    t.equal(file.width, 5, `${format}: 5 columns`)
    t.same(
      await file.readColumns([0, 1, 2, 3, 4]),
      [0, 1, 2, 3, 4].map((c) => rows.map((r) => r[c])),
      `${format}: columns in order`,
    )
    t.match(file.describe(), /5 5-tuples \(anchor, positive, 3 hard negatives\)/)
  }
  const noExtension = write('mined', [['query', 'positive', 'negative_1'].join(','), 'a b,b a,c d'].join('\n') + '\n')
  t.equal(await detectFormat(noExtension), 'csv', 'a query,positive,negative_1 header is detected as CSV')
  t.equal((await PairFile.open(noExtension, 'csv')).width, 3, 'one numbered negative: a triplet')
})

t.test('negative columns named two ways, with a gap or twice, are refused with the line', async (t) => {
  const cases: [string, string, RegExp][] = [
    [
      'gap.csv',
      'anchor,positive,negative_1,negative_3\na,b,c,d\n',
      /gap\.csv: line 1: the numbered negatives must run 1, 2, \.\.\., k .*found 1, 3/,
    ],
    [
      'two.csv',
      'anchor,positive,negative,negative_1\na,b,c,d\n',
      /two\.csv: line 1: the negatives are named two ways \(negative, negative_1 \.\.\.\)/,
    ],
    ['both.csv', 'sent0,sent1,hard_neg,negative\na,b,c,d\n', /both\.csv: line 1: the negatives are named two ways \(hard_neg, negative\)/],
    ['twice.csv', 'anchor,positive,negative_1,hard_neg_1\na,b,c,d\n', /twice\.csv: line 1: .*found 1, 1/],
    [
      'zero.jsonl',
      '{"anchor":"a","positive":"b","negative_1":"c"}\n{"anchor":"a","positive":"b","negative_1":"c","negative_3":"d"}\n',
      /zero\.jsonl: line 2: the numbered negatives/,
    ],
    [
      'keys.jsonl',
      '{"anchor":"a","positive":"b","negative_1":"c"}\n{"anchor":"a","positive":"b","negative_1":"c","negative_2":"d"}\n',
      /keys\.jsonl: line 2: keys anchor, positive, negative_1, negative_2, but the first example has anchor, positive, negative_1/,
    ],
  ]
  for (const [name, text, error] of cases) {
    const format = name.endsWith('.jsonl') ? 'jsonl' : 'csv'
    await t.rejects(PairFile.open(write(name, text), format), error, name)
  }
})

t.test("the step's loss is losses.simcse with every negative column as hard negatives", async (t) => {
  const n = 8,
    k = 3
  const columns = [0, 1, 2, 3, 4].map((c) => tuples(n, k).map((r) => r[c]))
  let expected = NaN,
    firstOnly = NaN
  const { info } = await supervisedStep(dir, columns, 0, async (model) => {
    const enc = await (await Tokenizer.load(join(dir, 'micro'))).encodeBatch(columns.flat(), { maxLength: 10 })
    const z = model.trainForward(enc, { seed: 5, step: 0, pooling: 'cls', keepRows: new Uint8Array((2 + k) * n).fill(1) })
    const H = model.config.hiddenSize
    const rows = (r0: number, count: number) => z.view(r0 * H, [count, H])
    expected = losses.simcse(rows(0, n), rows(n, n), { temperature: 0.07, hardNegatives: rows(2 * n, k * n) }).loss
    firstOnly = losses.simcse(rows(0, n), rows(n, n), { temperature: 0.07, hardNegatives: rows(2 * n, n) }).loss
  })
  t.equal(info.loss, expected, `step loss ${info.loss} = losses.simcse over ${k * n} hard negatives ${expected}`)
  t.ok(info.loss > firstOnly, `more negatives than the first column's: ${info.loss} > ${firstOnly}`)
})

t.test('n-tuples in micro-batches: the gradients of the unchunked step (M = 3, 13, 40)', async (t) => {
  const columns = [0, 1, 2, 3, 4].map((c) => tuples(8, 3, 5).map((r) => r[c]))
  await checkMicroBatches(t, dir, columns, [3, 13, 40])
})

t.test('a run on n-tuples: its log and model card say what it trained on', async (t) => {
  const rows = tuples(24, 2, 17)
  const data = write('train.csv', [header(2).join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n')
  const out = join(dir, 'run')
  const lines: string[] = []
  const r = await train({ ...TINY_RUN, data, out, steps: 2 }, { onMessage: (m) => void lines.push(m) })
  t.equal(r.steps, 2)
  t.match(
    lines.join('\n'),
    /24 4-tuples \(anchor, positive, 2 hard negatives\), read as csv: supervised SimCSE with in-batch and hard negatives/,
  )
  const card = readFileSync(join(out, 'README.md'), 'utf8')
  t.match(card, /24 4-tuples \(anchor, positive, 2 hard negatives\)/)
  t.match(card, /and every hard negative of the batch as negatives/)
})

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

t.test('an n-tuple run on CUDA (fp32) ends with the CPU weights', { skip }, async (t) => {
  const rows = tuples(24, 3, 23)
  const data = write('cuda.csv', [header(3).join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n')
  const lr = 3e-5
  const run = { ...TINY_RUN, data, saveEvery: 0, lr }
  const cpu: StepInfo[] = []
  const cuda: StepInfo[] = []
  await train({ ...run, device: 'cpu', out: join(dir, 'cpu') }, { onStep: (s) => void cpu.push(s) })
  await train({ ...run, device: 'cuda', precision: 'fp32', out: join(dir, 'cuda') }, { onStep: (s) => void cuda.push(s) })
  for (const [i, s] of cuda.entries())
    t.ok(
      Math.abs(s.loss - cpu[i].loss) < 1e-4 * cpu[i].loss,
      `step ${i + 1} (${s.cudaGraph}): loss ${s.loss} on CUDA, ${cpu[i].loss} on the CPU`,
    )
  const { worst, keyBias, worstName } = await compareWeights(join(dir, 'cuda'), join(dir, 'cpu'))
  t.ok(worst < 1e-4, `weights within ${worst.toExponential(2)} relative (worst: ${worstName})`)
  t.ok(keyBias <= 2 * 3 * lr, `key bias within ${keyBias.toExponential(2)}`)
})
