// bf16 weight mirrors (kernels/bf16_mirror.cuh): at bf16 on CUDA a model keeps a bf16 copy of its parameters,
// which the products read instead of rounding every weight again at every op. The products must read exactly
// the bits per-op rounding gives (SIMCSEPP_BF16_WEIGHT_MIRROR=0 turns the mirror off in the same process), round
// no weight in steady state, and never read a stale copy: after AdamW (eager or replayed in a step graph), after
// writes the mirror does not see, and around graph replays. On a GPU, or on the host emulator in CI.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { addon } from '../lib/native.js'
import { cudaStatus } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import type { BertConfig } from '../lib/model/config.js'
import { Tensor } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { tinyConfig } from './helpers/encoder-tiny-model.js'
import { train } from '../lib/train/train.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'
import { settledTensorBytes } from './helpers/settle-memory.js'

import { randomBatch, differingBits } from './helpers/random-batch.js'
const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

/** Runs fn with SIMCSEPP_BF16_WEIGHT_MIRROR set to `value` (undefined: unset), restoring it after. */
function withMirror<T>(value: '0' | undefined, fn: () => T): T {
  const before = process.env.SIMCSEPP_BF16_WEIGHT_MIRROR
  if (value === undefined) delete process.env.SIMCSEPP_BF16_WEIGHT_MIRROR
  else process.env.SIMCSEPP_BF16_WEIGHT_MIRROR = value
  try {
    return fn()
  } finally {
    if (before === undefined) delete process.env.SIMCSEPP_BF16_WEIGHT_MIRROR
    else process.env.SIMCSEPP_BF16_WEIGHT_MIRROR = before
  }
}

/** The counters' change over fn. */
function counted<T>(fn: () => T): { value: T; converted: number; refreshes: number } {
  const a = addon.bf16Counters()
  const value = fn()
  const b = addon.bf16Counters()
  return { value, converted: b.convertedElements - a.convertedElements, refreshes: b.mirrorRefreshes - a.mirrorRefreshes }
}

const config: BertConfig = tinyConfig({ hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64 })
const H = config.hiddenSize,
  I = config.intermediateSize,
  L = config.numHiddenLayers
/** Elements of the encoder's linear weights, and of the linear layers' inputs for R token rows. */
const linearWeights = L * (4 * H * H + 2 * H * I)
const linearInputs = (R: number) => L * R * (3 * H + I)

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

t.test('products read the mirror: the bits of per-op rounding, and no weight rounded again', { skip }, async (t) => {
  const model = BertModel.create(config, { device: 'cuda', precision: 'bf16', seed: 3 })
  const [B, T] = [5, 8]
  const b = randomBatch(B, T, 7, config.vocabSize)
  for (const pooling of ['cls', 'mean'] as const) {
    const on = counted(() => model.embed(b, pooling).toFloat32Array())
    const off = withMirror('0', () => counted(() => model.embed(b, pooling).toFloat32Array()))
    t.equal(differingBits(on.value, off.value), 0, `${pooling}: the same vectors bit for bit`)
    t.equal(on.converted, linearInputs(B * T), `${pooling}: only the layers' inputs are rounded (${on.converted})`)
    t.equal(off.converted - on.converted, linearWeights, `${pooling}: per-op rounding also rounds ${linearWeights} weights`)
    t.equal(on.refreshes, 0, `${pooling}: the mirror made with the model is fresh`)
  }
  t.match(cudaStatus().bf16Operands, /^bf16 copies .*; weights from the model's bf16 mirror/, 'cudaStatus says so')
  t.match(
    withMirror('0', () => cudaStatus().bf16Operands),
    /weights rounded at every product/,
    'and when it is off',
  )
  model.dispose()
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
    const off = withMirror('0', () => model.embed(b).toFloat32Array())
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
      const eager = withMirror('0', () => model.embed(b, pooling).toFloat32Array())
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
  const graphsBefore = process.env.SIMCSEPP_CUDA_GRAPHS,
    mirrorBefore = process.env.SIMCSEPP_BF16_WEIGHT_MIRROR
  const runs: [string, '0' | undefined, string | undefined][] = [
    ['per-op', '0', undefined],
    ['mirror, graphs', undefined, undefined],
    ['mirror, eager', undefined, '0'],
  ]
  const files: Buffer[] = []
  for (const [name, mirror, graphs] of runs) {
    if (graphs === undefined) delete process.env.SIMCSEPP_CUDA_GRAPHS
    else process.env.SIMCSEPP_CUDA_GRAPHS = graphs
    if (mirror === undefined) delete process.env.SIMCSEPP_BF16_WEIGHT_MIRROR
    else process.env.SIMCSEPP_BF16_WEIGHT_MIRROR = mirror
    const before = addon.bf16Counters()
    const out = join(dir, name.replace(/[^a-z]+/g, '-'))
    try {
      await train({ ...run, ...cuda, out, microBatch: 7 })
    } finally {
      if (graphsBefore === undefined) delete process.env.SIMCSEPP_CUDA_GRAPHS
      else process.env.SIMCSEPP_CUDA_GRAPHS = graphsBefore
      if (mirrorBefore === undefined) delete process.env.SIMCSEPP_BF16_WEIGHT_MIRROR
      else process.env.SIMCSEPP_BF16_WEIGHT_MIRROR = mirrorBefore
    }
    const after = addon.bf16Counters()
    if (mirror === undefined) t.equal(after.mirrorRefreshes - before.mirrorRefreshes, 0, `${name}: no refresh in 4 steps`)
    files.push(readFileSync(join(out, 'model.safetensors')))
  }
  t.ok(files[1].equals(files[0]), 'graphs with the mirror: the per-op model byte for byte')
  t.ok(files[2].equals(files[0]), 'eager steps with the mirror: the per-op model byte for byte')
})
