// transformers' ModernBertModel in float64, written from modeling_modernbert.py in its own tensor names, and its
// rotary embedding and GeGLU alone: what test/modernbert.test.ts and test/modern-ops.test.ts hold ours to.
import type { BertConfig } from '../../lib/model/config.js'
import * as ops from '../../lib/ops.js'
import { Tensor } from '../../lib/tensor.js'
import { attentionRef, gelu, layerNormRef, linearRef } from './bert-reference.js'
import { refOutput, refTools, type RefHead, type RefInput, type SiteFactors } from './model-reference.js'

/**
 * The angle of position t and pair i as ModernBertRotaryEmbedding forms it in float32: inv_freq = 1 / theta **
 * (2i / HS), each step rounded to float32, times t (rounded); cos and sin of it then in float64.
 */
export function ropeAngleRef(t: number, i: number, HS: number, theta: number): number {
  const f = Math.fround
  const invFreq = f(1 / f(Math.pow(theta, f(f(2 * i) / HS))))
  return f(t * invFreq)
}

/**
 * apply_rotary_pos_emb on a packed [B·T, 3H] q|k|v (a copy; v as it is): q·cos + rotate_half(q)·sin per head,
 * rotate_half(x) = [−x2, x1] over the halves of the head; token t of each sentence at position t.
 */
export function ropeRef(qkv: Float64Array, B: number, T: number, NH: number, HS: number, theta: number, inverse = false): Float64Array {
  const out = Float64Array.from(qkv)
  const H = NH * HS,
    half = HS / 2
  for (let r = 0; r < B * T; r++)
    for (let i = 0; i < half; i++) {
      const a = ropeAngleRef(r % T, i, HS, theta)
      const c = Math.cos(a),
        s = inverse ? -Math.sin(a) : Math.sin(a)
      for (let part = 0; part < 2; part++)
        for (let h = 0; h < NH; h++) {
          const o = r * 3 * H + part * H + h * HS
          const x1 = qkv[o + i],
            x2 = qkv[o + half + i]
          out[o + i] = x1 * c - x2 * s
          out[o + half + i] = x2 * c + x1 * s
        }
    }
  return out
}

/** GeGLU: u [R, 2I] = [a | g] -> GELU(a)·g [R, I]. */
export function gegluRef(u: ArrayLike<number>, R: number, I: number): Float64Array {
  const out = new Float64Array(R * I)
  for (let r = 0; r < R; r++) for (let i = 0; i < I; i++) out[r * I + i] = gelu(u[r * 2 * I + i]) * u[r * 2 * I + I + i]
  return out
}

/**
 * The native masks of each dropout site of a ModernBERT training step, read back by dropping out ones: site 0 at
 * embedding_dropout, 1 + 3l and 2 + 3l (the attention's probabilities and output) at attention_dropout, 3 + 3l
 * (the GeGLU's output) at mlp_dropout.
 */
export function modernSiteFactors(c: BertConfig, B: number, seed: number, step: number): SiteFactors {
  const sites = 1 + 3 * c.numHiddenLayers
  return (site, length) => {
    const p = site === 0 ? c.modern!.embeddingDropoutProb : (site - 1) % 3 === 2 ? c.hiddenDropoutProb : c.attentionProbsDropoutProb
    if (p === 0) return null
    const ones = Tensor.from(new Float32Array(length).fill(1), [B, length / B])
    ops.dropout(ones, ones, { p, seed, offset: BigInt(step) * BigInt(sites) + BigInt(site) })
    return Float64Array.from(ones.toFloat32Array())
  }
}

/**
 * ModernBertModel from its tensors S by ModernBERT's names: h = drop(LN(tok[ids])); per layer n = LN(h) (layer 0:
 * h), q, k, v = n·Wqkvᵀ, q and k turned by the rotary embedding (global_rope_theta on layers l % every == 0, else
 * local_rope_theta), attention over the real keys (local layers: those at most local_attention / 2 away), h +=
 * drop(ctx·Woᵀ), h += drop(GELU(a)·g)·Wo2ᵀ with [a | g] = LN(h)·Wiᵀ; LN_final(h). LayerNorms without bias. Padded
 * queries whose window holds no real key average the real keys (a −1e30 bias there, as ours).
 */
export function modernBertRef(
  S: ReadonlyMap<string, Float64Array>,
  c: BertConfig,
  x: RefInput,
  factor: SiteFactors,
  pooling: 'cls' | 'mean' | 'none',
  mlp?: RefHead,
): Float64Array {
  const m = c.modern!
  const { B, T } = x
  const H = c.hiddenSize,
    I = c.intermediateSize,
    NH = c.numAttentionHeads,
    HS = H / NH,
    R = B * T
  const { s, drop, add } = refTools(S, factor, R, H, c.layerNormEps)
  const zeros = new Float64Array(H)
  const ln = (a: Float64Array, name: string) => layerNormRef(a, s(name), zeros, R, H, c.layerNormEps).out
  const tok = s('embeddings.tok_embeddings.weight')
  let h: Float64Array = new Float64Array(R * H)
  for (let r = 0; r < R; r++) for (let k = 0; k < H; k++) h[r * H + k] = tok[x.ids[r] * H + k]
  h = drop(ln(h, 'embeddings.norm.weight'), 0)
  const reach = m.localAttention / 2
  const window = Float64Array.from({ length: (2 * T - 1) * NH }, (_, i) => (Math.abs(Math.floor(i / NH) - (T - 1)) > reach ? -1e30 : 0))
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `layers.${l}`
    const global = l % m.globalAttnEveryNLayers === 0
    const n = l > 0 ? ln(h, `${p}.attn_norm.weight`) : h
    const qkv = ropeRef(
      linearRef(n, s(`${p}.attn.Wqkv.weight`), null, R, H, 3 * H),
      B,
      T,
      NH,
      HS,
      global ? m.globalRopeTheta : m.localRopeTheta,
    )
    const [q, k, v] = [0, 1, 2].map((part) =>
      Float64Array.from({ length: R * H }, (_, i) => qkv[Math.floor(i / H) * 3 * H + part * H + (i % H)]),
    )
    const { ctx } = attentionRef(q, k, v, x.mask, { B, T, NH, HS }, factor(1 + 3 * l, B * NH * T * T), global ? null : window)
    const a = drop(linearRef(ctx, s(`${p}.attn.Wo.weight`), null, R, H, H), 2 + 3 * l)
    h = add(h, a)
    const u = linearRef(ln(h, `${p}.mlp_norm.weight`), s(`${p}.mlp.Wi.weight`), null, R, H, 2 * I)
    const f = linearRef(drop(gegluRef(u, R, I), 3 + 3 * l), s(`${p}.mlp.Wo.weight`), null, R, I, H)
    h = add(h, f)
  }
  return refOutput(ln(h, 'final_norm.weight'), x, H, pooling, mlp)
}
