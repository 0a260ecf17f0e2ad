// DistilBERT (config.json model_type "distilbert"): its config fields, its checkpoint names in and out, and its
// encoder held to a float64 DistilBertModel written here from transformers' modeling_distilbert.py in its own
// names (no token types, no pooler, no dropout on the attention's output projection), forward and (through finite
// differences) backward; then a training run, SentenceEncoder and an ONNX export that transformers.js runs.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { SentenceEncoder, Tensor } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { parseHfConfig, toHfConfig, type BertConfig } from '../lib/model/config.js'
import { checkpointName } from '../lib/model/names.js'
import { readSafetensors, writeSafetensors } from '../lib/safetensors.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { train } from '../lib/train/train.js'
import { attentionRef, gelu, linearRef } from './helpers/bert-reference.js'
import {
  nativeSiteFactors,
  refOutput,
  refTools,
  tensorsByCheckpointName,
  type RefHead,
  type RefInput,
  type SiteFactors,
} from './helpers/model-reference.js'
import { gradientError } from './helpers/encoder-reference.js'
import { tinyConfig, VOCAB, WORDS } from './helpers/encoder-tiny-model.js'
import { randn, relErr } from './helpers/reference.js'
import { tempDir } from './helpers/train-corpus.js'

// distilbert-base-uncased's config.json, as the Hub serves it.
const HUB_CONFIG = {
  activation: 'gelu',
  architectures: ['DistilBertForMaskedLM'],
  attention_dropout: 0.1,
  dim: 768,
  dropout: 0.1,
  hidden_dim: 3072,
  initializer_range: 0.02,
  max_position_embeddings: 512,
  model_type: 'distilbert',
  n_heads: 12,
  n_layers: 6,
  pad_token_id: 0,
  qa_dropout: 0.1,
  seq_classif_dropout: 0.2,
  sinusoidal_pos_embds: false,
  tie_weights_: true,
  transformers_version: '4.10.0.dev0',
  vocab_size: 30522,
}

const config: BertConfig = tinyConfig({ modelType: 'distilbert', typeVocabSize: 0, maxPositionEmbeddings: 16 })

/** DistilBertModel.state_dict()'s names, in its order, for `layers` layers. */
function distilBertStateDictNames(layers: number): string[] {
  const names = [
    'embeddings.word_embeddings.weight',
    'embeddings.position_embeddings.weight',
    'embeddings.LayerNorm.weight',
    'embeddings.LayerNorm.bias',
  ]
  for (let l = 0; l < layers; l++) {
    const p = `transformer.layer.${l}`
    for (const m of [
      'attention.q_lin',
      'attention.k_lin',
      'attention.v_lin',
      'attention.out_lin',
      'sa_layer_norm',
      'ffn.lin1',
      'ffn.lin2',
      'output_layer_norm',
    ])
      names.push(`${p}.${m}.weight`, `${p}.${m}.bias`)
  }
  return names
}

/**
 * transformers' DistilBertModel in float64, from its tensors by their DistilBERT names: embeddings = LayerNorm(word +
 * position) then dropout; per TransformerBlock, sa = LayerNorm(out_lin(attention(x)) + x) with dropout on the attention
 * weights only, out = LayerNorm(dropout(lin2(gelu(lin1(sa)))) + sa). Dropout multipliers by site: 0 the embeddings,
 * 1 + 3l the attention weights, 3 + 3l the FFN (our site numbering; 2 + 3l, BERT's attention output, is never asked).
 */
function distilBertRef(
  S: ReadonlyMap<string, Float64Array>,
  c: BertConfig,
  x: RefInput,
  factor: SiteFactors,
  pooling: 'cls' | 'mean' | 'none',
  mlp?: RefHead,
): Float64Array {
  const { B, T } = x
  const H = c.hiddenSize,
    I = c.intermediateSize,
    R = B * T
  const { s, drop, add, ln } = refTools(S, factor, R, H, 1e-12)
  const word = s('embeddings.word_embeddings.weight'),
    pos = s('embeddings.position_embeddings.weight')
  let h: Float64Array = new Float64Array(R * H)
  for (let r = 0; r < R; r++) for (let k = 0; k < H; k++) h[r * H + k] = word[x.ids[r] * H + k] + pos[(r % T) * H + k]
  h = drop(ln(h, 'embeddings.LayerNorm'), 0)
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `transformer.layer.${l}`
    const lin = (a: Float64Array, name: string, C: number, OC: number) =>
      linearRef(a, s(`${p}.${name}.weight`), s(`${p}.${name}.bias`), R, C, OC)
    const [q, k, v] = ['q_lin', 'k_lin', 'v_lin'].map((n) => lin(h, `attention.${n}`, H, H))
    const dims = { B, T, NH: c.numAttentionHeads, HS: H / c.numAttentionHeads }
    const { ctx } = attentionRef(q, k, v, x.mask, dims, factor(1 + 3 * l, B * dims.NH * T * T))
    const sa = ln(add(lin(ctx, 'attention.out_lin', H, H), h), `${p}.sa_layer_norm`)
    const ffn = drop(lin(lin(sa, 'ffn.lin1', H, I).map(gelu), 'ffn.lin2', I, H), 3 + 3 * l)
    h = ln(add(ffn, sa), `${p}.output_layer_norm`)
  }
  return refOutput(h, x, H, pooling, mlp)
}

const B = 3,
  T = 7
const lengths = [7, 4, 1]
const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0))
const ids = Int32Array.from({ length: B * T }, (_, i) => (mask[i] ? 1 + ((i * 7) % (config.vocabSize - 1)) : 0))
const batch = { inputIds: ids, attentionMask: mask, shape: [B, T] as [number, number] }
const refBatch: RefInput = { ids, mask, B, T }

t.test("config.json: DistilBertConfig's fields in, the same out", async (t) => {
  const c = parseHfConfig(HUB_CONFIG)
  t.same(
    [c.modelType, c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads, c.intermediateSize, c.vocabSize, c.maxPositionEmbeddings],
    ['distilbert', 768, 6, 12, 3072, 30522, 512],
  )
  t.same([c.typeVocabSize, c.layerNormEps, c.padTokenId, c.hiddenDropoutProb, c.attentionProbsDropoutProb], [0, 1e-12, 0, 0.1, 0.1])
  const out = toHfConfig(c)
  t.same(Object.keys(out), Object.keys(out).sort(), 'keys sorted, as transformers writes them')
  const { architectures: _a, transformers_version: _v, ...rest } = HUB_CONFIG
  const { architectures, transformers_version: _w, torch_dtype, ...written } = out
  t.same(written, rest, 'every DistilBertConfig field as it came')
  t.same([architectures, torch_dtype], [['DistilBertModel'], 'float32'])
  t.same(parseHfConfig(out), c, 'round trip')
  for (const [label, change, message] of [
    ['relu', { activation: 'relu' }, /field "activation" must be "gelu"/],
    ['sinusoidal positions', { sinusoidal_pos_embds: true }, /field "sinusoidal_pos_embds" must be false: fixed sinusoidal/],
    ['heads', { n_heads: 5 }, /field "n_heads" \(5\) must divide dim \(768\)/],
    ['no dim', { dim: undefined }, /field "dim" is missing/],
    ['dropout', { dropout: 1 }, /field "dropout" must be in \[0, 1\), got 1/],
  ] as const)
    t.throws(() => parseHfConfig({ ...HUB_CONFIG, ...change }, 'cfg.json'), message, label)
})

t.test("saved as DistilBertModel: its tensor names, no token types or pooler; hub checkpoints' prefix and heads load", async (t) => {
  const model = BertModel.create(config, { seed: 3 })
  const dir = tempDir('simcsepp-distilbert-')
  await model.save(dir)
  const saved = await readSafetensors(join(dir, 'model.safetensors'))
  t.same([...saved.keys()].sort(), distilBertStateDictNames(config.numHiddenLayers).sort(), "exactly DistilBertModel's state dict")
  t.same(saved.get('transformer.layer.1.ffn.lin1.weight')?.shape, [config.intermediateSize, config.hiddenSize])
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
  t.same([cfg.model_type, cfg.architectures, cfg.dim, cfg.n_layers], ['distilbert', ['DistilBertModel'], 32, 2])

  // The vectors of the saved file's own tensors, through the reference.
  const S = new Map([...saved].map(([n, v]) => [n, Float64Array.from(v.data)]))
  const want = distilBertRef(S, config, refBatch, () => null, 'none')
  const hidden = model.forward(batch)
  const got = hidden.toFloat32Array()
  hidden.dispose()
  t.ok(relErr(got, want) < 1e-5, `forward = float64 DistilBertModel on the saved tensors (${relErr(got, want).toExponential(2)})`)
  for (const pooling of ['cls', 'mean'] as const) {
    const v = model.embed(batch, pooling).toFloat32Array()
    const r = distilBertRef(S, config, refBatch, () => null, pooling)
    t.ok(relErr(v, r) < 1e-5, `embed ${pooling} (${relErr(v, r).toExponential(2)})`)
  }

  // A Hub DistilBertForMaskedLM file: "distilbert." prefix, the MLM head, the position_ids buffer.
  const hub = tempDir('simcsepp-distilbert-hub-')
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {}
  for (const [n, v] of saved) tensors[`distilbert.${n}`] = { shape: v.shape, data: v.data }
  const H = config.hiddenSize
  tensors['vocab_transform.weight'] = { shape: [H, H], data: new Float32Array(H * H).fill(0.5) }
  tensors['vocab_transform.bias'] = { shape: [H], data: new Float32Array(H) }
  tensors['vocab_layer_norm.weight'] = { shape: [H], data: new Float32Array(H).fill(1) }
  tensors['vocab_layer_norm.bias'] = { shape: [H], data: new Float32Array(H) }
  tensors['vocab_projector.bias'] = { shape: [config.vocabSize], data: new Float32Array(config.vocabSize) }
  tensors['distilbert.embeddings.position_ids'] = { shape: [1, 16], data: Float32Array.from({ length: 16 }, (_, i) => i) }
  await writeSafetensors(join(hub, 'model.safetensors'), tensors)
  writeFileSync(
    join(hub, 'config.json'),
    JSON.stringify({
      ...HUB_CONFIG,
      dim: 32,
      n_layers: 2,
      n_heads: 2,
      hidden_dim: 64,
      vocab_size: config.vocabSize,
      max_position_embeddings: 16,
    }),
  )
  const loaded = await BertModel.load(hub)
  t.same(loaded.params.toFloat32Array(), model.params.toFloat32Array(), 'the same parameters')
  loaded.dispose()

  // One tensor missing: named as DistilBERT names it.
  delete tensors['distilbert.transformer.layer.1.ffn.lin2.weight']
  await writeSafetensors(join(hub, 'model.safetensors'), tensors)
  await t.rejects(BertModel.load(hub), /missing \(1\): transformer\.layer\.1\.ffn\.lin2\.weight/)

  t.throws(
    () => model.embed({ ...batch, tokenTypeIds: Int32Array.from(ids, (_, i) => (i === 4 ? 1 : 0)) }),
    /batch\.tokenTypeIds\[4\] = 1: this distilbert model has no token types/,
  )
  t.ok(model.embed({ ...batch, tokenTypeIds: new Int32Array(B * T) }), 'type ids of zeros are accepted')
  model.dispose()
})

// The native masks, checked to be asked only for the sites DistilBERT has.
function nativeFactors(seed: number, step: number) {
  const native = nativeSiteFactors(config, B, seed, step)
  return (site: number, length: number) => {
    if (site > 0 && (site - 1) % 3 === 1) throw new Error(`site ${site}: DistilBERT has no dropout on the attention output`)
    return native(site, length)
  }
}

for (const pooling of ['cls', 'mean'] as const) {
  t.test(`training with dropout (${pooling}): z and every gradient against the float64 DistilBertModel`, async (t) => {
    const model = BertModel.create(config, { mlp: true, seed: 11 })
    const seed = 5,
      step = 2
    const R = randn(B * config.hiddenSize, 19)
    const z = model.trainForward(batch, { seed, step, pooling }).toFloat32Array()
    model.zeroGrad()
    model.trainBackward(Tensor.from(R, [B, config.hiddenSize]))
    const grads = model.grads.toFloat32Array()
    const S = tensorsByCheckpointName(model, 'distilbert')
    const head = { weight: S.get('mlp.dense.weight')!, bias: S.get('mlp.dense.bias')! }
    const factors = nativeFactors(seed, step)
    const refZ = distilBertRef(S, config, refBatch, factors, pooling, head)
    t.ok(relErr(z, refZ) < 1e-5, `z (${relErr(z, refZ).toExponential(2)})`)

    const loss = () => distilBertRef(S, config, refBatch, factors, pooling, head).reduce((s, v, i) => s + v * R[i], 0)
    let rng = 7
    for (const e of model.layout.entries) {
      const values = S.get(checkpointName(e.name, 'distilbert'))!
      const idx = new Set<number>()
      while (idx.size < Math.min(8, e.size)) {
        rng = (Math.imul(rng, 1103515245) + 12345) >>> 0
        idx.add(rng % e.size)
      }
      if (e.name === 'embeddings.word_embeddings.weight') for (let i = 0; i < 4; i++) idx.add(ids[i * 2] * config.hiddenSize + i)
      const at = [...idx]
      const err = gradientError(
        values,
        at,
        at.map((i) => grads[e.offset + i]),
        loss,
      )
      t.ok(err < 2e-3, `${checkpointName(e.name, 'distilbert')}: ${err.toExponential(2)}`)
    }
    model.dispose()
  })
}

t.test('a training run from a DistilBERT directory: saved as DistilBERT, encoded, exported for transformers.js', async (t) => {
  const model = tempDir('simcsepp-distilbert-model-')
  const created = BertModel.create(tinyConfig({ modelType: 'distilbert', typeVocabSize: 0 }), { seed: 2 })
  await created.save(model)
  created.dispose()
  writeFileSync(join(model, 'vocab.txt'), VOCAB.join('\n') + '\n')
  const data = join(tempDir('simcsepp-distilbert-data-'), 'data.txt')
  writeFileSync(
    data,
    Array.from({ length: 8 }, (_, i) => `${WORDS[i]} ${WORDS[(i * 5) % WORDS.length]} ${WORDS[(i * 3) % WORDS.length]}`).join('\n') + '\n',
  )
  const out = join(tempDir('simcsepp-distilbert-run-'), 'run')
  await train({ model, data, out, steps: 2, batchSize: 4, maxLen: 8, evalEvery: 0, pooling: 'mean' })
  const trained = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))
  t.same([trained.model_type, trained.architectures], ['distilbert', ['DistilBertModel']], 'still DistilBERT')
  t.equal(
    JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')).tokenizer_class,
    'DistilBertTokenizer',
    'no token_type_ids for transformers',
  )
  const before = await readSafetensors(join(model, 'model.safetensors'))
  const after = await readSafetensors(join(out, 'model.safetensors'))
  t.same([...after.keys()].sort(), [...before.keys()].sort(), 'the same tensors')
  t.notSame(
    after.get('transformer.layer.0.attention.q_lin.weight')?.data,
    before.get('transformer.layer.0.attention.q_lin.weight')?.data,
    'trained',
  )

  const texts = ['the cat sat', 'a', 'zq the mat on']
  const encoder = await SentenceEncoder.load(out, { device: 'cpu', maxLength: 16 })
  t.teardown(() => encoder.close())
  const want = await encoder.encode(texts)
  const exported = join(tempDir('simcsepp-distilbert-onnx-'), 'distil')
  const r = await exportOnnx(out, exported, { maxLength: 16 })
  t.same(r.inputs, ['input_ids', 'attention_mask'], 'no token_type_ids, as transformers exports DistilBERT')
  t.equal(JSON.parse(readFileSync(join(exported, 'tokenizer_config.json'), 'utf8')).tokenizer_class, 'DistilBertTokenizer')
  const { env, pipeline } = await import('@huggingface/transformers')
  env.allowRemoteModels = false
  env.localModelPath = dirname(exported)
  const extractor = await pipeline('feature-extraction', basename(exported), { dtype: 'fp32' })
  t.teardown(() => extractor.dispose())
  t.equal(extractor.model.config.model_type, 'distilbert')
  const js = (await extractor(texts, { pooling: 'mean', normalize: false })).tolist() as number[][]
  let worst = 0
  for (let i = 0; i < texts.length; i++) for (let k = 0; k < want[i].length; k++) worst = Math.max(worst, Math.abs(js[i][k] - want[i][k]))
  t.ok(worst < 1e-4, `transformers.js vectors within ${worst.toExponential(2)} of SentenceEncoder's`)
})
