// MPNet (config.json model_type "mpnet": all-mpnet-base-v2 and its family): its config fields, its checkpoint names
// in and out, and its encoder held to a float64 MPNetModel written here from transformers' modeling_mpnet.py in its
// own names (RoBERTa's positions, no token types, the relative-position bias from 32 buckets shared by all layers),
// forward and, through finite differences, backward (the bias table included); then a training run, SentenceEncoder,
// an ONNX export onnxruntime runs, and on CUDA (a GPU or the emulator) the CPU's vectors and weights.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cudaStatus, SentenceEncoder, Tensor } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { namedConfig, parseHfConfig, toHfConfig, type BertConfig } from '../lib/model/config.js'
import { encoderCudaBlocker } from '../lib/model/cuda-support.js'
import { checkpointName } from '../lib/model/names.js'
import { readSafetensors, writeSafetensors } from '../lib/safetensors.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { train } from '../lib/train/train.js'
import { buildVocab, writeVocab } from '../lib/train/vocab.js'
import { attentionRef, gelu, linearRef } from './helpers/bert-reference.js'
import {
  hfRelativeBucket,
  nativeSiteFactors,
  refOutput,
  refTools,
  tensorsByCheckpointName,
  type RefHead,
  type RefInput,
  type SiteFactors,
} from './helpers/model-reference.js'
import { gradientError } from './helpers/encoder-reference.js'
import { encodeChecks, trainChecks } from './helpers/encoder-e2e.mjs'
import { WORDS } from './helpers/encoder-tiny-model.js'
import { randn, relErr } from './helpers/reference.js'
import { tempDir } from './helpers/train-corpus.js'

// all-mpnet-base-v2's config.json, as the Hub serves it.
const HUB_CONFIG = {
  _name_or_path: 'microsoft/mpnet-base',
  architectures: ['MPNetForMaskedLM'],
  attention_probs_dropout_prob: 0.1,
  bos_token_id: 0,
  eos_token_id: 2,
  hidden_act: 'gelu',
  hidden_dropout_prob: 0.1,
  hidden_size: 768,
  initializer_range: 0.02,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 514,
  model_type: 'mpnet',
  num_attention_heads: 12,
  num_hidden_layers: 12,
  pad_token_id: 1,
  relative_attention_num_buckets: 32,
  transformers_version: '4.11.2',
  vocab_size: 30527,
}

const config: BertConfig = {
  modelType: 'mpnet',
  vocabSize: 40,
  hiddenSize: 32,
  numHiddenLayers: 2,
  numAttentionHeads: 2,
  intermediateSize: 64,
  hiddenAct: 'gelu',
  hiddenDropoutProb: 0.1,
  attentionProbsDropoutProb: 0.1,
  maxPositionEmbeddings: 42,
  typeVocabSize: 0,
  layerNormEps: 1e-5,
  padTokenId: 1,
  initializerRange: 0.3,
  relativeAttentionNumBuckets: 32,
}

/** MPNetModel.state_dict()'s names for `layers` layers. */
function mpnetStateDictNames(layers: number): string[] {
  const names = [
    'embeddings.word_embeddings.weight',
    'embeddings.position_embeddings.weight',
    'embeddings.LayerNorm.weight',
    'embeddings.LayerNorm.bias',
  ]
  for (let l = 0; l < layers; l++)
    for (const m of [
      'attention.attn.q',
      'attention.attn.k',
      'attention.attn.v',
      'attention.attn.o',
      'attention.LayerNorm',
      'intermediate.dense',
      'output.dense',
      'output.LayerNorm',
    ])
      names.push(`encoder.layer.${l}.${m}.weight`, `encoder.layer.${l}.${m}.bias`)
  return [...names, 'encoder.relative_attention_bias.weight', 'pooler.dense.weight', 'pooler.dense.bias']
}

/**
 * transformers' MPNetModel in float64 from its tensors by their MPNet names: position ids as
 * create_position_ids_from_input_ids(ids, padding_idx = 1), embeddings = dropout(LayerNorm(word + position));
 * per layer the scores q·kᵀ/√d + table[bucket(j - i)] (compute_position_bias) + mask, dropout on the weights,
 * a = LayerNorm(dropout(o(ctx)) + x), out = LayerNorm(dropout(dense(gelu(dense(a)))) + a). Dropout multipliers by
 * our site numbering: 0 the embeddings, then 1 + 3l, 2 + 3l, 3 + 3l.
 */
function mpnetRef(
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
    NH = c.numAttentionHeads,
    R = B * T
  const { s, drop, add, ln } = refTools(S, factor, R, H, c.layerNormEps)
  const word = s('embeddings.word_embeddings.weight'),
    pos = s('embeddings.position_embeddings.weight')
  let h: Float64Array = new Float64Array(R * H)
  for (let b = 0; b < B; b++) {
    let count = 0
    for (let t = 0; t < T; t++) {
      const r = b * T + t
      const p = x.ids[r] === 1 ? 1 : 2 + count++
      for (let k = 0; k < H; k++) h[r * H + k] = word[x.ids[r] * H + k] + pos[p * H + k]
    }
  }
  h = drop(ln(h, 'embeddings.LayerNorm'), 0)
  const table = s('encoder.relative_attention_bias.weight')
  const rel = Float64Array.from(
    { length: (2 * T - 1) * NH },
    (_, i) => table[hfRelativeBucket(Math.floor(i / NH) - (T - 1)) * NH + (i % NH)],
  )
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `encoder.layer.${l}`
    const lin = (a: Float64Array, name: string, C: number, OC: number) =>
      linearRef(a, s(`${p}.${name}.weight`), s(`${p}.${name}.bias`), R, C, OC)
    const [q, k, v] = ['q', 'k', 'v'].map((n) => lin(h, `attention.attn.${n}`, H, H))
    const dims = { B, T, NH, HS: H / NH }
    const { ctx } = attentionRef(q, k, v, x.mask, dims, factor(1 + 3 * l, B * NH * T * T), rel)
    const a = ln(add(drop(lin(ctx, 'attention.attn.o', H, H), 2 + 3 * l), h), `${p}.attention.LayerNorm`)
    const ffn = drop(lin(lin(a, 'intermediate.dense', H, I).map(gelu), 'output.dense', I, H), 3 + 3 * l)
    h = ln(add(ffn, a), `${p}.output.LayerNorm`)
  }
  return refOutput(h, x, H, pooling, mlp)
}

const B = 3,
  T = 9
const lengths = [9, 5, 1]
const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0))
// Padding is id 1, as MPNet's position ids assume; real tokens avoid it.
const ids = Int32Array.from({ length: B * T }, (_, i) => (mask[i] ? 2 + ((i * 7) % (config.vocabSize - 2)) : 1))
const batch = { inputIds: ids, attentionMask: mask, shape: [B, T] as [number, number] }
const refBatch: RefInput = { ids, mask, B, T }

t.test("config.json: MPNetConfig's fields in, the same out", async (t) => {
  const c = parseHfConfig(HUB_CONFIG)
  t.same(
    [
      c.modelType,
      c.hiddenSize,
      c.numHiddenLayers,
      c.numAttentionHeads,
      c.typeVocabSize,
      c.padTokenId,
      c.layerNormEps,
      c.relativeAttentionNumBuckets,
    ],
    ['mpnet', 768, 12, 12, 0, 1, 1e-5, 32],
  )
  const out = toHfConfig(c)
  const { architectures: _a, transformers_version: _v, _name_or_path: _n, ...rest } = HUB_CONFIG
  const { architectures, transformers_version: _w, torch_dtype: _d, ...written } = out
  t.same(written, rest, 'every MPNetConfig field as it came')
  t.same(architectures, ['MPNetModel'])
  t.same(parseHfConfig(out), c, 'round trip')
  t.throws(() => parseHfConfig({ ...HUB_CONFIG, pad_token_id: 0 }), /field "pad_token_id" must be 1 for mpnet/)
  t.throws(
    () => parseHfConfig({ ...HUB_CONFIG, relative_attention_num_buckets: 16 }),
    /relative_attention_num_buckets" must be at least 32/,
  )
})

t.test("saved as MPNetModel; the float64 MPNetModel on the saved tensors; hub checkpoints' prefix and head", async (t) => {
  const model = BertModel.create(config, { seed: 3 })
  const dir = tempDir('simcsepp-mpnet-')
  await model.save(dir)
  const saved = await readSafetensors(join(dir, 'model.safetensors'))
  t.same([...saved.keys()].sort(), mpnetStateDictNames(2).sort(), "exactly MPNetModel's state dict")
  t.same(saved.get('encoder.relative_attention_bias.weight')?.shape, [32, 2])
  const S = new Map([...saved].map(([n, v]) => [n, Float64Array.from(v.data)]))
  const hidden = model.forward(batch)
  const got = hidden.toFloat32Array()
  hidden.dispose()
  const want = mpnetRef(S, config, refBatch, () => null, 'none')
  t.ok(relErr(got, want) < 1e-5, `forward = float64 MPNetModel (${relErr(got, want).toExponential(2)})`)
  for (const pooling of ['cls', 'mean'] as const) {
    const v = model.embed(batch, pooling).toFloat32Array()
    const r = mpnetRef(S, config, refBatch, () => null, pooling)
    t.ok(relErr(v, r) < 1e-5, `embed ${pooling} (${relErr(v, r).toExponential(2)})`)
  }
  // The bias matters: without it (a zero table) the vectors differ.
  const zeroed = new Map(S)
  zeroed.set('encoder.relative_attention_bias.weight', new Float64Array(64))
  t.ok(
    relErr(
      got,
      mpnetRef(zeroed, config, refBatch, () => null, 'none'),
    ) > 1e-2,
    'a zero bias table gives other outputs',
  )

  const hub = tempDir('simcsepp-mpnet-hub-')
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {}
  for (const [n, v] of saved) tensors[`mpnet.${n}`] = { shape: v.shape, data: v.data }
  tensors['lm_head.dense.weight'] = { shape: [32, 32], data: new Float32Array(32 * 32) }
  tensors['lm_head.bias'] = { shape: [config.vocabSize], data: new Float32Array(config.vocabSize) }
  await writeSafetensors(join(hub, 'model.safetensors'), tensors)
  writeFileSync(join(hub, 'config.json'), readFileSync(join(dir, 'config.json')))
  const loaded = await BertModel.load(hub)
  t.same(loaded.params.toFloat32Array(), model.params.toFloat32Array(), 'the same parameters')
  loaded.dispose()
  model.dispose()
})

t.test('training with dropout: z and every gradient (the bias table too) against the float64 MPNetModel', async (t) => {
  const model = BertModel.create(config, { mlp: true, seed: 11 })
  const R = randn(B * config.hiddenSize, 19)
  const z = model.trainForward(batch, { seed: 5, step: 2, pooling: 'mean' }).toFloat32Array()
  model.zeroGrad()
  model.trainBackward(Tensor.from(R, [B, config.hiddenSize]))
  const grads = model.grads.toFloat32Array()
  const S = tensorsByCheckpointName(model, 'mpnet')
  const head = { weight: S.get('mlp.dense.weight')!, bias: S.get('mlp.dense.bias')! }
  const factors = nativeSiteFactors(config, B, 5, 2)
  const refZ = mpnetRef(S, config, refBatch, factors, 'mean', head)
  t.ok(relErr(z, refZ) < 1e-5, `z (${relErr(z, refZ).toExponential(2)})`)
  const loss = () => mpnetRef(S, config, refBatch, factors, 'mean', head).reduce((s, v, i) => s + v * R[i], 0)
  let rng = 7
  for (const e of model.layout.entries) {
    const name = checkpointName(e.name, 'mpnet')
    if (name.startsWith('pooler.')) continue // not in the encoder's output: zero gradient, nothing to compare
    const values = S.get(name)!
    const idx = new Set<number>()
    while (idx.size < Math.min(8, e.size)) {
      rng = (Math.imul(rng, 1103515245) + 12345) >>> 0
      idx.add(rng % e.size)
    }
    // Every bucket a 9-token sentence reaches (relative positions -8 .. 8), both heads.
    if (name === 'encoder.relative_attention_bias.weight') for (let r = -8; r <= 8; r++) idx.add(hfRelativeBucket(r) * 2 + (r & 1))
    const at = [...idx]
    const err = gradientError(
      values,
      at,
      at.map((i) => grads[e.offset + i]),
      loss,
    )
    t.ok(err < 2e-3, `${name}: ${err.toExponential(2)}`)
  }
  model.dispose()
})

/** A WordPiece tokenizer.json as MPNet's: <s> $A </s>, <pad> = 1, lowercasing BertNormalizer. */
function mpnetTokenizerJson(vocab: string[]): string {
  const specials = ['<s>', '<pad>', '</s>', '[UNK]', '<mask>']
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 0 } },
        { SpecialToken: { id: '</s>', type_id: 0 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] }, '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries([...specials, ...vocab].map((w, i) => [w, i])),
    },
  })
}

t.test('a training run from an MPNet directory: saved as MPNet, encoded, exported for onnxruntime', async (t) => {
  const dir = tempDir('simcsepp-mpnet-model-')
  const words = [...new Set(WORDS)]
  const created = BertModel.create({ ...config, vocabSize: 5 + words.length }, { seed: 2 })
  await created.save(dir)
  created.dispose()
  writeFileSync(join(dir, 'tokenizer.json'), mpnetTokenizerJson(words))
  const data = join(tempDir('simcsepp-mpnet-data-'), 'data.txt')
  writeFileSync(
    data,
    Array.from({ length: 8 }, (_, i) => `${words[i]} ${words[(i * 5) % words.length]} ${words[(i * 3) % words.length]}`).join('\n') + '\n',
  )
  const out = join(tempDir('simcsepp-mpnet-run-'), 'run')
  await train({ model: dir, data, out, steps: 2, batchSize: 4, maxLen: 8, evalEvery: 0, pooling: 'mean' })
  const trained = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))
  t.same([trained.model_type, trained.architectures], ['mpnet', ['MPNetModel']], 'still MPNet')
  const tc = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'))
  t.same(
    [tc.tokenizer_class, tc.cls_token, tc.sep_token, tc.pad_token, tc.unk_token, tc.mask_token],
    ['MPNetTokenizer', '<s>', '</s>', '<pad>', '[UNK]', '<mask>'],
    "the tokenizer_config.json made for it names MPNet's special tokens",
  )
  const before = await readSafetensors(join(dir, 'model.safetensors'))
  const after = await readSafetensors(join(out, 'model.safetensors'))
  t.same([...after.keys()].sort(), [...before.keys()].sort(), 'the same tensors')
  t.notSame(
    after.get('encoder.relative_attention_bias.weight')?.data,
    before.get('encoder.relative_attention_bias.weight')?.data,
    'the bias table trained',
  )

  const texts = ['the cat sat', 'a', 'the mat on the cat sat']
  const encoder = await SentenceEncoder.load(out, { device: 'cpu', maxLength: 16 })
  t.teardown(() => encoder.close())
  const want = await encoder.encode(texts)
  const exported = join(tempDir('simcsepp-mpnet-onnx-'), 'mpnet')
  const r = await exportOnnx(out, exported, { maxLength: 16 })
  t.same(r.inputs, ['input_ids', 'attention_mask'], 'no token_type_ids')
  t.equal(JSON.parse(readFileSync(join(exported, 'tokenizer_config.json'), 'utf8')).tokenizer_class, 'MPNetTokenizer')
  const { ortRun } = await import('./helpers/onnx-run.js')
  const { out: o } = await ortRun(r.onnxFile, exported, texts, r.inputs, 16)
  const emb = o.sentence_embedding.data as Float32Array
  let worst = 0
  for (let i = 0; i < texts.length; i++) for (let k = 0; k < 32; k++) worst = Math.max(worst, Math.abs(emb[i * 32 + k] - want[i][k]))
  t.ok(worst < 1e-5, `onnxruntime's sentence_embedding within ${worst.toExponential(2)} of SentenceEncoder's`)
})

const status = cudaStatus()
const cudaSkip = status.available ? (encoderCudaBlocker(true) ?? false) : `CUDA unavailable: ${status.reason}`
t.test('MPNet on CUDA: the CPU vectors within 1e-4, and the CPU weights after 3 training steps (fp32)', { skip: cudaSkip }, async (t) => {
  const dir = tempDir('simcsepp-mpnet-cuda-')
  const lib = { BertModel, namedConfig, buildVocab, writeVocab, SentenceEncoder, train, readSafetensors }
  for (const check of await encodeChecks(lib, dir, 'cuda', 'mpnet')) t.ok(check.ok, check.message)
  for (const check of await trainChecks(lib, dir, 'cuda', 'fp32', 'mpnet')) t.ok(check.ok, check.message)
})
