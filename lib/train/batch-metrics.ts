// Representation diagnostics of one batch (Wang & Isola, 2020), logged with every step:
//   alignment  = mean_i ‖u1_i − u2_i‖²                (lower: positives closer)
//   uniformity = log mean_{i<j} exp(−2‖u_i − u_j‖²)  (lower: embeddings spread over the sphere)
// u = z/‖z‖. Computed on the host from the [N, D] views (N is a batch: cheap).
import { normalizedRows64 } from '../util/vectors.js'

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
