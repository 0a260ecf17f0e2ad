// ModernBERT (config.json model_type "modernbert": ModernBERT-base/large and the sentence encoders built on them):
// its config fields in both transformers layouts, its checkpoint names in and out, and its encoder held to the float64
// ModernBertModel of test/helpers/modernbert-reference.ts (pre-LayerNorm without biases, rotary positions with two
// bases, GeGLU, sliding-window attention on two layers of three), forward and, through finite differences,
// backward with all three dropout sites on; then a training run from a ModernBERT folder with a byte-level BPE
// tokenizer, SentenceEncoder (fp32 and int8), the ONNX export onnxruntime and transformers.js run, unsupervised
// SimCSE refused without dropout, and on CUDA (a GPU or the emulator) the CPU's vectors and weights. transformers itself: test/transformers-parity.test.ts.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { cudaStatus, SentenceEncoder, Tensor } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import { namedConfig, parseHfConfig, toHfConfig, type BertConfig } from '../lib/model/config.js'
import { encoderCudaBlocker } from '../lib/model/cuda-support.js'
import { floatsFor } from '../lib/model/activations.js'
import { passFloats } from '../lib/model/pass-floats.js'
import { viewFloats } from '../lib/model/view-arena.js'
import { Tokenizer } from '../lib/tokenizer.js'
import { readSafetensors, writeSafetensors } from '../lib/safetensors.js'
import { exportOnnx } from '../lib/export/export-onnx.js'
import { train } from '../lib/train/train.js'
import { buildVocab, writeVocab } from '../lib/train/vocab.js'
import { tensorsByCheckpointName, type RefInput } from './helpers/model-reference.js'
import { modernBertRef, modernSiteFactors } from './helpers/modernbert-reference.js'
import { gradientError } from './helpers/encoder-reference.js'
import { encodeChecks, trainChecks } from './helpers/encoder-e2e.mjs'
import { WORDS } from './helpers/encoder-tiny-model.js'
import { randn, relErr } from './helpers/reference.js'
import { tempDir } from './helpers/train-corpus.js'
import { withEnv } from './helpers/with-env.js'

// answerdotai/ModernBERT-base's config.json as the Hub serves it (transformers 4.x field names).
const HUB_CONFIG = {
  architectures: ['ModernBertForMaskedLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 50281,
  classifier_activation: 'gelu',
  classifier_bias: false,
  classifier_dropout: 0.0,
  classifier_pooling: 'mean',
  cls_token_id: 50281,
  decoder_bias: true,
  deterministic_flash_attn: false,
  embedding_dropout: 0.0,
  eos_token_id: 50282,
  global_attn_every_n_layers: 3,
  global_rope_theta: 160000.0,
  gradient_checkpointing: false,
  hidden_activation: 'gelu',
  hidden_size: 768,
  initializer_cutoff_factor: 2.0,
  initializer_range: 0.02,
  intermediate_size: 1152,
  layer_norm_eps: 1e-5,
  local_attention: 128,
  local_rope_theta: 10000.0,
  max_position_embeddings: 8192,
  mlp_bias: false,
  mlp_dropout: 0.0,
  model_type: 'modernbert',
  norm_bias: false,
  norm_eps: 1e-5,
  num_attention_heads: 12,
  num_hidden_layers: 22,
  pad_token_id: 50283,
  position_embedding_type: 'absolute',
  sep_token_id: 50282,
  tie_word_embeddings: true,
  torch_dtype: 'float32',
  transformers_version: '4.48.0.dev0',
  vocab_size: 50368,
}

// Four layers (global, local, local, global), a window of two tokens each way in nine, distinct dropout
// probabilities at the three kinds of site, an intermediate size that is no multiple of anything.
const config: BertConfig = {
  modelType: 'modernbert',
  vocabSize: 40,
  hiddenSize: 32,
  numHiddenLayers: 4,
  numAttentionHeads: 2,
  intermediateSize: 24,
  hiddenAct: 'gelu',
  hiddenDropoutProb: 0.15,
  attentionProbsDropoutProb: 0.1,
  maxPositionEmbeddings: 128,
  typeVocabSize: 0,
  layerNormEps: 1e-5,
  padTokenId: 2,
  initializerRange: 0.3,
  modern: {
    globalAttnEveryNLayers: 3,
    localAttention: 4,
    globalRopeTheta: 160000,
    localRopeTheta: 10000,
    embeddingDropoutProb: 0.05,
    initializerCutoffFactor: 2,
    bosTokenId: 0,
    eosTokenId: 1,
    clsTokenId: 0,
    sepTokenId: 1,
  },
}

/** ModernBertModel.state_dict()'s names for `layers` layers. */
function stateDictNames(layers: number): string[] {
  const names = ['embeddings.tok_embeddings.weight', 'embeddings.norm.weight', 'final_norm.weight']
  for (let l = 0; l < layers; l++) {
    if (l > 0) names.push(`layers.${l}.attn_norm.weight`)
    for (const m of ['attn.Wqkv', 'attn.Wo', 'mlp_norm', 'mlp.Wi', 'mlp.Wo']) names.push(`layers.${l}.${m}.weight`)
  }
  return names
}

const B = 3,
  T = 9
const lengths = [9, 5, 1]
const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0))
const ids = Int32Array.from({ length: B * T }, (_, i) => (mask[i] ? 3 + ((i * 7) % (config.vocabSize - 3)) : config.padTokenId))
const batch = { inputIds: ids, attentionMask: mask, shape: [B, T] as [number, number] }
const refBatch: RefInput = { ids, mask, B, T }

/** A model of `config` whose LayerNorm weights are not 1 either (so that a swapped or skipped norm shows). */
function randomModel(options: { mlp?: boolean; seed: number }): BertModel {
  const model = BertModel.create(config, options)
  for (const e of model.layout.entries)
    if (e.kind === 'layernorm')
      model.param(e.name).copyFrom(
        Tensor.from(
          randn(e.size, e.offset, 0.3).map((v) => 1 + v),
          e.shape,
        ),
      )
  return model
}

t.test("config.json: ModernBertConfig's fields in (transformers 4.x and 5.x layouts), the same out", async (t) => {
  const c = parseHfConfig(HUB_CONFIG)
  t.same(
    [
      c.modelType,
      c.hiddenSize,
      c.numHiddenLayers,
      c.intermediateSize,
      c.typeVocabSize,
      c.padTokenId,
      c.layerNormEps,
      c.maxPositionEmbeddings,
    ],
    ['modernbert', 768, 22, 1152, 0, 50283, 1e-5, 8192],
  )
  t.same(c.modern, {
    globalAttnEveryNLayers: 3,
    localAttention: 128,
    globalRopeTheta: 160000,
    localRopeTheta: 10000,
    embeddingDropoutProb: 0,
    initializerCutoffFactor: 2,
    bosTokenId: 50281,
    eosTokenId: 50282,
    clsTokenId: 50281,
    sepTokenId: 50282,
  })
  const out = toHfConfig(c)
  t.same(out.architectures, ['ModernBertModel'])
  for (const [k, v] of Object.entries(HUB_CONFIG))
    if (
      ![
        'architectures',
        'transformers_version',
        'gradient_checkpointing',
        'layer_norm_eps',
        'position_embedding_type',
        'tie_word_embeddings',
        'classifier_pooling',
      ].includes(k)
    )
      t.same(out[k], v, `${k} as it came`)
  t.same(parseHfConfig(out), c, 'round trip')
  // transformers 5's layout: layer_types and rope_parameters instead of the every-n and theta fields.
  const { global_attn_every_n_layers: _e, global_rope_theta: _g, local_rope_theta: _l, ...v5 } = HUB_CONFIG
  const types = Array.from({ length: 22 }, (_, l) => (l % 3 ? 'sliding_attention' : 'full_attention'))
  const rope = {
    full_attention: { rope_theta: 160000, rope_type: 'default' },
    sliding_attention: { rope_theta: 10000, rope_type: 'default' },
  }
  t.same(parseHfConfig({ ...v5, layer_types: types, rope_parameters: rope }), c, "transformers 5's fields read the same")

  t.throws(() => parseHfConfig({ ...HUB_CONFIG, norm_bias: true }), /field "norm_bias" must be false/)
  t.throws(() => parseHfConfig({ ...HUB_CONFIG, mlp_bias: true }), /field "mlp_bias" must be false/)
  t.throws(() => parseHfConfig({ ...HUB_CONFIG, hidden_activation: 'gelu_pytorch_tanh' }), /hidden_activation" must be "gelu"/)
  t.throws(() => parseHfConfig({ ...HUB_CONFIG, local_attention: 127 }), /local_attention" must be even/)
  t.throws(() => parseHfConfig({ ...HUB_CONFIG, rope_scaling: { rope_type: 'linear', factor: 2 } }), /rope_scaling" must be null/)
  t.throws(
    () => parseHfConfig({ ...v5, layer_types: types.map((x, l) => (l === 1 ? 'full_attention' : x)), rope_parameters: rope }),
    /field "layer_types" must alternate/,
  )
  t.throws(
    () => parseHfConfig({ ...v5, rope_parameters: { ...rope, full_attention: { rope_theta: 1e4, rope_type: 'yarn' } } }),
    /rope_type must be "default"/,
  )
  t.throws(() => parseHfConfig({ ...HUB_CONFIG, num_attention_heads: 256 }), /even head size/)
})

t.test("saved as ModernBertModel; the float64 ModernBertModel on the saved tensors; hub checkpoints' prefix and head", async (t) => {
  const model = randomModel({ seed: 3 })
  const dir = tempDir('simcsepp-modernbert-')
  await model.save(dir)
  const saved = await readSafetensors(join(dir, 'model.safetensors'))
  t.same([...saved.keys()].sort(), stateDictNames(4).sort(), "exactly ModernBertModel's state dict")
  const text = readFileSync(join(dir, 'config.json'), 'utf8')
  const written = JSON.parse(text)
  // transformers 5 refuses an int in a float field: 2 and 160000 are written 2.0 and 160000.0.
  for (const field of ['"initializer_cutoff_factor": 2.0,', '"global_rope_theta": 160000.0,', '"local_rope_theta": 10000.0,'])
    t.ok(text.includes(field), `config.json has ${field}`)
  t.same(
    [written.model_type, written.architectures, written.norm_bias, written.local_attention],
    ['modernbert', ['ModernBertModel'], false, 4],
  )
  const S = new Map([...saved].map(([n, v]) => [n, Float64Array.from(v.data)]))
  const hidden = model.forward(batch)
  const got = hidden.toFloat32Array()
  hidden.dispose()
  const want = modernBertRef(S, config, refBatch, () => null, 'none')
  t.ok(relErr(got, want) < 1e-5, `forward = float64 ModernBertModel (${relErr(got, want).toExponential(2)})`)
  for (const pooling of ['cls', 'mean'] as const) {
    const v = model.embed(batch, pooling).toFloat32Array()
    const r = modernBertRef(S, config, refBatch, () => null, pooling)
    t.ok(relErr(v, r) < 1e-5, `embed ${pooling} (${relErr(v, r).toExponential(2)})`)
  }
  // Past 64 tokens the window comes from the next table (lengths are served by powers of two): T = 70.
  const T70 = 70
  const mask70 = Int32Array.from({ length: 2 * T70 }, (_, i) => (i < T70 + 3 ? 1 : 0))
  const ids70 = Int32Array.from(mask70, (m, i) => (m ? 3 + ((i * 11) % (config.vocabSize - 3)) : config.padTokenId))
  const long = model.forward({ inputIds: ids70, attentionMask: mask70, shape: [2, T70] })
  const got70 = long.toFloat32Array()
  long.dispose()
  const want70 = modernBertRef(S, config, { ids: ids70, mask: mask70, B: 2, T: T70 }, () => null, 'none')
  t.ok(relErr(got70, want70) < 1e-5, `T = 70: forward = float64 ModernBertModel (${relErr(got70, want70).toExponential(2)})`)
  // The window and the two bases matter: the reference without either differs.
  const wide = { ...config, modern: { ...config.modern!, localAttention: 64 } }
  t.ok(
    relErr(
      got,
      modernBertRef(S, wide, refBatch, () => null, 'none'),
    ) > 1e-2,
    'a window spanning the sentence gives other outputs',
  )
  const oneBase = { ...config, modern: { ...config.modern!, localRopeTheta: 160000 } }
  t.ok(
    relErr(
      got,
      modernBertRef(S, oneBase, refBatch, () => null, 'none'),
    ) > 1e-3,
    'one RoPE base for all layers gives other outputs',
  )

  // ModernBertForMaskedLM's checkpoint: model. prefix, the prediction head and the decoder's bias beside it.
  const hub = tempDir('simcsepp-modernbert-hub-')
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {}
  for (const [n, v] of saved) tensors[`model.${n}`] = { shape: v.shape, data: v.data }
  tensors['head.dense.weight'] = { shape: [32, 32], data: new Float32Array(32 * 32) }
  tensors['head.norm.weight'] = { shape: [32], data: new Float32Array(32) }
  tensors['decoder.bias'] = { shape: [config.vocabSize], data: new Float32Array(config.vocabSize) }
  await writeSafetensors(join(hub, 'model.safetensors'), tensors)
  writeFileSync(join(hub, 'config.json'), JSON.stringify({ ...written, architectures: ['ModernBertForMaskedLM'] }))
  const loaded = await BertModel.load(hub)
  t.same(loaded.params.toFloat32Array(), model.params.toFloat32Array(), 'the same parameters')
  // int8 (SentenceEncoder's precision 'int8'): the four products of each layer in int8, near fp32.
  const { cosineSimilarity } = await import('../lib/util/vectors.js')
  const fp32 = loaded.embed(batch, 'mean').toFloat32Array()
  loaded.quantizeInt8()
  const int8 = loaded.embed(batch, 'mean').toFloat32Array()
  const H = config.hiddenSize
  for (let b = 0; b < B; b++) {
    const d = 1 - cosineSimilarity(fp32.subarray(b * H, (b + 1) * H), int8.subarray(b * H, (b + 1) * H))
    t.ok(d > 0 && d < 5e-3, `int8 sentence ${b}: 1 - cos(int8, fp32) = ${d.toExponential(2)}`)
  }
  t.throws(() => loaded.trainForward(batch, { seed: 1, step: 0 }), /int8/)
  loaded.dispose()
  model.dispose()
})

t.test('training with dropout at all three sites: z and every gradient against the float64 ModernBertModel', async (t) => {
  const model = randomModel({ mlp: true, seed: 11 })
  const R = randn(B * config.hiddenSize, 19)
  const z = model.trainForward(batch, { seed: 5, step: 2, pooling: 'mean' }).toFloat32Array()
  // Batch sizing counts ModernBERT's own buffers (not BERT's): exactly what the pass holds.
  t.equal(model.activationBytes, 4 * passFloats(config, B, T, true), 'passFloats: the activation memory a training pass holds')
  t.not(passFloats(config, B, T, true), floatsFor(config, B, T, true), "(BERT's count would differ)")
  model.zeroGrad()
  model.trainBackward(Tensor.from(R, [B, config.hiddenSize]))
  const grads = model.grads.toFloat32Array()
  const S = tensorsByCheckpointName(model, 'modernbert')
  const head = { weight: S.get('mlp.dense.weight')!, bias: S.get('mlp.dense.bias')! }
  const factors = modernSiteFactors(config, B, 5, 2)
  const refZ = modernBertRef(S, config, refBatch, factors, 'mean', head)
  t.ok(relErr(z, refZ) < 1e-5, `z (${relErr(z, refZ).toExponential(2)})`)
  const noDrop = modernBertRef(S, config, refBatch, () => null, 'mean', head)
  t.ok(relErr(z, noDrop) > 1e-3, 'the dropout changed z')
  const loss = () => modernBertRef(S, config, refBatch, factors, 'mean', head).reduce((s, v, i) => s + v * R[i], 0)
  let rng = 7
  for (const e of model.layout.entries) {
    const values = S.get(e.name)!
    const idx = new Set<number>()
    while (idx.size < Math.min(8, e.size)) {
      rng = (Math.imul(rng, 1103515245) + 12345) >>> 0
      idx.add(rng % e.size)
    }
    const at = [...idx]
    const err = gradientError(
      values,
      at,
      at.map((i) => grads[e.offset + i]),
      loss,
    )
    t.ok(err < 2e-3, `${e.name}: ${err.toExponential(2)}`)
  }
  model.dispose()
})

/** A byte-level BPE tokenizer.json as ModernBERT's (GPT-NeoX's pre-tokenizer): [CLS] $A [SEP], single characters. */
function modernTokenizerJson(): string {
  const specials = ['[CLS]', '[SEP]', '[PAD]', '[UNK]', '[MASK]']
  const chars = [...'abcdefghijklmnopqrstuvwxyz', 'Ġ']
  const added = specials.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }))
  const special = (id: string) => ({ SpecialToken: { id, type_id: 0 } })
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [special('[CLS]'), { Sequence: { id: 'A', type_id: 0 } }, special('[SEP]')],
      pair: [
        special('[CLS]'),
        { Sequence: { id: 'A', type_id: 0 } },
        special('[SEP]'),
        { Sequence: { id: 'B', type_id: 0 } },
        special('[SEP]'),
      ],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [0], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [1], tokens: ['[SEP]'] } },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      vocab: Object.fromEntries([...specials, ...chars].map((w, i) => [w, i])),
      merges: [],
    },
  })
}

t.test('a training run from a ModernBERT folder: saved as ModernBERT, encoded, exported for onnxruntime', async (t) => {
  const dir = tempDir('simcsepp-modernbert-model-')
  const created = BertModel.create(
    {
      ...config,
      vocabSize: 32,
      hiddenDropoutProb: 0,
      attentionProbsDropoutProb: 0,
      modern: { ...config.modern!, embeddingDropoutProb: 0 },
    },
    { seed: 2 },
  )
  await created.save(dir)
  created.dispose()
  writeFileSync(join(dir, 'tokenizer.json'), modernTokenizerJson())
  const words = [...new Set(WORDS)]
  const data = join(tempDir('simcsepp-modernbert-data-'), 'data.txt')
  writeFileSync(
    data,
    Array.from({ length: 8 }, (_, i) => `${words[i]} ${words[(i * 5) % words.length]} ${words[(i * 3) % words.length]}`).join('\n') + '\n',
  )
  const run = { model: dir, data, steps: 2, batchSize: 4, maxLen: 12, evalEvery: 0, pooling: 'mean' as const }
  await t.rejects(
    train({ ...run, out: join(tempDir('simcsepp-modernbert-nodrop-'), 'run') }),
    /every dropout probability of its config is 0.*--dropout 0\.1/,
  )
  const out = join(tempDir('simcsepp-modernbert-run-'), 'run')
  await train({ ...run, out, dropout: 0.1 })
  const trained = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'))
  t.same(
    [trained.model_type, trained.architectures, trained.mlp_dropout, trained.attention_dropout, trained.embedding_dropout],
    ['modernbert', ['ModernBertModel'], 0.1, 0.1, 0.1],
    'still ModernBERT, with the dropout it trained with',
  )
  t.equal(JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')).tokenizer_class, 'PreTrainedTokenizerFast')
  t.match(readFileSync(join(out, 'README.md'), 'utf8'), /A ModernBERT sentence encoder trained with simcsepp/, 'the model card names it')
  const before = await readSafetensors(join(dir, 'model.safetensors'))
  const after = await readSafetensors(join(out, 'model.safetensors'))
  t.same([...after.keys()].sort(), [...before.keys()].sort(), 'the same tensors')
  for (const name of ['layers.1.attn_norm.weight', 'layers.2.mlp.Wi.weight', 'final_norm.weight'])
    t.notSame(after.get(name)?.data, before.get(name)?.data, `${name} trained`)

  // SentenceEncoder's vectors are the model's own mean-pooled ones, from the BPE tokenizer's ids.
  const texts = ['the cat sat', 'a', 'the mat on the cat sat']
  const encoder = await SentenceEncoder.load(out, { device: 'cpu', maxLength: 16, normalize: false })
  t.teardown(() => encoder.close())
  const got = await encoder.encode(texts)
  const tokenizer = await Tokenizer.load(out)
  const enc = await tokenizer.encodeBatch(texts, { maxLength: 16 })
  t.same(Array.from(enc.inputIds.subarray(0, 5)), [0, 24, 12, 9, 31], '[CLS] t h e Ġ: byte-level BPE ids')
  const model = await BertModel.load(out)
  const pooled = model.embed(enc, 'mean').toFloat32Array()
  model.dispose()
  const H = config.hiddenSize
  for (let i = 0; i < texts.length; i++) {
    const err = relErr(got[i], pooled.subarray(i * H, (i + 1) * H))
    t.ok(err < 1e-6, `sentence ${i}: the model's mean-pooled vector (${err.toExponential(2)})`)
  }
  // The ONNX export, run by onnxruntime: SentenceEncoder's vectors (fp32), near them with fp16 and int8 weights.
  const exported = await exportOnnx(out, join(tempDir('simcsepp-modernbert-onnx-'), 'x'), {
    maxLength: 16,
    weights: ['fp32', 'fp16', 'q8'],
  })
  t.same(exported.inputs, ['input_ids', 'attention_mask'], 'no token_type_ids')
  t.equal(JSON.parse(readFileSync(join(exported.out, 'config.json'), 'utf8')).model_type, 'modernbert')
  const { ortRun } = await import('./helpers/onnx-run.js')
  const { cosineSimilarity } = await import('../lib/util/vectors.js')
  // transformers.js loads the folder as a ModernBERT and its pipeline pools what we pool (on sentences within
  // maxLength: past it, transformers.js truncates the separator away where we keep it, onnx-export.test.ts).
  const { env, pipeline, AutoTokenizer } = await import('@huggingface/transformers')
  env.allowRemoteModels = false
  env.allowLocalModels = true
  env.localModelPath = dirname(exported.out)
  const jsTexts = ['the cat sat', 'a', 'the mat sat on'] // the last one 16 tokens, [CLS] and [SEP] included
  const jsWant = await encoder.encode(jsTexts)
  const jsEnc = await tokenizer.encodeBatch(jsTexts, { maxLength: 16 })
  t.equal(jsEnc.shape[1], 16, 'the longest fills maxLength')
  const jsTokenizer = await AutoTokenizer.from_pretrained(basename(exported.out))
  const jsIds = jsTokenizer(jsTexts, { padding: true, truncation: true }).input_ids.tolist() as bigint[][]
  t.same(
    jsIds.map((row) => row.map(Number)),
    jsTexts.map((_, i) => Array.from(jsEnc.inputIds.subarray(i * 16, (i + 1) * 16))),
    'transformers.js tokenizes as we do',
  )
  const extractor = await pipeline('feature-extraction', basename(exported.out), { dtype: 'fp32' })
  t.teardown(() => extractor.dispose())
  const js = (await extractor(jsTexts, { pooling: 'mean', normalize: false })).data as Float32Array
  const jsWorst = Math.max(...jsTexts.map((_, i) => relErr(js.subarray(i * H, (i + 1) * H), jsWant[i])))
  t.ok(jsWorst < 1e-5, `transformers.js's pipeline within ${jsWorst.toExponential(2)} of SentenceEncoder's`)
  for (const [k, f] of exported.files.entries()) {
    const { out: o } = await ortRun(f.file, exported.out, texts, exported.inputs, 16)
    const emb = o.sentence_embedding.data as Float32Array
    const rows = texts.map((_, i) => emb.subarray(i * H, (i + 1) * H))
    if (k === 0) {
      const worst = Math.max(...rows.map((r, i) => relErr(r, got[i])))
      t.ok(worst < 1e-5, `${f.weights}: onnxruntime's sentence_embedding within ${worst.toExponential(2)} of SentenceEncoder's`)
    } else {
      const least = Math.min(...rows.map((r, i) => cosineSimilarity(r, got[i])))
      const floor = f.weights === 'fp16' ? 0.9999 : 0.98
      t.ok(least > floor, `${f.weights}: cosine similarity to SentenceEncoder's at least ${least.toFixed(5)} (> ${floor})`)
    }
  }
})

const status = cudaStatus()
const cudaSkip = status.available ? (encoderCudaBlocker(true) ?? false) : `CUDA unavailable: ${status.reason}`
t.test(
  'ModernBERT on CUDA: the CPU vectors within 1e-4, and the CPU weights after 3 training steps (fp32)',
  { skip: cudaSkip },
  async (t) => {
    const dir = tempDir('simcsepp-modernbert-cuda-')
    const lib = { BertModel, namedConfig, buildVocab, writeVocab, SentenceEncoder, train, readSafetensors }
    for (const check of await encodeChecks(lib, dir, 'cuda', 'modernbert')) t.ok(check.ok, check.message)
    for (const check of await trainChecks(lib, dir, 'cuda', 'fp32', 'modernbert')) t.ok(check.ok, check.message)
  },
)

t.test('bf16 training keeps no attention probabilities where the backward forms them: the weights of keeping them', async (t) => {
  // The arena: at T <= 32 with attentionBf16 (bf16 on CUDA) no [B, NH, T, T] a layer; from 33 tokens as before.
  const probs = (T: number) => config.numHiddenLayers * viewFloats(4 * config.numAttentionHeads * T * T)
  for (const T of [12, 32, 33]) {
    const saved = passFloats(config, 4, T, true, false, false) - passFloats(config, 4, T, true, false, true)
    t.equal(saved, T <= 32 ? probs(T) : 0, `T = ${T}: ${T <= 32 ? "the layers' probabilities" : 'nothing'} saved`)
  }
  // Training: the window (a score bias: T = 12 reaches past localAttention / 2) and dropout at every site; the
  // backward forming P must give the bits of reading the forward's. On the CPU the 'bf16' storage switch drops them
  // too (its backward then forms P in a pass of its own); on CUDA bf16 drops them by default.
  const dir = tempDir('simcsepp-modernbert-probs-')
  const created = BertModel.create({ ...config, vocabSize: 32 }, { seed: 4 })
  await created.save(dir)
  created.dispose()
  writeFileSync(join(dir, 'tokenizer.json'), modernTokenizerJson())
  const words = [...new Set(WORDS)]
  const data = join(dir, 'data.txt')
  writeFileSync(
    data,
    Array.from({ length: 12 }, (_, i) => `${words[i]} ${words[(i * 5) % words.length]} ${words[i % 3]}`).join('\n') + '\n',
  )
  const run = { model: dir, data, steps: 3, batchSize: 4, maxLen: 12, evalEvery: 0, saveEvery: 0, seed: 3, lr: 1e-3 }
  const devices: ['cpu' | 'cuda', string | undefined][] = [['cpu', 'bf16']]
  if (status.available && !encoderCudaBlocker(true)) devices.push(['cuda', undefined])
  for (const [device, storage] of devices) {
    const files: Buffer[] = []
    for (const how of ['keep', 'auto']) {
      const out = join(dir, `${device}-${how}`)
      const env = { SIMCSEPP_ATTENTION_STORAGE: storage, SIMCSEPP_ATTENTION_PROBS: how }
      await withEnv(env, () => train({ ...run, device, precision: 'bf16', out, pooling: 'mean' }))
      files.push(readFileSync(join(out, 'model.safetensors')))
    }
    t.ok(files[1].equals(files[0]), `${device}: the same model, byte for byte`)
  }
})
