// Small vector maths on the host, shared by SentenceEncoder, the STS evaluation, the demo's retrieval
// and the per-step batch diagnostics: dot products, cosine similarity, row normalisation.

/** Dot product of two equal-length vectors (summed left to right). */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0
  for (let i = 0; i < a.length; i++) s += a[i] * b[i]
  return s
}

/** Cosine similarity of two equal-length vectors; 0 (rather than NaN) when either is all zeros. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`vectors have different lengths (${a.length} and ${b.length})`)
  let ab = 0,
    aa = 0,
    bb = 0
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i]
    aa += a[i] * a[i]
    bb += b[i] * b[i]
  }
  return aa > 0 && bb > 0 ? ab / Math.sqrt(aa * bb) : 0
}

/** Scales each row of a row-major [n, dim] matrix to unit L2 norm, in place (zero rows stay zero). */
export function normalizeRows(v: Float32Array, dim: number): void {
  for (let r = 0; r < v.length; r += dim) {
    let s = 0
    for (let j = r; j < r + dim; j++) s += v[j] * v[j]
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0
    for (let j = r; j < r + dim; j++) v[j] *= inv
  }
}

/** The rows of [n, d] scaled to unit norm, in float64 (norms below 1e-12 are taken as 1e-12). */
export function normalizedRows64(z: Float32Array, n: number, d: number): Float64Array {
  const u = new Float64Array(n * d)
  for (let i = 0; i < n; i++) {
    let s = 0
    for (let k = 0; k < d; k++) s += z[i * d + k] ** 2
    const r = 1 / Math.max(Math.sqrt(s), 1e-12)
    for (let k = 0; k < d; k++) u[i * d + k] = z[i * d + k] * r
  }
  return u
}

/** The first k values of each `width`-long row of `rows` (k <= width), as a new array of k-long rows. */
export function truncateRows(rows: Float32Array, width: number, k: number): Float32Array {
  const n = rows.length / width
  const out = new Float32Array(n * k)
  for (let r = 0; r < n; r++) out.set(rows.subarray(r * width, r * width + k), r * k)
  return out
}
