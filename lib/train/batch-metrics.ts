// Representation diagnostics of one batch (Wang & Isola, 2020), logged with every step:
//   alignment  = mean_i ‖u1_i − u2_i‖²                (lower: positives closer)
//   uniformity = log mean_{i<j} exp(−2‖u_i − u_j‖²)  (lower: embeddings spread over the sphere)
// u = z/‖z‖. A training step computes them over the batch's first METRIC_SENTENCES sentences: uniformity
// costs N²D, which over a whole batch of 65,536 would outlast the step by far; the step's device computes
// that sample's Gram matrix (one small product) and the host reads s² + 2sD numbers, never all of z.
import { normalizedRows64 } from '../util/vectors.js'

/** Sentences of a batch the step's alignment and uniformity are computed over (the first ones). */
export const METRIC_SENTENCES = 256

export function alignment(z1: Float32Array, z2: Float32Array, n: number, d: number): number {
  const a = normalizedRows64(z1, n, d),
    b = normalizedRows64(z2, n, d)
  let s = 0
  for (let i = 0; i < n * d; i++) s += (a[i] - b[i]) ** 2
  return s / n
}

export function uniformity(z: Float32Array, n: number, d: number): number {
  if (n < 2) return 0
  const u = normalizedRows64(z, n, d)
  let s = 0,
    pairs = 0
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      let dot = 0
      for (let k = 0; k < d; k++) dot += u[i * d + k] * u[j * d + k]
      s += Math.exp(-2 * (2 - 2 * dot)) // ‖u_i − u_j‖² = 2 − 2 u_i·u_j
      pairs++
    }
  return Math.log(s / pairs)
}

/** uniformity from the Gram matrix G = z zᵀ [n, n] of unnormalised rows (cos_ij = G_ij / √(G_ii G_jj)). */
export function uniformityFromGram(gram: Float32Array, n: number): number {
  if (n < 2) return 0
  const r = new Float64Array(n)
  for (let i = 0; i < n; i++) r[i] = 1 / Math.max(Math.sqrt(Math.max(gram[i * n + i], 0)), 1e-12)
  let s = 0
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) s += Math.exp(-2 * (2 - 2 * gram[i * n + j] * r[i] * r[j]))
  return Math.log(s / ((n * (n - 1)) / 2))
}
