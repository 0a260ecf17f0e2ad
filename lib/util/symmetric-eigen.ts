// Eigenvalues and eigenvectors of a real symmetric matrix in float64: Householder reduction to tridiagonal form, then
// the implicit QL algorithm with Wilkinson-like shifts (EISPACK's tred2 and tql2, as JAMA and Numerical Recipes
// present them). O(n³): ~1 s for n = 768 here, once per run (distillation's PCA), where an iterative method's
// convergence would depend on the gaps between eigenvalues.
//
// The reduction works on the rows of a row-major copy; the QL sweep rotates pairs of eigenvectors, so it keeps them as
// rows (the transpose of the reduction's columns), where a rotation touches two contiguous rows.

export interface SymmetricEigen {
  /** Eigenvalues, largest first. */
  values: Float64Array
  /** Eigenvector k (unit length) in row k: vectors[k · n + j]. */
  vectors: Float64Array
}

/** The eigen-decomposition of the symmetric n x n matrix `a` (row-major; only read). */
export function symmetricEigen(a: Float64Array, n: number): SymmetricEigen {
  if (a.length !== n * n) throw new RangeError(`symmetricEigen: expected ${n * n} entries, got ${a.length}`)
  const v = Float64Array.from(a)
  const d = new Float64Array(n),
    e = new Float64Array(n)
  tridiagonalize(v, d, e, n)
  // Columns of v become rows.
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      const t = v[i * n + j]
      v[i * n + j] = v[j * n + i]
      v[j * n + i] = t
    }
  diagonalize(v, d, e, n)
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => d[y] - d[x] || x - y)
  const values = Float64Array.from(order, (i) => d[i])
  const vectors = new Float64Array(n * n)
  order.forEach((i, k) => vectors.set(v.subarray(i * n, (i + 1) * n), k * n))
  return { values, vectors }
}

/** tred2: v (symmetric, row-major) becomes the orthogonal Q (columns) of Qᵀ A Q = tridiag(e, d, e); e[0] = 0. */
function tridiagonalize(v: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) d[j] = v[(n - 1) * n + j]
  for (let i = n - 1; i > 0; i--) {
    let scale = 0,
      h = 0
    for (let k = 0; k < i; k++) scale += Math.abs(d[k])
    if (scale === 0) {
      e[i] = d[i - 1]
      for (let j = 0; j < i; j++) {
        d[j] = v[(i - 1) * n + j]
        v[i * n + j] = 0
        v[j * n + i] = 0
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale
        h += d[k] * d[k]
      }
      let f = d[i - 1],
        g = Math.sqrt(h)
      if (f > 0) g = -g
      e[i] = scale * g
      h -= f * g
      d[i - 1] = f - g
      for (let j = 0; j < i; j++) e[j] = 0
      for (let j = 0; j < i; j++) {
        f = d[j]
        v[j * n + i] = f
        g = e[j] + v[j * n + j] * f
        for (let k = j + 1; k <= i - 1; k++) {
          g += v[k * n + j] * d[k]
          e[k] += v[k * n + j] * f
        }
        e[j] = g
      }
      f = 0
      for (let j = 0; j < i; j++) {
        e[j] /= h
        f += e[j] * d[j]
      }
      const hh = f / (h + h)
      for (let j = 0; j < i; j++) e[j] -= hh * d[j]
      for (let j = 0; j < i; j++) {
        f = d[j]
        g = e[j]
        for (let k = j; k <= i - 1; k++) v[k * n + j] -= f * e[k] + g * d[k]
        d[j] = v[(i - 1) * n + j]
        v[i * n + j] = 0
      }
    }
    d[i] = h
  }
  // Accumulate the transformations.
  for (let i = 0; i < n - 1; i++) {
    v[(n - 1) * n + i] = v[i * n + i]
    v[i * n + i] = 1
    const h = d[i + 1]
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = v[k * n + i + 1] / h
      for (let j = 0; j <= i; j++) {
        let g = 0
        for (let k = 0; k <= i; k++) g += v[k * n + i + 1] * v[k * n + j]
        for (let k = 0; k <= i; k++) v[k * n + j] -= g * d[k]
      }
    }
    for (let k = 0; k <= i; k++) v[k * n + i + 1] = 0
  }
  for (let j = 0; j < n; j++) {
    d[j] = v[(n - 1) * n + j]
    v[(n - 1) * n + j] = 0
  }
  v[(n - 1) * n + n - 1] = 1
  e[0] = 0
}

/** tql2: d, e tridiagonal; rows of v (Q's columns) are rotated into the eigenvectors, d into the eigenvalues. */
function diagonalize(v: Float64Array, d: Float64Array, e: Float64Array, n: number): void {
  for (let i = 1; i < n; i++) e[i - 1] = e[i]
  e[n - 1] = 0
  let f = 0,
    tst1 = 0
  const eps = 2 ** -52
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]))
    let m = l
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++
    if (m > l) {
      for (let iter = 0; ; iter++) {
        if (iter > 60) throw new Error('symmetricEigen: the QL iteration did not converge')
        let g = d[l]
        let p = (d[l + 1] - g) / (2 * e[l])
        let r = Math.hypot(p, 1)
        if (p < 0) r = -r
        d[l] = e[l] / (p + r)
        d[l + 1] = e[l] * (p + r)
        const dl1 = d[l + 1]
        let h = g - d[l]
        for (let i = l + 2; i < n; i++) d[i] -= h
        f += h
        p = d[m]
        let c = 1,
          c2 = c,
          c3 = c,
          s = 0,
          s2 = 0
        const el1 = e[l + 1]
        for (let i = m - 1; i >= l; i--) {
          c3 = c2
          c2 = c
          s2 = s
          g = c * e[i]
          h = c * p
          r = Math.hypot(p, e[i])
          e[i + 1] = s * r
          s = e[i] / r
          c = p / r
          p = c * d[i] - s * g
          d[i + 1] = h + s * (c * g + s * d[i])
          // Rotate eigenvector rows i and i + 1.
          const a = i * n,
            b = (i + 1) * n
          for (let k = 0; k < n; k++) {
            const t = v[b + k]
            v[b + k] = s * v[a + k] + c * t
            v[a + k] = c * v[a + k] - s * t
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1
        e[l] = s * p
        d[l] = c * p
        if (!(Math.abs(e[l]) > eps * tst1)) break
      }
    }
    d[l] += f
    e[l] = 0
  }
}
