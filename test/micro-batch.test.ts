// Training in micro-batches (--micro-batch M, issue 12): the whole batch's vectors are gathered M rows at
// a time, the loss runs over the whole batch, and each micro-batch is re-run (same dropout masks) and
// back-propagated with its slice of dL/dz, so the weights equal those of the unchunked run up to float
// rounding, for every objective and any M.
import t from 'tap'
import { join } from 'node:path'
import { train } from '../lib/train/train.js'
import { compareWeights as compare } from './helpers/compare-weights.js'
import type { StepInfo } from '../lib/train/events.js'
import { TEXT_OBJECTIVES } from '../lib/train/objective.js'
import type { Tensor } from '../lib/tensor.js'
import { Bf16Values } from '../lib/bf16-values.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'

const dir = tempDir('simcsepp-micro-batch-')

t.test('3 steps in micro-batches end with the unchunked weights (every objective, M = 1, 7, all)', async (t) => {
  const model = await microModel(dir, 'micro')
  const data = writeSentences(join(dir, 'data.txt'), 60)
  // The recipe's learning rate: AdamW normalises every update, so an element whose gradient is ~0 moves by
  // up to lr either way from float noise alone; at 3e-5 that stays far below the 1e-5 bound.
  const lr = 3e-5
  for (const objective of TEXT_OBJECTIVES) {
    const run = { model, data, objective, steps: 3, batchSize: 12, maxLen: 9, evalEvery: 0, saveEvery: 0, seed: 6, lr }
    const whole = join(dir, `${objective}-whole`)
    await train({ ...run, out: whole })
    for (const microBatch of [1, 7, 36]) {
      const out = join(dir, `${objective}-m${microBatch}`)
      const passes: number[] = []
      await train({ ...run, microBatch, out }, { onStep: (s: StepInfo) => void passes.push(s.microBatches) })
      const rows = (objective === 'simcse' || objective === 'dcl' ? 2 : 3) * 12
      t.same(
        passes,
        [1, 2, 3].map(() => Math.ceil(rows / microBatch)),
        `${objective} M=${microBatch}: micro-batches per step`,
      )
      const { worst, keyBias, worstName } = await compare(out, whole)
      t.ok(worst < 1e-5, `${objective} M=${microBatch}: weights within ${worst.toExponential(2)} relative (worst: ${worstName})`)
      t.ok(keyBias <= 2 * 3 * lr, `${objective} M=${microBatch}: key bias within ${keyBias.toExponential(2)}`)
    }
  }
})

t.test('one step of 256 sentences: the gradients of M = 1, 7, 32, 256 equal the unchunked (every objective)', async (t) => {
  const { BertModel } = await import('../lib/model/bert.js')
  const { Tokenizer } = await import('../lib/tokenizer.js')
  const { AdamW } = await import('../lib/optim/adamw.js')
  const { TrainingStep } = await import('../lib/train/step.js')
  const { resolveTrainOptions } = await import('../lib/train/options.js')
  const { sentences } = await import('./helpers/encoder-tiny-model.js')
  const modelDir = await microModel(dir, 'micro-grads')
  const tokenizer = await Tokenizer.load(modelDir)
  const batch = sentences(256, 3, 12)
  const gradients = async (objective: (typeof TEXT_OBJECTIVES)[number], microBatch: number) => {
    const model = await BertModel.load(modelDir, { mlp: true })
    const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: 3e-5 })
    const o = resolveTrainOptions({ data: 'x', out: 'y', objective, batchSize: 256, maxLen: 10, seed: 5, microBatch, gradClip: 1e6 })
    const step = new TrainingStep(model, opt, tokenizer, o, { batch: 256, maxLen: 10, totalSteps: 1, microBatch }, 'cpu')
    const stream = { next: async () => ({ sentences: batch, epoch: 0 }) } as never
    const info = await step.run(0, stream, () => 0, null)
    const g = model.grads.toFloat32Array()
    step.dispose()
    opt.dispose()
    model.dispose()
    return { g, passes: info.microBatches }
  }
  for (const objective of TEXT_OBJECTIVES) {
    const whole = await gradients(objective, 0)
    let scale = 0
    for (const x of whole.g) scale = Math.max(scale, Math.abs(x))
    const rows = (objective === 'simcse' || objective === 'dcl' ? 2 : 3) * 256
    for (const M of [1, 7, 32, 256]) {
      const { g, passes } = await gradients(objective, M)
      let worst = 0
      for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - whole.g[i]))
      t.equal(passes, Math.ceil(rows / M), `${objective} M=${M}: ${passes} passes`)
      t.ok(worst / scale < 1e-5, `${objective} M=${M}: gradients within ${(worst / scale).toExponential(2)} of the largest`)
    }
  }
})

t.test('--batch-size 256 --micro-batch 32 (simcse++): the unchunked weights', async (t) => {
  const model = await microModel(dir, 'micro-256')
  const data = writeSentences(join(dir, 'data-256.txt'), 600)
  const run = { model, data, steps: 3, batchSize: 256, maxLen: 8, evalEvery: 0, saveEvery: 0, seed: 2, lr: 3e-5 }
  await train({ ...run, out: join(dir, 'b256-whole') })
  await train({ ...run, microBatch: 32, out: join(dir, 'b256-m32') })
  const { worst, keyBias } = await compare(join(dir, 'b256-m32'), join(dir, 'b256-whole'))
  t.ok(worst < 1e-5, `weights within ${worst.toExponential(2)} relative`)
  t.ok(keyBias <= 6 * 3e-5, `key bias within ${keyBias.toExponential(2)}`)
})

t.test('micro-batches hold the activations of M rows, not of the batch', async (t) => {
  const model = await microModel(dir, 'micro-mem')
  const data = writeSentences(join(dir, 'data-mem.txt'), 200)
  const run = { model, data, steps: 1, batchSize: 64, maxLen: 9, evalEvery: 0, saveEvery: 0, seed: 2 }
  const bytes: Record<string, number> = {}
  for (const microBatch of [0, 16]) {
    await train(
      { ...run, microBatch, out: join(dir, `mem-${microBatch}`) },
      { onStep: (s: StepInfo) => void (bytes[microBatch] = s.activationBytes) },
    )
  }
  // 192 rows against 16: the arena scales with the rows of one pass.
  t.ok(bytes[16] * 8 < bytes[0], `activations: ${bytes[16]} bytes with M = 16, ${bytes[0]} without`)
})

t.test('--micro-batch is validated', async (t) => {
  await t.rejects(train({ data: 'x', out: join(dir, 'bad'), microBatch: -1 }), /microBatch/)
  await t.rejects(train({ data: 'x', out: join(dir, 'bad'), microBatch: 2.5 }), /microBatch/)
})

t.test('--micro-batch auto: whole when the activations fit the budget, else the largest pass that fits', async (t) => {
  const { chooseMicroBatch, checkBatchFits } = await import('../lib/train/batch-size.js')
  const { floatsFor } = await import('../lib/model/activations.js')
  const { namedConfig } = await import('../lib/model/config.js')
  const config = namedConfig('tiny', 1000)
  const s = { config, rows: 3 * 4096, tokens: 32 }
  t.same(chooseMicroBatch(7, s), { rows: 7 }, 'a number is taken as given')
  t.same(chooseMicroBatch(99999, s), { rows: 0 }, 'at least the whole batch: no split')
  t.same(chooseMicroBatch('auto', s, 1e15), { rows: 0 }, 'fits the budget: whole')
  const budget = 256 * 2 ** 20
  const r = chooseMicroBatch('auto', s, budget)
  // bf16 training keeps the MLP's pre-activation in bfloat16: larger passes fit the same budget.
  const r16 = chooseMicroBatch('auto', { ...s, interBf16: true }, budget)
  t.ok(
    r16.rows > r.rows &&
      floatsFor(config, r16.rows, 32, true, true) * 4 <= budget &&
      floatsFor(config, r16.rows + 1, 32, true, true) * 4 > budget,
    `bf16: ${r16.rows} rows, the largest that fits (fp32: ${r.rows})`,
  )
  t.ok(
    floatsFor(config, r.rows, 32, true) * 4 <= budget && floatsFor(config, r.rows + 1, 32, true) * 4 > budget,
    `${r.rows} rows: the largest that fits`,
  )
  t.match(
    r.note!,
    /^--micro-batch auto: \d+ rows per pass \(the whole batch's 12288 rows would need [\d.]+ GiB of activations, more than the 0\.250 GiB budget; --micro-batch 0 runs it whole\)$/,
  )
  // The memory check counts one pass's activations.
  const shape = { config, batch: 4096, requested: 4096, maxLen: 32, tokens: 32, views: 3 }
  t.throws(
    () => checkBatchFits(shape, 2 ** 30),
    /needs ~[\d.]+ GiB of activations; this machine has 1\.00 GiB: lower --batch-size or --max-len, or set --micro-batch/,
  )
  t.doesNotThrow(() => checkBatchFits({ ...shape, rowsPerPass: 128 }, 2 ** 30))
  // The vectors and their gradient are counted at their width: a Dense module's, when one is wider than the encoder.
  const { passFloats } = await import('../lib/model/pass-floats.js')
  const small = { config, batch: 8, requested: 8, maxLen: 32, tokens: 32, views: 3 }
  const exact = (passFloats(config, 24, 32, true) + 24 * config.hiddenSize) * 4
  t.doesNotThrow(() => checkBatchFits(small, exact), 'the hidden size: fits exactly')
  t.throws(() => checkBatchFits({ ...small, vectorDim: config.hiddenSize + 1 }, exact), /needs ~[\d.]+ GiB of activations/)
})

t.test('--micro-batch auto is the default; the budget is the device memory', async (t) => {
  const { resolveTrainOptions } = await import('../lib/train/options.js')
  t.equal(resolveTrainOptions({ data: 'x', out: 'y' }).microBatch, 'auto')
  const { stepMemory, autoMicroBatchBudget } = await import('../lib/model/memory-budget.js')
  const { totalmem } = await import('node:os')
  const cpu = stepMemory('cpu')
  t.same(cpu, { bytes: totalmem(), has: cpu.has, autoBudget: Math.min(4 * 2 ** 30, totalmem() / 4) })
  t.match(cpu.has, /^this machine has [\d.]+ GiB$/)
  t.equal(autoMicroBatchBudget(8 * 2 ** 30), 2 * 2 ** 30, 'a quarter of a small machine')
  const gpu = stepMemory('cuda', { compiled: true, available: true, memory: { freeBytes: 100 * 2 ** 30, totalBytes: 141 * 2 ** 30 } })
  t.same(gpu, { bytes: 100 * 2 ** 30, has: 'the GPU has 100 GiB free', autoBudget: 75 * 2 ** 30 }, 'CUDA: 3/4 of the free device memory')
  // The emulator's device memory is the host's: sized as the CPU.
  t.equal(
    stepMemory('cuda', { compiled: true, available: true, emulated: true, memory: { freeBytes: 1, totalBytes: 2 } }).bytes,
    totalmem(),
  )
  // A batch of 512 BERT-base sentences (1536 rows, ~32 GB of activations) at T = 32 runs whole on such a
  // GPU, in passes on the CPU budget.
  const { namedConfig } = await import('../lib/model/config.js')
  const { chooseMicroBatch } = await import('../lib/train/batch-size.js')
  const base = { config: namedConfig('base', 30522), rows: 3 * 512, tokens: 32 }
  t.same(chooseMicroBatch('auto', base, gpu.autoBudget), { rows: 0 })
  t.ok(chooseMicroBatch('auto', base, 4 * 2 ** 30).rows < 3 * 512)
})

t.test('ActivationArena: inference shares one set of buffers; training keeps one per layer but for h1 and h2', async (t) => {
  const { ActivationArena, floatsFor } = await import('../lib/model/activations.js')
  const { viewFloats } = await import('../lib/model/view-arena.js')
  const { namedConfig } = await import('../lib/model/config.js')
  const config = { ...namedConfig('tiny', 100), numHiddenLayers: 5 }
  const arena = new ActivationArena(config, 'cpu')
  t.teardown(() => arena.dispose())
  const [B, T] = [3, 7]
  const [H, I, NH] = [config.hiddenSize, config.intermediateSize, config.numAttentionHeads]
  const [BT, probs] = [B * T, B * NH * T * T]
  // Whether two views share memory: b's writes show in a.
  const overlap = (a: Tensor, b: Tensor) => {
    a.fill(0)
    b.fill(1)
    return a.toFloat32Array().includes(1)
  }
  const apart = (what: string, views: Tensor[]) =>
    t.ok(
      views.every((x, i) => views.every((y, j) => i === j || !overlap(x, y))),
      what,
    )

  const inference = arena.acquire(B, T, false)
  t.equal(inference.layers.length, 5)
  const a = inference.layers[0]
  t.ok(
    inference.layers.every((l) => l === a),
    'one set of buffers for all layers',
  )
  t.equal(inference.embOut, a.h2, "the embedding output is the layers' output buffer (layer 0's input)")
  t.ok(a.res1 === a.h1 && a.res2 === a.h2 && a.interAct === a.inter, 'the LayerNorms and the GELU in place')
  t.equal(a.probs, null, 'no attention probabilities (nothing is kept for a backward)')
  const qkv = a.qkv as Tensor // inference: fp32
  for (const [x, what] of [
    [a.h1, "h1 in qkv's memory (qkv is dead once ctx is written)"],
    [inference.embSum, "embSum too (dead once layer 0's input is written)"],
  ] as const) {
    qkv.fill(0)
    x.fill(1)
    const q = qkv.toFloat32Array()
    t.ok(x.numel === BT * H && q.every((v, i) => v === (i < BT * H ? 1 : 0)), `${what}: its first [BT, H]`)
  }
  // Every other pair apart: a layer reads its input (h2) until its own output is written, qkv (h1) until h2 is.
  apart('inference: the other buffers apart', [
    inference.embMean,
    inference.embRstd,
    a.h2,
    a.qkv as Tensor,
    a.ctx as Tensor,
    a.mean1,
    a.rstd1,
    a.inter as Tensor, // inference: fp32, the GELU in place
    a.mean2,
    a.rstd2,
    inference.pooled,
    inference.z,
  ])
  // Counted as the arena takes them: each view rounded up to 16 floats (viewFloats; B x T = 21 is odd).
  const v = viewFloats
  t.equal(floatsFor(config, B, T, false), 2 * v(BT * H) + v(3 * BT * H) + 6 * v(BT) + v(BT * I) + 2 * v(B * H), 'inference floats')
  t.equal(floatsFor({ ...config, numHiddenLayers: 24 }, B, T, false), floatsFor(config, B, T, false), 'independent of the depth')

  const training = arena.acquire(B, T, true)
  const L = training.layers
  t.equal(new Set(L).size, 5, 'training: one set per layer (the backward reads them all)')
  t.ok(
    L.every((l) => l.interAct === training.gI2 && l.h1 === L[0].h1 && l.h2 === L[0].h2),
    "training: every layer's GELU output is gI2's buffer, its LayerNorm outputs one buffer each (the backward recomputes them)",
  )
  t.ok(
    L.every((l) => l.res1 !== l.h1 && l.res2 !== l.h2 && l.inter !== l.interAct),
    'training: the LayerNorm and GELU inputs kept',
  )
  const own = (l: (typeof L)[number]) => [
    l.qkv as Tensor,
    l.probs!,
    l.ctx as Tensor,
    l.res1,
    l.mean1,
    l.rstd1,
    l.inter as Tensor,
    l.res2,
    l.mean2,
    l.rstd2,
  ]
  apart("training: every layer's saved tensors, the shared ones and the gradients apart", [
    ...L.flatMap(own),
    L[0].h1,
    L[0].h2,
    training.embSum,
    training.embOut,
    training.embMean,
    training.embRstd,
    training.gI2,
    training.gH,
    training.gRes,
    training.gTmp,
    training.gQkv,
    training.gCtx as Tensor,
    training.gPooled,
    training.pooled,
    training.z,
  ])
  // One layer's floats: the difference a layer more makes.
  const perLayer = floatsFor({ ...config, numHiddenLayers: 6 }, B, T, true) - floatsFor(config, B, T, true)
  t.equal(perLayer, v(3 * BT * H) + 3 * v(BT * H) + 4 * v(BT) + v(BT * I) + v(probs), 'training floats per layer')
  const grads = 4 * v(BT * H) + v(3 * BT * H) + v(BT * I) + v(B * H)
  t.equal(floatsFor(config, B, T, true), 4 * v(BT * H) + 2 * v(BT) + 5 * perLayer + 2 * v(B * H) + grads, 'training floats')

  // Beyond KEEP_PROBS_MAX_T the backward forms the probabilities again: training keeps none.
  const { KEEP_PROBS_MAX_T } = await import('../lib/model/activations.js')
  const long = KEEP_PROBS_MAX_T + 1
  const longLayers = arena.acquire(1, long, true).layers
  t.ok(
    longLayers.every((l) => l.probs === null),
    `T = ${long}: no layer keeps attention probabilities`,
  )
  t.ok(
    arena.acquire(1, KEEP_PROBS_MAX_T, true).layers.every((l) => l.probs !== null),
    `T = ${KEEP_PROBS_MAX_T}: every layer keeps them`,
  )
  const longPerLayer = floatsFor({ ...config, numHiddenLayers: 6 }, 1, long, true) - floatsFor(config, 1, long, true)
  t.equal(
    longPerLayer,
    v(3 * long * H) + 3 * v(long * H) + 4 * v(long) + v(long * I),
    `T = ${long}: training floats per layer, without probabilities`,
  )

  // bf16 training (interBf16): each layer's pre-activation kept in bfloat16, in half the floats, apart from the rest.
  const bf16Arena = new ActivationArena(config, 'cpu', true)
  t.teardown(() => bf16Arena.dispose())
  const kept = bf16Arena.acquire(B, T, true)
  t.ok(
    kept.layers.every((l) => l.inter instanceof Bf16Values && l.inter.storage.numel === Math.ceil((BT * I) / 2)),
    'bf16 training: inter is Bf16Values, ceil(BT * I / 2) floats',
  )
  apart('bf16 training: the kept pre-activations apart from the rest', [
    ...kept.layers.flatMap((l) => [(l.inter as Bf16Values).storage, l.qkv as Tensor, l.res2]),
    kept.gI2,
    kept.gH,
  ])
  const bf16PerLayer = floatsFor({ ...config, numHiddenLayers: 6 }, B, T, true, true) - floatsFor(config, B, T, true, true)
  t.equal(bf16PerLayer, v(3 * BT * H) + 3 * v(BT * H) + 4 * v(BT) + v(Math.ceil((BT * I) / 2)) + v(probs), 'bf16 training floats per layer')
  t.equal(bf16Arena.acquire(B, T, false).layers[0].inter instanceof Bf16Values, false, 'inference: fp32 (the GELU in place)')
})

t.test('ActivationArena: a batch of the last shape gets the same views; another shape or a larger buffer, new ones', async (t) => {
  const { ActivationArena, floatsFor } = await import('../lib/model/activations.js')
  const { namedConfig } = await import('../lib/model/config.js')
  const config = namedConfig('tiny', 100)
  const arena = new ActivationArena(config, 'cpu')
  t.teardown(() => arena.dispose())
  const a = arena.acquire(4, 8, true)
  t.equal(arena.acquire(4, 8, true), a, 'the same shape: the same views, none created')
  t.equal(arena.bytes, floatsFor(config, 4, 8, true) * 4)
  const smaller = arena.acquire(2, 8, true)
  t.not(smaller, a, 'another shape: its own views')
  t.equal(arena.bytes, floatsFor(config, 4, 8, true) * 4, 'in the same buffer')
  t.not(arena.acquire(4, 8, false), a, 'inference views differ from training ones (no gradient scratch)')
  const generation = arena.generation
  arena.acquire(8, 8, true)
  t.equal(arena.generation, generation + 1, 'a larger batch: a new buffer')
  t.not(arena.acquire(4, 8, true), a, 'views of the old buffer are not handed out again')
  t.equal(arena.acquire(8, 8, true), arena.acquire(8, 8, true))
})
