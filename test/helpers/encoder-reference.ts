// The whole BERT encoder in float64, composed from the op references in bert-reference.ts, with the
// same dropout sites as lib/model/bert.ts. Dropout multipliers are passed in (the tests take them
// from the native Philox dropout, which test/dropout.test.ts checks against an independent Philox).
import type { BertConfig } from '../../lib/model/config.js'
import { attentionRef, embeddingRef, gelu, layerNormRef, linearRef, poolRef } from './bert-reference.js'
import type { Pooling } from '../../lib/model/pooling.js'

export interface RefBatch {
  ids: Int32Array
  mask: Int32Array
  types: Int32Array
  positions: Int32Array
  B: number
  T: number
}

/** factor(site, length) -> dropout multipliers (0 or 1/(1-p)) for that site, or null for none. */
export type Factors = (site: number, length: number) => Float64Array | null

export function encoderRef(
  P: Map<string, Float64Array>,
  c: BertConfig,
  x: RefBatch,
  factor: Factors,
  pooling: Pooling,
  mlp: boolean,
): Float64Array {
  const { B, T } = x
  const H = c.hiddenSize,
    I = c.intermediateSize,
    NH = c.numAttentionHeads,
    R = B * T
  const p = (n: string) => P.get(n)!
  const drop = (a: Float64Array, site: number) => {
    const f = factor(site, a.length)
    return f ? a.map((v, i) => v * f[i]) : a
  }
  const add = (a: Float64Array, b: Float64Array) => a.map((v, i) => v + b[i])
  let h = embeddingRef(
    x.ids,
    x.positions,
    x.types,
    p('embeddings.word_embeddings.weight'),
    p('embeddings.position_embeddings.weight'),
    p('embeddings.token_type_embeddings.weight'),
    H,
  )
  h = drop(layerNormRef(h, p('embeddings.LayerNorm.weight'), p('embeddings.LayerNorm.bias'), R, H, c.layerNormEps).out, 0)
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const w = (n: string) => p(`encoder.layer.${l}.${n}`)
    const lin = (inp: Float64Array, name: string, C: number, OC: number) => linearRef(inp, w(`${name}.weight`), w(`${name}.bias`), R, C, OC)
    const q = lin(h, 'attention.self.query', H, H),
      k = lin(h, 'attention.self.key', H, H),
      v = lin(h, 'attention.self.value', H, H)
    const { ctx } = attentionRef(q, k, v, x.mask, { B, T, NH, HS: H / NH }, factor(1 + 3 * l, B * NH * T * T))
    const a = add(drop(lin(ctx, 'attention.output.dense', H, H), 2 + 3 * l), h)
    const h1 = layerNormRef(a, w('attention.output.LayerNorm.weight'), w('attention.output.LayerNorm.bias'), R, H, c.layerNormEps).out
    const inter = lin(h1, 'intermediate.dense', H, I).map(gelu)
    const o = add(drop(lin(inter, 'output.dense', I, H), 3 + 3 * l), h1)
    h = layerNormRef(o, w('output.LayerNorm.weight'), w('output.LayerNorm.bias'), R, H, c.layerNormEps).out
  }
  const pooled = poolRef(pooling, h, x.mask, B, T, H)
  if (!mlp) return pooled
  return linearRef(pooled, p('mlp.dense.weight'), p('mlp.dense.bias'), B, H, H).map(Math.tanh)
}

/**
 * The largest |got[k] − FD_k| over max(1e-3, max |FD|), FD_k the central difference (step 1e-6) of loss() in
 * values[idx[k]] (restored afterwards): how far native gradients are from the float64 reference's.
 */
export function gradientError(values: Float64Array, idx: number[], got: number[], loss: () => number): number {
  const fd = idx.map((i) => {
    const keep = values[i]
    values[i] = keep + 1e-6
    const up = loss()
    values[i] = keep - 1e-6
    const down = loss()
    values[i] = keep
    return (up - down) / 2e-6
  })
  const scale = Math.max(1e-3, ...fd.map(Math.abs))
  return Math.max(...got.map((g, k) => Math.abs(g - fd[k]))) / scale
}
