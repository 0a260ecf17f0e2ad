// Principal components of a sample of vectors, as scikit-learn's PCA(n_components=k).fit(x).components_: the top k
// eigenvectors of the covariance of the centred rows, largest variance first, each signed so that its largest entry
// (in absolute value) is positive (scikit-learn's svd_flip on V). Distillation into a narrower student projects the
// teacher's vectors onto them (sentence-transformers' model_distillation recipe: a Dense layer without bias whose
// weight is the components, applied to the uncentred vectors).
//
// The covariance XcᵀXc is one native GEMM (float32 products of float64-centred rows: for 20,000 x 768 it takes
// ~0.1 s where float64 JavaScript would take seconds); the eigenvectors come from lib/util/symmetric-eigen.ts in float64.
import { linearForward } from '../ops.js'
import { Tensor } from '../tensor.js'
import { symmetricEigen } from '../util/symmetric-eigen.js'

/** The first k principal components of the n rows of x ([n, D] row-major): [k, D] row-major. */
export function principalComponents(x: Float32Array, n: number, D: number, k: number): Float32Array {
  return principalComponentsHeld(x, n, D, k).components
}

/**
 * principalComponents, and the fraction of the rows' variance the components hold (scikit-learn's
 * explained_variance_ratio_ summed): their eigenvalues over the sum of all.
 */
export function principalComponentsHeld(x: Float32Array, n: number, D: number, k: number): { components: Float32Array; explained: number } {
  if (x.length !== n * D) throw new RangeError(`principalComponents: expected ${n} x ${D} values, got ${x.length}`)
  if (!(k >= 1 && k <= Math.min(n, D))) throw new RangeError(`principalComponents: k must be in [1, ${Math.min(n, D)}], got ${k}`)
  const mean = new Float64Array(D)
  for (let r = 0; r < n; r++) for (let j = 0; j < D; j++) mean[j] += x[r * D + j]
  for (let j = 0; j < D; j++) mean[j] /= n
  // Centred and transposed, [D, n]: the GEMM's out = a · aᵀ is then the D x D scatter matrix.
  const centred = new Float32Array(D * n)
  for (let r = 0; r < n; r++) for (let j = 0; j < D; j++) centred[j * n + r] = x[r * D + j] - mean[j]
  const a = Tensor.from(centred, [D, n])
  const out = Tensor.zeros([D, D])
  let scatter: Float32Array
  try {
    linearForward(out, a, a, null)
    scatter = out.toFloat32Array()
  } finally {
    a.dispose()
    out.dispose()
  }
  // Symmetric by construction up to the GEMM's summation order: averaged with its transpose.
  const s = new Float64Array(D * D)
  for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) s[i * D + j] = (scatter[i * D + j] + scatter[j * D + i]) / 2
  const { values, vectors } = symmetricEigen(s, D)
  const components = new Float32Array(k * D)
  for (let c = 0; c < k; c++) {
    const row = vectors.subarray(c * D, (c + 1) * D)
    let at = 0
    for (let j = 1; j < D; j++) if (Math.abs(row[j]) > Math.abs(row[at])) at = j
    const sign = row[at] < 0 ? -1 : 1
    for (let j = 0; j < D; j++) components[c * D + j] = sign * row[j]
  }
  const sum = (to: number) => values.subarray(0, to).reduce((a, v) => a + v, 0)
  return { components, explained: sum(k) / sum(D) }
}
