// The architecture hyper-parameters of a BERT, RoBERTa, DistilBERT or MPNet encoder, and their Hugging Face
// config.json form. Only what our kernels implement is accepted: learned absolute position embeddings and exact
// (erf) GELU. DistilBERT is BERT's post-LayerNorm encoder without token types, pooler or dropout on the attention's
// output projection (transformers' DistilBertModel); its config.json has names of its own (dim, n_layers, ...).
// MPNet is RoBERTa's encoder without token types, plus a relative-position bias on the attention scores, one table
// of 32 buckets x heads shared by all layers (transformers' MPNetModel).
// ModernBERT (transformers' ModernBertModel) is a pre-LayerNorm encoder without biases: rotary position embeddings,
// a GeGLU MLP, and attention that alternates one global layer with sliding-window (local) ones; its own fields
// are in BertConfig.modern (lib/model/modernbert.ts runs it).

import { join } from 'node:path'
import { readJsonFile } from '../util/json.js'

export type ModelType = 'bert' | 'roberta' | 'distilbert' | 'mpnet' | 'modernbert'

/** The model types that are RoBERTa's architecture under another name (BertConfig.hfModelType). */
export type RobertaVariant = 'xlm-roberta' | 'camembert'
const ROBERTA_VARIANTS: Record<RobertaVariant, { model: string; tokenizer: string }> = {
  'xlm-roberta': { model: 'XLMRobertaModel', tokenizer: 'XLMRobertaTokenizer' },
  camembert: { model: 'CamembertModel', tokenizer: 'CamembertTokenizer' },
}

export interface BertConfig {
  modelType: ModelType
  /**
   * config.json's model_type where it names more than the architecture: 'xlm-roberta' (XLM-R and the multilingual
   * sentence encoders built on it) and 'camembert' are RoBERTa's architecture with a SentencePiece vocabulary; it is
   * written back as it came, so that transformers and transformers.js load XLMRobertaModel / CamembertModel.
   */
  hfModelType?: RobertaVariant
  vocabSize: number
  hiddenSize: number
  numHiddenLayers: number
  numAttentionHeads: number
  intermediateSize: number
  /** Exact GELU, x·Φ(x) with the erf, as transformers' "gelu". */
  hiddenAct: 'gelu'
  hiddenDropoutProb: number
  attentionProbsDropoutProb: number
  maxPositionEmbeddings: number
  /** Rows of the token-type table: 0 for DistilBERT and MPNet, which have none. */
  typeVocabSize: number
  /** MPNet's relative_attention_num_buckets: rows of its relative-position bias table (32 used). */
  relativeAttentionNumBuckets?: number
  layerNormEps: number
  padTokenId: number
  initializerRange: number
  /** ModernBERT's own fields (modelType 'modernbert' only). */
  modern?: ModernBertFields
}

/**
 * What a ModernBERT config adds. Its dropout probabilities map onto BertConfig's: attention_dropout is
 * attentionProbsDropoutProb (on the attention probabilities and on its output projection), mlp_dropout is
 * hiddenDropoutProb (on the GeGLU's output); embedding_dropout is here. Every layer whose index is a multiple of
 * globalAttnEveryNLayers attends globally with globalRopeTheta; the others see keys at most localAttention / 2
 * tokens away and use localRopeTheta.
 */
export interface ModernBertFields {
  globalAttnEveryNLayers: number
  localAttention: number
  globalRopeTheta: number
  localRopeTheta: number
  embeddingDropoutProb: number
  initializerCutoffFactor: number
  bosTokenId: number
  eosTokenId: number
  clsTokenId: number
  sepTokenId: number
}

/** Whether any dropout site of the model drops anything (ModernBERT's checkpoints have none). */
export function hasDropout(c: BertConfig): boolean {
  return c.hiddenDropoutProb > 0 || c.attentionProbsDropoutProb > 0 || (c.modern?.embeddingDropoutProb ?? 0) > 0
}

/** Whether ModernBERT's layer `l` attends over the whole sequence (else within its sliding window). */
export function isGlobalLayer(c: BertConfig, l: number): boolean {
  return l % (c.modern?.globalAttnEveryNLayers ?? 1) === 0
}

export type NamedConfig = 'tiny' | 'mini' | 'small' | 'base'

/** The transformers release whose config.json layout toHfConfig follows. */
export const HF_TRANSFORMERS_VERSION = '4.52.4'

const NAMED: Record<NamedConfig, [layers: number, hidden: number, heads: number, intermediate: number]> = {
  tiny: [2, 128, 2, 512],
  mini: [4, 256, 4, 1024],
  small: [4, 512, 8, 2048],
  base: [12, 768, 12, 3072],
}

/** Standard BERT sizes (Turc et al. 2019 for the small ones), with bert-base-uncased's vocabulary by default. */
export function namedConfig(name: NamedConfig, vocabSize = 30522): BertConfig {
  const sizes = NAMED[name]
  if (!sizes) throw new Error(`namedConfig: unknown name ${JSON.stringify(name)} (expected one of ${Object.keys(NAMED).join(', ')})`)
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 1)
    throw new Error(`namedConfig: vocabSize must be a positive integer, got ${vocabSize}`)
  const [numHiddenLayers, hiddenSize, numAttentionHeads, intermediateSize] = sizes
  return {
    modelType: 'bert',
    vocabSize,
    hiddenSize,
    numHiddenLayers,
    numAttentionHeads,
    intermediateSize,
    hiddenAct: 'gelu',
    hiddenDropoutProb: 0.1,
    attentionProbsDropoutProb: 0.1,
    maxPositionEmbeddings: 512,
    typeVocabSize: 2,
    layerNormEps: 1e-12,
    padTokenId: 0,
    initializerRange: 0.02,
  }
}

/**
 * First position id. RoBERTa numbers positions from padding_idx + 1 (position padTokenId is reserved
 * for padding), so its position table has padTokenId + 1 extra rows at the front.
 */
export function positionOffset(c: BertConfig): number {
  return paddingAwarePositions(c) ? c.padTokenId + 1 : 0
}

/**
 * Whether position ids come from the padding (RoBERTa's create_position_ids_from_input_ids, which MPNet uses too):
 * real tokens count from padTokenId + 1, padding takes padTokenId. Else positions are 0..T-1.
 */
export function paddingAwarePositions(c: Pick<BertConfig, 'modelType'>): boolean {
  return c.modelType === 'roberta' || c.modelType === 'mpnet'
}

/** Head size, hiddenSize / numAttentionHeads. */
export function headDim(c: BertConfig): number {
  return c.hiddenSize / c.numAttentionHeads
}

/**
 * Dropout on the attention's output projection before its residual LayerNorm: BERT's and RoBERTa's
 * hidden_dropout_prob; DistilBERT has none there (only on the attention probabilities and the FFN's output).
 */
export function attentionOutputDropoutProb(c: BertConfig): number {
  return c.modelType === 'distilbert' ? 0 : c.hiddenDropoutProb
}

/**
 * The tokenizer class transformers and transformers.js build for the model (DistilBertTokenizer: BERT's WordPiece
 * without token_type_ids, which DistilBertModel does not take).
 */
export function hfTokenizerClass(c: BertConfig): string {
  if (c.hfModelType) return ROBERTA_VARIANTS[c.hfModelType].tokenizer
  return {
    bert: 'BertTokenizer',
    roberta: 'RobertaTokenizer',
    distilbert: 'DistilBertTokenizer',
    mpnet: 'MPNetTokenizer',
    modernbert: 'PreTrainedTokenizerFast', // ModernBERT's own tokenizer_config.json names this one
  }[c.modelType]
}

/** The architecture's name as people write it (the model card's "A ModernBERT sentence encoder ..."). */
export function architectureName(c: Pick<BertConfig, 'modelType' | 'hfModelType'>): string {
  const names = {
    bert: 'BERT',
    roberta: 'RoBERTa',
    'xlm-roberta': 'XLM-RoBERTa',
    camembert: 'CamemBERT',
    distilbert: 'DistilBERT',
    mpnet: 'MPNet',
    modernbert: 'ModernBERT',
  }
  return names[c.hfModelType ?? c.modelType]
}

/** Whether the model has pooler.dense (BertModel's and RobertaModel's; DistilBertModel and ModernBertModel have none). */
export function hasPooler(c: BertConfig): boolean {
  return c.modelType !== 'distilbert' && c.modelType !== 'modernbert'
}

// ---------------------------------------------------------------------------------------------
// config.json parsing

class FieldReader {
  constructor(
    private readonly obj: Record<string, unknown>,
    private readonly source: string,
  ) {}

  fail(field: string, msg: string): never {
    throw new Error(`${this.source}: field "${field}" ${msg}`)
  }

  has(field: string): boolean {
    return this.obj[field] !== undefined
  }

  /** The raw value of a field (undefined when absent). */
  raw(field: string): unknown {
    return this.obj[field]
  }

  int(field: string, min: number, fallback?: number): number {
    const v = this.obj[field]
    if (v === undefined || (v === null && fallback !== undefined)) {
      if (fallback === undefined) this.fail(field, 'is missing')
      return fallback
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(field, `must be an integer, got ${JSON.stringify(v)}`)
    if (v < min) this.fail(field, `must be at least ${min}, got ${v}`)
    return v
  }

  num(field: string, check: (x: number) => boolean, range: string, fallback?: number): number {
    const v = this.obj[field]
    if (v === undefined) {
      if (fallback === undefined) this.fail(field, 'is missing')
      return fallback
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, `must be a number, got ${JSON.stringify(v)}`)
    if (!check(v)) this.fail(field, `must be ${range}, got ${v}`)
    return v
  }

  str(field: string, fallback?: string): string {
    const v = this.obj[field]
    if (v === undefined) {
      if (fallback === undefined) this.fail(field, 'is missing')
      return fallback
    }
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${JSON.stringify(v)}`)
    return v
  }
}

// config.json's names for the fields that DistilBertConfig names its own way.
const FIELD_NAMES = {
  bert: {
    act: 'hidden_act',
    hidden: 'hidden_size',
    layers: 'num_hidden_layers',
    heads: 'num_attention_heads',
    intermediate: 'intermediate_size',
    dropout: 'hidden_dropout_prob',
    attentionDropout: 'attention_probs_dropout_prob',
  },
  distilbert: {
    act: 'activation',
    hidden: 'dim',
    layers: 'n_layers',
    heads: 'n_heads',
    intermediate: 'hidden_dim',
    dropout: 'dropout',
    attentionDropout: 'attention_dropout',
  },
}

/**
 * Reads a Hugging Face config.json object. Size fields are required; the rest default as in
 * transformers' BertConfig / RobertaConfig / DistilBertConfig (whose own field names are read for it:
 * dim, n_layers, ...). `source` (a file name) prefixes error messages.
 */
export function parseHfConfig(json: unknown, source = 'config.json'): BertConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error(`${source}: expected a JSON object, got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`)
  }
  const r: FieldReader = new FieldReader(json as Record<string, unknown>, source)

  const declared = r.str('model_type')
  if (declared === 'modernbert') return parseModernBertConfig(r)
  const known = ['bert', 'roberta', 'distilbert', 'mpnet', 'modernbert', ...Object.keys(ROBERTA_VARIANTS)]
  if (!known.includes(declared)) {
    r.fail('model_type', `must be ${known.map((k) => JSON.stringify(k)).join(', ')}, got ${JSON.stringify(declared)}`)
  }
  const variant = declared in ROBERTA_VARIANTS ? (declared as RobertaVariant) : undefined
  const modelType: ModelType = variant ? 'roberta' : (declared as ModelType)
  const f = FIELD_NAMES[modelType === 'distilbert' ? 'distilbert' : 'bert']
  const hiddenAct = r.str(f.act, 'gelu')
  if (hiddenAct !== 'gelu') {
    r.fail(f.act, `must be "gelu" (exact erf GELU, the only activation implemented), got ${JSON.stringify(hiddenAct)}`)
  }
  if (modelType === 'distilbert') {
    // A fixed table that training must not change: our position tables are always trained.
    const sinusoidal = r.raw('sinusoidal_pos_embds')
    if (sinusoidal !== undefined && sinusoidal !== false)
      r.fail('sinusoidal_pos_embds', 'must be false: fixed sinusoidal position embeddings are not implemented (learned ones are)')
  } else {
    const positionType = r.str('position_embedding_type', 'absolute')
    if (positionType !== 'absolute') {
      r.fail('position_embedding_type', `must be "absolute" (the only kind implemented), got ${JSON.stringify(positionType)}`)
    }
  }

  const vocabSize = r.int('vocab_size', 1)
  const hiddenSize = r.int(f.hidden, 1)
  const numHiddenLayers = r.int(f.layers, 1)
  const numAttentionHeads = r.int(f.heads, 1)
  if (hiddenSize % numAttentionHeads !== 0) r.fail(f.heads, `(${numAttentionHeads}) must divide ${f.hidden} (${hiddenSize})`)
  const intermediateSize = r.int(f.intermediate, 1)
  const maxPositionEmbeddings = r.int('max_position_embeddings', 1)
  // DistilBERT and MPNet have no token types; DistilBERT's LayerNorm epsilon is 1e-12 in its code.
  const typeless = modelType === 'distilbert' || modelType === 'mpnet'
  const typeVocabSize = typeless ? 0 : r.int('type_vocab_size', 1, modelType === 'roberta' ? 1 : 2)
  const padTokenId = r.int('pad_token_id', 0, modelType === 'roberta' || modelType === 'mpnet' ? 1 : 0)
  if (padTokenId >= vocabSize) r.fail('pad_token_id', `(${padTokenId}) must be below vocab_size (${vocabSize})`)
  // transformers' MPNetEmbeddings numbers positions from a padding index of 1 whatever pad_token_id says.
  if (modelType === 'mpnet' && padTokenId !== 1)
    r.fail('pad_token_id', `must be 1 for mpnet (its position ids assume it), got ${padTokenId}`)
  if (paddingAwarePositions({ modelType }) && maxPositionEmbeddings <= padTokenId + 1) {
    r.fail(
      'max_position_embeddings',
      `(${maxPositionEmbeddings}) must exceed pad_token_id + 1 (${padTokenId + 1}) for ${modelType}, whose positions start after the padding index`,
    )
  }
  // compute_position_bias always buckets into 32 (relative_position_bucket's default), whatever the table holds.
  const buckets = modelType === 'mpnet' ? r.int('relative_attention_num_buckets', 32, 32) : undefined
  const prob = (x: number) => x >= 0 && x < 1
  const hiddenDropoutProb = r.num(f.dropout, prob, 'in [0, 1)', 0.1)
  const attentionProbsDropoutProb = r.num(f.attentionDropout, prob, 'in [0, 1)', 0.1)
  const layerNormEps = modelType === 'distilbert' ? 1e-12 : r.num('layer_norm_eps', (x) => x > 0, 'positive', 1e-12)
  const initializerRange = r.num('initializer_range', (x) => x > 0, 'positive', 0.02)

  return {
    modelType,
    ...(variant ? { hfModelType: variant } : {}),
    vocabSize,
    hiddenSize,
    numHiddenLayers,
    numAttentionHeads,
    intermediateSize,
    hiddenAct: 'gelu',
    hiddenDropoutProb,
    attentionProbsDropoutProb,
    maxPositionEmbeddings,
    typeVocabSize,
    layerNormEps,
    padTokenId,
    initializerRange,
    ...(buckets !== undefined ? { relativeAttentionNumBuckets: buckets } : {}),
  }
}

/**
 * ModernBertConfig's config.json: the fields of transformers 4.x (global_attn_every_n_layers, global_rope_theta,
 * local_rope_theta) and of 5.x (layer_types, rope_parameters) are both read. What the kernels do not implement is
 * refused: biases (attention_bias, mlp_bias, norm_bias), an activation other than the exact GELU, a RoPE other than
 * the default one, layer types that do not alternate as global_attn_every_n_layers says.
 */
function parseModernBertConfig(r: FieldReader): BertConfig {
  for (const field of ['attention_bias', 'mlp_bias', 'norm_bias']) {
    const v = r.raw(field)
    if (v !== undefined && v !== false)
      r.fail(field, `must be false (ModernBERT without biases is what is implemented), got ${JSON.stringify(v)}`)
  }
  const act = r.str('hidden_activation', 'gelu')
  if (act !== 'gelu')
    r.fail('hidden_activation', `must be "gelu" (exact erf GELU, the only activation implemented), got ${JSON.stringify(act)}`)
  const vocabSize = r.int('vocab_size', 1)
  const hiddenSize = r.int('hidden_size', 1)
  const numHiddenLayers = r.int('num_hidden_layers', 1)
  const numAttentionHeads = r.int('num_attention_heads', 1)
  if (hiddenSize % numAttentionHeads !== 0) r.fail('num_attention_heads', `(${numAttentionHeads}) must divide hidden_size (${hiddenSize})`)
  if ((hiddenSize / numAttentionHeads) % 2 !== 0)
    r.fail(
      'num_attention_heads',
      `must leave an even head size for the rotary embedding (hidden_size ${hiddenSize} / ${numAttentionHeads})`,
    )
  const every = r.int('global_attn_every_n_layers', 1, 3)
  const layerTypes = r.raw('layer_types')
  if (layerTypes !== undefined && layerTypes !== null) {
    const expected = Array.from({ length: numHiddenLayers }, (_, l) => (l % every === 0 ? 'full_attention' : 'sliding_attention'))
    if (!Array.isArray(layerTypes) || layerTypes.length !== numHiddenLayers || layerTypes.some((t, l) => t !== expected[l]))
      r.fail('layer_types', `must alternate as global_attn_every_n_layers (${every}) says: ${JSON.stringify(expected)}`)
  }
  const rope = r.raw('rope_parameters') as Record<string, { rope_type?: unknown; rope_theta?: unknown } | null> | undefined
  const scaling = r.raw('rope_scaling')
  if (scaling !== undefined && scaling !== null) r.fail('rope_scaling', 'must be null (scaled RoPE is not implemented)')
  const theta = (kind: 'full_attention' | 'sliding_attention', legacy: string, fallback: number): number => {
    const p = rope && typeof rope === 'object' ? rope[kind] : undefined
    if (p && typeof p === 'object') {
      if (p.rope_type !== undefined && p.rope_type !== 'default')
        r.fail(
          'rope_parameters',
          `${kind}.rope_type must be "default" (scaled RoPE is not implemented), got ${JSON.stringify(p.rope_type)}`,
        )
      if (p.rope_theta !== undefined) {
        if (typeof p.rope_theta !== 'number' || !(p.rope_theta > 0) || !Number.isFinite(p.rope_theta))
          r.fail('rope_parameters', `${kind}.rope_theta must be a positive number, got ${JSON.stringify(p.rope_theta)}`)
        return p.rope_theta
      }
    }
    return r.num(legacy, (x) => x > 0 && x < 3e38, 'positive', fallback)
  }
  const prob = (x: number) => x >= 0 && x < 1
  const padTokenId = r.int('pad_token_id', 0, 50283)
  if (padTokenId >= vocabSize) r.fail('pad_token_id', `(${padTokenId}) must be below vocab_size (${vocabSize})`)
  const localAttention = r.int('local_attention', 2, 128)
  if (localAttention % 2 !== 0)
    r.fail('local_attention', `must be even (the window reaches local_attention / 2 each way), got ${localAttention}`)
  return {
    modelType: 'modernbert',
    vocabSize,
    hiddenSize,
    numHiddenLayers,
    numAttentionHeads,
    intermediateSize: r.int('intermediate_size', 1),
    hiddenAct: 'gelu',
    hiddenDropoutProb: r.num('mlp_dropout', prob, 'in [0, 1)', 0),
    attentionProbsDropoutProb: r.num('attention_dropout', prob, 'in [0, 1)', 0),
    maxPositionEmbeddings: r.int('max_position_embeddings', 1, 8192),
    typeVocabSize: 0,
    layerNormEps: r.num('norm_eps', (x) => x > 0, 'positive', 1e-5),
    padTokenId,
    initializerRange: r.num('initializer_range', (x) => x > 0, 'positive', 0.02),
    modern: {
      globalAttnEveryNLayers: every,
      localAttention,
      globalRopeTheta: theta('full_attention', 'global_rope_theta', 160000),
      localRopeTheta: theta('sliding_attention', 'local_rope_theta', 10000),
      embeddingDropoutProb: r.num('embedding_dropout', prob, 'in [0, 1)', 0),
      initializerCutoffFactor: r.num('initializer_cutoff_factor', (x) => x > 0, 'positive', 2),
      bosTokenId: r.int('bos_token_id', 0, 50281),
      eosTokenId: r.int('eos_token_id', 0, 50282),
      clsTokenId: r.int('cls_token_id', 0, 50281),
      sepTokenId: r.int('sep_token_id', 0, 50282),
    },
  }
}

/** ModernBertConfig's config.json (transformers' ModernBertModel; 4.x field names, which 5.x reads), keys sorted. */
function toModernBertConfig(c: BertConfig): Record<string, unknown> {
  const m = c.modern
  if (!m) throw new Error('toHfConfig: a modernbert config needs its modern fields')
  return {
    architectures: ['ModernBertModel'],
    attention_bias: false,
    attention_dropout: c.attentionProbsDropoutProb,
    bos_token_id: m.bosTokenId,
    classifier_activation: 'gelu',
    classifier_bias: false,
    classifier_dropout: 0,
    classifier_pooling: 'mean',
    cls_token_id: m.clsTokenId,
    decoder_bias: true,
    deterministic_flash_attn: false,
    embedding_dropout: m.embeddingDropoutProb,
    eos_token_id: m.eosTokenId,
    global_attn_every_n_layers: m.globalAttnEveryNLayers,
    global_rope_theta: m.globalRopeTheta,
    hidden_activation: c.hiddenAct,
    hidden_size: c.hiddenSize,
    initializer_cutoff_factor: m.initializerCutoffFactor,
    initializer_range: c.initializerRange,
    intermediate_size: c.intermediateSize,
    local_attention: m.localAttention,
    local_rope_theta: m.localRopeTheta,
    max_position_embeddings: c.maxPositionEmbeddings,
    mlp_bias: false,
    mlp_dropout: c.hiddenDropoutProb,
    model_type: 'modernbert',
    norm_bias: false,
    norm_eps: c.layerNormEps,
    num_attention_heads: c.numAttentionHeads,
    num_hidden_layers: c.numHiddenLayers,
    pad_token_id: c.padTokenId,
    sep_token_id: m.sepTokenId,
    sparse_pred_ignore_index: -100,
    sparse_prediction: false,
    torch_dtype: 'float32',
    transformers_version: HF_TRANSFORMERS_VERSION,
    vocab_size: c.vocabSize,
  }
}

/** DistilBertConfig's config.json (transformers' DistilBertModel), keys sorted. */
function toDistilBertConfig(c: BertConfig): Record<string, unknown> {
  if (c.typeVocabSize !== 0) throw new Error(`toHfConfig: a distilbert config has no token types (typeVocabSize ${c.typeVocabSize})`)
  if (c.layerNormEps !== 1e-12) throw new Error(`toHfConfig: distilbert's LayerNorm epsilon is 1e-12 (got ${c.layerNormEps})`)
  return {
    activation: c.hiddenAct,
    architectures: ['DistilBertModel'],
    attention_dropout: c.attentionProbsDropoutProb,
    dim: c.hiddenSize,
    dropout: c.hiddenDropoutProb,
    hidden_dim: c.intermediateSize,
    initializer_range: c.initializerRange,
    max_position_embeddings: c.maxPositionEmbeddings,
    model_type: 'distilbert',
    n_heads: c.numAttentionHeads,
    n_layers: c.numHiddenLayers,
    pad_token_id: c.padTokenId,
    qa_dropout: 0.1,
    seq_classif_dropout: 0.2,
    sinusoidal_pos_embds: false,
    tie_weights_: true,
    torch_dtype: 'float32',
    transformers_version: HF_TRANSFORMERS_VERSION,
    vocab_size: c.vocabSize,
  }
}

/**
 * The config.json that transformers' AutoModel.from_pretrained loads as BertModel / RobertaModel /
 * DistilBertModel. Keys sorted, as transformers writes them.
 */
export function toHfConfig(c: BertConfig): Record<string, unknown> {
  if (c.modelType === 'distilbert') return toDistilBertConfig(c)
  if (c.modelType === 'modernbert') return toModernBertConfig(c)
  const roberta = c.modelType === 'roberta',
    mpnet = c.modelType === 'mpnet'
  if (mpnet && c.typeVocabSize !== 0) throw new Error(`toHfConfig: an mpnet config has no token types (typeVocabSize ${c.typeVocabSize})`)
  const architecture = c.hfModelType
    ? ROBERTA_VARIANTS[c.hfModelType].model
    : { bert: 'BertModel', roberta: 'RobertaModel', mpnet: 'MPNetModel' }[c.modelType]
  // BertConfig's and RobertaConfig's fields; MPNetConfig has no token types, position_embedding_type,
  // classifier_dropout or use_cache, and has the relative-position buckets.
  const bertOnly = (fields: Record<string, unknown>) => (mpnet ? {} : fields)
  const out: Record<string, unknown> = {
    architectures: [architecture],
    attention_probs_dropout_prob: c.attentionProbsDropoutProb,
    ...(roberta || mpnet ? { bos_token_id: 0 } : {}),
    ...bertOnly({ classifier_dropout: null }),
    ...(roberta || mpnet ? { eos_token_id: 2 } : {}),
    hidden_act: c.hiddenAct,
    hidden_dropout_prob: c.hiddenDropoutProb,
    hidden_size: c.hiddenSize,
    initializer_range: c.initializerRange,
    intermediate_size: c.intermediateSize,
    layer_norm_eps: c.layerNormEps,
    max_position_embeddings: c.maxPositionEmbeddings,
    model_type: c.hfModelType ?? c.modelType,
    num_attention_heads: c.numAttentionHeads,
    num_hidden_layers: c.numHiddenLayers,
    pad_token_id: c.padTokenId,
    ...bertOnly({ position_embedding_type: 'absolute' }),
    ...(mpnet ? { relative_attention_num_buckets: c.relativeAttentionNumBuckets ?? 32 } : {}),
    torch_dtype: 'float32',
    transformers_version: HF_TRANSFORMERS_VERSION,
    ...bertOnly({ type_vocab_size: c.typeVocabSize, use_cache: true }),
    vocab_size: c.vocabSize,
  }
  return out
}

// The config.json fields that transformers types as float: transformers 5 validates its configs strictly and refuses
// an int there ("initializer_cutoff_factor expected float, got int"), which JSON.stringify writes for 2 or 160000.
const FLOAT_FIELDS = [
  'attention_dropout',
  'attention_probs_dropout_prob',
  'classifier_dropout',
  'dropout',
  'embedding_dropout',
  'global_rope_theta',
  'hidden_dropout_prob',
  'initializer_cutoff_factor',
  'initializer_range',
  'layer_norm_eps',
  'local_rope_theta',
  'mlp_dropout',
  'norm_eps',
  'qa_dropout',
  'seq_classif_dropout',
]
const INTEGRAL_FLOAT_FIELD = new RegExp(`^(\\s*"(?:${FLOAT_FIELDS.join('|')})": )(-?\\d+)(,?)$`, 'gm')

/** toHfConfig as the text of config.json (two-space indents, a final newline), float fields written as floats (2.0). */
export function hfConfigJson(c: BertConfig): string {
  return JSON.stringify(toHfConfig(c), null, 2).replace(INTEGRAL_FLOAT_FIELD, '$1$2.0$3') + '\n'
}

/** Reads and validates `dir/config.json`. */
export async function readHfConfig(dir: string): Promise<BertConfig> {
  const file = join(dir, 'config.json')
  const json = await readJsonFile(file, { hint: 'expected a Hugging Face model directory with a config.json' })
  return parseHfConfig(json, file)
}
