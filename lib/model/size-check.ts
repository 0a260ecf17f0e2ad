// Sizes a model from its config before anything is allocated: a config.json asking for a million
// layers must be an Error in microseconds, not a JS heap exhausted after a minute (which, inside the
// SentenceEncoder's worker, would take the caller's process down with it).
import { totalmem } from 'node:os'
import { hasPooler, type BertConfig } from './config.js'

/** Elements a single tensor (the flat parameter buffer) may hold: the addon's per-dimension limit. */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1

/** Parameters of the encoder (and optional pooler and training MLP head), in closed form. */
export function parameterCount(c: BertConfig, options: { mlp?: boolean; pooler?: boolean } = {}): number {
  const H = c.hiddenSize,
    I = c.intermediateSize
  const mlp = options.mlp ? H * H + H : 0
  // ModernBERT: no biases, positions or pooler; q/k/v, output, GeGLU's [2I, H] and [H, I], two norms a layer (the
  // first layer's attention norm is the identity), the embeddings' norm and the final one.
  if (c.modelType === 'modernbert') return c.vocabSize * H + c.numHiddenLayers * (4 * H * H + 3 * I * H + 2 * H) + H + mlp
  const embeddings = (c.vocabSize + c.maxPositionEmbeddings + c.typeVocabSize) * H + 2 * H
  const attention = 4 * (H * H + H) + 2 * H
  const ffn = H * I + I + I * H + H + 2 * H
  const pooler = options.pooler === false || !hasPooler(c) ? 0 : H * H + H
  return embeddings + c.numHiddenLayers * (attention + ffn) + pooler + mlp
}

/** Bytes in GiB (TiB past 1 TiB), three significant digits. */
export function gib(bytes: number): string {
  return bytes >= 2 ** 40 ? `${(bytes / 2 ** 40).toPrecision(3)} TiB` : `${(bytes / 2 ** 30).toPrecision(3)} GiB`
}

/**
 * Throws when the model described by `c` cannot be held: more parameters than one tensor can address,
 * or (with parameters, gradients and both AdamW moments when training) more memory than the machine has.
 * `source` names the config in the message (a file or "config").
 */
export function checkModelFits(
  c: BertConfig,
  options: { mlp?: boolean; pooler?: boolean; training?: boolean; source?: string } = {},
): number {
  const n = parameterCount(c, options)
  const where = options.source ?? 'config'
  const shape = `${c.numHiddenLayers} layers, hidden size ${c.hiddenSize}, intermediate size ${c.intermediateSize}, vocabulary ${c.vocabSize}`
  if (!Number.isFinite(n) || n > MAX_TENSOR_ELEMENTS) {
    throw new RangeError(
      `${where}: the model (${shape}) has ${n.toExponential(2)} parameters, more than simcsepp can hold (${MAX_TENSOR_ELEMENTS})`,
    )
  }
  const copies = options.training ? 4 : 1 // parameters, gradients, AdamW m and v
  const bytes = n * 4 * copies
  const total = totalmem()
  if (bytes > total) {
    const what = options.training ? 'parameters, gradients and optimizer moments' : 'parameters'
    throw new RangeError(`${where}: the model (${shape}) needs ${gib(bytes)} for its ${what}; this machine has ${gib(total)} of memory`)
  }
  return n
}
