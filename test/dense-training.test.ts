// sentence-transformers Dense modules trained with the encoder (ModelOptions.dense, lib/model/dense-head.ts): the
// vectors and every parameter's gradient, the Dense modules' included, against a float64 reference and its finite
// differences; embed() gives the training forward's vectors without dropout; misuse is an Error naming it.
import t from 'tap'
import { Tensor } from '../lib/index.js'
import type { BertConfig } from '../lib/model/config.js'
import { BertModel } from '../lib/model/bert.js'
import type { DenseShape } from '../lib/model/dense-head.js'
import { encoderRef, gradientError, type RefBatch } from './helpers/encoder-reference.js'
import { randn, relErr } from './helpers/reference.js'
import { tinyConfig } from './helpers/encoder-tiny-model.js'

// One layer, no dropout (the Dense modules' math is what is checked; the encoder's dropout is encoder.test.ts's).
const config: BertConfig = tinyConfig({
  vocabSize: 40,
  numHiddenLayers: 1,
  intermediateSize: 48,
  hiddenDropoutProb: 0,
  attentionProbsDropoutProb: 0,
  maxPositionEmbeddings: 16,
})
const B = 3,
  T = 6
const lengths = [6, 4, 1]
const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0))
const ids = Int32Array.from({ length: B * T }, (_, i) => (mask[i] ? 1 + ((i * 7) % 39) : 0))
const types = new Int32Array(B * T)
const batch = { inputIds: ids, attentionMask: mask, tokenTypeIds: types, shape: [B, T] as [number, number] }
const refBatch: RefBatch = { ids, mask, types, positions: Int32Array.from({ length: B * T }, (_, i) => i % T), B, T }
// LaBSE's kind (tanh, with bias) then a narrower one without bias or activation.
const dense: DenseShape[] = [
  { inFeatures: 32, outFeatures: 24, bias: true, activation: 'tanh' },
  { inFeatures: 24, outFeatures: 16, bias: false, activation: 'identity' },
]

function paramsOf(model: BertModel): Map<string, Float64Array> {
  const flat = model.params.toFloat32Array()
  return new Map(model.layout.entries.map((e) => [e.name, Float64Array.from(flat.subarray(e.offset, e.offset + e.size))]))
}

/** The encoder's pooled vectors in float64, then the Dense chain: f(W·x + b) per module. */
function denseRef(P: Map<string, Float64Array>, pooling: 'cls' | 'mean'): Float64Array {
  let x = encoderRef(P, config, refBatch, () => null, pooling, false)
  dense.forEach((d, i) => {
    const w = P.get(`dense.${i}.linear.weight`)!,
      b = P.get(`dense.${i}.linear.bias`)
    const y = new Float64Array(B * d.outFeatures)
    for (let r = 0; r < B; r++)
      for (let o = 0; o < d.outFeatures; o++) {
        let s = b ? b[o] : 0
        for (let k = 0; k < d.inFeatures; k++) s += w[o * d.inFeatures + k] * x[r * d.inFeatures + k]
        y[r * d.outFeatures + o] = d.activation === 'tanh' ? Math.tanh(s) : s
      }
    x = y
  })
  return x
}

for (const pooling of ['mean', 'cls'] as const) {
  t.test(`the Dense modules' vectors and gradients against float64 finite differences (${pooling} pooling)`, async (t) => {
    const model = BertModel.create(config, { seed: 3, dense })
    t.teardown(() => model.dispose())
    t.equal(model.embeddingDim, 16)
    t.same(
      model.layout.entries.filter((e) => e.name.startsWith('dense.')).map((e) => [e.name, e.shape, e.saved]),
      [
        ['dense.0.linear.weight', [24, 32], false],
        ['dense.1.linear.weight', [16, 24], false],
        ['dense.0.linear.bias', [24], false],
      ],
      'in the flat buffer (weights decayed, the bias not), not in model.safetensors',
    )
    const R = randn(B * 16, 21)
    const z = model.trainForward(batch, { seed: 1, step: 0, pooling }).toFloat32Array()
    t.equal(z.length, B * 16)
    model.zeroGrad()
    model.trainBackward(Tensor.from(R, [B, 16]))
    const grads = model.grads.toFloat32Array()
    const P = paramsOf(model)
    t.ok(relErr(z, denseRef(P, pooling)) < 1e-5, `z matches the float64 reference (${relErr(z, denseRef(P, pooling)).toExponential(2)})`)
    const embedded = model.embed(batch, pooling)
    t.same(embedded.shape, [B, 16])
    t.same(embedded.toFloat32Array(), z, 'embed(): the training forward without dropout, bit for bit')
    embedded.dispose()

    const loss = () => denseRef(P, pooling).reduce((s, v, i) => s + v * R[i], 0)
    for (const e of model.layout.entries) {
      const idx = Array.from({ length: Math.min(e.size, 6) }, (_, k) => (k * 7919 + 13) % e.size)
      if (e.name === 'embeddings.word_embeddings.weight') idx.push(...Array.from({ length: 4 }, (_, i) => ids[i] * 32 + i))
      const err = gradientError(
        P.get(e.name)!,
        idx,
        idx.map((i) => grads[e.offset + i]),
        loss,
      )
      t.ok(err < 2e-3, `${e.name}: max |native − FD| / max |FD| = ${err.toExponential(2)}`)
    }
  })
}

t.test('misuse of the Dense modules is an Error naming it', async (t) => {
  t.throws(() => BertModel.create(config, { dense, mlp: true }), /trains its Dense modules or an MLP head, not both/)
  t.throws(
    () => BertModel.create(config, { dense: [{ ...dense[0], inFeatures: 31 }] }),
    /dense\[0\]\.inFeatures is 31, but it is given vectors of 32/,
  )
  t.throws(() => BertModel.create(config, { dense: [dense[0], { ...dense[1], inFeatures: 32 }] }), /dense\[1\]\.inFeatures is 32/)
  t.throws(
    () => BertModel.create(config, { dense: [{ ...dense[0], activation: 'relu' as 'tanh' }] }),
    /dense\[0\]\.activation must be 'tanh' or 'identity'/,
  )
  t.throws(() => BertModel.create(config, { dense: [{ ...dense[0], outFeatures: 0 }] }), /dense\[0\]\.outFeatures must be an integer/)
  const model = BertModel.create(config, { dense })
  t.teardown(() => model.dispose())
  t.throws(() => model.trainForward(batch, { seed: 1, step: 0, mlp: true }), /has no MLP head/)
})
