// Batches without a repeated sentence (lib/data/no-duplicates.ts, train()'s batchSampler): each epoch of supervised
// data is rearranged so that no batch holds a sentence twice where the data allows it; the epoch keeps every example
// once, resume positions stay valid, and runs record the sampler (older checkpoints resume with their shuffled order).
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { noDuplicateBatches } from '../lib/data/no-duplicates.js'
import { PairFile } from '../lib/data/pairs.js'
import { BatchStream, permutation } from '../lib/data/sentences.js'
import { train } from '../lib/train/train.js'
import { runCli, needsCli, tempDir, TINY_RUN, writeSentences } from './helpers/train-corpus.js'

/** Examples of three sentences: anchors from a pool of `anchors` (so they repeat), positives unique, negatives another example's positive. */
function examples(n: number, anchors: number): string[][] {
  return Array.from({ length: n }, (_, i) => [`anchor ${(i * 7) % anchors}`, `positive ${i}`, `positive ${(i * 13 + 5) % n}`])
}

/** Batches (slices of `size`) of `order` that hold a sentence twice. */
function batchesWithRepeats(order: Uint32Array, size: number, texts: string[][] | ((i: number) => string[])): number {
  const of = typeof texts === 'function' ? texts : (i: number) => texts[i]
  let bad = 0
  for (let b = 0; b < order.length; b += size) {
    const seen = new Set<string>()
    let repeat = false
    for (const i of order.subarray(b, b + size)) for (const s of of(i)) repeat = seen.has(s) || (seen.add(s), repeat)
    if (repeat) bad++
  }
  return bad
}

const isPermutation = (order: Uint32Array, n: number) => order.length === n && new Set(order).size === n && order.every((i) => i < n)

t.test('noDuplicateBatches: every example once, no batch with a repeat where the data allows it', async (t) => {
  const texts = examples(300, 90)
  const order = permutation(texts.length, 3, 0)
  t.ok(
    batchesWithRepeats(order, 16, texts) > 5,
    `the shuffled order alone repeats a sentence in ${batchesWithRepeats(order, 16, texts)} of 19 batches`,
  )
  const r = noDuplicateBatches(order, 16, (i) => texts[i])
  t.ok(isPermutation(r.order, 300), 'a permutation of the examples')
  t.equal(r.batchesWithRepeats, 0, 'none reported')
  t.equal(batchesWithRepeats(r.order, 16, texts), 0, 'none found')
  t.same(noDuplicateBatches(order, 16, (i) => texts[i]).order, r.order, 'deterministic')
  // Without any repeat in the data, the order is the shuffled one.
  const unique = Array.from({ length: 50 }, (_, i) => [`a${i}`, `b${i}`])
  const shuffled = permutation(50, 3, 0)
  t.same(noDuplicateBatches(shuffled, 8, (i) => unique[i]).order, shuffled, 'without repeats in the data, the shuffled order')
})

t.test('noDuplicateBatches: when the data leaves no other way, batches repeat and say so', async (t) => {
  // Every example shares the positive "yes": each batch of more than one example repeats it.
  const n = 200_000
  const same = Array.from({ length: 40 }, (_, i) => [`q${i}`, 'yes'])
  const r = noDuplicateBatches(permutation(40, 1, 0), 16, (i) => same[i])
  t.ok(isPermutation(r.order, 40), 'still every example once')
  t.equal(r.batchesWithRepeats, 3, 'all three batches (16, 16, 8)')
  // Large and clashing: the deferred examples are looked at a bounded number at a time (this ends).
  const bigTexts = (i: number) => [`q${i}`, `p${i % 100}`]
  const big = noDuplicateBatches(permutation(n, 2, 0), 64, bigTexts)
  t.ok(isPermutation(big.order, n), `${n} examples over 100 positives: a permutation`)
  t.equal(batchesWithRepeats(big.order, 64, bigTexts), big.batchesWithRepeats, 'the count reported is the count found')
  t.ok(
    big.batchesWithRepeats < 10,
    `${big.batchesWithRepeats} of ${Math.ceil(n / 64)} batches repeat (100 positives fill batches of 64 until the end)`,
  )
  // A few repeats: only the end of the epoch may hold one.
  const few = examples(100, 95)
  const fr = noDuplicateBatches(permutation(100, 9, 0), 10, (i) => few[i])
  t.equal(batchesWithRepeats(fr.order, 10, few), fr.batchesWithRepeats, 'the count reported is the count found')
  t.equal(fr.batchesWithRepeats, 0)
})

t.test('BatchStream with noDuplicates: batches without repeats, the same after a resume, reshuffled per epoch', async (t) => {
  const dir = tempDir('simcsepp-no-duplicates-stream-')
  const texts = examples(90, 30)
  const csv = join(dir, 'nli.csv')
  writeFileSync(csv, 'sent0,sent1,hard_neg\n' + texts.map((r) => r.join(',')).join('\n') + '\n')
  const f = await PairFile.open(csv, 'csv')
  const repeats: number[] = []
  const opts = { batchSize: 8, seed: 5, noDuplicates: true, onRepeats: (_: number, k: number) => void repeats.push(k) }
  const stream = new BatchStream(f, opts)
  const batches: string[][][] = []
  for (let b = 0; b < 24; b++) batches.push((await stream.next()).columns!)
  t.ok(
    repeats.length >= 2 && repeats.every((k) => k === 0),
    `${repeats.length} epochs arranged (the next one read ahead), no repeats reported`,
  )
  for (const [b, cols] of batches.entries()) {
    const all = cols.flat()
    t.equal(new Set(all).size, all.length, `batch ${b}: every sentence once`)
  }
  const anchorsOf = (from: number, to: number) => batches.slice(from, to).flatMap((c) => c[0])
  t.equal(anchorsOf(0, 12).length, 90, 'an epoch: 12 batches, 90 examples')
  t.notSame(anchorsOf(0, 12), anchorsOf(12, 24), 'epoch 2 in another order')
  const first = new BatchStream(f, opts)
  for (let b = 0; b < 5; b++) await first.next()
  const resumed = new BatchStream(f, { ...opts, start: first.position })
  for (let b = 5; b < 14; b++) t.same((await resumed.next()).columns, batches[b], `batch ${b} after a resume at batch 5`)
  const plain = new BatchStream(f, { batchSize: 8, seed: 5 })
  let plainRepeats = 0
  for (let b = 0; b < 12; b++) {
    const all = (await plain.next()).columns!.flat()
    if (new Set(all).size < all.length) plainRepeats++
  }
  t.ok(plainRepeats > 0, `without it, ${plainRepeats} of 12 batches repeat a sentence`)
  t.throws(() => new BatchStream({ count: 4, epochOrder: () => new Uint32Array(4), readLines: async () => [] }, opts), /noDuplicates needs/)
})

t.test('train(): batchSampler recorded, refused for plain text, fixed on resume; older checkpoints keep their order', async (t) => {
  const dir = tempDir('simcsepp-no-duplicates-train-')
  const csv = join(dir, 'nli.csv')
  writeFileSync(
    csv,
    'sent0,sent1,hard_neg\n' +
      examples(40, 12)
        .map((r) => r.join(','))
        .join('\n') +
      '\n',
  )
  const out = join(dir, 'sup')
  await train({ ...TINY_RUN, data: csv, out, steps: 2, device: 'cpu' })
  const args = (o: string) => JSON.parse(readFileSync(join(o, 'run', 'training_args.json'), 'utf8'))
  t.equal(args(out).batchSampler, 'no-duplicates', 'supervised data: no-duplicates by default')
  t.match(readFileSync(join(out, 'README.md'), 'utf8'), /\| batch sampler \| no-duplicates \|/, 'in the model card')
  await t.rejects(
    train({ ...TINY_RUN, data: csv, out, steps: 2, device: 'cpu', resume: out, batchSampler: 'random' }),
    /option batchSampler was "no-duplicates" in the checkpointed run, now "random"/,
  )
  // A checkpoint from before the option: it resumes with the shuffled order it had.
  const state = join(out, 'run', 'checkpoint', 'state.json')
  const s = JSON.parse(readFileSync(state, 'utf8'))
  delete s.options.batchSampler
  writeFileSync(state, JSON.stringify(s))
  await train({ ...TINY_RUN, data: csv, out, steps: 2, device: 'cpu', resume: out })
  t.equal(args(out).batchSampler, 'random', 'resumed as random')

  const text = writeSentences(join(dir, 'text.txt'), 20)
  await train({ ...TINY_RUN, data: text, out: join(dir, 'text'), steps: 1, device: 'cpu' })
  t.equal(args(join(dir, 'text')).batchSampler, 'random', 'plain text: random')
  t.notMatch(readFileSync(join(dir, 'text', 'README.md'), 'utf8'), /batch sampler/, 'not in a text run card')
  await t.rejects(
    train({ ...TINY_RUN, data: text, out: join(dir, 'text2'), batchSampler: 'no-duplicates' }),
    /batchSampler no-duplicates applies to supervised pairs\/triplets/,
  )
  await t.rejects(
    train({ ...TINY_RUN, data: text, out: join(dir, 'text3'), batchSampler: 'x' as never }),
    /batchSampler must be no-duplicates or random \(got "x"\)/,
  )
})

t.test('simcsepp train --batch-sampler', needsCli, async (t) => {
  const dir = tempDir('simcsepp-no-duplicates-cli-')
  const r = runCli(['train', '--data', writeSentences(join(dir, 'd.txt'), 10), '--batch-sampler', 'sometimes'])
  t.not(r.status, 0)
  t.match(r.stderr, /--batch-sampler must be one of no-duplicates, random \(got "sometimes"\)/)
})
