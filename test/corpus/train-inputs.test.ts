// Regression corpus of the adversarial pass on training inputs (issue 9, items 11 and 13): batch sizes
// beyond the data or beyond memory, numeric options out of any sane range, a diverging run's message,
// and resuming without repeating --tokenizer. Each case once allocated gigabytes, trained on nonsense,
// pointed at the wrong checkpoint or could not be resumed.
import t from 'tap'
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { train } from '../../lib/train/train.js'
import { checkBatchFits } from '../../lib/train/batch-size.js'
import { buildVocab } from '../../lib/train/vocab.js'
import { namedConfig } from '../../lib/model/config.js'
import { permutation } from '../../lib/data/sentences.js'
import { readSafetensors, writeSafetensors } from '../../lib/safetensors.js'
import type { StepInfo } from '../../lib/train/events.js'
import type * as BertModule from '../../lib/model/bert.js'
import type * as LoadWeightsModule from '../../lib/model/load-weights.js'
import type * as SetupModule from '../../lib/train/setup.js'
import type * as TrainModule from '../../lib/train/train.js'
import { needsCli, runCli, tempDir, TINY_RUN, writeSentences } from '../helpers/train-corpus.js'

const dir = tempDir('simcsepp-inputs-')
const data = writeSentences(join(dir, 'sentences.txt'), 80)
const base = { ...TINY_RUN, data }
const GiB = 2 ** 30
const weights = (out: string) => readFileSync(join(out, 'model.safetensors'))
const stepsOf = (out: string) =>
  readFileSync(join(out, 'run', 'train.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as StepInfo)

// First in the file: it measures the process's peak memory.
t.test('item 11: --batch-size beyond the data trains on all of it, with buffers for that batch only', async (t) => {
  const five = writeSentences(join(dir, 'five.txt'), 5)
  const out = join(dir, 'huge-batch')
  const peakBefore = process.resourceUsage().maxRSS
  const notes: string[] = []
  const r = await train({ ...base, data: five, batchSize: 2_000_000, steps: 2, out }, { onMessage: (m) => notes.push(m) })
  const grewMiB = (process.resourceUsage().maxRSS - peakBefore) / 1024
  t.ok(grewMiB < 1024, `peak memory grew ${grewMiB.toFixed(0)} MiB (dL/dz for 2000000 sentences alone is 3 GiB)`)
  t.equal(r.steps, 2)
  t.same(
    stepsOf(out).map((s) => s.batchSize),
    [5, 5],
    'train.jsonl: every step trained on the 5 sentences',
  )
  const args = JSON.parse(readFileSync(join(out, 'run', 'training_args.json'), 'utf8'))
  t.equal(args.batchSize, 5, 'training_args.json: the batch size used')
  t.equal(args.batchSizeRequested, 2_000_000, 'training_args.json: the batch size asked for')
  t.match(notes.join('\n'), /--batch-size 2000000 is more than the 5 sentences of .*five\.txt: each step trains on all 5/)
  const exact = join(dir, 'batch-5')
  await train({ ...base, data: five, batchSize: 5, steps: 2, out: exact })
  t.ok(weights(out).equals(weights(exact)), 'the same weights as --batch-size 5')
})

t.test('item 11: a batch whose activations cannot fit is refused before allocation, in flags', async (t) => {
  const tiny = namedConfig('tiny', 8000)
  const shape = { config: tiny, requested: 1e8, maxLen: 32, tokens: 32, views: 3 }
  t.throws(
    () => checkBatchFits({ ...shape, batch: 1e8 }, 64 * GiB),
    /^--batch-size 100000000 with --max-len 32 needs ~[\d.]+ TiB of activations; this machine has 64\.0 GiB: lower --batch-size or --max-len, or set --micro-batch$/,
  )
  t.throws(
    () => checkBatchFits({ ...shape, batch: 1e6 }, 2 ** 50),
    /^--batch-size 100000000 \(1000000 sentences: all of the data\) with --max-len 32 needs ~[\d.]+ TiB of activations, more than the 8\.00 GiB simcsepp can allocate at once: lower --batch-size or --max-len, or set --micro-batch$/,
  )
  t.doesNotThrow(() => checkBatchFits({ ...shape, requested: 64, batch: 64 }, 1 * GiB), 'the default batch fits in 1 GiB')

  // The same through train(): 1e8 asked, 100000 sentences (~250 GiB of activations) given, whole batch
  // requested (--micro-batch auto, the default, would train it in passes).
  const many = writeSentences(join(dir, 'many.txt'), 100_000)
  const err = await train({ ...base, data: many, batchSize: 1e8, maxLen: 32, microBatch: 0, out: join(dir, 'too-big') }).then(
    () => null,
    (e: Error) => e,
  )
  t.match(
    err?.message,
    /^--batch-size 100000000 \(100000 sentences: all of the data\) with --max-len 32 needs ~[\d.]+ GiB of activations(; this machine has|, more than the 8\.00 GiB).*: lower --batch-size or --max-len, or set --micro-batch$/,
  )
  t.notMatch(err?.message, /38400000000|shape/)
})

t.test('item 11: one sentence cannot train contrastively, and the error says so', async (t) => {
  const one = join(dir, 'one.txt')
  writeFileSync(one, 'a lone sentence\n')
  await t.rejects(
    train({ ...base, data: one, out: join(dir, 'one') }),
    /one\.txt: only 1 sentence; contrastive training needs at least 2 \(a batch of 1 has no in-batch negatives\)/,
  )
  await t.rejects(
    train({ ...base, batchSize: 1, out: join(dir, 'b1') }),
    /batchSize must be an integer >= 2 \(got 1\): a batch of 1 sentence has no in-batch negatives/,
  )
})

t.test('item 11: --batch-size 1 on the command line says why', needsCli, async (t) => {
  const r = runCli(['train', '--config', 'tiny', '--data', data, '--batch-size', '1', '--out', join(dir, 'cli-b1')])
  t.equal(r.status, 2)
  t.match(r.stderr, /--batch-size must be an integer >= 2 \(got "1"\): a batch of 1 sentence has no in-batch negatives/)
})

t.test('item 13a: numeric options out of any sane range are refused', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['lr', 1e308, /lr must be a number in \(0, 1\] \(got 1e\+308\)/],
    ['lr', '0.1', /lr must be a number in \(0, 1\] \(got "0\.1"\)/],
    ['dclWeight', 1e308, /dclWeight must be a number in \[0, 1000\] \(got 1e\+308\)/],
    ['temperature', 1e-300, /temperature must be a number in \[0\.0001, 1000\] \(got 1e-300\)/],
    ['dclTemperature', Infinity, /dclTemperature must be a number in \[0\.0001, 1000\] \(got Infinity\)/],
    ['posScale', -1, /posScale must be a number in \(0, 1000\] \(got -1\)/],
    ['weightDecay', NaN, /weightDecay must be a number in \[0, 1\] \(got NaN\)/],
    ['gradClip', Infinity, /gradClip must be a number in \(0, 1000000\] \(got Infinity\)/],
    ['dropout', 1, /dropout must be a number in \[0, 1\) \(got 1\)/],
    ['warmup', 1.5, /warmup must be an integer >= 0 \(got 1\.5\)/],
    ['maxLen', Infinity, /maxLen must be an integer >= 3 \(got Infinity\)/],
    ['epochs', -1, /epochs must be an integer in \[1, 1000000\] \(got -1\)/],
    ['steps', NaN, /steps must be an integer >= 0 \(got NaN\)/],
    ['batchSize', 2.5, /batchSize must be an integer >= 2 \(got 2\.5\)/],
  ]
  for (const [name, value, error] of cases) {
    const out = join(dir, `range-${name}-${String(value)}`)
    await t.rejects(train({ ...base, steps: 1, out, [name]: value }), error, `${name} ${String(value)}`)
    t.notOk(existsSync(join(out, 'run', 'train.jsonl')), 'nothing was trained')
  }
})

t.test('item 13a: the command line checks the same bounds, naming the flag', needsCli, async (t) => {
  for (const [flag, value, error] of [
    ['--lr', '1e308', /--lr must be a number in \(0, 1\] \(got "1e308"\)/],
    ['--dcl-weight', '1e308', /--dcl-weight must be a number in \[0, 1000\] \(got "1e308"\)/],
    ['--pos-scale', '0', /--pos-scale must be a number in \(0, 1000\] \(got "0"\)/],
  ] as const) {
    const r = runCli(['train', '--config', 'tiny', '--data', data, '--steps', '1', flag, value, '--out', join(dir, `cli-${flag}`)])
    t.equal(r.status, 2, `${flag} ${value}: a usage error`)
    t.match(r.stderr, error)
  }
})

t.test("item 13b: a diverged run names this run's last checkpoint, or says there is none", async (t) => {
  // A model whose embedding of "z" (and "##z") is NaN: the step whose batch holds "zzz the cat" diverges.
  // BertModel.load refuses such a checkpoint (item 9), so these runs use a train() whose weight loading
  // (load-weights.ts) hears from the addon that every tensor is finite: what is tested here is the divergence
  // message, not the load check.
  const native = await import('../../lib/native.js')
  const loadWeights = await t.mockImport<typeof LoadWeightsModule>('../../lib/model/load-weights.js', {
    '../../lib/native.js': { ...native, addon: { ...native.addon, firstNonFinite: () => -1 } },
  })
  const bert = await t.mockImport<typeof BertModule>('../../lib/model/bert.js', {
    '../../lib/model/load-weights.js': loadWeights,
  })
  const setup = await t.mockImport<typeof SetupModule>('../../lib/train/setup.js', {
    '../../lib/model/bert.js': bert,
  })
  const { train: trainPoisoned } = await t.mockImport<typeof TrainModule>('../../lib/train/train.js', {
    '../../lib/train/setup.js': setup,
  })
  const zdata = join(dir, 'z-sentences.txt')
  writeFileSync(zdata, readFileSync(data, 'utf8') + 'zzz the cat\n')
  const model = join(dir, 'poisoned')
  await train({ ...base, data: zdata, steps: 0, out: model })
  const vocab = readFileSync(join(model, 'vocab.txt'), 'utf8').split('\n')
  const file = join(model, 'model.safetensors')
  const tensors = await readSafetensors(file)
  const emb = tensors.get('embeddings.word_embeddings.weight')!
  const H = emb.shape[1]
  for (const token of ['z', '##z']) emb.data.fill(NaN, vocab.indexOf(token) * H, (vocab.indexOf(token) + 1) * H)
  await writeSafetensors(file, new Map([...tensors].map(([name, { shape, data }]) => [name, { shape, data }])))

  // The step (1-based) that reads the last line, for a seed: batches of 8 from the seeded order.
  const stepOf = (seed: number) => Math.floor(permutation(81, seed, 0).indexOf(80) / 8) + 1
  const seeds = Array.from({ length: 200 }, (_, i) => i)
  const first = seeds.find((s) => stepOf(s) === 1)!
  const later = seeds.find((s) => stepOf(s) >= 3 && stepOf(s) <= 10)!
  const { config: _, ...run } = { ...base, data: zdata, model, steps: 10 }

  const none = join(dir, 'nan-first')
  await t.rejects(
    trainPoisoned({ ...run, seed: first, out: none }),
    /^step 1: the sentence vectors hold NaN \(training diverged\); no checkpoint of this run exists yet; lower --lr \(now 0\.00003\) and start over with --overwrite$/,
  )
  t.notOk(existsSync(join(none, 'run', 'checkpoint')))

  const k = stepOf(later)
  const saved = join(dir, 'nan-later')
  await t.rejects(
    trainPoisoned({ ...run, seed: later, out: saved }),
    new RegExp(`^step ${k}: .*this run's last checkpoint is ${saved}/run/checkpoint \\(step ${k - 1}\\); lower --lr`),
  )
  t.equal(JSON.parse(readFileSync(join(saved, 'run', 'checkpoint', 'state.json'), 'utf8')).step, k - 1, 'that checkpoint exists')

  // Resumed from another directory, diverging before this run saved anything: the checkpoint it resumed from.
  const earlier = join(dir, 'nan-earlier')
  const ctl = new AbortController()
  await trainPoisoned({ ...run, seed: later, saveEvery: 0, out: earlier }, { signal: ctl.signal, onStep: () => ctl.abort() })
  await t.rejects(
    trainPoisoned({ ...run, seed: later, saveEvery: 0, resume: earlier, out: join(dir, 'nan-resumed') }),
    new RegExp(`^step ${k}: .*this run's last checkpoint is ${earlier}/run/checkpoint \\(step 1\\); lower --lr`),
  )
})

t.test('item 13c: a resumed run needs no --tokenizer, and refuses a different one', async (t) => {
  // A tokenizer unlike the one train() would build from the data: 100 more tokens.
  const tokens = [...buildVocab(readFileSync(data, 'utf8').split('\n'), 8000), ...Array.from({ length: 100 }, (_, i) => `extra${i}`)]
  const tokenizer = join(dir, 'own-vocab.txt')
  writeFileSync(tokenizer, tokens.join('\n') + '\n')
  const other = join(dir, 'other-vocab.txt') // as many tokens, two of them swapped
  writeFileSync(other, [...tokens.slice(0, -2), tokens.at(-1), tokens.at(-2)].join('\n') + '\n')
  const run = { ...base, tokenizer, steps: 4 }

  const whole = join(dir, 'tok-whole')
  await train({ ...run, out: whole })
  const part = join(dir, 'tok-part')
  const ctl = new AbortController()
  await train({ ...run, out: part }, { signal: ctl.signal, onStep: (s) => s.step === 2 && ctl.abort() })
  t.ok(existsSync(join(part, 'run', 'checkpoint', 'vocab.txt')), 'the checkpoint holds the tokenizer')
  const same = join(dir, 'tok-same')
  cpSync(part, same, { recursive: true })

  const { tokenizer: _, ...withoutTokenizer } = run
  await train({ ...withoutTokenizer, out: part, resume: part })
  t.ok(weights(part).equals(weights(whole)), 'resumed without --tokenizer: the weights of the uninterrupted run')
  await t.rejects(
    train({ ...run, tokenizer: other, out: same, resume: same }),
    /^--tokenizer .*other-vocab\.txt is not the tokenizer the checkpointed run trained with \(.*own-vocab\.txt, copied into .*tok-same\/run\/checkpoint\): resume without --tokenizer$/,
  )
  await train({ ...run, out: same, resume: same })
  t.ok(weights(same).equals(weights(whole)), 'resumed with the same --tokenizer: the same weights')
})

t.test('item 13d: resume does not read the vocab.txt outside the checkpoint', async (t) => {
  // No tokenizer given: a vocabulary is built from the data into <out>/vocab.txt.
  const run = { ...base, steps: 4 }
  const whole = join(dir, 'vocab-whole')
  await train({ ...run, out: whole })
  const out = join(dir, 'vocab-half')
  const ctl = new AbortController()
  await train({ ...run, out }, { signal: ctl.signal, onStep: (s) => s.step === 2 && ctl.abort() })
  const vocab = readFileSync(join(out, 'vocab.txt'))
  writeFileSync(join(out, 'vocab.txt'), vocab.subarray(0, vocab.length >> 1)) // half-written
  const r = await train({ ...run, out, resume: out })
  t.equal(r.steps, 4)
  t.ok(weights(out).equals(weights(whole)), 'the weights of the uninterrupted run')
  t.equal(readFileSync(join(out, 'vocab.txt'), 'utf8'), readFileSync(join(whole, 'vocab.txt'), 'utf8'), 'vocab.txt whole again')
})

t.test('a NaN evaluation never blocks later best-model saves', async (t) => {
  const { Evaluator, betterScore } = await import('../../lib/train/evaluation.js')
  t.ok(betterScore(0.1, NaN), 'a number beats NaN')
  t.notOk(betterScore(NaN, 0.1), 'NaN beats nothing')
  t.notOk(betterScore(NaN, NaN))
  t.ok(betterScore(0.5, 0.4))
  t.notOk(betterScore(0.4, 0.4))
  let saves = 0
  const vectors = [
    [1, 0],
    [1, 0],
  ]
  const pairs = [
    { s1: 'x', s2: 'y', score: 1 },
    { s1: 'y', s2: 'x', score: 2 },
    { s1: 'x', s2: 'x', score: 3 },
  ]
  let constant = true
  const ev = new Evaluator(
    { sts: [{ file: 'sts.tsv', pairs }] },
    async (sentences: string[]) => sentences.map((s, i) => Float32Array.from(constant ? vectors[0] : s === 'x' ? [1, i % 2] : [i % 3, 1])),
    async () => {
      saves++
    },
    null,
  )
  const first = await ev.evaluate(1)
  t.ok(Number.isNaN(first.spearman), 'constant vectors: Spearman is NaN')
  constant = false
  const second = await ev.evaluate(2)
  t.ok(Number.isFinite(second.spearman))
  t.equal(second.best, true, 'the first real score replaces a NaN best')
  t.equal(saves, 2)
})
