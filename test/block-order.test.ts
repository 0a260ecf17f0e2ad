// Cross-block determinism of the CUDA kernels. A GPU runs a kernel's blocks in no fixed order, so a sum
// that blocks add into with atomics (a loss over row tiles, DCL's split-K similarity matrix) can change its
// last bits, and everything after it, from run to run; the emulator runs blocks one after another in index
// order and could not see that. CUEMU_BLOCK_ORDER (emulator/scheduler.cpp; read at every launch) makes it
// run them reversed or shuffled: every loss and a few training steps must give the same bits in every
// order, as the README promises ("a CUDA run repeats bit for bit").
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { addon } from '../lib/native.js'
import { cudaStatus } from '../lib/index.js'
import * as losses from '../lib/losses.js'
import { nativeOf, Tensor } from '../lib/tensor.js'
import { BertModel } from '../lib/model/bert.js'
import { AdamW } from '../lib/optim/adamw.js'
import { resolveTrainOptions } from '../lib/train/options.js'
import { TrainingStep } from '../lib/train/step.js'
import type { BatchStream } from '../lib/data/sentences.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { runUnfused } from './helpers/parity.mjs'
import { sentences, tinyConfig, VOCAB } from './helpers/encoder-tiny-model.js'
import { tempDir } from './helpers/train-corpus.js'

const status = cudaStatus()
const skip = status.emulated ? false : "the block order is the host emulator's (a GPU chooses its own)"
const ORDERS = ['reverse', 'shuffle:1', 'shuffle:2']

/** What `f` returns with the emulator's blocks in `order` (undefined: index order). */
function inOrder<T>(order: string | undefined, f: () => T): T {
  if (order === undefined) delete process.env.CUEMU_BLOCK_ORDER
  else process.env.CUEMU_BLOCK_ORDER = order
  try {
    return f()
  } finally {
    delete process.env.CUEMU_BLOCK_ORDER
  }
}

/** The bit patterns of every float and double of a result, as one string. */
function bits(values: (number | Float32Array)[]): string {
  return values
    .map((v) =>
      typeof v === 'number'
        ? Buffer.from(new Float64Array([v]).buffer).toString('hex')
        : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'),
    )
    .join(' ')
}

let seed = 11
const rand = (n: number) => Float32Array.from({ length: n }, () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5)

t.test('every loss gives the same bits whatever the order of its blocks', { skip }, async (t) => {
  // 300 x 130: several row tiles, three column tiles and three DCL splits; 64 x 48: one of each.
  for (const [n, d] of [
    [64, 48],
    [300, 130],
  ]) {
    const views = [rand(n * d), rand(n * d), rand(n * d)]
    const z = views.map((v) => Tensor.from(v, [n, d], 'cuda'))
    const cases: [string, () => (number | Float32Array)[]][] = [
      ['simcse', () => result(losses.simcse(z[0], z[1]))],
      ['simcse + hard negatives', () => result(losses.simcse(z[0], z[1], { hardNegatives: z[2] }))],
      ['offDropout', () => result(losses.offDropout(z[0], z[1], z[2]))],
      ['dcl', () => result(losses.dcl(z[0], z[1]))],
      ['simcse++', () => result(losses.simcsePlusPlus(z[0], z[1], z[2]))],
      [
        'offDropout unfused',
        () => {
          const r = runUnfused({ Tensor, nativeOf, addon }, views, n, d, 'cuda')
          return [r.loss, ...r.grads]
        },
      ],
    ]
    for (const [name, run] of cases) {
      const reference = bits(inOrder(undefined, run))
      for (const order of ORDERS) t.equal(bits(inOrder(order, run)), reference, `${name} N=${n} D=${d}: blocks ${order}`)
    }
    for (const x of z) x.dispose()
  }
})

function result(r: losses.LossOutput): (number | Float32Array)[] {
  const grads = Object.values(r.grads) as Tensor[]
  const out = [r.loss, ...grads.map((g) => g.toFloat32Array())]
  for (const g of grads) g.dispose()
  return out
}

t.test('three SimCSE++ training steps give the same losses and weights whatever the block order', { skip }, async (t) => {
  const dir = tempDir('simcsepp-block-order-')
  writeFileSync(join(dir, 'vocab.txt'), VOCAB.join('\n') + '\n')
  const tokenizer = await Tokenizer.load(join(dir, 'vocab.txt'))
  const config = tinyConfig({ hiddenSize: 40, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 72 })
  const text = sentences(72, 9, 8)
  for (const precision of ['fp32', 'bf16'] as const) {
    const train = async (order: string | undefined) => {
      const model = BertModel.create(config, { device: 'cuda', mlp: true, seed: 3, precision })
      const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: 1e-3 })
      const o = resolveTrainOptions({ data: 'x', out: 'x', batchSize: 24, maxLen: 10, device: 'cuda', precision })
      const step = new TrainingStep(model, opt, tokenizer, o, { batch: 24, maxLen: 10, totalSteps: 3 }, 'cuda')
      let k = 0
      const stream = { next: async () => ({ sentences: text.slice(24 * k, 24 * ++k), epoch: 0 }) } as unknown as BatchStream
      process.env.CUEMU_BLOCK_ORDER = order ?? 'index'
      try {
        const seen: number[] = []
        for (let s = 0; s < 3; s++) seen.push((await step.run(s, stream, () => 0, null)).loss)
        return bits([...seen, model.params.toFloat32Array()])
      } finally {
        delete process.env.CUEMU_BLOCK_ORDER
        step.dispose()
        opt.dispose()
        model.dispose()
      }
    }
    const reference = await train(undefined)
    t.equal(await train('shuffle:3'), reference, `${precision}: blocks shuffled`)
  }
})
