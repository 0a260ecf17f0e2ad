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
import { Tensor } from '../lib/tensor.js'
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

const status = cudaStatus()
const skip = status.available ? false : `CUDA unavailable (${status.reason})`

function rng(seed: number) {
  let s = seed >>> 0
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32
}

/** A batch of B sentences padded to T, with random lengths and ids (first token 2, as [CLS]). */
function batch(B: number, T: number, seed: number, vocab: number) {
  const r = rng(seed)
  const inputIds = new Int32Array(B * T),
    attentionMask = new Int32Array(B * T)
  for (let b = 0; b < B; b++) {
    const len = b === 0 ? T : 1 + Math.floor(r() * T)
    for (let i = 0; i < T; i++) {
      inputIds[b * T + i] = i === 0 ? 2 : i < len ? 5 + Math.floor(r() * (vocab - 5)) : 0
      attentionMask[b * T + i] = i < len ? 1 : 0
    }
  }
  return { inputIds, attentionMask, tokenTypeIds: new Int32Array(B * T), shape: [B, T] }
}

function equalBits(a: Float32Array, b: Float32Array): number {
  let differing = 0
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) differing++
  return differing
}

t.test('graph passes equal eager passes bit for bit, step after step, as shapes change', { skip }, async (t) => {
  const config = tinyConfig({ hiddenSize: 32, numHiddenLayers: 2, numAttentionHeads: 2, intermediateSize: 64 })
  for (const pooling of ['cls', 'mean'] as const) {
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
      const b = batch(B, T, 100 + step, config.vocabSize)
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
      const dZ = equalBits(results[0][0], results[1][0]),
        dG = equalBits(results[0][1], results[1][1])
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

t.test('a graph is dropped when the activation arena grows, and captured again', { skip }, async (t) => {
  const config = tinyConfig({ hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64 })
  const m = BertModel.create(config, { device: 'cuda', mlp: true, seed: 2 })
  const e = BertModel.create(config, { device: 'cuda', mlp: true, seed: 2 })
  const small = batch(3, 4, 1, config.vocabSize)
  for (let step = 0; step < 3; step++) m.trainForward(small, { seed: 1, step, graph: true })
  m.embed(batch(40, 16, 2, config.vocabSize)) // a larger eval batch: a new arena
  for (let step = 3; step < 6; step++) {
    const z = m.trainForward(small, { seed: 1, step, graph: true }).toFloat32Array()
    const ze = e.trainForward(small, { seed: 1, step }).toFloat32Array()
    t.equal(equalBits(z, ze), 0, `step ${step}: the eager vector`)
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
  const g = addon.graphCapture(session, [ids], () => ops.embeddingForward(out, ids, ids, ids, table, table, table))
  t.equal(g, 0, 'a valid capture after the failed ones')
  table.copyFrom(new Float32Array(128).map((_, i) => i))
  addon.graphLaunch(session, g, [new Int32Array([1, 1, 1, 1])], 0n, 0, 1)
  const v = out.toFloat32Array()
  t.equal(v[0], 3 * 8, 'the replay reads the ids given at launch (row 1 three times: 3 x 8)')
  t.throws(() => addon.graphLaunch(session, 5, [ids], 0n, 0, 1), /does not exist/, 'an unknown graph index')
  t.throws(() => addon.graphLaunch(session, g, [new Int32Array(3)], 0n, 0, 1), /holds 12 bytes/, 'arrays of another size')
  t.throws(() => addon.graphLaunch({} as never, g, [ids], 0n, 0, 1), /session/, 'not a session')
  addon.graphSessionFree(session)
  t.throws(() => addon.graphLaunch(session, g, [ids], 0n, 0, 1), /freed/, 'a freed session')
  table.dispose()
  out.dispose()
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
})

t.test('a replayed step that diverges throws as the eager step does, and leaves the weights alone', { skip }, async (t) => {
  const dir = tempDir('simcsepp-cuda-graphs-diverge-')
  writeFileSync(join(dir, 'vocab.txt'), VOCAB.join('\n') + '\n')
  const tokenizer = await Tokenizer.load(join(dir, 'vocab.txt'))
  const config = tinyConfig({ hiddenSize: 32, numHiddenLayers: 1, numAttentionHeads: 2, intermediateSize: 64 })
  const text = sentences(64, 5, 6)
  const outcome: Record<string, { error: string; params: Float32Array; steps: number }> = {}
  for (const mode of ['graphs', 'eager'] as const) {
    if (mode === 'eager') process.env.SIMCSEPP_CUDA_GRAPHS = '0'
    const model = BertModel.create(config, { device: 'cuda', mlp: true, seed: 4 })
    const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: 1e-4 })
    const o = resolveTrainOptions({ data: 'x', out: 'x', batchSize: 8, maxLen: 8, device: 'cuda', precision: 'fp32' })
    const step = new TrainingStep(model, opt, tokenizer, o, { batch: 8, maxLen: 8, totalSteps: 5 }, 'cuda')
    delete process.env.SIMCSEPP_CUDA_GRAPHS
    let k = 0
    const stream = { next: async () => ({ sentences: text.slice(8 * k, 8 * ++k), epoch: 0 }) } as unknown as BatchStream
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
  t.equal(equalBits(outcome.graphs.params, outcome.eager.params), 0, 'the weights the eager step left (its AdamW update skipped)')
})
