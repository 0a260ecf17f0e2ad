// Hugging Face parameter names and shapes of BertModel / RobertaModel, and the mapping from the names
// found in real checkpoints (with task heads, "bert." prefixes, old TF gamma/beta names) to ours.
// DistilBertModel's and MPNetModel's tensors have names of their own (transformer.layer.N.attention.q_lin,
// encoder.layer.N.attention.attn.q, ...): they are read into, and written back from, the same parameters under
// BertModel's names (checkpointName, LAYER_NAMES).

import { hasPooler, type BertConfig, type ModelType } from './config.js'

export type ParamKind = 'weight' | 'bias' | 'layernorm' | 'embedding'

export interface ParamSpec {
  name: string
  shape: number[]
  kind: ParamKind
}

export interface ParameterSpecOptions {
  /** Include pooler.dense (BertModel's add_pooling_layer) when the architecture has one. Default true. */
  pooler?: boolean
}

/**
 * Parameters in the order of transformers' BertModel.state_dict(), under BertModel's names whatever the model
 * type (checkpointName gives a tensor's name in the model type's own checkpoints). Linear weights are [out, in].
 * No token-type table when typeVocabSize is 0 (DistilBERT).
 */
export function parameterSpecs(c: BertConfig, options: ParameterSpecOptions = {}): ParamSpec[] {
  if (c.modelType === 'modernbert') return modernBertSpecs(c)
  const H = c.hiddenSize
  const I = c.intermediateSize
  const specs: ParamSpec[] = []
  const linear = (prefix: string, out: number, inp: number) => {
    specs.push({ name: `${prefix}.weight`, shape: [out, inp], kind: 'weight' })
    specs.push({ name: `${prefix}.bias`, shape: [out], kind: 'bias' })
  }
  const layerNorm = (prefix: string) => {
    specs.push({ name: `${prefix}.weight`, shape: [H], kind: 'layernorm' })
    specs.push({ name: `${prefix}.bias`, shape: [H], kind: 'layernorm' })
  }

  specs.push({ name: 'embeddings.word_embeddings.weight', shape: [c.vocabSize, H], kind: 'embedding' })
  specs.push({ name: 'embeddings.position_embeddings.weight', shape: [c.maxPositionEmbeddings, H], kind: 'embedding' })
  if (c.typeVocabSize > 0) specs.push({ name: 'embeddings.token_type_embeddings.weight', shape: [c.typeVocabSize, H], kind: 'embedding' })
  layerNorm('embeddings.LayerNorm')
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `encoder.layer.${i}`
    linear(`${p}.attention.self.query`, H, H)
    linear(`${p}.attention.self.key`, H, H)
    linear(`${p}.attention.self.value`, H, H)
    linear(`${p}.attention.output.dense`, H, H)
    layerNorm(`${p}.attention.output.LayerNorm`)
    linear(`${p}.intermediate.dense`, I, H)
    linear(`${p}.output.dense`, H, I)
    layerNorm(`${p}.output.LayerNorm`)
  }
  if (c.modelType === 'mpnet')
    specs.push({ name: RELATIVE_ATTENTION_BIAS, shape: [c.relativeAttentionNumBuckets ?? 32, c.numAttentionHeads], kind: 'embedding' })
  if ((options.pooler ?? true) && hasPooler(c)) linear('pooler.dense', H, H)
  return specs
}

/**
 * ModernBertModel's parameters under its own names, in its state_dict order: no biases, no positions; layer 0 has
 * no attention norm (transformers' nn.Identity there). Wqkv is q | k | v stacked, [3H, H]; Wi is the GeGLU's
 * [a | g] projection, [2I, H].
 */
function modernBertSpecs(c: BertConfig): ParamSpec[] {
  const H = c.hiddenSize,
    I = c.intermediateSize
  const specs: ParamSpec[] = [
    { name: 'embeddings.tok_embeddings.weight', shape: [c.vocabSize, H], kind: 'embedding' },
    { name: 'embeddings.norm.weight', shape: [H], kind: 'layernorm' },
  ]
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `layers.${l}`
    if (l > 0) specs.push({ name: `${p}.attn_norm.weight`, shape: [H], kind: 'layernorm' })
    specs.push({ name: `${p}.attn.Wqkv.weight`, shape: [3 * H, H], kind: 'weight' })
    specs.push({ name: `${p}.attn.Wo.weight`, shape: [H, H], kind: 'weight' })
    specs.push({ name: `${p}.mlp_norm.weight`, shape: [H], kind: 'layernorm' })
    specs.push({ name: `${p}.mlp.Wi.weight`, shape: [2 * I, H], kind: 'weight' })
    specs.push({ name: `${p}.mlp.Wo.weight`, shape: [H, I], kind: 'weight' })
  }
  specs.push({ name: 'final_norm.weight', shape: [H], kind: 'layernorm' })
  return specs
}

// The per-layer tensor names of the model types that name them their own way, against BertModel's (the embeddings,
// intermediate.dense, output.dense and output.LayerNorm of MPNet are BertModel's).
const LAYER_NAMES: Partial<Record<ModelType, { layers: string; names: [bert: string, theirs: string][] }>> = {
  distilbert: {
    layers: 'transformer.layer',
    names: [
      ['attention.self.query', 'attention.q_lin'],
      ['attention.self.key', 'attention.k_lin'],
      ['attention.self.value', 'attention.v_lin'],
      ['attention.output.dense', 'attention.out_lin'],
      ['attention.output.LayerNorm', 'sa_layer_norm'],
      ['intermediate.dense', 'ffn.lin1'],
      ['output.dense', 'ffn.lin2'],
      ['output.LayerNorm', 'output_layer_norm'],
    ],
  },
  mpnet: {
    layers: 'encoder.layer',
    names: [
      ['attention.self.query', 'attention.attn.q'],
      ['attention.self.key', 'attention.attn.k'],
      ['attention.self.value', 'attention.attn.v'],
      ['attention.output.dense', 'attention.attn.o'],
      ['attention.output.LayerNorm', 'attention.LayerNorm'],
    ],
  },
}

/** MPNet's relative-position bias table [buckets, heads], shared by all layers (under the same name in both). */
export const RELATIVE_ATTENTION_BIAS = 'encoder.relative_attention_bias.weight'

/**
 * A per-layer name mapped between BertModel's layer prefix and module names (`from`) and another's (`to`); a name
 * the table does not hold comes back as it is.
 */
function mapLayerName(name: string, from: string, to: string, pairs: readonly [string, string][]): string {
  const m = new RegExp(`^${from.replace(/\./g, '\\.')}\\.(\\d+)\\.(.+)\\.(weight|bias)$`).exec(name)
  if (!m) return name
  const pair = pairs.find(([a]) => a === m[2])
  return pair ? `${to}.${m[1]}.${pair[1]}.${m[3]}` : name
}

/** The name of our parameter `name` in checkpoints of the model type (what save() writes, what transformers loads). */
export function checkpointName(name: string, modelType: ModelType): string {
  const t = LAYER_NAMES[modelType]
  return t ? mapLayerName(name, 'encoder.layer', t.layers, t.names) : name
}

/** Our name of a checkpoint tensor of the model type (after its prefix): checkpointName's inverse. */
function ourName(name: string, modelType: ModelType): string {
  const t = LAYER_NAMES[modelType]
  return t
    ? mapLayerName(
        name,
        t.layers,
        'encoder.layer',
        t.names.map(([a, b]): [string, string] => [b, a]),
      )
    : name
}

// Task heads and buffers that a bare encoder does not use.
const IGNORED = [/^cls\./, /^lm_head\./, /^classifier\./, /(^|\.)position_ids$/]
// DistilBERT's: the masked-LM head (DistilBertForMaskedLM), the classification and QA heads.
const DISTILBERT_IGNORED = [/^vocab_(transform|layer_norm|projector)\./, /^pre_classifier\./, /^qa_outputs\./]
// ModernBERT's: ModernBertForMaskedLM's prediction head and decoder.
const MODERNBERT_IGNORED = [/^head\./, /^decoder\./]
const PREFIXES: Record<ModelType, string[]> = {
  bert: ['bert.', 'roberta.'],
  roberta: ['roberta.', 'bert.'],
  distilbert: ['distilbert.'],
  mpnet: ['mpnet.'],
  modernbert: ['model.'],
}

/**
 * Maps a checkpoint tensor name to our parameter name, or null when the tensor is to be ignored
 * (pre-training / classification heads, the position_ids buffer).
 */
export function canonicalName(name: string, modelType: ModelType): string | null {
  let n = name
  // The model's own prefix first, then the other family's, since some conversions mix them up.
  for (const prefix of PREFIXES[modelType]) {
    if (n.startsWith(prefix)) {
      n = n.slice(prefix.length)
      break
    }
  }
  if (IGNORED.some((re) => re.test(n))) return null
  if (modelType === 'distilbert' && DISTILBERT_IGNORED.some((re) => re.test(n))) return null
  if (modelType === 'modernbert') return MODERNBERT_IGNORED.some((re) => re.test(n)) ? null : n
  if (LAYER_NAMES[modelType]) return ourName(n, modelType)
  if (n.endsWith('LayerNorm.gamma')) n = n.slice(0, -'gamma'.length) + 'weight'
  else if (n.endsWith('LayerNorm.beta')) n = n.slice(0, -'beta'.length) + 'bias'
  return n
}

export interface CheckpointMatch {
  /** Our parameter name -> the checkpoint's tensor name. */
  mapping: Map<string, string>
  /** Non-fatal problems, e.g. a missing pooler. */
  warnings: string[]
  /** Checkpoint tensors deliberately ignored (heads, buffers). */
  ignored: string[]
}

export interface MatchOptions {
  modelType?: ModelType
  /** Tolerate a checkpoint without pooler.dense.*; reported in `warnings`. Default true. */
  allowMissingPooler?: boolean
  /** Names the checkpoint in the error message. */
  source?: string
}

const fmtShape = (s: readonly number[]) => `[${s.join(', ')}]`

/** At most a dozen names, then a count: a config with 10,000 layers must not make a 7 MB message. */
function firstFew(names: readonly string[], limit = 12): string {
  return names.length <= limit ? names.join(', ') : `${names.slice(0, limit).join(', ')}, ... and ${names.length - limit} more`
}

/**
 * Matches checkpoint tensors to the expected parameters. Throws one Error listing every missing,
 * unexpected, duplicated and mis-shaped tensor, so a wrong checkpoint is diagnosed in one run.
 */
export function matchCheckpoint(
  specs: readonly ParamSpec[],
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  options: MatchOptions = {},
): CheckpointMatch {
  const modelType = options.modelType ?? 'bert'
  const allowMissingPooler = options.allowMissingPooler ?? true
  const expected = new Map(specs.map((s) => [s.name, s]))
  const mapping = new Map<string, string>()
  const ignored: string[] = []
  const warnings: string[] = []
  const unexpected: string[] = []
  const duplicated: string[] = []
  const misShaped: string[] = []

  for (const [ckptName, t] of tensors) {
    const ours = canonicalName(ckptName, modelType)
    if (ours === null) {
      ignored.push(ckptName)
      continue
    }
    const spec = expected.get(ours)
    if (!spec) {
      unexpected.push(ckptName)
      continue
    }
    const prev = mapping.get(ours)
    if (prev !== undefined) {
      duplicated.push(`${checkpointName(ours, modelType)} (from both ${prev} and ${ckptName})`)
      continue
    }
    mapping.set(ours, ckptName)
    const shape = t.shape
    if (shape.length !== spec.shape.length || shape.some((d, i) => d !== spec.shape[i])) {
      misShaped.push(`${ckptName}: ${fmtShape(shape)} in the checkpoint, expected ${fmtShape(spec.shape)}`)
    }
  }

  const missing: string[] = []
  for (const s of specs) {
    if (mapping.has(s.name)) continue
    if (allowMissingPooler && s.name.startsWith('pooler.'))
      warnings.push(`${s.name} is missing from the checkpoint; it will be freshly initialized`)
    else missing.push(checkpointName(s.name, modelType))
  }

  if (missing.length || unexpected.length || duplicated.length || misShaped.length) {
    const lines = [`${options.source ?? 'checkpoint'} does not match the ${modelType} model:`]
    if (missing.length) lines.push(`  missing (${missing.length}): ${firstFew(missing)}`)
    if (unexpected.length) lines.push(`  unexpected (${unexpected.length}): ${firstFew(unexpected)}`)
    if (duplicated.length) lines.push(`  duplicated (${duplicated.length}): ${firstFew(duplicated)}`)
    if (misShaped.length) {
      const shown = misShaped.slice(0, 12).map((m) => `    ${m}`)
      if (misShaped.length > 12) shown.push(`    ... and ${misShaped.length - 12} more`)
      lines.push(`  wrong shape (${misShaped.length}):`, ...shown)
    }
    throw new Error(lines.join('\n'))
  }
  return { mapping, warnings, ignored }
}
