// Alignment and uniformity: the Gram-matrix form the training step uses equals the direct definition,
// and a step over a batch larger than the metric sample reports the sample's numbers.
import t from 'tap'
import { alignment, METRIC_SENTENCES, uniformity, uniformityFromGram } from '../lib/train/batch-metrics.js'

function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32 - 0.5
  })
}

function gram(z: Float32Array, n: number, d: number): Float32Array {
  const g = new Float32Array(n * n)
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0
      for (let k = 0; k < d; k++) s += z[i * d + k] * z[j * d + k]
      g[i * n + j] = s
    }
  return g
}

t.test('uniformityFromGram equals uniformity', async (t) => {
  for (const [n, d] of [
    [2, 3],
    [17, 8],
    [64, 33],
  ]) {
    const z = random(n * d, n + d)
    const a = uniformity(z, n, d),
      b = uniformityFromGram(gram(z, n, d), n)
    t.ok(Math.abs(a - b) < 1e-5, `n=${n} d=${d}: ${b} vs ${a}`)
  }
  t.equal(uniformityFromGram(new Float32Array([4]), 1), 0, 'one sentence: 0, as uniformity')
  // Identical rows: every distance 0, uniformity log(1) = 0; orthogonal unit rows: -4.
  t.ok(Math.abs(uniformityFromGram(new Float32Array([2, 2, 2, 2]), 2)) < 1e-12)
  t.ok(Math.abs(uniformityFromGram(new Float32Array([1, 0, 0, 1]), 2) + 4) < 1e-12)
  t.equal(alignment(new Float32Array([1, 0]), new Float32Array([3, 0]), 1, 2), 0, 'alignment of parallel rows')
})

t.test('a step over 300 sentences reports the metrics of its first 256', async (t) => {
  t.equal(METRIC_SENTENCES, 256)
  const { BertModel } = await import('../lib/model/bert.js')
  const { AdamW } = await import('../lib/optim/adamw.js')
  const { TrainingStep } = await import('../lib/train/step.js')
  const { resolveTrainOptions } = await import('../lib/train/options.js')
  const { saveTinyModel, sentences } = await import('./helpers/encoder-tiny-model.js')
  const { Tokenizer } = await import('../lib/tokenizer.js')
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-metrics-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await saveTinyModel({ dir })
  const tokenizer = await Tokenizer.load(dir)
  const batch = sentences(300, 9, 6)
  const run = async (n: number) => {
    const model = await BertModel.load(dir, { mlp: true })
    const opt = new AdamW(model.params, model.grads, model.layout.decayEnd, { lr: 1e-5 })
    const o = resolveTrainOptions({ data: 'x', out: 'y', batchSize: n, maxLen: 8, seed: 4 })
    const step = new TrainingStep(model, opt, tokenizer, o, { batch: n, maxLen: 8, totalSteps: 1 }, 'cpu')
    const info = await step.run(0, { next: async () => ({ sentences: batch.slice(0, n), epoch: 0 }) } as never, () => 0, null)
    step.dispose()
    opt.dispose()
    model.dispose()
    return info
  }
  // Uniformity is taken over the dropout-free view z0, whose rows do not depend on the rest of the
  // batch: a batch of 300 reports that of its first 256 sentences, i.e. of a batch of exactly those.
  // (Alignment uses the dropout views, whose masks depend on a row's index in the stacked batch.)
  const [big, exact] = [await run(300), await run(256)]
  t.ok(Math.abs(big.uniformity - exact.uniformity) < 1e-5, `uniformity ${big.uniformity} vs ${exact.uniformity}`)
  t.ok(big.uniformity >= -8 && big.uniformity <= 0, 'within [-8, 0] (antipodal pairs: -8)')
  t.ok(Number.isFinite(big.alignment) && big.alignment >= 0 && big.alignment <= 4, `alignment ${big.alignment}`)
})
