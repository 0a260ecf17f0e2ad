// A model made smaller by keeping some of its encoder layers (sentence-transformers' model_distillation example: a
// student initialised from its teacher, `layers_to_keep = [1, 4, 7, 10]` of BERT-base's twelve): the embeddings and
// the kept layers' weights as they are, the layers renumbered 0..k-1 in the order kept, num_hidden_layers k. What is
// dropped is never read. Not for ModernBERT, whose layers alternate global and local attention by their index.
import type { BertConfig } from './config.js'

/** `layers` checked against `config`: distinct layer indices in increasing order, each below its layer count. */
export function checkKeepLayers(layers: unknown, config: BertConfig, source: string): readonly number[] {
  const n = config.numHiddenLayers
  if (!Array.isArray(layers) || layers.length === 0 || layers.some((l) => !Number.isInteger(l)))
    throw new TypeError(`keepLayers must be a non-empty array of layer indices (got ${JSON.stringify(layers)})`)
  if (config.modelType === 'modernbert')
    throw new Error(`${source}: keepLayers does not apply to ModernBERT (its layers alternate global and local attention by their index)`)
  const bad = (layers as number[]).find((l, i) => l < 0 || l >= n || (i > 0 && l <= (layers as number[])[i - 1]))
  if (bad !== undefined)
    throw new RangeError(
      `keepLayers must be distinct indices of the ${n} layers of ${source}, in increasing order, each in [0, ${n - 1}] ` +
        `(got ${JSON.stringify(layers)})`,
    )
  return layers as number[]
}

/** `config` with the kept layers only. */
export const withKeptLayers = (config: BertConfig, layers: readonly number[]): BertConfig => ({ ...config, numHiddenLayers: layers.length })

/**
 * A checkpoint mapping (our parameter name -> the tensor's name) of the whole model, renamed for the kept layers: our
 * layer i's parameters read from layer layers[i]'s tensors; every other parameter as it was.
 */
export function keptLayersMapping(mapping: ReadonlyMap<string, string>, layers: readonly number[]): Map<string, string> {
  const out = new Map<string, string>()
  const newIndex = new Map(layers.map((old, i) => [old, i]))
  for (const [ours, theirs] of mapping) {
    const m = /^encoder\.layer\.(\d+)\.(.+)$/.exec(ours)
    if (!m) out.set(ours, theirs)
    else if (newIndex.has(Number(m[1]))) out.set(`encoder.layer.${newIndex.get(Number(m[1]))}.${m[2]}`, theirs)
  }
  return out
}
