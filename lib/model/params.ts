// Typed views of the model's parameters (and, with the same function, of its gradients): one Tensor
// view per parameter of the flat buffer, grouped per layer and built once per buffer, so the forward
// and backward passes read fields (`layer.query.weight`) instead of looking names up on every call.
import type { Tensor } from '../tensor.js'
import { MLP_BIAS, MLP_WEIGHT, type ParamLayout } from './layout.js'
import { RELATIVE_ATTENTION_BIAS } from './names.js'

/** A dense layer (y = x·Wᵀ + b) or a LayerNorm (γ as weight, β as bias). */
export interface Affine {
  weight: Tensor
  bias: Tensor
}

/** One transformer layer, named after transformers' BertLayer. */
export interface LayerParams {
  query: Affine
  key: Affine
  value: Affine
  /**
   * query, key and value as one [3H, H] projection (and its [3H] bias): views over the three, which the
   * layout keeps adjacent (layout.ts: weights in spec order, then biases in spec order).
   */
  qkv: Affine
  /** attention.output.dense */
  attentionOutput: Affine
  /** attention.output.LayerNorm */
  attentionNorm: Affine
  /** intermediate.dense */
  intermediate: Affine
  /** output.dense */
  output: Affine
  /** output.LayerNorm */
  outputNorm: Affine
}

export interface ModelParams {
  wordEmbeddings: Tensor
  positionEmbeddings: Tensor
  /** null when the model has no token types (DistilBERT). */
  tokenTypeEmbeddings: Tensor | null
  embeddingNorm: Affine
  layers: LayerParams[]
  /** MPNet's relative-position bias table [buckets, NH], shared by the layers; null for the others. */
  relativeAttentionBias: Tensor | null
}

/** The SimCSE training head's views among `views` (parameters or gradients), when the layout has one; any model type. */
export function mlpHeadOf(views: ReadonlyMap<string, Tensor>): Affine | null {
  const weight = views.get(MLP_WEIGHT),
    bias = views.get(MLP_BIAS)
  return weight && bias ? { weight, bias } : null
}

/** A view of every parameter of `layout` in `flat` (parameters or gradients), by name. */
export function viewsByName(flat: Tensor, layout: ParamLayout): Map<string, Tensor> {
  return new Map(layout.entries.map((e) => [e.name, flat.view(e.offset, e.shape)]))
}

/**
 * Groups the views of `viewsByName` per layer; `flat` and `layout` (the buffer the views are of) give the
 * fused q/k/v views.
 */
export function modelParams(views: ReadonlyMap<string, Tensor>, numLayers: number, flat: Tensor, layout: ParamLayout): ModelParams {
  const get = (name: string) => {
    const t = views.get(name)
    if (!t) throw new Error(`BertModel: no parameter named ${name}`)
    return t
  }
  const affine = (prefix: string): Affine => ({ weight: get(`${prefix}.weight`), bias: get(`${prefix}.bias`) })
  const layers: LayerParams[] = []
  for (let l = 0; l < numLayers; l++) {
    const p = `encoder.layer.${l}`
    const self = `${p}.attention.self`
    layers.push({
      query: affine(`${self}.query`),
      key: affine(`${self}.key`),
      value: affine(`${self}.value`),
      qkv: { weight: adjacent(flat, layout, self, 'weight'), bias: adjacent(flat, layout, self, 'bias') },
      attentionOutput: affine(`${p}.attention.output.dense`),
      attentionNorm: affine(`${p}.attention.output.LayerNorm`),
      intermediate: affine(`${p}.intermediate.dense`),
      output: affine(`${p}.output.dense`),
      outputNorm: affine(`${p}.output.LayerNorm`),
    })
  }
  return {
    wordEmbeddings: get('embeddings.word_embeddings.weight'),
    positionEmbeddings: get('embeddings.position_embeddings.weight'),
    tokenTypeEmbeddings: views.get('embeddings.token_type_embeddings.weight') ?? null,
    embeddingNorm: affine('embeddings.LayerNorm'),
    layers,
    relativeAttentionBias: views.get(RELATIVE_ATTENTION_BIAS) ?? null,
  }
}

/** The view over `${self}.{query,key,value}.${kind}`, which must lie back to back in the layout. */
function adjacent(flat: Tensor, layout: ParamLayout, self: string, kind: 'weight' | 'bias'): Tensor {
  const [q, k, v] = ['query', 'key', 'value'].map((n) => layout.byName.get(`${self}.${n}.${kind}`))
  if (!q || !k || !v || k.offset !== q.offset + q.size || v.offset !== k.offset + k.size)
    throw new Error(`BertModel: ${self}.{query,key,value}.${kind} are not adjacent in the parameter layout`)
  return flat.view(q.offset, [3 * q.shape[0], ...q.shape.slice(1)])
}
