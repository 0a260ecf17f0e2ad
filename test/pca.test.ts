// Distillation's projection (lib/train/pca.ts over lib/util/symmetric-eigen.ts): the symmetric eigen-decomposition
// against its definition (A v = λ v, orthonormal vectors, λ sorted, repeated and zero eigenvalues, n = 1 and 2), the
// principal components against a float64 covariance and against scikit-learn's PCA (where the CI's Python has it).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { principalComponents } from '../lib/train/pca.js'
import { symmetricEigen } from '../lib/util/symmetric-eigen.js'
import { randn } from './helpers/parity.mjs'
import { tempDir } from './helpers/train-corpus.js'

function randomSymmetric(n: number, seed: number): Float64Array {
  const r = randn(n * n, seed)
  const a = new Float64Array(n * n)
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = r[i * n + j]
  return a
}

/** The largest |A v - λ v| and |VᵀV - I| entries. */
function residuals(a: Float64Array, n: number, values: Float64Array, vectors: Float64Array): { eig: number; orth: number } {
  let eig = 0,
    orth = 0
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < n; i++) {
      let y = 0
      for (let j = 0; j < n; j++) y += a[i * n + j] * vectors[k * n + j]
      eig = Math.max(eig, Math.abs(y - values[k] * vectors[k * n + i]))
    }
    for (let l = 0; l < n; l++) {
      let d = 0
      for (let j = 0; j < n; j++) d += vectors[k * n + j] * vectors[l * n + j]
      orth = Math.max(orth, Math.abs(d - (k === l ? 1 : 0)))
    }
  }
  return { eig, orth }
}

t.test('symmetricEigen: A v = λ v, orthonormal vectors, largest first', async (t) => {
  const diag = new Float64Array(9)
  ;[3, 3, -1].forEach((x, i) => (diag[i * 3 + i] = x)) // a repeated eigenvalue
  const cases: [string, Float64Array, number][] = [
    ['1 x 1', Float64Array.of(-2.5), 1],
    ['2 x 2', Float64Array.of(2, 1, 1, 2), 2],
    ['diagonal, repeated', diag, 3],
    ['zero', new Float64Array(16), 4],
    ['random 7', randomSymmetric(7, 1), 7],
    ['random 60', randomSymmetric(60, 2), 60],
  ]
  for (const [name, a, n] of cases) {
    const { values, vectors } = symmetricEigen(a, n)
    const { eig, orth } = residuals(a, n, values, vectors)
    t.ok(
      eig < 1e-12 * Math.max(1, n) && orth < 1e-12 * Math.max(1, n),
      `${name}: |Av - λv| ${eig.toExponential(1)}, |VᵀV - I| ${orth.toExponential(1)}`,
    )
    for (let k = 1; k < n; k++) if (values[k] > values[k - 1]) t.fail(`${name}: eigenvalues out of order at ${k}`)
  }
  const near = (got: Float64Array, want: number[]) => want.every((w, i) => Math.abs(got[i] - w) < 1e-14)
  t.ok(near(symmetricEigen(Float64Array.of(2, 1, 1, 2), 2).values, [3, 1]), '[[2, 1], [1, 2]]: 3 and 1')
  t.ok(near(symmetricEigen(diag, 3).values, [3, 3, -1]), 'diag(3, 3, -1)')
  // The trace is the eigenvalues' sum.
  const a = randomSymmetric(30, 3)
  let trace = 0
  for (let i = 0; i < 30; i++) trace += a[i * 30 + i]
  const sum = symmetricEigen(a, 30).values.reduce((s, x) => s + x, 0)
  t.ok(Math.abs(sum - trace) < 1e-12, `Σλ = trace (${sum} vs ${trace})`)
  t.throws(() => symmetricEigen(new Float64Array(5), 2), /expected 4 entries, got 5/)
})

/** n rows of D correlated values (a random mixing of independent normals of decreasing scale) and a mean offset. */
function correlated(n: number, D: number, seed: number): Float32Array {
  const z = randn(n * D, seed),
    mix = randn(D * D, seed + 1)
  const x = new Float32Array(n * D)
  for (let r = 0; r < n; r++)
    for (let j = 0; j < D; j++) {
      let s = 0.5 + j / D
      for (let k = 0; k < D; k++) s += (z[r * D + k] / (1 + k)) * mix[k * D + j]
      x[r * D + j] = s
    }
  return x
}

t.test('principalComponents: the float64 covariance’s top eigenvectors, signed by their largest entry', async (t) => {
  const [n, D, k] = [400, 24, 10]
  const x = correlated(n, D, 5)
  const got = principalComponents(x, n, D, k)
  // float64 reference: the covariance and its eigenvectors.
  const mean = new Float64Array(D)
  for (let r = 0; r < n; r++) for (let j = 0; j < D; j++) mean[j] += x[r * D + j] / n
  const cov = new Float64Array(D * D)
  for (let r = 0; r < n; r++)
    for (let i = 0; i < D; i++) for (let j = 0; j < D; j++) cov[i * D + j] += (x[r * D + i] - mean[i]) * (x[r * D + j] - mean[j])
  const { values, vectors } = symmetricEigen(cov, D)
  let worst = 0
  for (let c = 0; c < k; c++) {
    const row = Array.from(vectors.subarray(c * D, (c + 1) * D))
    const big = row.reduce((a, v, j) => (Math.abs(v) > Math.abs(row[a]) ? j : a), 0)
    const sign = Math.sign(row[big])
    for (let j = 0; j < D; j++) worst = Math.max(worst, Math.abs(got[c * D + j] - sign * row[j]))
    if (got[c * D + big] <= 0) t.fail(`component ${c}: its largest entry is not positive`)
  }
  const gap = Math.min(...Array.from({ length: k }, (_, c) => (values[c] - values[c + 1]) / values[0]))
  t.ok(gap > 1e-4, `distinct eigenvalues (smallest relative gap ${gap.toExponential(2)})`)
  t.ok(worst < 1e-4, `components within ${worst.toExponential(2)} of float64's (the GEMM's products are float32)`)
  t.throws(() => principalComponents(x, n, D, D + 1), /k must be in \[1, 24\]/)
  t.throws(() => principalComponents(x.subarray(1), n, D, 2), /expected 400 x 24 values/)
})

t.test("principalComponents: scikit-learn's PCA components_", async (t) => {
  const python = process.env.SIMCSEPP_PYTHON || 'python3'
  const [n, D, k] = [300, 32, 12]
  const x = correlated(n, D, 9)
  const file = join(tempDir('simcsepp-pca-'), 'x.f32')
  writeFileSync(file, x)
  const script = [
    'import json, sys',
    'import numpy as np',
    'from sklearn.decomposition import PCA',
    `x = np.fromfile(sys.argv[1], dtype=np.float32).reshape(${n}, ${D}).astype(np.float64)`,
    `print(json.dumps(PCA(n_components=${k}, svd_solver='full').fit(x).components_.tolist()))`,
  ].join('\n')
  const r = spawnSync(python, ['-c', script, file], { encoding: 'utf8' })
  if (r.status !== 0) {
    t.comment(`scikit-learn skipped: ${python} cannot run it (${r.stderr.trim().split('\n').at(-1)})`)
    return
  }
  const theirs = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as number[][]
  const got = principalComponents(x, n, D, k)
  let worst = 0
  theirs.forEach((row, c) => row.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - got[c * D + j])))))
  t.ok(worst < 1e-4, `scikit-learn's components, signs included, within ${worst.toExponential(2)}`)
})
