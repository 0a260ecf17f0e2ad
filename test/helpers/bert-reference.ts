// Independent float64 forward implementations of the BERT encoder ops (native/cpu/bert_ops.h),
// written directly from the formulas, plus finite-difference helpers. Tests hold the native fp32
// forwards to these and the native backwards to central differences of these.

/** erf(x) to ~1e-15: erf(x) = 2/√π · e^{−x²} · Σ_n 2^n x^{2n+1} / (1·3·…·(2n+1)) (all terms positive, no cancellation). */
export function erf(x: number): number {
  if (x < 0) return -erf(-x)
  if (x > 6) return 1 // erfc(6) ≈ 2e-17
  let term = x,
    sum = x
  for (let n = 1; n < 500; n++) {
    term *= (2 * x * x) / (2 * n + 1)
    sum += term
    if (term < 1e-17 * sum) break
  }
  return (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum
}

export const gelu = (x: number) => x * 0.5 * (1 + erf(x / Math.SQRT2))

export function layerNormRef(x: Float64Array, w: Float64Array, b: Float64Array, R: number, C: number, eps: number) {
  const out = new Float64Array(R * C),
    mean = new Float64Array(R),
    rstd = new Float64Array(R)
  for (let r = 0; r < R; r++) {
    let m = 0
    for (let c = 0; c < C; c++) m += x[r * C + c]
    m /= C
    let v = 0
    for (let c = 0; c < C; c++) v += (x[r * C + c] - m) ** 2
    const rs = 1 / Math.sqrt(v / C + eps)
    for (let c = 0; c < C; c++) out[r * C + c] = (x[r * C + c] - m) * rs * w[c] + b[c]
    mean[r] = m
    rstd[r] = rs
  }
  return { out, mean, rstd }
}

/** out[R, OC] = x[R, C] · W[OC, C]ᵀ + b. */
export function linearRef(x: Float64Array, W: Float64Array, b: Float64Array | null, R: number, C: number, OC: number): Float64Array {
  const out = new Float64Array(R * OC)
  for (let r = 0; r < R; r++)
    for (let o = 0; o < OC; o++) {
      let s = b ? b[o] : 0
      for (let c = 0; c < C; c++) s += x[r * C + c] * W[o * C + c]
      out[r * OC + o] = s
    }
  return out
}

export function embeddingRef(
  ids: Int32Array,
  posIds: Int32Array,
  typeIds: Int32Array,
  word: Float64Array,
  pos: Float64Array,
  type: Float64Array,
  H: number,
): Float64Array {
  const out = new Float64Array(ids.length * H)
  for (let r = 0; r < ids.length; r++)
    for (let c = 0; c < H; c++) out[r * H + c] = word[ids[r] * H + c] + pos[posIds[r] * H + c] + type[typeIds[r] * H + c]
  return out
}

export interface AttnDims {
  B: number
  T: number
  NH: number
  HS: number
}

/**
 * Multi-head attention core: P = softmax over real keys of q_h k_hᵀ/√HS (all-zero row when there is
 * none), ctx_h = (P ⊙ factor) v_h, factor [B, NH, T, T] the dropout multipliers (null = 1). relBias
 * [2T-1, NH] (MPNet's relative-position bias, optional) is added to the scores: + relBias[j - i + T - 1, h].
 */
export function attentionRef(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  mask: Int32Array,
  d: AttnDims,
  factor: ArrayLike<number> | null,
  relBias: ArrayLike<number> | null = null,
) {
  const { B, T, NH, HS } = d,
    H = NH * HS
  const probs = new Float64Array(B * NH * T * T),
    ctx = new Float64Array(B * T * H)
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++)
      for (let i = 0; i < T; i++) {
        const s = new Float64Array(T)
        let mx = -Infinity
        for (let j = 0; j < T; j++) {
          let dot = 0
          for (let e = 0; e < HS; e++) dot += q[(b * T + i) * H + h * HS + e] * k[(b * T + j) * H + h * HS + e]
          s[j] = dot / Math.sqrt(HS) + (relBias ? relBias[(j - i + T - 1) * NH + h] : 0)
          if (mask[b * T + j]) mx = Math.max(mx, s[j])
        }
        let z = 0
        for (let j = 0; j < T; j++) z += mask[b * T + j] ? Math.exp(s[j] - mx) : 0
        const row = ((b * NH + h) * T + i) * T
        for (let j = 0; j < T; j++) probs[row + j] = mask[b * T + j] && z > 0 ? Math.exp(s[j] - mx) / z : 0
        for (let e = 0; e < HS; e++) {
          let acc = 0
          for (let j = 0; j < T; j++) acc += probs[row + j] * (factor ? factor[row + j] : 1) * v[(b * T + j) * H + h * HS + e]
          ctx[(b * T + i) * H + h * HS + e] = acc
        }
      }
  return { ctx, probs }
}

export function poolClsRef(hidden: Float64Array, B: number, T: number, H: number): Float64Array {
  const out = new Float64Array(B * H)
  for (let b = 0; b < B; b++) for (let c = 0; c < H; c++) out[b * H + c] = hidden[b * T * H + c]
  return out
}

export function poolMeanRef(hidden: Float64Array, mask: Int32Array, B: number, T: number, H: number, sqrtLen = false): Float64Array {
  const out = new Float64Array(B * H)
  for (let b = 0; b < B; b++) {
    let n = 0
    for (let t = 0; t < T; t++) n += mask[b * T + t] ? 1 : 0
    if (n === 0) continue
    const d = sqrtLen ? Math.sqrt(n) : n
    for (let t = 0; t < T; t++) if (mask[b * T + t]) for (let c = 0; c < H; c++) out[b * H + c] += hidden[(b * T + t) * H + c] / d
  }
  return out
}

/** sentence-transformers' max_tokens: each column's largest value over the real tokens (0 for a sentence with none). */
export function poolMaxRef(hidden: Float64Array, mask: Int32Array, B: number, T: number, H: number): Float64Array {
  const out = new Float64Array(B * H)
  for (let b = 0; b < B; b++)
    for (let c = 0; c < H; c++) {
      let top = -Infinity
      for (let t = 0; t < T; t++) if (mask[b * T + t]) top = Math.max(top, hidden[(b * T + t) * H + c])
      out[b * H + c] = top === -Infinity ? 0 : top
    }
  return out
}

/** The pooling `pooling` of hidden [B, T, H] in float64. */
export function poolRef(pooling: string, hidden: Float64Array, mask: Int32Array, B: number, T: number, H: number): Float64Array {
  if (pooling === 'cls') return poolClsRef(hidden, B, T, H)
  if (pooling === 'mean' || pooling === 'mean_sqrt_len') return poolMeanRef(hidden, mask, B, T, H, pooling === 'mean_sqrt_len')
  if (pooling === 'max') return poolMaxRef(hidden, mask, B, T, H)
  throw new Error(`poolRef: unknown pooling ${pooling}`)
}

/** torch.optim.AdamW's update (decoupled weight decay), one step in float64, in place. */
export function adamwRef(
  p: Float64Array,
  g: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  lr: number,
  b1: number,
  b2: number,
  eps: number,
  wd: number,
  step: number,
): void {
  const bc1 = 1 - b1 ** step,
    bc2 = 1 - b2 ** step
  for (let i = 0; i < p.length; i++) {
    p[i] *= 1 - lr * wd
    m[i] = b1 * m[i] + (1 - b1) * g[i]
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
    p[i] -= (lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + eps)
  }
}

export const f64 = (a: ArrayLike<number>) => Float64Array.from(a)

export const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

/** Central differences of loss() w.r.t. x (perturbed in place and restored), at the given indices (default all). */
export function finiteDiff(loss: () => number, x: Float64Array, indices?: number[], h = 1e-6): Float64Array {
  const idx = indices ?? Array.from(x, (_, i) => i)
  const out = new Float64Array(idx.length)
  idx.forEach((i, n) => {
    const keep = x[i]
    x[i] = keep + h
    const up = loss()
    x[i] = keep - h
    const down = loss()
    x[i] = keep
    out[n] = (up - down) / (2 * h)
  })
  return out
}
