// Where the bf16 products' operands come from on CUDA, besides rounded copies made at each product:
//   - weight mirrors (kernels/bf16_mirror.cuh): a bf16 model keeps a bf16 copy of its parameters, which AdamW
//     updates, instead of rounding every weight again at every op;
//   - handoffs (kernels/bf16_handoff.cuh): the LayerNorms, the attention and the MLP's GELU (and their
//     backwards) write their output's bf16 copy for the product that reads it next.
// The products must read exactly the bits of per-op rounding (SIMCSEPP_BF16_WEIGHT_MIRROR=0 and
// SIMCSEPP_BF16_HANDOFF=0 turn them off in the same process), round only what neither provides, and never read
// a stale copy: after AdamW (eager or replayed in a step graph), after writes they do not see, and around graph
// replays. On a GPU, or on the host emulator in CI.
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { addon } from '../lib/native.js'
import { cudaStatus } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import type { BertConfig } from '../lib/model/config.js'
import { Tensor, nativeOf } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { tinyConfig } from './helpers/encoder-tiny-model.js'
import { train } from '../lib/train/train.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'
import { settledTensorBytes } from './helpers/settle-memory.js'

import { randomBatch, differingBits } from './helpers/random-batch.js'
import { chunkedColumnSums, chunkedSum, sentenceColumnSums } from './helpers/column-sums-order.js'
import { roundBf16Array } from './helpers/bf16.js'
import { Bf16Values } from '../lib/bf16-values.js'
import { floatsFor, keepsGeluCopies, keepsNormCopies } from '../lib/model/activations.js'
import { viewFloats } from '../lib/model/view-arena.js'
const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

type Switches = Record<
  'SIMCSEPP_BF16_WEIGHT_MIRROR' | 'SIMCSEPP_BF16_HANDOFF' | 'SIMCSEPP_CUDA_GRAPHS' | 'SIMCSEPP_BF16_OUTPUT',
  '0' | undefined
> & {
  SIMCSEPP_ATTENTION: 'tiled' | undefined
  SIMCSEPP_BIAS_SUMS: string | undefined
  SIMCSEPP_BF16_OPERANDS: 'fp32' | undefined
  SIMCSEPP_GELU_COPIES: 'keep' | 'recompute' | undefined
}

/** Sets the variables of `env` ('0' or undefined: unset); returns a function that restores them. */
function setEnv(env: Partial<Switches>): () => void {
  const before = Object.keys(env).map((k) => [k, process.env[k]] as const)
  const put = (k: string, v: string | undefined) => (v === undefined ? delete process.env[k] : (process.env[k] = v))
  for (const [k, v] of Object.entries(env)) put(k, v)
  return () => before.forEach(([k, v]) => put(k, v))
}

/** Runs fn with the variables of `env` set, restoring them after. */
function withEnv<T>(env: Partial<Switches>, fn: () => T): T {
  const restore = setEnv(env)
  try {
    return fn()
  } finally {
    restore()
  }
}
const mirrorOff = { SIMCSEPP_BF16_WEIGHT_MIRROR: '0' } as const
const perOp = { SIMCSEPP_BF16_WEIGHT_MIRROR: '0', SIMCSEPP_BF16_HANDOFF: '0' } as const

/** The counters' change over fn. */
function counted<T>(fn: () => T): { value: T; converted: number; refreshes: number; handedOff: number } {
  const a = addon.bf16Counters()
  const value = fn()
  const b = addon.bf16Counters()
  return {
    value,
    converted: b.convertedElements - a.convertedElements,
    refreshes: b.mirrorRefreshes - a.mirrorRefreshes,
    handedOff: b.handedOffElements - a.handedOffElements,
  }
}

// Positions up to 130: past T = 128, where bf16 attention leaves the tensor-core kernels for the tiled fp32 path.
const config: BertConfig = tinyConfig({
  hiddenSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  intermediateSize: 64,
  maxPositionEmbeddings: 130,
})
const H = config.hiddenSize,
  I = config.intermediateSize,
  L = config.numHiddenLayers
/** Elements of the encoder's linear weights, and of the linear layers' inputs for R token rows. */
const linearWeights = L * (4 * H * H + 2 * H * I)
const linearInputs = (R: number) => L * R * (3 * H + I)
/** The attention's outputs (attention.output.dense's inputs), which only its fused and mma kernels hand off. */
const attentionOutputs = (R: number) => L * R * H
const tiled = { SIMCSEPP_ATTENTION: 'tiled' } as const
/**
 * Whether bf16 attention takes the tiled path, which declines the bf16 handoff: past T = 128, whatever SIMCSEPP_ATTENTION
 * says (the fused kernels hold up to 128); up to 128 the mma kernels run whatever it says.
 */
const tiledAt = (T: number) => T > 128

t.test('a bf16 model on CUDA holds a mirror of its parameters, freed with it; fp32 and CPU models hold none', { skip }, async (t) => {
  const before = await settledTensorBytes()
  const mirrorBytes = addon.bf16Counters().mirrorBytes
  const fp32 = BertModel.create(config, { device: 'cuda', precision: 'fp32', seed: 1 })
  const heldFp32 = (await settledTensorBytes()) - before
  const cpu = BertModel.create(config, { device: 'cpu', precision: 'bf16', seed: 1 })
  t.equal(addon.bf16Counters().mirrorBytes, mirrorBytes, 'none for fp32 products or on the CPU')
  const heldCpu = (await settledTensorBytes()) - before - heldFp32
  const model = BertModel.create(config, { device: 'cuda', precision: 'bf16', seed: 1 })
  t.equal(addon.bf16Counters().mirrorBytes - mirrorBytes, 2 * model.layout.total, '2 bytes a parameter')
  const mem = addon.tensorMemory()
  t.equal(mem.heldBytes, mem.reportedBytes, 'the mirror is reported to V8 as the tensors are')
  const held = (await settledTensorBytes()) - before
  t.equal(held - heldCpu - 2 * heldFp32, 2 * model.layout.total, 'the bf16 model holds what the fp32 one does, and the mirror')
  model.dispose()
  t.equal(addon.bf16Counters().mirrorBytes, mirrorBytes, 'freed with the parameters')
  t.equal(cpu.params.attachBf16Mirror(), false, 'a CPU tensor gets none (its products round as they pack)')
  t.throws(() => fp32.params.view(0, [4]).attachBf16Mirror(), /this tensor is a view/, 'a view is refused')
  fp32.dispose()
  cpu.dispose()
  t.equal((await settledTensorBytes()) - before, 0, 'everything freed')
})

t.test('products read the mirror and the handoffs: the bits of per-op rounding, and only the rest rounded', { skip }, async (t) => {
  const model = BertModel.create(config, { device: 'cuda', precision: 'bf16', seed: 3 })
  // T = 37: the mma attention's 64-row blocks, partly padding; T = 70: the long mma kernels' two query chunks, the
  // second partial; T = 130: the tiled path.
  for (const [B, T] of [
    [5, 8],
    [2, 37],
    [1, 70],
    [1, 130],
  ] as const) {
    const R = B * T
    const b = randomBatch(B, T, 7, config.vocabSize)
    // In a forward without dropout every linear layer's input is handed off by the op before (a LayerNorm, the
    // mma or fused attention, the GELU); the tiled attention declines, and its output is rounded by the product.
    const declined = tiledAt(T) ? attentionOutputs(R) : 0
    const settings: [string, Partial<Switches>, number, number][] = [
      // name, switches, rounded at the products, handed off
      ['mirror and handoffs', {}, declined, linearInputs(R) - declined],
      ['mirror', { SIMCSEPP_BF16_HANDOFF: '0' }, linearInputs(R), 0],
      ['handoffs', mirrorOff, linearWeights + declined, linearInputs(R) - declined],
      ['neither', perOp, linearInputs(R) + linearWeights, 0],
      ['mirror and handoffs, SIMCSEPP_ATTENTION=tiled', tiled, declined, linearInputs(R) - declined],
      ['neither, SIMCSEPP_ATTENTION=tiled', { ...perOp, ...tiled }, linearInputs(R) + linearWeights, 0],
    ]
    for (const pooling of ['cls', 'mean'] as const) {
      for (const [name, env, rounded, handed] of settings) {
        // per-op rounding with the same attention path (the tiled one sums in another order)
        const reference = withEnv({ ...perOp, SIMCSEPP_ATTENTION: env.SIMCSEPP_ATTENTION }, () => model.embed(b, pooling).toFloat32Array())
        const run = withEnv(env, () => counted(() => model.embed(b, pooling).toFloat32Array()))
        t.equal(differingBits(run.value, reference), 0, `T = ${T}, ${pooling}, ${name}: the vectors of per-op rounding bit for bit`)
        t.equal(run.converted, rounded, `T = ${T}, ${pooling}, ${name}: ${rounded} elements rounded at the products`)
        t.equal(run.handedOff, handed, `T = ${T}, ${pooling}, ${name}: ${handed} handed off by their producers`)
        t.equal(run.refreshes, 0, `T = ${T}, ${pooling}, ${name}: the mirror made with the model is fresh`)
      }
    }
  }
  t.match(cudaStatus().bf16Operands, /^bf16 copies .*; weights from the model's bf16 mirror/, 'cudaStatus says so')
  t.match(
    withEnv(mirrorOff, () => cudaStatus().bf16Operands),
    /weights rounded at every product/,
    'and when it is off',
  )
  model.dispose()
})

t.test('the backward reads the gradients its LayerNorms, GELU and attention hand off: the same gradients', { skip }, async (t) => {
  const model = BertModel.create(config, { device: 'cuda', precision: 'bf16', seed: 6 })
  // T = 70: the long mma kernels (dk and dv in a kernel of their own, dq over two query chunks); T = 130: the tiled
  // path, which declines the handoffs.
  for (const [B, T] of [
    [4, 7],
    [2, 37],
    [1, 70],
    [1, 130],
  ] as const) {
    const R = B * T
    const b = randomBatch(B, T, 11, config.vocabSize)
    const dz = Tensor.from(
      Float32Array.from({ length: B * H }, (_, i) => Math.sin(i * 0.41)),
      [B, H],
      'cuda',
    )
    const step = (env: Partial<Switches>) =>
      withEnv(env, () => {
        model.trainForward(b, { seed: 9, step: 3 })
        model.zeroGrad()
        return counted(() => {
          model.trainBackward(dz)
          return model.grads.toFloat32Array()
        })
      })
    // Per layer: output.dense's and attention.output.dense's output gradients [R, H], intermediate.dense's [R, I]
    // and the packed q/k/v's [R, 3H] (the mma and fused attention's; the tiled one declines); every input the
    // weight gradients read is still rounded.
    for (const [name, env, backwardHanded] of [
      ['default attention', {}, tiledAt(T) ? L * R * (2 * H + I) : L * R * (5 * H + I)],
      ['SIMCSEPP_ATTENTION=tiled', tiled, tiledAt(T) ? L * R * (2 * H + I) : L * R * (5 * H + I)],
    ] as const) {
      const handed = step(env),
        rounded = step({ ...env, SIMCSEPP_BF16_HANDOFF: '0' })
      t.equal(differingBits(handed.value, rounded.value), 0, `T = ${T}, ${name}: every gradient bit for bit`)
      t.equal(handed.handedOff, backwardHanded, `T = ${T}, ${name}: ${backwardHanded} gradient elements handed off`)
      t.equal(rounded.converted - handed.converted, backwardHanded, `T = ${T}, ${name}: and not rounded again by the products`)
    }
    // SIMCSEPP_BIAS_SUMS=products: the bias gradients summed by the linear layers' backward ops (passes over the
    // gradients, which are then written in fp32): the same bits, but for the q/k/v biases up to T = 128, which the
    // tensor-core attention sums by sentence (another order: within 1e-6).
    const producers = step({}).value,
      products = step({ SIMCSEPP_BIAS_SUMS: 'products' }).value
    const qkvBias = model.layout.entries.filter((e) => /attention\.self\.(query|key|value)\.bias$/.test(e.name))
    const inQkvBias = (i: number) => qkvBias.some((e) => i >= e.offset && i < e.offset + e.size)
    let others = 0,
      worst = 0
    producers.forEach((v, i) => {
      if (!inQkvBias(i)) others += Object.is(v, products[i]) ? 0 : 1
      else worst = Math.max(worst, Math.abs(v - products[i]) / Math.max(1e-30, Math.abs(products[i])))
    })
    t.equal(others, 0, `T = ${T}, SIMCSEPP_BIAS_SUMS=products: every other gradient bit for bit`)
    t.ok(worst <= (T <= 128 ? 1e-6 : 0), `T = ${T}, SIMCSEPP_BIAS_SUMS=products: q/k/v bias gradients within ${worst.toExponential(2)}`)
    t.throws(() => step({ SIMCSEPP_BIAS_SUMS: 'gemm' }), /SIMCSEPP_BIAS_SUMS must be 'producers' or 'products', not 'gemm'/)
    dz.dispose()
  }
  model.dispose()
})

type Counted<T> = ReturnType<typeof counted<T>>
type StepRun = { forward: Counted<Float32Array>; backward: Counted<Float32Array> }

/**
 * A bf16 CUDA model made with `variable` = keep and one with recompute (read when a model is made), each trained one
 * forward and backward per batch shape and per env of `envs` (the two runs handed to `check`); the two models' activation
 * memory then differs by `keptFloats(R)` floats (R = B·T rows), the kept arrays.
 */
function keptAgainstRecomputed(
  t: Test,
  variable: 'SIMCSEPP_LAYERNORM_COPIES' | 'SIMCSEPP_GELU_COPIES',
  envs: readonly Partial<Switches>[],
  check: (name: string, R: number, kept: StepRun, recomputed: StepRun) => void,
  keptFloats: (R: number) => number,
) {
  const make = (how: 'keep' | 'recompute') =>
    withEnv({ [variable]: how }, () => BertModel.create(config, { device: 'cuda', precision: 'bf16', seed: 12 }))
  const kept = make('keep'),
    recomputed = make('recompute')
  for (const [B, T] of [
    [4, 7],
    [2, 37],
    [1, 130],
  ] as const) {
    const R = B * T
    const b = randomBatch(B, T, 13, config.vocabSize)
    const dz = Tensor.from(
      Float32Array.from({ length: B * H }, (_, i) => Math.cos(i * 0.37)),
      [B, H],
      'cuda',
    )
    for (const env of envs) {
      const step = (model: BertModel): StepRun =>
        withEnv(env, () => {
          const forward = counted(() => model.trainForward(b, { seed: 9, step: 3 }).toFloat32Array())
          model.zeroGrad()
          const backward = counted(() => {
            model.trainBackward(dz)
            return model.grads.toFloat32Array()
          })
          return { forward, backward }
        })
      check(`T = ${T}, ${JSON.stringify(env)}`, R, step(kept), step(recomputed))
    }
    // Each kept array a view aligned to 16 floats in the activation arena.
    t.equal(kept.activationBytes - recomputed.activationBytes, 4 * keptFloats(R), `T = ${T}: the kept arrays' memory`)
    dz.dispose()
  }
  kept.dispose()
  recomputed.dispose()
}

t.test(
  "the weight gradients read the residual LayerNorms' kept bf16 copies: the same gradients, none rounded again",
  { skip },
  async (t) => {
    // keepsNormCopies (read when the model is made): each layer keeps bf16(h1) and bf16(h2) (not the last layer's h2),
    // which the forward's handoff hands to the next product and the backward's intermediate.dense and q/k/v weight
    // gradients read as they are; SIMCSEPP_LAYERNORM_COPIES=recompute recomputes and rounds them there, as before.
    keptAgainstRecomputed(
      t,
      'SIMCSEPP_LAYERNORM_COPIES',
      [{}, { SIMCSEPP_BF16_HANDOFF: '0' }],
      (name, R, k, r) => {
        t.equal(differingBits(k.forward.value, r.forward.value), 0, `${name}: the same vectors`)
        t.equal(k.forward.converted, r.forward.converted, `${name}: the forward rounds as much either way`)
        t.equal(k.forward.handedOff, r.forward.handedOff, `${name}: and hands off as much`)
        t.equal(differingBits(k.backward.value, r.backward.value), 0, `${name}: every gradient bit for bit`)
        t.equal(
          r.backward.converted - k.backward.converted,
          (2 * L - 1) * R * H,
          `${name}: (2L - 1)·R·H = ${(2 * L - 1) * R * H} LayerNorm outputs not recomputed and rounded in the backward`,
        )
      },
      (R) => (2 * L - 1) * viewFloats(Math.ceil((R * H) / 2)), // 2L - 1 arrays of R·H bf16 values
    )
    const cpu = BertModel.create(config, { device: 'cpu', precision: 'bf16', seed: 12 })
    cpu.trainForward(randomBatch(2, 5, 14, config.vocabSize), { seed: 9, step: 3 })
    t.equal(cpu.activationBytes, 4 * floatsFor(config, 2, 5, true, true, false, false), 'a CPU model keeps none')
    cpu.dispose()
    process.env.SIMCSEPP_LAYERNORM_COPIES = 'both'
    try {
      t.throws(() => keepsNormCopies(true), /SIMCSEPP_LAYERNORM_COPIES must be keep or recompute, got "both"/)
    } finally {
      delete process.env.SIMCSEPP_LAYERNORM_COPIES
    }
  },
)

t.test("output.dense's weight gradient reads the forward's kept bf16 GELU: the same gradients", { skip }, async (t) => {
  // keepsGeluCopies (read when the model is made): each layer's GELU writes bf16(GELU(inter)) alone into its actBf16,
  // which output.dense's product reads in the forward (no handoff) and its weight gradient in the backward (the GELU'
  // pass rounds no GELU(inter) again); SIMCSEPP_GELU_COPIES=recompute hands the GELU off and recomputes it, as before.
  keptAgainstRecomputed(
    t,
    'SIMCSEPP_GELU_COPIES',
    [{}, { SIMCSEPP_BF16_HANDOFF: '0' }, { SIMCSEPP_BIAS_SUMS: 'products' }],
    (name, R, k, r) => {
      t.equal(differingBits(k.forward.value, r.forward.value), 0, `${name}: the same vectors`)
      t.equal(differingBits(k.backward.value, r.backward.value), 0, `${name}: every gradient bit for bit`)
      // (Without handoffs neither hands the GELU off.)
      if (!name.includes('HANDOFF'))
        t.equal(r.forward.handedOff - k.forward.handedOff, L * R * I, `${name}: L·R·I GELU outputs kept, not handed off`)
    },
    (R) => L * viewFloats(Math.ceil((R * I) / 2)), // L arrays of R·I bf16 values
  )
  const cpu = BertModel.create(config, { device: 'cpu', precision: 'bf16', seed: 12 })
  cpu.trainForward(randomBatch(2, 5, 14, config.vocabSize), { seed: 9, step: 3 })
  t.equal(cpu.activationBytes, 4 * floatsFor(config, 2, 5, true, true, false, false, true, false), 'a CPU model keeps none')
  cpu.dispose()
  t.throws(
    () => withEnv({ SIMCSEPP_GELU_COPIES: 'both' as 'keep' }, () => keepsGeluCopies(true, true)),
    /SIMCSEPP_GELU_COPIES must be keep or recompute, got "both"/,
  )
})

t.test('a write the mirror does not see is refreshed before the next product reads it', { skip }, async (t) => {
  const model = BertModel.create(config, { device: 'cuda', precision: 'bf16', seed: 4 })
  const b = randomBatch(4, 6, 9, config.vocabSize)
  const first = model.embed(b).toFloat32Array()
  const writes: [string, () => void][] = [
    ['copyFrom(Float32Array)', () => model.params.copyFrom(model.params.toFloat32Array().map((x) => x * 0.9))],
    ['an op writing a view (scaleInplace)', () => ops.scaleInplace(model.params.view(0, [model.layout.total]), 1.1)],
    [
      'copyFrom(Tensor)',
      () =>
        model.params.copyFrom(
          Tensor.from(
            model.params.toFloat32Array().map((x, i) => x + 0.01 * Math.sin(i)),
            [model.layout.total],
            'cuda',
          ),
        ),
    ],
    ['fill', () => model.params.fill(0.01)],
  ]
  let previous = first
  for (const [what, write] of writes) {
    write()
    const on = counted(() => model.embed(b).toFloat32Array())
    const off = withEnv(perOp, () => model.embed(b).toFloat32Array())
    t.equal(differingBits(on.value, off), 0, `after ${what}: the vectors of the new weights`)
    t.ok(differingBits(on.value, previous) > 0, `after ${what}: not those of the old weights`)
    t.equal(on.refreshes, 1, `after ${what}: one refresh`)
    previous = on.value
  }
  const reads = counted(() => {
    model.params.toFloat32Array()
    model.params.to('cpu').dispose()
    return model.embed(b).toFloat32Array()
  })
  t.equal(reads.refreshes, 0, 'reading the parameters (toFloat32Array, to) leaves the mirror fresh')
  model.dispose()
})

t.test('replayed graphs read refreshed mirrors as weights move between them', { skip }, async (t) => {
  for (const pooling of ['cls', 'mean'] as const) {
    const model = BertModel.create(config, { device: 'cuda', precision: 'bf16', mlp: true, seed: 2 })
    let differ = 0,
      refreshes = 0
    for (let k = 0; k < 6; k++) {
      const b = randomBatch(5, 8, 200 + k, config.vocabSize)
      const graph = counted(() => model.embed(b, pooling, { graph: true }).toFloat32Array())
      const eager = withEnv(perOp, () => model.embed(b, pooling).toFloat32Array())
      differ += differingBits(graph.value, eager)
      refreshes += graph.refreshes
      // The weights change behind the graph's back once it is captured with a fresh mirror (batch 1).
      if (k >= 1) ops.scaleInplace(model.params, 0.99)
    }
    t.equal(differ, 0, `${pooling}: every vector that of the current weights over 6 batches`)
    t.same(model.graphStats, { captures: 1, replays: 5 }, `${pooling}: eager, then captured and 5 launches`)
    t.equal(refreshes, 4, `${pooling}: a refresh before each replay after a write`)
    model.dispose()
  }
})

t.test('training at bf16: AdamW keeps the mirror fresh; the model is that of per-op rounding', { skip }, async (t) => {
  const dir = tempDir('simcsepp-bf16-mirror-')
  const model = await microModel(dir, 'micro')
  const data = writeSentences(join(dir, 'data.txt'), 30)
  const run = { model, data, steps: 4, batchSize: 6, maxLen: 7, evalEvery: 0, saveEvery: 0, seed: 5, lr: 1e-3 }
  const cuda = { device: 'cuda' as const, precision: 'bf16' as const }
  const runs: [string, Partial<Switches>][] = [
    ['per-op', perOp],
    ['mirror and handoffs, graphs', {}],
    ['mirror and handoffs, eager', { SIMCSEPP_CUDA_GRAPHS: '0' }],
  ]
  const files: Buffer[] = []
  for (const [name, env] of runs) {
    const restore = setEnv(env)
    const before = addon.bf16Counters()
    const out = join(dir, name.replace(/[^a-z]+/g, '-'))
    try {
      await train({ ...run, ...cuda, out, microBatch: 7 })
    } finally {
      restore()
    }
    const after = addon.bf16Counters()
    if (name !== 'per-op') {
      t.equal(after.mirrorRefreshes - before.mirrorRefreshes, 0, `${name}: no refresh in 4 steps`)
      t.ok(after.handedOffElements > before.handedOffElements, `${name}: producers handed off their outputs`)
    }
    files.push(readFileSync(join(out, 'model.safetensors')))
  }
  t.ok(files[1].equals(files[0]), 'graphs with the mirror and handoffs: the per-op model byte for byte')
  t.ok(files[2].equals(files[0]), 'eager steps with the mirror and handoffs: the per-op model byte for byte')
})

/**
 * A LayerNorm and two linear layers on CUDA, with their inputs, for the op-level handoff tests: x and other
 * [R, C]; the LayerNorm (gamma, beta) into h [R, C] (mean, rstd); W [OC, C] and bias into out [R, OC] (act: its
 * GELU); W2 [C, OC] into back [R, C]; h2 [R, C] spare. dispose() frees them all.
 */
/** Device tensors a test makes, disposed of together: sine-filled ones (a function of seed) and constant ones. */
function deviceTensors() {
  const held: Tensor[] = []
  const keep = <T extends Tensor>(v: T) => (held.push(v), v)
  const size = (shape: number[]) => shape.reduce((p, d) => p * d, 1)
  return {
    sine: (shape: number[], seed: number, scale = 1, offset = 0) =>
      keep(
        Tensor.from(
          Float32Array.from({ length: size(shape) }, (_, i) => offset + scale * Math.sin(seed * 2.9 + i * 0.53)),
          shape,
          'cuda',
        ),
      ),
    filled: (shape: number[], v: number) => keep(Tensor.from(new Float32Array(size(shape)).fill(v), shape, 'cuda')),
    keep,
    dispose: () => held.forEach((v) => v.dispose()),
  }
}

function layerFixture() {
  const [R, C, OC] = [12, 24, 40]
  const cuda = (shape: number[], seed: number) =>
    Tensor.from(
      Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, (_, i) => Math.sin(seed * 7.1 + i * 0.37)),
      shape,
      'cuda',
    )
  const zeros = (shape: number[]) => Tensor.zeros(shape, 'cuda')
  const f = {
    R,
    C,
    OC,
    x: cuda([R, C], 1),
    other: cuda([R, C], 2),
    gamma: cuda([C], 3),
    beta: cuda([C], 4),
    W: cuda([OC, C], 5),
    bias: cuda([OC], 6),
    W2: cuda([C, OC], 7),
    h: zeros([R, C]),
    h2: zeros([R, C]),
    mean: zeros([R]),
    rstd: zeros([R]),
    out: zeros([R, OC]),
    act: zeros([R, OC]),
    back: zeros([R, C]),
  }
  return {
    ...f,
    /** The LayerNorm of `inp` (default x) into `into` (default h). */
    layerNorm: (bf16Next: boolean, inp = f.x, into = f.h) =>
      ops.layerNormForward(into, f.mean, f.rstd, inp, f.gamma, f.beta, 1e-5, bf16Next),
    /** The bf16 product of inp with W (and bias), read back. */
    product: (inp: Tensor) => {
      ops.linearForward(f.out, inp, f.W, f.bias, 'bf16')
      return f.out.toFloat32Array()
    },
    dispose: () => Object.values(f).forEach((v) => v instanceof Tensor && v.dispose()),
  }
}

t.test('a handoff is taken only by the next product of exactly its range, and dropped by a write to it', { skip }, async (t) => {
  const f = layerFixture()
  const { R, C, OC, h, other, layerNorm, product } = f
  /** What per-op rounding gives for the product of inp as it is now. */
  const reference = (inp: Tensor) => withEnv({ SIMCSEPP_BF16_HANDOFF: '0' }, () => product(inp))

  const adjacent = counted(() => {
    layerNorm(true)
    return product(h)
  })
  t.equal(adjacent.handedOff, R * C, 'the LayerNorm handed off its output')
  t.equal(adjacent.converted, OC * C, 'the product rounded only its weight')
  t.equal(differingBits(adjacent.value, reference(h)), 0, 'the bits of per-op rounding')

  const cases: [string, () => void, Tensor][] = [
    ['a host copy into it', () => h.copyFrom(Float32Array.from({ length: R * C }, (_, i) => Math.cos(i))), h],
    ['an op writing part of it', () => ops.scaleInplace(h.view(C, [C]), 3), h],
    ['a product of another input first', () => void product(other), h],
  ]
  for (const [what, between, inp] of cases) {
    const run = counted(() => {
      layerNorm(true)
      between()
      return product(inp)
    })
    t.equal(run.converted, (what.includes('another') ? 2 : 1) * (OC * C + R * C), `${what}: the product rounded its input itself`)
    t.equal(differingBits(run.value, reference(inp)), 0, `${what}: the product of the input as it is`)
  }
  const unasked = counted(() => {
    layerNorm(false)
    return product(h)
  })
  t.equal(unasked.handedOff, 0, 'no handoff unless asked for')
  t.equal(unasked.converted, OC * C + R * C, 'then the product rounds its input')

  // The MLP's pair: the GELU of the first product handed to the second.
  const mlp = (bf16Next: boolean | 'only') =>
    counted(() => {
      ops.linearForward(f.out, f.x, f.W, f.bias, 'bf16', f.act, bf16Next)
      ops.linearForward(f.back, f.act, f.W2, null, 'bf16')
      return f.back.toFloat32Array()
    })
  const fused = mlp(true),
    plain = mlp(false)
  t.equal(fused.handedOff, R * OC, 'the GELU handed off its output')
  t.equal(plain.converted - fused.converted, R * OC, 'the second product did not round it again')
  t.equal(differingBits(fused.value, plain.value), 0, 'the same bits')

  // bf16Next 'only' (BertModel's MLP at bf16): the GELU writes the bf16 copy alone, not its fp32 output.
  const nan = new Float32Array(R * OC).fill(NaN)
  f.act.copyFrom(nan)
  const only = mlp('only')
  t.equal(only.handedOff, R * OC, "'only': the GELU handed off its output")
  t.equal(differingBits(only.value, plain.value), 0, "'only': the same bits")
  t.ok(f.act.toFloat32Array().every(Number.isNaN), "'only': geluOut's fp32 values were not written")
  // The copy dropped before its product (another handoff claimed in between): the product throws rather than read
  // floats that were never written.
  t.throws(
    () => {
      ops.linearForward(f.out, f.x, f.W, f.bias, 'bf16', f.act, 'only')
      layerNorm(true)
      ops.linearForward(f.back, f.act, f.W2, null, 'bf16')
    },
    /written only as a bf16 copy .*bf16Next 'only'.*dropped/,
    "'only', the copy dropped: the product throws",
  )
  // A write to geluOut settles it (the product reads what was written), and without handoffs 'only' writes the
  // fp32 values (no product would take a copy).
  f.act.copyFrom(nan)
  const off = withEnv({ SIMCSEPP_BF16_HANDOFF: '0' }, () => mlp('only'))
  t.equal(off.handedOff, 0, "'only' without handoffs: nothing handed off")
  t.equal(differingBits(off.value, plain.value), 0, "'only' without handoffs: the same bits")
  t.notOk(f.act.toFloat32Array().some(Number.isNaN), "'only' without handoffs: geluOut's fp32 values written")
  f.dispose()
})

/** CUDA tensors made for one test, kept in `held` to dispose: sines of a seed, or NaNs (to see what is not written). */
function cudaTensors() {
  const held: Tensor[] = []
  const keep = (x: Tensor) => (held.push(x), x)
  const numel = (shape: number[]) => shape.reduce((p, d) => p * d, 1)
  const cuda = (shape: number[], seed: number, scale = 1) =>
    keep(
      Tensor.from(
        Float32Array.from({ length: numel(shape) }, (_, i) => scale * Math.sin(seed * 5.3 + i * 0.29)),
        shape,
        'cuda',
      ),
    )
  const nans = (shape: number[]) => keep(Tensor.from(new Float32Array(numel(shape)).fill(NaN), shape, 'cuda'))
  return { cuda, nans, held }
}

t.test('the MLP pre-activation kept in bf16 (Bf16Values): stored by the product, read by both GELU passes', { skip }, async (t) => {
  // 300 rows, I = 72 (three column blocks of the GEMM, the last one short), H = 24.
  const [R, H, I] = [300, 24, 72]
  const { cuda, nans, held } = cudaTensors()
  const h1 = cuda([R, H], 1),
    wIn = cuda([I, H], 2, 0.3),
    bIn = cuda([I], 3),
    wOut = cuda([H, I], 4, 0.2),
    dout = cuda([R, H], 5)
  // The forward: intermediate.dense with its GELU handed to output.dense ('only'), as BertModel's MLP at bf16.
  const forward = (keep: 'fp32' | 'bf16', env: Partial<Switches> = {}) =>
    withEnv(env, () =>
      counted(() => {
        const pre = keep === 'bf16' ? new Bf16Values(nans([(R * I) / 2]), [R, I]) : nans([R, I])
        const act = nans([R, I]),
          h2 = nans([R, H])
        ops.linearForward(pre, h1, wIn, bIn, 'bf16', act, 'only')
        ops.linearForward(h2, act, wOut, null, 'bf16')
        return { pre, values: pre.toFloat32Array(), h2: h2.toFloat32Array() }
      }),
    )
  const kept = forward('bf16'),
    fp32 = forward('fp32')
  const rounded = roundBf16Array(fp32.value.values)
  t.ok(differingBits(rounded, fp32.value.values) > 0, 'the product is not bf16 already')
  t.equal(differingBits(kept.value.values, rounded), 0, 'the product stored rounded to bf16')
  t.equal(kept.handedOff, R * I, "the GELU's output handed off")
  // output.dense reads the GELU of the kept values: as the GELU of those values in fp32.
  const geluOfRounded = nans([R, I]),
    h2Ref = nans([R, H])
  ops.geluForward(geluOfRounded, Tensor.from(rounded, [R, I], 'cuda'))
  ops.linearForward(h2Ref, geluOfRounded, wOut, null, 'bf16')
  t.equal(differingBits(kept.value.h2, h2Ref.toFloat32Array()), 0, 'the next product reads GELU(kept values), bit for bit')
  // Without the bf16 output (SIMCSEPP_BF16_OUTPUT=0: the product in fp32 in geluOut's memory, the pass rounding it) and
  // without handoffs: the same bits.
  for (const env of [{ SIMCSEPP_BF16_OUTPUT: '0' }, { SIMCSEPP_BF16_HANDOFF: '0' }] as const) {
    const other = forward('bf16', env).value
    t.equal(differingBits(other.values, rounded), 0, `${JSON.stringify(env)}: the kept values`)
    t.equal(differingBits(other.h2, kept.value.h2), 0, `${JSON.stringify(env)}: the next product`)
  }
  // The backward reads the kept values as its geluInput: the bits of reading them in fp32.
  const backward = (geluInput: Tensor | Bf16Values) => {
    const gI2 = nans([R, I]),
      dW = cuda([H, I], 0, 0),
      sums = cuda([I], 0, 0),
      gRes = cuda([R, H], 0, 0),
      dWin = cuda([I, H], 0, 0)
    ops.linearBackward(gI2, dW, null, dout, null, wOut, false, 'bf16', geluInput, 'only', null, sums)
    ops.linearBackward(gRes, dWin, null, gI2, h1, wIn, false, 'bf16')
    return [dW, sums, gRes, dWin].map((x) => x.toFloat32Array())
  }
  const got = backward(kept.value.pre),
    want = backward(Tensor.from(rounded, [R, I], 'cuda'))
  ;['dweight', 'dinpColumnSums', "the next op's dinp", "the next op's dweight"].forEach((name, i) =>
    t.equal(differingBits(got[i], want[i]), 0, `backward ${name} bit for bit`),
  )
  // The fp32 GELU pass of the backward (no handoff taken): the same.
  const plainBack = (geluInput: Tensor | Bf16Values) =>
    withEnv({ SIMCSEPP_BF16_HANDOFF: '0' }, () => {
      const gI2 = nans([R, I]),
        dW = cuda([H, I], 0, 0)
      ops.linearBackward(gI2, dW, null, dout, null, wOut, false, 'bf16', geluInput)
      return [gI2, dW].map((x) => x.toFloat32Array())
    })
  const [g1, g2] = [plainBack(kept.value.pre), plainBack(Tensor.from(rounded, [R, I], 'cuda'))]
  t.equal(differingBits(g1[0], g2[0]) + differingBits(g1[1], g2[1]), 0, 'without handoffs: dinp and dweight bit for bit')
  // The GELU kept in bf16 as well (a bf16 geluOut: BertModel's actBf16 at bf16 on CUDA): written alone, no handoff; the
  // next product reads it as it is, and the backward's weight gradient reads it as its inp beside the geluInput (its
  // GELU' pass then rounds no GELU(x)): the same bits as above, on every path.
  for (const env of [{}, { SIMCSEPP_BF16_OUTPUT: '0' }, { SIMCSEPP_BF16_HANDOFF: '0' }, { SIMCSEPP_BF16_OPERANDS: 'fp32' }] as const) {
    const what = JSON.stringify(env)
    withEnv(env, () => {
      const pre = new Bf16Values(nans([(R * I) / 2]), [R, I]),
        act16 = new Bf16Values(nans([(R * I) / 2]), [R, I]),
        h2 = nans([R, H])
      const fwd = counted(() => {
        ops.linearForward(pre, h1, wIn, bIn, 'bf16', act16)
        ops.linearForward(h2, act16, wOut, null, 'bf16')
      })
      t.equal(fwd.handedOff, 0, `${what}: a kept GELU is no handoff`)
      t.equal(differingBits(pre.toFloat32Array(), rounded), 0, `${what}: the pre-activation as before`)
      t.equal(
        differingBits(act16.toFloat32Array(), roundBf16Array(geluOfRounded.toFloat32Array())),
        0,
        `${what}: the kept GELU is bf16(GELU(pre)), round to nearest even`,
      )
      t.equal(differingBits(h2.toFloat32Array(), kept.value.h2), 0, `${what}: the next product reads it, bit for bit`)
      const gI2 = nans([R, I]),
        dW = cuda([H, I], 0, 0),
        sums = cuda([I], 0, 0),
        gRes = cuda([R, H], 0, 0),
        dWin = cuda([I, H], 0, 0)
      ops.linearBackward(gI2, dW, null, dout, act16, wOut, false, 'bf16', pre, 'only', null, sums)
      ops.linearBackward(gRes, dWin, null, gI2, h1, wIn, false, 'bf16')
      const viaKept = [dW, sums, gRes, dWin].map((x) => x.toFloat32Array())
      ;['dweight', 'dinpColumnSums', "the next op's dinp", "the next op's dweight"].forEach((name, i) =>
        t.equal(differingBits(viaKept[i], want[i]), 0, `${what}: backward from the kept GELU, ${name} bit for bit`),
      )
    })
  }
  held.forEach((x) => x.dispose())
})

t.test(
  'the forward GELU of a pre-activation kept in bf16: 8 elements a thread where it can, the bits of one at a time',
  { skip },
  async (t) => {
    // kernels/elementwise.cu's gelu_forward_of_bf16 takes groups of 8 from 16-byte loads when the element count is a
    // multiple of 8 (and the arrays 16-byte aligned), element by element otherwise: [300, 72] and [1000, 96] (12,000
    // groups: threads whose later groups fall past the end) take the groups, [5, 13] and [7, 9] one at a time. Each
    // against geluForward (element by element) of the kept values, fp32 output and, through the next product, the
    // bf16 handoff ('only').
    for (const [R, I] of [
      [300, 72],
      [1000, 96],
      [5, 13],
      [7, 9],
    ]) {
      const H = 8
      const { cuda, nans, held } = cudaTensors()
      const h = cuda([R, H], 1, 2),
        wIn = cuda([I, H], 2, 0.8),
        bIn = cuda([I], 3),
        wOut = cuda([H, I], 4, 0.2)
      const pre = new Bf16Values(nans([Math.ceil((R * I) / 2)]), [R, I])
      const act = nans([R, I])
      ops.linearForward(pre, h, wIn, bIn, 'bf16', act, false)
      const ref = nans([R, I])
      ops.geluForward(ref, Tensor.from(pre.toFloat32Array(), [R, I], 'cuda'))
      t.equal(differingBits(act.toFloat32Array(), ref.toFloat32Array()), 0, `[${R}, ${I}]: the fp32 GELU bit for bit`)
      // 'only': the handoff alone, which the next product reads.
      const [next, nextRef] = [nans([R, H]), nans([R, H])]
      const only = nans([R, I])
      ops.linearForward(pre, h, wIn, bIn, 'bf16', only, 'only')
      ops.linearForward(next, only, wOut, null, 'bf16')
      ops.linearForward(nextRef, ref, wOut, null, 'bf16')
      t.equal(differingBits(next.toFloat32Array(), nextRef.toFloat32Array()), 0, `[${R}, ${I}] 'only': the next product bit for bit`)
      held.forEach((x) => x.dispose())
    }
  },
)

t.test("the chunk sums' order: spikes that only column_sums.cuh's order adds to the model's bits", { skip }, async (t) => {
  // 1,196 rows: nine full chunks of 128 and a short tenth; 40 columns: two column blocks, the second short. Each
  // column's chunk 0 holds 2^60 and chunk 8 -2^60 (the other terms in [-1, 1)): a double holding 2^60 drops every term
  // below 128, so chunk 0's and chunk 8's sums are exactly +-2^60, and which chunk sums the total keeps depends on
  // the finish's order: lane 0 adds chunks 0 and 8 (0) before the other lanes, while chunks added one after another
  // from 0 keep only the chunks after 8.
  const [R, C, K] = [1196, 40, 8]
  const { sine, filled, keep, dispose } = deviceTensors()
  const values = Float32Array.from({ length: R * C }, (_, i) => Math.sin(i * 0.61))
  for (let c = 0; c < C; c++) {
    values[(3 + (c % 5)) * C + c] = 2 ** 60
    values[(8 * 128 + 17 + (c % 7)) * C + c] = -(2 ** 60)
  }
  const dout = keep(Tensor.from(values, [R, C], 'cuda'))
  const dbias = filled([C], 0.125)
  ops.linearBackward(null, filled([C, K], 0), dbias, dout, sine([R, K], 1), sine([C, K], 2), false, 'fp32')
  const want = chunkedColumnSums(values, R, C, 0.125)
  t.equal(differingBits(dbias.toFloat32Array(), want), 0, "dbias: column_sums.cuh's order, bit for bit")
  // The test tells the orders apart: the chunks' sums (each in the chunk kernel's lane order) added in chunk order.
  const sequential = Float32Array.from({ length: C }, (_, c) => {
    let total = 0
    for (let r0 = 0; r0 < R; r0 += 128) total += chunkedSum(Math.min(R, r0 + 128) - r0, (i) => values[(r0 + i) * C + c])
    return Math.fround(0.125 + Math.fround(total))
  })
  t.ok(differingBits(sequential, want) > C / 2, 'the chunks added in order give other bits')
  dispose()
})

t.test(
  "the MLP's backward: the GELU pass sums the bias gradient of the layer before, and 'only' leaves gI2 unwritten",
  { skip },
  async (t) => {
    // 300 rows: three row chunks of the column sums, the last one short; I = 72 columns: three column blocks, the
    // last one short.
    const [R, H, I] = [300, 24, 72]
    const cuda = (shape: number[], seed: number, scale = 1) =>
      Tensor.from(
        Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, (_, i) => scale * Math.sin(seed * 7.1 + i * 0.37)),
        shape,
        'cuda',
      )
    const inter = cuda([R, I], 1, 2),
      dout = cuda([R, H], 2),
      wOut = cuda([H, I], 3, 0.2),
      wIn = cuda([I, H], 4, 0.2),
      h1 = cuda([R, H], 5)
    const held: Tensor[] = [inter, dout, wOut, wIn, h1]
    const zeros = (shape: number[], v = 0) => {
      const z = Tensor.from(new Float32Array(shape.reduce((p, d) => p * d, 1)).fill(v), shape, 'cuda')
      held.push(z)
      return z
    }
    type Grads = Record<'gI2' | 'gRes' | 'dWout' | 'dBout' | 'dWin' | 'dBin', Float32Array>
    /** output.dense's then intermediate.dense's backward at `precision`; sums: intermediate.dense's bias gradient
     * from the GELU pass (dinpColumnSums), not from its own op. */
    const mlp = (precision: 'fp32' | 'bf16', bf16Next: boolean | 'only', sums: boolean) =>
      counted((): Grads => {
        const gI2 = zeros([R, I], NaN),
          gRes = zeros([R, H]),
          dWout = zeros([H, I], 0.5),
          dBout = zeros([H], 0.25),
          dWin = zeros([I, H], 0.5),
          dBin = zeros([I], 0.125)
        ops.linearBackward(gI2, dWout, dBout, dout, null, wOut, false, precision, inter, bf16Next, null, sums ? dBin : null)
        ops.linearBackward(gRes, dWin, sums ? null : dBin, gI2, h1, wIn, false, precision)
        const a = (x: Tensor) => x.toFloat32Array()
        return { gI2: a(gI2), gRes: a(gRes), dWout: a(dWout), dBout: a(dBout), dWin: a(dWin), dBin: a(dBin) }
      })
    const same = (what: string, a: Grads, b: Grads, skipKeys: string[] = []) => {
      for (const k of Object.keys(a) as (keyof Grads)[])
        if (!skipKeys.includes(k)) t.equal(differingBits(a[k], b[k]), 0, `${what}: ${k} bit for bit`)
    }
    const plain = mlp('bf16', true, false)
    t.equal(plain.handedOff, R * I, 'the GELU pass handed off gI2')
    t.same(plain.value.dBin, chunkedColumnSums(plain.value.gI2, R, I, 0.125), "dbias: column_sums.cuh's order, exactly")
    same('the sums in the GELU pass', mlp('bf16', true, true).value, plain.value)
    const only = mlp('bf16', 'only', true)
    t.equal(only.handedOff, R * I, "'only': the GELU pass handed off gI2")
    same("'only' with the sums in the GELU pass", only.value, plain.value, ['gI2'])
    // gI2 holds what the input gradient's product wrote there, before the GELU's derivative: not its fp32 values.
    t.ok(differingBits(only.value.gI2, plain.value.gI2) > (R * I) / 2, "'only': gI2's fp32 values were not written")
    // That product as an op of its own (no GELU): GELU' multiplies it rounded to bf16, and with 'only' the op stored it
    // so, as bf16, in the first half of gI2's memory (half the bytes of the fp32 product).
    const product = zeros([R, I], NaN)
    ops.linearBackward(product, zeros([H, I]), null, dout, inter, wOut, false, 'bf16')
    const rounded = roundBf16Array(product.toFloat32Array())
    t.ok(differingBits(rounded, product.toFloat32Array()) > 0, 'the product is not bf16 already')
    const viaOps = zeros([R, I])
    ops.geluBackward(viaOps, inter, Tensor.from(rounded, [R, I], 'cuda'))
    t.equal(differingBits(plain.value.gI2, viaOps.toFloat32Array()), 0, 'gI2 = geluBackward(the product in bf16), bit for bit')
    const stored = new Uint16Array(only.value.gI2.buffer, 0, R * I)
    const highHalves = new Uint16Array(rounded.buffer).filter((_, i) => i % 2 === 1) // little-endian
    t.equal(
      stored.reduce((n, v, i) => n + (v === highHalves[i] ? 0 : 1), 0),
      0,
      "'only': the product stored as bf16 in gI2's memory",
    )
    // SIMCSEPP_BF16_OUTPUT=0 (gpu-check's comparison): the product written in fp32 there, the pass rounding it: the
    // same bits.
    const fp32Out = withEnv({ SIMCSEPP_BF16_OUTPUT: '0' }, () => mlp('bf16', 'only', true).value)
    same('SIMCSEPP_BF16_OUTPUT=0', fp32Out, only.value, ['gI2'])
    t.equal(differingBits(fp32Out.gI2, product.toFloat32Array()), 0, 'SIMCSEPP_BF16_OUTPUT=0: the product in fp32 in gI2')
    // Without handoffs (no product takes a copy) 'only' writes gI2; at fp32 the sums come from a pass over dinp.
    same(
      "'only' without handoffs",
      withEnv({ SIMCSEPP_BF16_HANDOFF: '0' }, () => mlp('bf16', 'only', true).value),
      plain.value,
    )
    same('fp32, the sums after the GELU', mlp('fp32', false, true).value, mlp('fp32', false, false).value)
    // A bias gradient read from gI2 after 'only' left it unwritten throws instead of summing what is there.
    t.throws(
      () => {
        const gI2 = zeros([R, I], NaN)
        ops.linearBackward(gI2, zeros([H, I]), null, dout, null, wOut, false, 'bf16', inter, 'only', null, zeros([I]))
        ops.linearBackward(zeros([R, H]), zeros([I, H]), zeros([I]), gI2, h1, wIn, false, 'bf16')
      },
      /written only as a bf16 copy .*bf16Next 'only'.*dropped/,
      "'only': a bias gradient summed from gI2 throws",
    )
    held.forEach((x) => x.dispose())
  },
)

t.test("the attention's backward sums the q/k/v bias gradient, and 'only' leaves the packed gradient unwritten", { skip }, async (t) => {
  // 150 sentences: two chunks of sentence sums (128 and 22); T = 19 (the tensor-core kernels' 32-row tiles at bf16,
  // the fused ones at fp32), padded sentences.
  const [B, T, NH, HS] = [150, 19, 3, 8]
  const H = NH * HS
  const cuda = (shape: number[], seed: number, scale = 1) =>
    Tensor.from(
      Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, (_, i) => scale * Math.sin(seed * 3.3 + i * 0.71)),
      shape,
      'cuda',
    )
  const qkv = cuda([B, T, 3 * H], 1),
    dctx = cuda([B, T, H], 2),
    x = cuda([B * T, H], 3),
    w = cuda([3 * H, H], 4, 0.3)
  const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T <= (Math.floor(i / T) * 7) % T ? 1 : 0))
  const held: Tensor[] = [qkv, dctx, x, w]
  const filled = (shape: number[], v: number) => {
    const z = Tensor.from(new Float32Array(shape.reduce((p, d) => p * d, 1)).fill(v), shape, 'cuda')
    held.push(z)
    return z
  }
  const probsOf = (precision: 'fp32' | 'bf16') => {
    const probs = filled([B, NH, T, T], 0)
    ops.attentionForward(filled([B, T, H], 0), probs, qkv, null, null, mask, NH, null, false, null, precision)
    return probs
  }
  const probs = { fp32: probsOf('fp32'), bf16: probsOf('bf16') }
  type Out = Record<'dq' | 'sums' | 'gH' | 'dW', Float32Array>
  /** The attention's backward, then the q/k/v product's (the handoff's taker). */
  const run = (precision: 'fp32' | 'bf16', bf16Next: boolean | 'only', sums: boolean, keep = true) =>
    counted((): Out => {
      const dq = filled([B, T, 3 * H], NaN),
        colSums = filled([3 * H], 0.125),
        gH = filled([B * T, H], 0),
        dW = filled([3 * H, H], 0.5)
      const p = keep ? probs[precision] : null
      ops.attentionBackward(
        dq,
        null,
        null,
        dctx,
        qkv,
        null,
        null,
        p,
        mask,
        NH,
        null,
        bf16Next,
        null,
        null,
        precision,
        sums ? colSums : null,
      )
      ops.linearBackward(gH, dW, null, dq.view(0, [B * T, 3 * H]), x, w, false, precision)
      const a = (v: Tensor) => v.toFloat32Array()
      return { dq: a(dq), sums: a(colSums), gH: a(gH), dW: a(dW) }
    })
  const same = (what: string, a: Out, b: Out, keys: (keyof Out)[]) => {
    for (const k of keys) t.equal(differingBits(a[k], b[k]), 0, `${what}: ${k} bit for bit`)
  }
  const plain = run('bf16', true, false)
  t.equal(plain.handedOff, B * T * 3 * H, 'the attention handed off the packed gradient')
  const summed = run('bf16', true, true)
  same('bf16, the sums in the attention', summed.value, plain.value, ['dq', 'gH', 'dW'])
  t.same(summed.value.sums, sentenceColumnSums(plain.value.dq, B, T, 3 * H, 0.125), 'bf16: by sentence, then chunked, exactly')
  same('bf16, probs formed again', run('bf16', true, true, false).value, summed.value, ['dq', 'sums', 'gH', 'dW'])
  const only = run('bf16', 'only', true)
  t.equal(only.handedOff, B * T * 3 * H, "'only': the packed gradient handed off")
  same("'only'", only.value, summed.value, ['sums', 'gH', 'dW'])
  t.ok(only.value.dq.every(Number.isNaN), "'only': the packed gradient's fp32 values were not written")
  const off = withEnv({ SIMCSEPP_BF16_HANDOFF: '0' }, () => run('bf16', 'only', true).value)
  same("'only' without handoffs", off, summed.value, ['dq', 'sums', 'gH', 'dW'])
  // fp32 (the fused kernels, and the tiled ones): a pass over the written gradient, in the chunked order.
  for (const [path, env] of [
    ['fused', {}],
    ['tiled', tiled],
  ] as const) {
    const fp32 = withEnv(env, () => run('fp32', 'only', true).value)
    t.same(fp32.sums, chunkedColumnSums(fp32.dq, B * T, 3 * H, 0.125), `fp32 ${path}: the chunked order over the gradient, exactly`)
    t.notOk(fp32.dq.some(Number.isNaN), `fp32 ${path}: 'only' on a path without the copy writes the gradient`)
  }
  t.throws(
    () => {
      const dq = filled([B, T, 3 * H], NaN)
      const sums = filled([3 * H], 0)
      ops.attentionBackward(dq, null, null, dctx, qkv, null, null, probs.bf16, mask, NH, null, 'only', null, null, 'bf16', sums)
      const dbias = filled([3 * H], 0)
      ops.linearBackward(filled([B * T, H], 0), filled([3 * H, H], 0), dbias, dq.view(0, [B * T, 3 * H]), x, w, false, 'bf16')
    },
    /written only as a bf16 copy .*bf16Next 'only'.*dropped/,
    "'only': a bias gradient summed from the packed gradient throws",
  )
  held.forEach((v) => v.dispose())
})

t.test("the LayerNorm backward sums the bias gradient of the layer before, and 'only' leaves dy unwritten", { skip }, async (t) => {
  // 300 rows (three row chunks, the last short) of 30 sentences; C = 24 takes the kernels that hold rows in registers
  // (their row statistics' order), C = 22 the scalar ones; K = 16 inputs of the linear layer before.
  const [R, K, sentences] = [300, 16, 30]
  const { sine: cuda, filled, keep, dispose } = deviceTensors()
  const site = { p: 0.1, seed: 3, offset: 11, keepRows: Uint8Array.from({ length: sentences }, (_, b) => (b % 4 === 1 ? 0 : 1)) }
  for (const C of [24, 22]) {
    const res = cuda([R, C], 1, 2),
      gamma = cuda([C], 2, 0.3, 1),
      dout = cuda([R, C], 3),
      inp = cuda([R, K], 4),
      w = cuda([C, K], 5, 0.3)
    const [mean, rstd] = [filled([R], 0), filled([R], 0)]
    ops.layerNormForward(filled([R, C], 0), mean, rstd, res, gamma, cuda([C], 6), 1e-12)
    type Out = Record<'dres' | 'dy' | 'dw' | 'db' | 'sums' | 'dinp' | 'dW', Float32Array>
    /** The LayerNorm's backward, then the linear layer's before it (the handoff's taker); sums: its bias gradient
     * from the LayerNorm's op. aliased: dres is dout itself. */
    const run = (drop: typeof site | null, bf16Next: boolean | 'only', sums: boolean, aliased = false) =>
      counted((): Out => {
        const g = aliased ? keep(dout.to('cuda')) : dout
        const dres = aliased ? g : filled([R, C], NaN),
          dy = drop ? filled([R, C], NaN) : null,
          dw = filled([C], 0.5),
          db = filled([C], 0.25),
          colSums = filled([C], 0.125),
          dinp = filled([R, K], 0),
          dW = filled([C, K], 0.5)
        ops.layerNormDropoutBackward(dres, dy, dw, db, g, res, gamma, mean, rstd, sentences, drop, bf16Next, sums ? colSums : null)
        ops.linearBackward(dinp, dW, sums ? null : colSums, dy ?? dres, inp, w, false, 'bf16')
        const a = (v: Tensor | null) => (v ? v.toFloat32Array() : new Float32Array(0))
        return { dres: a(dres), dy: a(dy), dw: a(dw), db: a(db), sums: a(colSums), dinp: a(dinp), dW: a(dW) }
      })
    const same = (what: string, a: Out, b: Out, skipKeys: string[] = []) => {
      for (const k of Object.keys(a) as (keyof Out)[])
        if (!skipKeys.includes(k)) t.equal(differingBits(a[k], b[k]), 0, `C = ${C}, ${what}: ${k} bit for bit`)
    }
    for (const drop of [site, null]) {
      const how = drop ? 'dropout' : 'no dropout'
      const plain = run(drop, true, false)
      t.equal(plain.handedOff, R * C, `C = ${C}, ${how}: the LayerNorm backward handed off the gradient`)
      t.same(
        plain.value.sums,
        chunkedColumnSums(drop ? plain.value.dy : plain.value.dres, R, C, 0.125),
        `C = ${C}, ${how}: the linear's dbias, chunked`,
      )
      same(`${how}, the sums in the LayerNorm's pass`, run(drop, true, true).value, plain.value)
      same(`${how}, dres = dout`, run(drop, true, true, true).value, run(drop, true, false, true).value)
      const only = run(drop, 'only', true)
      same(`${how}, 'only'`, only.value, plain.value, drop ? ['dy'] : [])
      if (drop) t.ok(only.value.dy.every(Number.isNaN), `C = ${C}: 'only' left dy unwritten`)
    }
    const off = withEnv({ SIMCSEPP_BF16_HANDOFF: '0' }, () => run(site, 'only', true).value)
    same("'only' without handoffs", off, run(site, true, false).value)
    t.throws(
      () => {
        const dy = filled([R, C], NaN)
        ops.layerNormDropoutBackward(
          filled([R, C], 0),
          dy,
          filled([C], 0),
          filled([C], 0),
          dout,
          res,
          gamma,
          mean,
          rstd,
          sentences,
          site,
          'only',
          filled([C], 0),
        )
        ops.linearBackward(filled([R, K], 0), filled([C, K], 0), filled([C], 0), dy, inp, w, false, 'bf16')
      },
      /written only as a bf16 copy .*bf16Next 'only'.*dropped/,
      `C = ${C}, 'only': a bias gradient summed from dy throws`,
    )
  }
  dispose()
})

t.test(
  "the residual LayerNorm reads x recomputed from the LayerNorm before it, and 'only' leaves its output unwritten",
  { skip },
  async (t) => {
    const [R, OC, sentences] = [40, 12, 4]
    const { sine: cuda, filled, dispose } = deviceTensors()
    const site = { p: 0.2, seed: 5, offset: 3, keepRows: Uint8Array.from([1, 0, 1, 1]) }
    for (const C of [24, 22]) {
      // The LayerNorm before (its input res0 and statistics kept, its output h0), this one's weights, y, a product.
      const res0 = cuda([R, C], 1, 2),
        g0 = cuda([C], 2, 0.3, 1),
        b0 = cuda([C], 3),
        g1 = cuda([C], 4, 0.3, 1),
        b1 = cuda([C], 5),
        y = cuda([R, C], 6),
        w = cuda([OC, C], 7, 0.3)
      const [h0, mean0, rstd0] = [filled([R, C], 0), filled([R], 0), filled([R], 0)]
      ops.layerNormForward(h0, mean0, rstd0, res0, g0, b0, 1e-12)
      const before = { x: res0, mean: mean0, rstd: rstd0, weight: g0, bias: b0 }
      type Out = Record<'out' | 'res' | 'mean' | 'rstd' | 'product', Float32Array>
      const run = (x: Tensor | ops.LayerNormInput, bf16Next: boolean | 'only') =>
        counted((): Out => {
          const [out, res, mean, rstd, product] = [
            filled([R, C], NaN),
            filled([R, C], 0),
            filled([R], 0),
            filled([R], 0),
            filled([R, OC], 0),
          ]
          ops.residualLayerNormForward(out, res, mean, rstd, y, x, g1, b1, 1e-12, sentences, site, bf16Next)
          ops.linearForward(product, out, w, null, 'bf16')
          const a = (v: Tensor) => v.toFloat32Array()
          return { out: a(out), res: a(res), mean: a(mean), rstd: a(rstd), product: a(product) }
        })
      const same = (what: string, a: Out, b: Out, keys: (keyof Out)[]) => {
        for (const k of keys) t.equal(differingBits(a[k], b[k]), 0, `C = ${C}, ${what}: ${k} bit for bit`)
      }
      const plain = run(h0, true)
      t.equal(plain.handedOff, R * C, `C = ${C}: the LayerNorm handed off its output`)
      same('x recomputed', run(before, true).value, plain.value, ['out', 'res', 'mean', 'rstd', 'product'])
      const only = run(before, 'only')
      same("x recomputed, 'only'", only.value, plain.value, ['res', 'mean', 'rstd', 'product'])
      t.ok(only.value.out.every(Number.isNaN), `C = ${C}: 'only' left the output unwritten`)
      const off = withEnv({ SIMCSEPP_BF16_HANDOFF: '0' }, () => run(before, 'only').value)
      same("'only' without handoffs", off, plain.value, ['out', 'res', 'mean', 'rstd', 'product'])
      t.throws(
        () => {
          const out = filled([R, C], NaN)
          ops.residualLayerNormForward(
            out,
            filled([R, C], 0),
            filled([R], 0),
            filled([R], 0),
            y,
            before,
            g1,
            b1,
            1e-12,
            sentences,
            site,
            'only',
          )
          ops.layerNormForward(filled([R, C], 0), filled([R], 0), filled([R], 0), res0, g0, b0, 1e-12, true) // another handoff
          ops.linearForward(filled([R, OC], 0), out, w, null, 'bf16')
        },
        /written only as a bf16 copy .*bf16Next 'only'.*dropped/,
        `C = ${C}, 'only', the copy dropped: the product throws`,
      )
    }
    dispose()
  },
)

t.test('the attention hands off ctx, and the packed q/k/v gradient only; its bf16Next is checked', { skip }, async (t) => {
  const [B, T, H3, NH] = [2, 19, 3 * 24, 3]
  const H = H3 / 3
  const cuda = (shape: number[], seed: number) =>
    Tensor.from(
      Float32Array.from({ length: shape.reduce((p, d) => p * d, 1) }, (_, i) => Math.sin(seed * 3.3 + i * 0.29)),
      shape,
      'cuda',
    )
  const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < T - 3 * (i < T ? 0 : 1) ? 1 : 0))
  const qkv = cuda([B, T, H3], 1),
    dctx = cuda([B, T, H], 2),
    W = cuda([H, H], 3),
    Wqkv = cuda([H3, H], 4),
    x = cuda([B * T, H], 5)
  const ctx = Tensor.zeros([B, T, H], 'cuda'),
    probs = Tensor.zeros([B, NH, T, T], 'cuda'),
    dqkv = Tensor.zeros([B, T, H3], 'cuda'),
    out = Tensor.zeros([B * T, H], 'cuda'),
    dx = Tensor.zeros([B * T, H], 'cuda'),
    dW = Tensor.zeros([H3, H], 'cuda')
  const site = { p: 0.2, seed: 5, offset: 1 }
  const forward = (bf16Next: boolean) =>
    counted(() => {
      ops.attentionForward(ctx, probs, qkv, null, null, mask, NH, site, bf16Next)
      ops.linearForward(out, ctx.view(0, [B * T, H]), W, null, 'bf16')
      return out.toFloat32Array()
    })
  const backward = (bf16Next: boolean) =>
    counted(() => {
      dW.fill(0) // the weight gradient accumulates
      ops.attentionBackward(dqkv, null, null, dctx, qkv, null, null, probs, mask, NH, site, bf16Next)
      ops.linearBackward(dx, dW, null, dqkv.view(0, [B * T, H3]), x, Wqkv, false, 'bf16')
      return Float32Array.from([...dx.toFloat32Array(), ...dW.toFloat32Array()])
    })
  for (const [name, run, n] of [
    ['forward: ctx', forward, B * T * H],
    ['backward: the packed dq | dk | dv', backward, B * T * H3],
  ] as const) {
    const handed = run(true),
      plain = run(false)
    t.equal(handed.handedOff, n, `${name}: ${n} elements handed off`)
    t.equal(plain.converted - handed.converted, n, `${name}: not rounded again by the product`)
    t.equal(differingBits(handed.value, plain.value), 0, `${name}: the bits of per-op rounding`)
  }
  // Separate q, k, v gradients are three operands, none of them a product's whole input: nothing is requested.
  const [q, k, v] = [0, 1, 2].map((i) => cuda([B, T, H], 6 + i))
  const [dq, dk, dv] = [0, 1, 2].map(() => Tensor.zeros([B, T, H], 'cuda'))
  const separate = counted(() => ops.attentionBackward(dq, dk, dv, dctx, q, k, v, probs, mask, NH, site, true))
  t.equal(separate.handedOff, 0, 'separate dq, dk, dv: no handoff')
  t.throws(
    () =>
      addon.attentionForward(
        nativeOf(ctx, 'ctx'),
        nativeOf(probs, 'probs'),
        nativeOf(qkv, 'qkv'),
        null,
        null,
        mask,
        NH,
        0,
        0,
        0,
        null,
        0,
        'yes' as never,
      ),
    /bf16Next/,
    'a bf16Next that is not a boolean is refused, by name',
  )
  for (const tensor of [qkv, dctx, W, Wqkv, x, ctx, probs, dqkv, out, dx, dW, q, k, v, dq, dk, dv]) tensor.dispose()
})

t.test('a graph launch drops the handoff made before it, and a capture the one made in it', { skip }, async (t) => {
  const f = layerFixture()
  const { R, C, OC, h, h2, other, layerNorm, product } = f
  const reference = withEnv({ SIMCSEPP_BF16_HANDOFF: '0' }, () => {
    layerNorm(false)
    return product(h)
  })
  // A graph whose LayerNorm of `other` hands off its output: each replay writes the handoff buffer (which the
  // eager run before the capture makes large enough; it cannot grow while captured).
  layerNorm(true, other, h2)
  const before = addon.bf16Counters().handedOffElements
  const unused = new Int32Array(1)
  const session = addon.graphSession([unused.byteLength], 1)
  const g = addon.graphCapture(session, [unused], () => layerNorm(true, other, h2))
  t.equal(addon.bf16Counters().handedOffElements - before, R * C, 'the captured LayerNorm hands off')
  layerNorm(true) // hands off h
  const ticket = addon.graphLaunch(session, g, [unused], 0n, 0, 1)
  const run = counted(() => product(h))
  addon.graphResults(session, ticket)
  t.equal(run.converted, R * C + OC * C, 'the product rounded h itself')
  t.equal(differingBits(run.value, reference), 0, "h's product, not the replayed LayerNorm's copy")
  // A handoff claimed inside a capture is not written until the graph runs: the eager product after the capture
  // must not take it (the buffer still holds h's copy, not h2's).
  const h2Now = withEnv({ SIMCSEPP_BF16_HANDOFF: '0' }, () => product(h2))
  layerNorm(true) // hands off h (the buffer now holds bf16(h))
  addon.graphCapture(session, [unused], () => layerNorm(true, other, h2))
  const afterCapture = counted(() => product(h2))
  t.equal(afterCapture.converted, R * C + OC * C, 'after a capture the product rounds its input itself')
  t.equal(differingBits(afterCapture.value, h2Now), 0, 'the product of h2 as it is, not of the copy in the buffer')
  addon.graphSessionFree(session)
  f.dispose()
})
