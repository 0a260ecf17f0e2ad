// The architecture hyper-parameters of a BERT or RoBERTa encoder, and their Hugging Face config.json form.
// Only what our kernels implement is accepted: absolute position embeddings and exact (erf) GELU.

import { join } from 'node:path'
import { readJsonFile } from '../util/json.js'

export type ModelType = 'bert' | 'roberta'

export interface BertConfig {
  modelType: ModelType
  /**
   * config.json's model_type where it names more than the architecture: 'xlm-roberta' (XLM-R and the multilingual
   * sentence encoders built on it) is RoBERTa's architecture with a SentencePiece vocabulary; it is written back
   * as it came, so that transformers and transformers.js load XLMRobertaModel.
   */
  hfModelType?: 'xlm-roberta'
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
  typeVocabSize: number
  layerNormEps: number
  padTokenId: number
  initializerRange: number
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
  return c.modelType === 'roberta' ? c.padTokenId + 1 : 0
}

/** Head size, hiddenSize / numAttentionHeads. */
export function headDim(c: BertConfig): number {
  return c.hiddenSize / c.numAttentionHeads
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

/**
 * Reads a Hugging Face config.json object. Size fields are required; the rest default as in
 * transformers' BertConfig / RobertaConfig. `source` (a file name) prefixes error messages.
 */
export function parseHfConfig(json: unknown, source = 'config.json'): BertConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new Error(`${source}: expected a JSON object, got ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`)
  }
  const r: FieldReader = new FieldReader(json as Record<string, unknown>, source)

  const declared = r.str('model_type')
  if (declared !== 'bert' && declared !== 'roberta' && declared !== 'xlm-roberta') {
    r.fail('model_type', `must be "bert", "roberta" or "xlm-roberta", got ${JSON.stringify(declared)}`)
  }
  const modelType: ModelType = declared === 'bert' ? 'bert' : 'roberta'
  const hiddenAct = r.str('hidden_act', 'gelu')
  if (hiddenAct !== 'gelu') {
    r.fail('hidden_act', `must be "gelu" (exact erf GELU, the only activation implemented), got ${JSON.stringify(hiddenAct)}`)
  }
  const positionType = r.str('position_embedding_type', 'absolute')
  if (positionType !== 'absolute') {
    r.fail('position_embedding_type', `must be "absolute" (the only kind implemented), got ${JSON.stringify(positionType)}`)
  }

  const vocabSize = r.int('vocab_size', 1)
  const hiddenSize = r.int('hidden_size', 1)
  const numHiddenLayers = r.int('num_hidden_layers', 1)
  const numAttentionHeads = r.int('num_attention_heads', 1)
  if (hiddenSize % numAttentionHeads !== 0) {
    r.fail('num_attention_heads', `(${numAttentionHeads}) must divide hidden_size (${hiddenSize})`)
  }
  const intermediateSize = r.int('intermediate_size', 1)
  const maxPositionEmbeddings = r.int('max_position_embeddings', 1)
  const typeVocabSize = r.int('type_vocab_size', 1, modelType === 'roberta' ? 1 : 2)
  const padTokenId = r.int('pad_token_id', 0, modelType === 'roberta' ? 1 : 0)
  if (padTokenId >= vocabSize) r.fail('pad_token_id', `(${padTokenId}) must be below vocab_size (${vocabSize})`)
  if (modelType === 'roberta' && maxPositionEmbeddings <= padTokenId + 1) {
    r.fail(
      'max_position_embeddings',
      `(${maxPositionEmbeddings}) must exceed pad_token_id + 1 (${padTokenId + 1}) for roberta, whose positions start after the padding index`,
    )
  }
  const prob = (x: number) => x >= 0 && x < 1
  const hiddenDropoutProb = r.num('hidden_dropout_prob', prob, 'in [0, 1)', 0.1)
  const attentionProbsDropoutProb = r.num('attention_probs_dropout_prob', prob, 'in [0, 1)', 0.1)
  const layerNormEps = r.num('layer_norm_eps', (x) => x > 0, 'positive', 1e-12)
  const initializerRange = r.num('initializer_range', (x) => x > 0, 'positive', 0.02)

  return {
    modelType,
    ...(declared === 'xlm-roberta' ? { hfModelType: declared } : {}),
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
  }
}

/** The config.json that transformers' AutoModel.from_pretrained loads as BertModel / RobertaModel. Keys sorted, as transformers writes them. */
export function toHfConfig(c: BertConfig): Record<string, unknown> {
  const roberta = c.modelType === 'roberta'
  const out: Record<string, unknown> = {
    architectures: [c.hfModelType === 'xlm-roberta' ? 'XLMRobertaModel' : roberta ? 'RobertaModel' : 'BertModel'],
    attention_probs_dropout_prob: c.attentionProbsDropoutProb,
    ...(roberta ? { bos_token_id: 0 } : {}),
    classifier_dropout: null,
    ...(roberta ? { eos_token_id: 2 } : {}),
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
    position_embedding_type: 'absolute',
    torch_dtype: 'float32',
    transformers_version: HF_TRANSFORMERS_VERSION,
    type_vocab_size: c.typeVocabSize,
    use_cache: true,
    vocab_size: c.vocabSize,
  }
  return out
}

/** Reads and validates `dir/config.json`. */
export async function readHfConfig(dir: string): Promise<BertConfig> {
  const file = join(dir, 'config.json')
  const json = await readJsonFile(file, { hint: 'expected a Hugging Face model directory with a config.json' })
  return parseHfConfig(json, file)
}
