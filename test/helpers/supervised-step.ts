// One supervised training step of the micro model, for the tests that hold the step to the losses API.
import type { Test } from 'tap'
import { BertModel } from '../../lib/model/bert.js'
import { Tokenizer } from '../../lib/tokenizer.js'
import { AdamW } from '../../lib/optim/adamw.js'
import { TrainingStep } from '../../lib/train/step.js'
import { resolveTrainOptions } from '../../lib/train/options.js'
import { microModel } from './train-corpus.js'

/**
 * Step 0 (seed 5, maxLen 10, τ 0.07, no clipping) of the micro model (made in `dir`) on one batch of
 * `columns` (anchors, positives, then each negative column), in passes of `microBatch` rows (0: one);
 * `before` sees the freshly loaded model. With `scores` the step trains CoSENT on the pairs. Returns the step's
 * report and the parameter gradients.
 */
export async function supervisedStep(
  dir: string,
  columns: string[][],
  microBatch: number,
  before?: (model: BertModel) => Promise<void>,
  scores?: Float32Array,
) {
  const modelDir = await microModel(dir, 'micro')
  const tokenizer = await Tokenizer.load(modelDir)
  const model = await BertModel.load(modelDir, { mlp: true })
  await before?.(model)
  const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: 3e-5 })
  const n = columns[0].length
  const o = resolveTrainOptions({
    data: 'x',
    out: 'y',
    objective: scores ? 'cosent' : 'simcse',
    batchSize: n,
    maxLen: 10,
    seed: 5,
    temperature: 0.07,
    microBatch,
    gradClip: 1e6,
  })
  const shape = { batch: n, maxLen: 10, totalSteps: 1, microBatch, columns: columns.length }
  const step = new TrainingStep(model, opt, tokenizer, o, shape, 'cpu')
  const info = await step.run(0, { next: async () => ({ sentences: columns[0], columns, epoch: 0, scores }) } as never, () => 0, null)
  const g = model.grads.toFloat32Array()
  step.dispose()
  opt.dispose()
  model.dispose()
  return { info, g }
}

/**
 * Asserts that the step in passes of each of `sizes` rows computes the whole-batch step: the pass count, the
 * loss within 1e-6 relative, the parameter gradients within 1e-5 of the largest.
 */
export async function checkMicroBatches(t: Test, dir: string, columns: string[][], sizes: number[], scores?: Float32Array) {
  const rows = columns.length * columns[0].length
  const whole = await supervisedStep(dir, columns, 0, undefined, scores)
  const scale = whole.g.reduce((m, x) => Math.max(m, Math.abs(x)), 0)
  for (const M of sizes) {
    const { g, info } = await supervisedStep(dir, columns, M, undefined, scores)
    let worst = 0
    for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - whole.g[i]))
    t.equal(
      info.microBatches,
      Math.ceil(rows / M),
      `M=${M}: ${info.microBatches} passes over ${columns.length} views of ${columns[0].length} rows`,
    )
    t.ok(Math.abs(info.loss - whole.info.loss) < 1e-6 * whole.info.loss, `M=${M}: loss ${info.loss} (whole: ${whole.info.loss})`)
    t.ok(worst / scale < 1e-5, `M=${M}: gradients within ${(worst / scale).toExponential(2)} of the largest`)
  }
}
