// CUDA graphs of the training passes (lib/model/step-graphs.ts, kernels/graph_capture.cu): a model whose
// passes are captured and replayed computes exactly what the eager passes compute (same kernels, same
// arguments, the dropout offsets and the batch's arrays reaching the replay through device memory), on a
// GPU or on the host emulator in CI (which refuses what CUDA refuses while capturing).
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { addon } from '../lib/native.js'
import { cudaStatus } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { nativeOf, Tensor } from '../lib/tensor.js'
import { StepGraphs } from '../lib/model/step-graphs.js'
import * as ops from '../lib/ops.js'
import { sentences, tinyConfig, VOCAB } from './helpers/encoder-tiny-model.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { AdamW } from '../lib/optim/adamw.js'
import { resolveTrainOptions } from '../lib/train/options.js'
import { TrainingStep } from '../lib/train/step.js'
import type { BatchStream } from '../lib/data/sentences.js'
import { MLP_BIAS } from '../lib/model/layout.js'
import { train } from '../lib/train/train.js'
import type { StepInfo } from '../lib/train/events.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'
import { settledTensorBytes } from './helpers/settle-memory.js'
import type { Communicator } from '../lib/distributed/communicator.js'

import { randomBatch, differingBits } from './helpers/random-batch.js'
const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

t.test('graph passes equal eager passes bit for bit, step after step, as shapes change', { skip }, async (t) => {
  const config = tinyConfig({ hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64 })
  for (const pooling of ['cls', 'mean', 'max'] as const) {
    const eager = BertModel.create(config, { device: 'cuda', mlp: true, seed: 1 })
    const graph = BertModel.create(config, { device: 'cuda', mlp: true, seed: 1 })
    const H = config.hiddenSize
    // Shapes: the first two steps warm up and capture [6, 9]; [4, 5] is a second session; [6, 9] replays.
    const shapes: [number, number][] = [
      [6, 9],
      [6, 9],
      [6, 9],
      [4, 5],
      [4, 5],
      [4, 5],
      [6, 9],
    ]
    let worst = 0
    for (let step = 0; step < shapes.length; step++) {
      const [B, T] = shapes[step]
      const b = randomBatch(B, T, 100 + step, config.vocabSize)
      const keepRows = new Uint8Array(B).fill(1)
      keepRows[B - 1] = 0 // the dropout-free view's rows
      const dz = new Float32Array(B * H).map((_, i) => Math.sin(i * 0.37 + step))
      const results: Float32Array[][] = []
      for (const [model, useGraph] of [
        [eager, false],
        [graph, true],
      ] as const) {
        const opts = { seed: 11, step, keepRows, pooling, graph: useGraph }
        const z = model.trainForward(b, opts).toFloat32Array()
        model.zeroGrad()
        model.trainBackward(Tensor.from(dz, [B, H], 'cuda'))
        results.push([z, model.grads.toFloat32Array()])
        // An optimizer-like update, so that later steps run on different weights.
        ops.scaleInplace(model.grads, -1e-2)
        ops.addInplace(model.params, model.grads)
      }
      const dZ = differingBits(results[0][0], results[1][0]),
        dG = differingBits(results[0][1], results[1][1])
      worst = Math.max(worst, dZ, dG)
      if (dZ + dG > 0) t.fail(`${pooling} step ${step} [${B}, ${T}]: ${dZ} vector and ${dG} gradient elements differ`)
    }
    t.equal(worst, 0, `${pooling}: z and every gradient identical over ${shapes.length} steps of 2 shapes`)
    // [6, 9]: eager, captured and launched, replayed at steps 2 and 6; [4, 5]: eager, captured, replayed.
    t.same(graph.graphStats, { captures: 4, replays: 10 }, `${pooling}: 2 shapes x 2 passes captured; (3 + 2) x 2 launches`)
    eager.dispose()
    graph.dispose()
  }
})

// At bf16, sentences past 64 tokens take the long tensor-core attention (kernels/attention_mma_long.cu): kernels
// launched with dynamic shared memory (their limit raised at each launch, during the capture too) and a backward
// through the attention workspace's scratch, which the eager step reserves before the shape is captured.
t.test('bf16 graph passes past 64 tokens (the long attention kernels) equal eager passes bit for bit', { skip }, async (t) => {
  const config = tinyConfig({ hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64, maxPositionEmbeddings: 80 })
  const [eager, graph] = [0, 1].map(() => BertModel.create(config, { device: 'cuda', precision: 'bf16', mlp: true, seed: 2 }))
  const [B, T, H] = [3, 70, config.hiddenSize]
  let differing = 0
  for (let step = 0; step < 3; step++) {
    const b = randomBatch(B, T, 300 + step, config.vocabSize)
    const keepRows = Uint8Array.of(1, 1, 0)
    const dz = new Float32Array(B * H).map((_, i) => Math.cos(i * 0.29 + step))
    const results = [eager, graph].map((model, useGraph) => {
      const z = model.trainForward(b, { seed: 5, step, keepRows, pooling: 'mean', graph: useGraph === 1 }).toFloat32Array()
      model.zeroGrad()
      model.trainBackward(Tensor.from(dz, [B, H], 'cuda'))
      const grads = model.grads.toFloat32Array()
      ops.scaleInplace(model.grads, -1e-2)
      ops.addInplace(model.params, model.grads)
      return [z, grads]
    })
    differing += differingBits(results[0][0], results[1][0]) + differingBits(results[0][1], results[1][1])
  }
  t.equal(differing, 0, `[${B}, ${T}] at bf16: z and every gradient identical over 3 steps (eager, captured, replayed)`)
  t.same(graph.graphStats, { captures: 2, replays: 4 }, 'both passes captured at step 1, launched then and replayed at step 2')
  eager.dispose()
  graph.dispose()
})

// The embeddings' backward adds a table row's tokens in runs of 256 (native/common/embedding_runs.h): a row shared
// by more tokens has several runs and a finish pass, whose records a replay rebuilds from its own ids.
t.test('graph passes with table rows of more than 256 tokens (runs and their finish) equal eager passes', { skip }, async (t) => {
  const config = tinyConfig({ hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64 })
  const eager = BertModel.create(config, { device: 'cuda', seed: 2 })
  const graph = BertModel.create(config, { device: 'cuda', seed: 2 })
  const [B, T] = [12, 50] // 600 tokens: the token type's row gets 3 runs, the padding id's (0) about 2
  const H = config.hiddenSize
  for (let step = 0; step < 4; step++) {
    const b = randomBatch(B, T, 300 + step, config.vocabSize)
    const keepRows = new Uint8Array(B).fill(1)
    const dz = new Float32Array(B * H).map((_, i) => Math.cos(i * 0.29 + step))
    const results: Float32Array[] = []
    for (const [model, useGraph] of [
      [eager, false],
      [graph, true],
    ] as const) {
      model.trainForward(b, { seed: 5, step, keepRows, pooling: 'cls', graph: useGraph })
      model.zeroGrad()
      model.trainBackward(Tensor.from(dz, [B, H], 'cuda'))
      results.push(model.grads.toFloat32Array())
    }
    t.equal(differingBits(results[0], results[1]), 0, `step ${step}: the gradients (word, position, type rows included) bit for bit`)
  }
  t.ok(graph.graphStats.replays > 0, 'the backward was replayed')
  eager.dispose()
  graph.dispose()
})

t.test('embed with graph: true gives the eager vectors bit for bit, as shapes change and weights move', { skip }, async (t) => {
  const config = tinyConfig({ hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64 })
  for (const pooling of ['cls', 'mean'] as const) {
    const model = BertModel.create(config, { device: 'cuda', mlp: true, seed: 2 })
    const shapes: [number, number][] = [
      [5, 8],
      [5, 8],
      [5, 8],
      [3, 4],
      [3, 4],
      [3, 4],
      [5, 8],
    ]
    let differ = 0
    for (let k = 0; k < shapes.length; k++) {
      const [B, T] = shapes[k]
      const b = randomBatch(B, T, 200 + k, config.vocabSize)
      const eager = model.embed(b, pooling)
      const graph = model.embed(b, pooling, { graph: true })
      differ += differingBits(eager.toFloat32Array(), graph.toFloat32Array())
      eager.dispose()
      graph.dispose()
      // The weights change between batches: a replay reads them as they are (the graph holds addresses).
      ops.scaleInplace(model.params, 0.99)
    }
    t.equal(differ, 0, `${pooling}: every vector identical over ${shapes.length} batches of 2 shapes`)
    // [5, 8]: eager, captured and launched, replayed twice; [3, 4]: eager, captured, replayed.
    t.same(model.graphStats, { captures: 2, replays: 5 }, `${pooling}: 2 shapes captured, 5 launches`)
    model.dispose()
  }
})

t.test('a graph is dropped when the activation arena grows, and captured again', { skip }, async (t) => {
  const config = tinyConfig({ hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64 })
  const m = BertModel.create(config, { device: 'cuda', mlp: true, seed: 2 })
  const e = BertModel.create(config, { device: 'cuda', mlp: true, seed: 2 })
  const small = randomBatch(3, 4, 1, config.vocabSize)
  for (let step = 0; step < 3; step++) m.trainForward(small, { seed: 1, step, graph: true })
  m.embed(randomBatch(40, 16, 2, config.vocabSize)) // a larger eval batch: a new arena
  for (let step = 3; step < 6; step++) {
    const z = m.trainForward(small, { seed: 1, step, graph: true }).toFloat32Array()
    const ze = e.trainForward(small, { seed: 1, step }).toFloat32Array()
    t.equal(differingBits(z, ze), 0, `step ${step}: the eager vector`)
  }
  t.same(m.graphStats, { captures: 2, replays: 4 }, 'captured before and after the new arena (eager, captured, replayed)')
  m.dispose()
  e.dispose()
})

t.test('the addon refuses what would freeze host data into a graph, and stays usable', { skip }, async (t) => {
  const ids = new Int32Array([2, 7, 9, 3])
  const session = addon.graphSession([ids.byteLength], 4)
  const table = Tensor.zeros([16, 8], 'cuda')
  const out = Tensor.zeros([4, 8], 'cuda')
  const other = new Int32Array([2, 7, 9, 3])
  t.throws(
    () => addon.graphCapture(session, [ids], () => ops.embeddingForward(out, other, other, other, table, table, table)),
    /not bound to the step graph/,
    'an op reading a host array that is not bound',
  )
  t.throws(
    () =>
      addon.graphCapture(session, [ids], () => {
        throw new Error('from the record function')
      }),
    /from the record function/,
    "the record function's error",
  )
  t.throws(() => addon.graphCapture(session, [ids], () => void out.toFloat32Array()), /capturing|captur/i, 'a host read')
  // The addon's graph functions called from a record function: refused, the session left as it was.
  const peer = addon.graphSession([ids.byteLength], 4, session)
  const refusedIn = (f: string) => new RegExp(`${f} was called while a step graph is being captured \\(from a record function\\)`)
  for (const [what, call, error] of [
    ['graphSessionFree of the session', () => addon.graphSessionFree(session), refusedIn('graphSessionFree')],
    ['graphSessionFree of a peer', () => addon.graphSessionFree(peer), refusedIn('graphSessionFree')],
    ['graphSession', () => addon.graphSession([4], 4), refusedIn('graphSession')],
    ['graphCapture', () => addon.graphCapture(session, [ids], () => {}), /already being captured/],
    ['graphLaunch', () => addon.graphLaunch(session, 0, [ids], 0n, 0, 1), refusedIn('graphLaunch')],
    ['graphResults', () => addon.graphResults(session, 0), refusedIn('graphResults')],
  ] as const)
    t.throws(
      () =>
        addon.graphCapture(session, [ids], () => {
          ops.embeddingForward(out, ids, ids, ids, table, table, table)
          call()
        }),
      error,
      `${what} from the record function`,
    )
  addon.graphSessionFree(peer)
  const g = addon.graphCapture(session, [ids], () => ops.embeddingForward(out, ids, ids, ids, table, table, table))
  t.equal(g, 0, 'a valid capture after the failed ones')
  table.copyFrom(new Float32Array(128).map((_, i) => i))
  const ticket = addon.graphLaunch(session, g, [new Int32Array([1, 1, 1, 1])], 0n, 0, 1)
  const v = out.toFloat32Array()
  t.equal(v[0], 3 * 8, 'the replay reads the ids given at launch (row 1 three times: 3 x 8)')
  t.throws(() => addon.graphLaunch(session, 5, [ids], 0n, 0, 1), /does not exist/, 'an unknown graph index')
  t.throws(() => addon.graphLaunch(session, g, [new Int32Array(3)], 0n, 0, 1), /holds 12 bytes/, 'arrays of another size')
  t.throws(() => addon.graphLaunch({} as never, g, [ids], 0n, 0, 1), /session/, 'not a session')
  const cpu = Tensor.zeros([2], 'cpu')
  t.throws(
    () => addon.graphLaunch(session, g, [ids], 0n, 0, 1, [nativeOf(cpu, 'cpu')]),
    /readback\[0\] must be a CUDA tensor/,
    'a CPU readback',
  )
  t.throws(() => addon.graphLaunch(session, g, [ids], 0n, 0, 1, [{} as never]), /readback\[0\] to be a Tensor/, 'not a tensor')
  t.throws(() => addon.graphLaunch(session, g, [ids], 0n, 0, 1, [], 1 as never), /clearSkip/, 'clearSkip not a boolean')
  t.throws(() => addon.graphSession([4], 4, {} as never), /Expected peer to be a step graph session/, 'a peer that is not a session')
  t.throws(() => addon.graphResults(session, 99), /was not made/, 'a ticket never handed out')
  t.throws(() => addon.graphResults(session, 0.5), /ticket must be an integer/, 'a fractional ticket')
  t.same(addon.graphResults(session, ticket), { results: [], readback: [] }, 'a launch without results or readback')
  cpu.dispose()
  addon.graphSessionFree(session)
  t.throws(() => addon.graphLaunch(session, g, [ids], 0n, 0, 1), /freed/, 'a freed session')
  table.dispose()
  out.dispose()
})

t.test('a replay given ids out of range of their tables is refused before it runs, as the eager ops refuse them', { skip }, async (t) => {
  // One bound array: 2 ints of something else, then a micro-batch's ids, posIds and typeIds (4 each).
  const bound = new Int32Array(14)
  const [ids, posIds, typeIds] = [2, 6, 10].map((at) => bound.subarray(at, at + 4))
  const fill = (v: number[][]) => v.forEach((a, k) => [ids, posIds, typeIds][k].set(a))
  fill([
    [2, 7, 9, 3],
    [0, 1, 2, 3],
    [0, 0, 1, 1],
  ])
  const ramp = (shape: number[], k: number) =>
    Tensor.from(
      Float32Array.from({ length: shape[0] * shape[1] }, (_, i) => Math.sin(i * 0.3 + k)),
      shape,
      'cuda',
    )
  const [word, pos, type] = [ramp([16, 8], 1), ramp([6, 8], 2), ramp([2, 8], 3)]
  const dout = ramp([4, 8], 4)
  const out = Tensor.zeros([4, 8], 'cuda')
  const dtables = [Tensor.zeros([16, 8], 'cuda'), Tensor.zeros([6, 8], 'cuda'), Tensor.zeros([2, 8], 'cuda')]
  const session = addon.graphSession([bound.byteLength], 8) // (two graphs with a backward of 4 rows each)
  // The backward alone, for the type table only: its checks are the ids it scatters by.
  const typeOnly = addon.graphCapture(session, [bound], () => ops.embeddingBackward(null, null, dtables[2], dout, ids, posIds, typeIds))
  const both = addon.graphCapture(session, [bound], () => {
    ops.embeddingForward(out, ids, posIds, typeIds, word, pos, type)
    ops.embeddingBackward(dtables[0], dtables[1], dtables[2], dout, ids, posIds, typeIds)
  })
  const launchWith = (g: number, v: number[][]) => {
    const a = new Int32Array(14).fill(-7) // (the 2 leading ints are no ids: never checked)
    ;[2, 6, 10].forEach((at, k) => a.set(v[k], at))
    return addon.graphLaunch(session, g, [a], 0n, 0, 1)
  }
  const ok = [
    [15, 0, 1, 0],
    [5, 4, 3, 2],
    [1, 1, 0, 0],
  ]
  for (const [what, g, v, error] of [
    ['an id past the word table', both, [[15, 0, 16, 0], ok[1], ok[2]], /step graph: ids\[2\] = 16 is out of range for word \(16 rows\)/],
    ['a negative position', both, [ok[0], [5, -1, 3, 2], ok[2]], /step graph: posIds\[1\] = -1 is out of range for pos \(6 rows\)/],
    ['a token type past its table', both, [ok[0], ok[1], [1, 1, 0, 2]], /step graph: typeIds\[3\] = 2 is out of range for type \(2 rows\)/],
    ['2^31 - 1 as an id', both, [[15, 2 ** 31 - 1, 0, 0], ok[1], ok[2]], /ids\[1\] = 2147483647 is out of range for word/],
    ['a type in the backward alone', typeOnly, [ok[0], ok[1], [0, 9, 0, 0]], /typeIds\[1\] = 9 is out of range for dtype \(2 rows\)/],
  ] as const)
    t.throws(() => launchWith(g, v as unknown as number[][]), error, what)
  // The backward alone does not check the tables it does not touch.
  t.doesNotThrow(() => launchWith(typeOnly, [[99, 99, 99, 99], [-1, -1, -1, -1], ok[2]]), 'ids of tables the graph does not read')
  t.same(
    dtables.slice(0, 2).map((d) => d.toFloat32Array().some((v) => v !== 0)),
    [false, false],
    'the refused launches ran nothing (the word and position gradients are still zero)',
  )
  const typeBefore = dtables[2].toFloat32Array()
  launchWith(both, ok)
  // The eager ops on the same ids (type's gradient continues from what the replays added).
  fill(ok)
  const eagerOut = Tensor.zeros([4, 8], 'cuda')
  const eager = [Tensor.zeros([16, 8], 'cuda'), Tensor.zeros([6, 8], 'cuda'), Tensor.from(typeBefore, [2, 8], 'cuda')]
  ops.embeddingForward(eagerOut, ids, posIds, typeIds, word, pos, type)
  ops.embeddingBackward(eager[0], eager[1], eager[2], dout, ids, posIds, typeIds)
  t.equal(differingBits(out.toFloat32Array(), eagerOut.toFloat32Array()), 0, 'then a valid replay gives the eager output')
  t.same(
    dtables.map((d, k) => differingBits(d.toFloat32Array(), eager[k].toFloat32Array())),
    [0, 0, 0],
    'and the eager gradients: the device was left as it was',
  )
  addon.graphSessionFree(session)
  for (const x of [word, pos, type, dout, out, eagerOut, ...dtables, ...eager]) x.dispose()
})

t.test('a replay of a graph whose tensor was disposed is refused, naming it: it would run on freed memory', { skip }, async (t) => {
  const ids = new Int32Array([2, 7, 9, 3])
  const session = addon.graphSession([ids.byteLength], 4)
  const [word, pos, type] = [16, 12, 10].map((n) => Tensor.zeros([n, 8], 'cuda'))
  const out = Tensor.zeros([4, 8], 'cuda')
  // out is a view: its storage (the arena's, here `arena`) is what the graph's kernels write.
  const arena = Tensor.zeros([64], 'cuda')
  const view = Tensor.fromNative(nativeOf(arena, 'arena').view(16, [4, 8]))
  const first = addon.graphCapture(session, [ids], () => ops.embeddingForward(out, ids, ids, ids, word, pos, type))
  const second = addon.graphCapture(session, [ids], () => ops.embeddingForward(view, ids, ids, ids, word, pos, type))
  word.copyFrom(new Float32Array(128).fill(1))
  addon.graphLaunch(session, second, [ids], 0n, 0, 1)
  t.equal(view.toFloat32Array()[0], 1, 'the graph runs while its tensors live')
  const refused = (g: number, name: string) =>
    new RegExp(
      `step graph ${g} was captured with a tensor \\(${name}\\) that has since been disposed: its replay would run on freed memory`,
    )
  arena.dispose()
  t.ok(view.disposed, 'disposing the arena disposes its view')
  t.throws(() => addon.graphLaunch(session, second, [ids], 0n, 0, 1), refused(second, 'out'), 'a view into a disposed arena')
  addon.graphLaunch(session, first, [ids], 0n, 0, 1)
  t.equal(out.toFloat32Array()[0], 1, 'the graph that does not use it still runs')
  pos.dispose()
  t.throws(() => addon.graphLaunch(session, first, [ids], 0n, 0, 1), refused(first, 'pos'), 'a table disposed after the capture')
  t.same(Tensor.zeros([2], 'cuda').toFloat32Array(), new Float32Array(2), 'the device is usable: no replay ran')
  addon.graphSessionFree(session)
  for (const x of [word, type, out]) x.dispose()
})

/** Trains `run` with and without step graphs; what each step logged, and the error each ended with. */
async function bothModes(dir: string, name: string, run: Record<string, unknown>) {
  const logged: Record<'graphs' | 'eager', StepInfo[]> = { graphs: [], eager: [] }
  const errors: Record<'graphs' | 'eager', string> = { graphs: '', eager: '' }
  for (const mode of ['graphs', 'eager'] as const) {
    if (mode === 'eager') process.env.SIMCSEPP_CUDA_GRAPHS = '0'
    try {
      await train({ ...run, device: 'cuda', precision: 'fp32', out: join(dir, `${name}-${mode}`) } as Parameters<typeof train>[0], {
        onStep: (s: StepInfo) => void logged[mode].push(s),
      })
    } catch (e) {
      errors[mode] = (e as Error).message.replace(`${name}-${mode}`, `${name}-MODE`)
    } finally {
      delete process.env.SIMCSEPP_CUDA_GRAPHS
    }
  }
  return { logged, errors }
}

t.test("training with step graphs ends with the eager run's weights, byte for byte", { skip }, async (t) => {
  const dir = tempDir('simcsepp-cuda-graphs-')
  const model = await microModel(dir, 'micro')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  // maxLen 7 pads every batch to the same length, so the steps are captured and replayed; the warm-up
  // changes the learning rate from step to step.
  const run = { model, data, steps: 5, batchSize: 8, maxLen: 7, evalEvery: 0, saveEvery: 0, seed: 3, lr: 3e-5, warmup: 2 }
  const pick = (s: StepInfo) => ({ loss: s.loss, parts: s.parts, gradNorm: s.gradNorm, lr: s.lr, a: s.alignment, u: s.uniformity })
  for (const objective of ['simcse++', 'simcse', 'off-dropout', 'dcl'] as const) {
    const { logged, errors } = await bothModes(dir, objective, { ...run, objective })
    t.same(errors, { graphs: '', eager: '' }, `${objective}: both runs finish`)
    t.same(
      logged.graphs.map((s) => s.cudaGraph),
      ['eager', 'captured', 'replayed', 'replayed', 'replayed'],
      `${objective}: steps 2-5 ran as one graph each`,
    )
    t.same(logged.graphs.map(pick), logged.eager.map(pick), `${objective}: the same losses, parts, norms, rates and metrics`)
    const weights = (mode: string) => readFileSync(join(dir, `${objective}-${mode}`, 'model.safetensors'))
    t.ok(weights('graphs').equals(weights('eager')), `${objective}: model.safetensors identical`)
  }
  // In micro-batches of 7 rows (24 rows: 4 passes, the last of 3), forward and re-run backward passes and
  // their embedding backwards (one group buffer each) are one graph too.
  const { logged, errors } = await bothModes(dir, 'm7', { ...run, objective: 'simcse++', microBatch: 7 })
  t.same(errors, { graphs: '', eager: '' }, 'micro-batches: both runs finish')
  t.same(
    logged.graphs.map((s) => [s.cudaGraph, s.microBatches]),
    [
      ['eager', 4],
      ['captured', 4],
      ['replayed', 4],
      ['replayed', 4],
      ['replayed', 4],
    ],
    'micro-batches: steps 2-5 ran as one graph each',
  )
  t.same(logged.graphs.map(pick), logged.eager.map(pick), 'micro-batches: the same losses, parts, norms, rates and metrics')
  const weights = (mode: string) => readFileSync(join(dir, `m7-${mode}`, 'model.safetensors'))
  t.ok(weights('graphs').equals(weights('eager')), 'micro-batches: model.safetensors identical')
})

/**
 * A tiny model on CUDA, its optimizer and a TrainingStep with step graphs (or without: eager), fed 8 of the
 * same 64 sentences a step.
 */
async function stepRig(prefix: string) {
  const dir = tempDir(prefix)
  writeFileSync(join(dir, 'vocab.txt'), VOCAB.join('\n') + '\n')
  const tokenizer = await Tokenizer.load(join(dir, 'vocab.txt'))
  const config = tinyConfig({ hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64 })
  const text = sentences(64, 5, 6)
  return (mode: 'graphs' | 'eager', totalSteps: number, comm?: Communicator) => {
    if (mode === 'eager') process.env.SIMCSEPP_CUDA_GRAPHS = '0'
    const model = BertModel.create(config, { device: 'cuda', mlp: true, seed: 4 })
    const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: 1e-4 })
    const o = resolveTrainOptions({ data: 'x', out: 'x', batchSize: 8, maxLen: 8, device: 'cuda', precision: 'fp32' })
    const step = new TrainingStep(model, opt, tokenizer, o, { batch: 8, maxLen: 8, totalSteps }, 'cuda', comm ?? null)
    delete process.env.SIMCSEPP_CUDA_GRAPHS
    let k = 0
    const stream = { next: async () => ({ sentences: text.slice(8 * k, 8 * ++k), epoch: 0 }) } as unknown as BatchStream
    return { model, opt, step, stream, config }
  }
}

t.test('a replayed step that diverges throws as the eager step does, and leaves the weights alone', { skip }, async (t) => {
  const rig = await stepRig('simcsepp-cuda-graphs-diverge-')
  const outcome: Record<string, { error: string; params: Float32Array; steps: number }> = {}
  for (const mode of ['graphs', 'eager'] as const) {
    const { model, step, stream, config } = rig(mode, 5)
    let error = '',
      steps = 0
    try {
      for (; steps < 5; steps++) {
        // Before the fourth step (a replay with graphs) the MLP head's bias turns to NaN.
        if (steps === 3) model.param(MLP_BIAS).copyFrom(new Float32Array(config.hiddenSize).fill(NaN))
        await step.run(steps, stream, () => 0, null)
      }
    } catch (e) {
      error = (e as Error).message
    }
    outcome[mode] = { error, params: model.params.toFloat32Array(), steps }
    step.dispose()
    model.dispose()
  }
  t.match(outcome.eager.error, /^step 4: the sentence vectors hold NaN \(training diverged\)/, outcome.eager.error)
  t.equal(outcome.graphs.error, outcome.eager.error, 'the same error from the replayed step')
  t.equal(outcome.graphs.steps, 3, 'after 3 good steps')
  t.equal(differingBits(outcome.graphs.params, outcome.eager.params), 0, 'the weights the eager step left (its AdamW update skipped)')
})

t.test('ranks whose step graphs differ run the step eagerly, then capture it anew together', { skip }, async (t) => {
  // Rank 0 of 2, its collectives no-ops (this checks the graph decisions; the data-parallel numbers are
  // checked through NCCL in test/cuda-distributed.test.ts). The other rank reports, through max(), the same
  // state (0 eager, 1 capture, 2 replay) as this one, except before step `odd` (0-based) where it says 0: its
  // graphs were dropped (an arena that grew at another step than ours).
  const rig = await stepRig('simcsepp-cuda-graphs-ranks-')
  const run = async (odd: number | null) => {
    let current = 0,
      calls = 0
    const states: number[] = []
    const comm = {
      rank: 0,
      size: 2,
      cudaPath: 'NCCL (a stand-in of this test)',
      bytes: 0,
      takeSeconds: () => 0,
      allGather: () => {},
      allReduceSum: () => {},
      max: (x: number) => {
        const first = calls++ % 2 === 0 // max(state), then max(-state)
        if (first) states.push(x)
        return current !== odd ? x : first ? Math.max(x, 0) : Math.max(x, -0)
      },
    } as unknown as Communicator
    const { model, step, stream } = rig('graphs', 7, comm)
    const graphs: string[] = []
    for (; current < 7; current++) graphs.push((await step.run(current, stream, () => 0, null)).cudaGraph!)
    const params = model.params.toFloat32Array()
    step.dispose()
    model.dispose()
    return { graphs, states, params }
  }
  const agreed = await run(null)
  t.same(agreed.graphs, ['eager', 'captured', 'replayed', 'replayed', 'replayed', 'replayed', 'replayed'])
  // This stand-in names its NCCL path from the start, so the ranks compare from step 1 on.
  t.same(agreed.states, [0, 1, 2, 2, 2, 2, 2])
  const split = await run(3)
  t.same(
    split.graphs,
    ['eager', 'captured', 'replayed', 'eager', 'captured', 'replayed', 'replayed'],
    'step 4 eager on every rank, step 5 captured anew',
  )
  t.same(split.states, [0, 1, 2, 2, 1, 2, 2], 'after the eager step 4 this rank captures again (state 1), not replays')
  t.equal(differingBits(split.params, agreed.params), 0, 'the same weights, bit for bit')
})

t.test('launches run ahead of their reads; a diverged step stops the updates of the launches after it', { skip }, async (t) => {
  // A two-op graph: the gradient norm's sum of squares (a result the divergence check reads) and AdamW.
  const P = 8
  const params = Tensor.zeros([P], 'cuda'),
    grads = Tensor.zeros([P], 'cuda')
  params.copyFrom(new Float32Array(P).map((_, i) => 0.1 * i))
  const opt = new AdamW(params, grads, 0, { lr: 1e-2 })
  const graphs = new StepGraphs(1)
  const arrays = [new Int32Array([0])]
  let adamStep = 0
  // One session per key, all in one group; each key's first run is eager, as TrainingStep does.
  const launch = (key: string, g: number, clearSkip: boolean) => {
    grads.copyFrom(new Float32Array(P).fill(g))
    const stepNow = ++adamStep
    if (!graphs.warm(key, 0, 'step')) {
      ops.clipGradNorm(grads, 1e9)
      opt.update(1e-2, stepNow)
      graphs.markWarm(key, 'step', arrays)
      return null
    }
    const record = () => {
      ops.clipGradNorm(grads, 1e9)
      opt.update(1e-2, stepNow)
    }
    return graphs.replay(key, 'step', arrays, stepNow, record, { lr: 1e-2, adamStep: stepNow, readback: () => [params], clearSkip })
  }
  launch('a', 1, true)
  launch('b', 1, true)
  const r0 = launch('a', 1, true)!() // captured and replayed
  t.equal(r0.results[0].value, P, 'the sum of squares of a finite step')
  t.equal(differingBits(r0.readback[0], params.toFloat32Array()), 0, 'readback holds the parameters after the replay')
  const before = params.toFloat32Array()
  // Launch 1 has non-finite gradients; launch 2 (the other session) finite ones, launched before 1 is read.
  const read1 = launch('a', NaN, true)!
  const read2 = launch('b', 1, false)!
  t.ok(Number.isNaN(read1().results[0].value), 'the diverged launch reads NaN')
  const r2 = read2()
  t.equal(r2.results[0].value, P, 'the launch after it had finite gradients')
  t.equal(differingBits(params.toFloat32Array(), before), 0, 'neither updated the weights (the flag is shared by the group)')
  t.equal(differingBits(r2.readback[0], before), 0, 'its readback shows the weights unchanged')
  // Once everything is read, a launch clears the flag.
  const r3 = launch('a', 1, true)!()
  t.not(differingBits(r3.readback[0], before), 0, 'a launch that clears the flag updates the weights')
  // The results of the last two launches are kept; older ones are overwritten.
  const old = launch('a', 1, true)!
  launch('b', 1, false)
  launch('a', 1, false)
  t.throws(old, /overwritten by a later launch/, 'a launch 3 back cannot be read')
  graphs.clear()
  opt.dispose()
  params.dispose()
  grads.dispose()
})

t.test('launches queued back to back each get their own inputs: a staging is not rewritten before its copies ran', { skip }, async (t) => {
  // AdamW steps 3-6 replayed from two graphs without reading any: launch 5 reuses the pinned staging of launch 3,
  // whose copies of the learning rate and step may not have run yet (the emulator, like a GPU, runs queued work
  // only when the host waits). Each step's own constants must reach it: the weights of 6 eager steps.
  const P = 8
  const run = (mode: 'graphs' | 'eager') => {
    const params = Tensor.from(
      Float32Array.from({ length: P }, (_, i) => 0.1 * i - 0.3),
      [P],
      'cuda',
    )
    const grads = Tensor.from(
      Float32Array.from({ length: P }, (_, i) => 0.05 * (i + 1)),
      [P],
      'cuda',
    )
    const opt = new AdamW(params, grads, 0, { lr: 1e-2 })
    const graphs = new StepGraphs(1)
    const arrays = [new Int32Array([0])]
    let last: (() => unknown) | null = null
    for (let step = 1; step <= 6; step++) {
      const lr = 1e-3 * step
      const key = step % 2 === 1 ? 'a' : 'b'
      if (mode === 'eager' || !graphs.warm(key, 0, 'step')) {
        opt.update(lr, step)
        if (mode === 'graphs') graphs.markWarm(key, 'step', arrays)
        continue
      }
      last = graphs.replay(key, 'step', arrays, step, () => opt.update(lr, step), {
        lr,
        adamStep: step,
        readback: () => [],
        clearSkip: false,
      })
    }
    last?.()
    const out = params.toFloat32Array()
    graphs.clear()
    opt.dispose()
    params.dispose()
    grads.dispose()
    return out
  }
  const eager = run('eager')
  t.equal(differingBits(run('graphs'), eager), 0, "4 replays queued back to back end with the eager steps' weights")
})

t.test('a diverged step read after the next one was launched: the eager error and weights', { skip }, async (t) => {
  const rig = await stepRig('simcsepp-cuda-graphs-ahead-')
  const outcome: Record<string, { error: string; params: Float32Array; optSteps: number; read: number[] }> = {}
  for (const mode of ['graphs', 'eager'] as const) {
    const { model, opt, step, stream, config } = rig(mode, 6)
    let error = ''
    const read: number[] = []
    try {
      // As the training loop does: launch step s + 1, then read step s.
      let launched = await step.launch(0, stream, () => 0, null)
      for (let s = 0; s < 5; s++) {
        // Before the fourth step the MLP head's bias turns to NaN (the copy waits for the steps in flight).
        if (s === 2) {
          read.push(launched.result().step)
          model.param(MLP_BIAS).copyFrom(new Float32Array(config.hiddenSize).fill(NaN))
          launched = await step.launch(3, stream, () => 0, null)
          continue
        }
        const next = s < 4 ? await step.launch(s + 1, stream, () => 0, null) : null
        read.push(launched.result().step)
        launched = next!
      }
    } catch (e) {
      error = (e as Error).message
    }
    outcome[mode] = { error, params: model.params.toFloat32Array(), optSteps: opt.step, read }
    step.dispose()
    model.dispose()
  }
  t.match(outcome.eager.error, /^step 4: the sentence vectors hold NaN \(training diverged\)/, outcome.eager.error)
  t.equal(outcome.graphs.error, outcome.eager.error, 'the same error')
  t.same(outcome.graphs.read, [1, 2, 3], 'steps 1-3 were read')
  t.equal(outcome.graphs.optSteps, 3, "the optimizer's step count stays at 3 (steps 4 and 5 made no update)")
  t.equal(outcome.eager.optSteps, 3, 'as in the eager run')
  t.equal(differingBits(outcome.graphs.params, outcome.eager.params), 0, "the eager run's weights (the updates of steps 4 and 5 skipped)")
})

t.test('a run stopped while a step is queued ahead checkpoints after it and resumes to the same weights', { skip }, async (t) => {
  const dir = tempDir('simcsepp-cuda-graphs-stop-')
  const model = await microModel(dir, 'micro')
  const data = writeSentences(join(dir, 'data.txt'), 80)
  const base = {
    model,
    data,
    steps: 7,
    batchSize: 8,
    maxLen: 7,
    evalEvery: 0,
    saveEvery: 0,
    seed: 3,
    lr: 3e-5,
    device: 'cuda',
    precision: 'fp32',
  }
  const run = (out: string, more: Record<string, unknown> = {}, hooks = {}) =>
    train({ ...base, out: join(dir, out), ...more } as Parameters<typeof train>[0], hooks)
  await run('whole')
  const ctl = new AbortController()
  const seen: (string | undefined)[] = []
  // Step 3 is read after step 4 was launched (no checkpoint after 3): the run stops after step 4.
  const first = await run(
    'stopped',
    {},
    {
      signal: ctl.signal,
      onStep: (s: StepInfo) => {
        seen.push(s.cudaGraph)
        if (s.step === 3) ctl.abort()
      },
    },
  )
  t.equal(first.interrupted, true)
  t.equal(first.steps, 4, 'stopped after the step already queued')
  t.same(seen, ['eager', 'captured', 'replayed', 'replayed'], 'steps 2-4 as graphs')
  const second = await run('stopped', { resume: join(dir, 'stopped') })
  t.equal(second.interrupted, false)
  const weights = (out: string) => readFileSync(join(dir, out, 'model.safetensors'))
  t.ok(weights('stopped').equals(weights('whole')), 'identical final weights')
})

t.test('a run that fails with a step queued ahead frees its graphs and GPU buffers', { skip }, async (t) => {
  const dir = tempDir('simcsepp-cuda-graphs-free-')
  const model = await microModel(dir, 'micro')
  const data = writeSentences(join(dir, 'data.txt'), 40)
  const before = await settledTensorBytes()
  const run = { model, data, steps: 6, batchSize: 8, maxLen: 7, evalEvery: 0, saveEvery: 0, device: 'cuda', precision: 'fp32' }
  const graphs: string[] = []
  // Step 4 is replayed from a graph, and step 5 already launched behind it, when the hook throws.
  await t.rejects(
    train({ ...run, out: join(dir, 'fails') } as Parameters<typeof train>[0], {
      onStep: (s: StepInfo) => {
        graphs.push(s.cudaGraph ?? '')
        if (s.step === 4) throw new Error('the hook failed')
      },
    }),
    /the hook failed/,
  )
  t.equal(graphs[3], 'replayed', 'step 4 was a replay')
  t.equal(await settledTensorBytes(), before, 'no tensor storage left')
  // The device still trains: the next run in this process finishes.
  const ok = await train({ ...run, out: join(dir, 'then') } as Parameters<typeof train>[0])
  t.equal(ok.steps, 6)
  t.equal(await settledTensorBytes(), before, 'nor after a finished one')
})
