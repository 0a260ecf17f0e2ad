// The whole encoder: native forward/backward against a float64 reference and its finite
// differences, on every parameter tensor, with dropout on (fixed Philox masks) and off;
// reproducibility; save/load round trips.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Tensor } from '../lib/index.js'
import type { BertConfig } from '../lib/model/config.js'
import { BertModel, type Pooling } from '../lib/model/bert.js'
import * as ops from '../lib/ops.js'
import { encoderRef, gradientError, type RefBatch } from './helpers/encoder-reference.js'
import { randn, relErr } from './helpers/reference.js'

const config: BertConfig = {
  modelType: 'bert',
  vocabSize: 40,
  hiddenSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  intermediateSize: 64,
  hiddenAct: 'gelu',
  hiddenDropoutProb: 0.1,
  attentionProbsDropoutProb: 0.1,
  maxPositionEmbeddings: 16,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
  padTokenId: 0,
  initializerRange: 0.2,
}
const B = 3,
  T = 7
const lengths = [7, 4, 1] // padded rows, one with only its first token real
const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0))
const ids = Int32Array.from({ length: B * T }, (_, i) => (mask[i] ? 1 + ((i * 7) % 39) : 0))
const types = Int32Array.from({ length: B * T }, (_, i) => (i % T > 3 ? 1 : 0))
const batch = { inputIds: ids, attentionMask: mask, tokenTypeIds: types, shape: [B, T] as [number, number] }
const refBatch: RefBatch = { ids, mask, types, positions: Int32Array.from({ length: B * T }, (_, i) => i % T), B, T }
const sites = 1 + 3 * config.numHiddenLayers

function paramsOf(model: BertModel): Map<string, Float64Array> {
  const flat = model.params.toFloat32Array()
  return new Map(model.layout.entries.map((e) => [e.name, Float64Array.from(flat.subarray(e.offset, e.offset + e.size))]))
}

// The native masks of each site, read back by dropping out a tensor of ones (rows = sentences).
function nativeFactors(seed: number, step: number, keepRows: Uint8Array | null) {
  return (site: number, length: number) => {
    const p = site === 0 || (site - 1) % 3 !== 0 ? config.hiddenDropoutProb : config.attentionProbsDropoutProb
    if (keepRows && keepRows.every((k) => k === 0)) return null
    const ones = Tensor.from(new Float32Array(length).fill(1), [B, length / B])
    ops.dropout(ones, ones, { p, seed, offset: BigInt(step) * BigInt(sites) + BigInt(site), keepRows })
    return Float64Array.from(ones.toFloat32Array())
  }
}

for (const [label, keepRows, pooling] of [
  ['dropout on, CLS', Uint8Array.of(1, 0, 1), 'cls'],
  ['dropout off, CLS', Uint8Array.of(0, 0, 0), 'cls'],
  ['dropout on, mean pooling', Uint8Array.of(1, 1, 1), 'mean'],
  ['dropout on, max pooling', Uint8Array.of(1, 1, 1), 'max'],
  ['dropout on, mean_sqrt_len pooling', Uint8Array.of(1, 0, 1), 'mean_sqrt_len'],
] as [string, Uint8Array, Pooling][]) {
  t.test(`encoder gradients against float64 finite differences (${label})`, async (t) => {
    const model = BertModel.create(config, { mlp: true, seed: 11 })
    const seed = 5,
      step = 3
    const R = randn(B * config.hiddenSize, 17)
    const z = model.trainForward(batch, { seed, step, keepRows, pooling }).toFloat32Array()
    model.zeroGrad()
    model.trainBackward(Tensor.from(R, [B, config.hiddenSize]))
    const grads = model.grads.toFloat32Array()

    const P = paramsOf(model)
    const factors = nativeFactors(seed, step, keepRows)
    const refZ = encoderRef(P, config, refBatch, factors, pooling, true)
    t.ok(relErr(z, refZ) < 1e-5, `forward z matches the float64 reference (${relErr(z, refZ).toExponential(2)})`)

    const loss = () => encoderRef(P, config, refBatch, factors, pooling, true).reduce((s, v, i) => s + v * R[i], 0)
    let rng = 1
    const pick = (n: number, k: number) => {
      const out = new Set<number>()
      while (out.size < Math.min(n, k)) {
        rng = (Math.imul(rng, 1103515245) + 12345) >>> 0
        out.add(rng % n)
      }
      return [...out]
    }
    for (const e of model.layout.entries) {
      const values = P.get(e.name)!
      // Embedding rows that the batch never touches have zero gradient: sample used rows too.
      const idx = pick(e.size, 10)
      if (e.name === 'embeddings.word_embeddings.weight')
        idx.push(...Array.from({ length: 6 }, (_, i) => ids[i * 3] * config.hiddenSize + i))
      const err = gradientError(
        values,
        idx,
        idx.map((i) => grads[e.offset + i]),
        loss,
      )
      t.ok(err < 2e-3, `${e.name}: max |native − FD| / max |FD| = ${err.toExponential(2)} over ${idx.length} coordinates`)
    }
    model.dispose()
  })
}

t.test('same seed and step: same masks and outputs; another step: other masks', async (t) => {
  const a = BertModel.create(config, { mlp: true, seed: 2 })
  const b = BertModel.create(config, { mlp: true, seed: 2 })
  t.same(a.params.toFloat32Array(), b.params.toFloat32Array(), 'same seed: same initial weights')
  const keepRows = Uint8Array.of(1, 1, 1)
  const z1 = a.trainForward(batch, { seed: 9, step: 4, keepRows }).toFloat32Array()
  const z2 = b.trainForward(batch, { seed: 9, step: 4, keepRows }).toFloat32Array()
  t.same(new Uint32Array(z1.buffer), new Uint32Array(z2.buffer), 'bit-identical outputs')
  const z3 = a.trainForward(batch, { seed: 9, step: 5, keepRows }).toFloat32Array()
  t.ok(relErr(z3, z1) > 1e-3, 'another step draws other masks')
  const off = a.trainForward(batch, { seed: 9, step: 4, keepRows: Uint8Array.of(0, 0, 0) }).toFloat32Array()
  const ev = a.embed(batch, 'cls')
  const head = encoderRef(paramsOf(a), config, refBatch, () => null, 'cls', false)
  t.ok(relErr(ev.toFloat32Array(), head) < 1e-5, 'embed() is the dropout-free CLS vector')
  t.ok(relErr(off, z1) > 1e-3, 'keepRows 0 switches dropout off')
})

t.test('save() then load() gives identical outputs; init follows transformers', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-model-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const model = BertModel.create(config, { mlp: true, seed: 4 })
  const P = paramsOf(model)
  t.ok(
    P.get('embeddings.word_embeddings.weight')!
      .slice(0, config.hiddenSize)
      .every((v) => v === 0),
    'padding row of the word embeddings is zero',
  )
  t.ok(
    P.get('embeddings.LayerNorm.weight')!.every((v) => v === 1) && P.get('embeddings.LayerNorm.bias')!.every((v) => v === 0),
    'LayerNorm 1/0',
  )
  t.ok(
    P.get('encoder.layer.0.intermediate.dense.bias')!.every((v) => v === 0),
    'biases 0',
  )
  const w = P.get('encoder.layer.1.output.dense.weight')!
  const std = Math.sqrt(w.reduce((s, v) => s + v * v, 0) / w.length)
  t.ok(Math.abs(std - config.initializerRange) < 0.02, `weights ~ N(0, ${config.initializerRange}): std ${std.toFixed(4)}`)
  await model.save(dir)
  const again = await BertModel.load(dir)
  t.notOk(again.layout.byName.has('mlp.dense.weight'), 'the training MLP head is not saved')
  const h1 = model.forward(batch).toFloat32Array(),
    h2 = again.forward(batch).toFloat32Array()
  t.same(new Uint32Array(h1.buffer), new Uint32Array(h2.buffer), 'bit-identical hidden states after reload')
  t.same(model.forward(batch).shape, [B, T, config.hiddenSize])
})

t.test('bad batches are rejected with the argument named', async (t) => {
  const model = BertModel.create(config, { seed: 1 })
  t.throws(() => model.forward({ inputIds: ids, shape: [B, T + 1] }), /inputIds.*B\*T/)
  t.throws(() => model.forward({ inputIds: Int32Array.of(1, 2, 99), shape: [1, 3] }), /inputIds\[2\] = 99.*vocabulary/)
  t.throws(() => model.forward({ inputIds: Int32Array.from({ length: 20 }, () => 1), shape: [1, 20] }), /exceeds the model's 16 positions/)
  t.throws(() => model.forward({ inputIds: [1, 2] as never, shape: [1, 2] }), /inputIds to be an Int32Array/)
  t.throws(() => model.forward({ inputIds: ids, shape: [B] }), /shape to be \[B, T\]/)
  t.throws(() => model.trainForward(batch, { seed: 1, step: 0, mlp: true }), /no MLP head/)
  t.throws(() => model.trainBackward(Tensor.zeros([B, 32])), /call trainForward first/)
})

t.test('hub-style checkpoints: bert. prefix, gamma/beta, heads and position_ids load to the same model', async (t) => {
  const { writeSafetensors, readSafetensors } = await import('../lib/safetensors.js')
  const { writeFileSync, mkdirSync } = await import('node:fs')
  const { toHfConfig } = await import('../lib/model/config.js')
  const dir = mkdtempSync(join(tmpdir(), 'simcsepp-hub-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const model = BertModel.create(config, { seed: 8 })
  await model.save(dir)
  const ours = await readSafetensors(join(dir, 'model.safetensors'))
  const legacy = new Map<string, { shape: number[]; data: Float32Array }>()
  for (const [name, v] of ours) {
    const renamed = `bert.${name}`.replace(/LayerNorm\.weight$/, 'LayerNorm.gamma').replace(/LayerNorm\.bias$/, 'LayerNorm.beta')
    legacy.set(renamed, { shape: v.shape, data: v.data })
  }
  legacy.set('cls.predictions.bias', { shape: [config.vocabSize], data: new Float32Array(config.vocabSize) })
  legacy.set('bert.embeddings.position_ids', { shape: [1, 16], data: new Float32Array(16) })
  const hub = join(dir, 'hub')
  mkdirSync(hub)
  await writeSafetensors(join(hub, 'model.safetensors'), legacy)
  writeFileSync(join(hub, 'config.json'), JSON.stringify({ ...toHfConfig(config), architectures: ['BertForPreTraining'] }))
  const loaded = await BertModel.load(hub)
  const a = model.forward(batch).toFloat32Array(),
    b = loaded.forward(batch).toFloat32Array()
  t.same(new Uint32Array(b.buffer), new Uint32Array(a.buffer), 'identical hidden states')

  // A wrong checkpoint is one error that lists every problem.
  legacy.delete('bert.encoder.layer.1.output.dense.weight')
  legacy.set('bert.encoder.layer.0.output.dense.bias', { shape: [5], data: new Float32Array(5) })
  legacy.set('bert.extra.weight', { shape: [2], data: new Float32Array(2) })
  const bad = join(dir, 'bad')
  mkdirSync(bad)
  await writeSafetensors(join(bad, 'model.safetensors'), legacy)
  writeFileSync(join(bad, 'config.json'), JSON.stringify(toHfConfig(config)))
  await t.rejects(
    BertModel.load(bad),
    /(?=[\s\S]*encoder\.layer\.1\.output\.dense\.weight)(?=[\s\S]*extra\.weight)(?=[\s\S]*layer\.0\.output\.dense\.bias)/,
  )
  await t.rejects(BertModel.load(join(dir, 'nothing-here')), /config\.json/)
})

t.test('RoBERTa: positions start after the padding index; one token type', async (t) => {
  const rc: BertConfig = { ...config, modelType: 'roberta', padTokenId: 1, typeVocabSize: 1, maxPositionEmbeddings: 12 }
  const model = BertModel.create(rc, { seed: 3 })
  const rIds = Int32Array.from([0, 5, 6, 2, 1, 1, 1, 0, 7, 2, 1, 1, 1, 1]) // two rows of 7, padded with 1
  const rMask = Int32Array.from(rIds, (v) => (v === 1 ? 0 : 1))
  const h = model.forward({ inputIds: rIds, attentionMask: rMask, shape: [2, 7] })
  t.same(h.shape, [2, 7, 32])
  const P = paramsOf(model)
  const positions = Int32Array.from(rIds, (v, i) => (v === 1 ? 1 : 2 + (i % 7)))
  const ref = encoderRef(P, rc, { ids: rIds, mask: rMask, types: new Int32Array(14), positions, B: 2, T: 7 }, () => null, 'cls', false)
  t.ok(
    relErr(model.embed({ inputIds: rIds, attentionMask: rMask, shape: [2, 7] }).toFloat32Array(), ref) < 1e-5,
    'CLS equals the reference with positions padding_idx + 1 + i',
  )
  t.throws(() => model.forward({ inputIds: Int32Array.from({ length: 11 }, () => 4), shape: [1, 11] }), /positions/)
})
