// Independent float64 implementations of the SimCSE++ losses and their analytic gradients
// (docs/method.md §1-3, §5), written directly from the formulas with dense N×N / D×D matrices.
// Tests hold the native fp32 kernels to these, and these to finite differences.
export type Mat = Float64Array[] // rows

export function toMat(a: Float32Array | Float64Array, n: number, d: number): Mat {
  return Array.from({ length: n }, (_, i) => Float64Array.from(a.subarray(i * d, (i + 1) * d)))
}

export function flat(m: Mat): Float64Array {
  const d = m[0]?.length ?? 0
  const out = new Float64Array(m.length * d)
  m.forEach((r, i) => out.set(r, i * d))
  return out
}

const dot = (a: Float64Array, b: Float64Array) => a.reduce((s, v, k) => s + v * b[k], 0)
const norm = (a: Float64Array) => Math.max(Math.sqrt(dot(a, a)), 1e-12)
const zeros = (n: number, d: number): Mat => Array.from({ length: n }, () => new Float64Array(d))

function lse(v: number[]): number {
  const m = Math.max(...v)
  if (m === -Infinity) return -Infinity
  return m + Math.log(v.reduce((s, x) => s + Math.exp(x - m), 0))
}

// dL/dz from dL/du for u = z/|z|: (g - (g.u)u)/|z|.
function normBackward(z: Mat, gu: Mat): Mat {
  return z.map((zi, i) => {
    const n = norm(zi)
    const u = zi.map((v) => v / n)
    const gdu = dot(gu[i], u)
    return u.map((uk, k) => (gu[i][k] - gdu * uk) / n)
  })
}

const unit = (z: Mat) => z.map((r) => r.map((v) => v / norm(r)))

export interface RefOut {
  loss: number
  g1: Mat
  g2: Mat
  g0?: Mat
  g3?: Mat
}

export function simcseRef(z1: Mat, z2: Mat, tau: number, z3?: Mat): RefOut {
  const n = z1.length
  const u1 = unit(z1)
  const cols = unit(z3 ? [...z2, ...z3] : z2)
  const S = u1.map((a) => cols.map((b) => dot(a, b) / tau))
  let loss = 0
  const G = S.map((row, i) => {
    const l = lse(row)
    loss += l - row[i]
    return row.map((s, j) => (Math.exp(s - l) - (j === i ? 1 : 0)) / n)
  })
  loss /= n
  const d = z1[0].length
  const gu1 = zeros(n, d)
  const gcols = zeros(cols.length, d)
  for (let i = 0; i < n; i++)
    for (let j = 0; j < cols.length; j++)
      for (let k = 0; k < d; k++) {
        gu1[i][k] += (G[i][j] * cols[j][k]) / tau
        gcols[j][k] += (G[i][j] * u1[i][k]) / tau
      }
  const colsZ = z3 ? [...z2, ...z3] : z2
  const gz = normBackward(colsZ, gcols)
  return { loss, g1: normBackward(z1, gu1), g2: gz.slice(0, n), g3: z3 ? gz.slice(n) : undefined }
}

export function offDropoutRef(z1: Mat, z2: Mat, z0: Mat, tau: number, m = 1): RefOut {
  const n = z1.length,
    d = z1[0].length
  const [u1, u2, u0] = [unit(z1), unit(z2), unit(z0)]
  const gu1 = zeros(n, d),
    gu2 = zeros(n, d),
    gu0 = zeros(n, d)
  let loss = 0
  for (let i = 0; i < n; i++) {
    const p = (m * dot(u1[i], u2[i])) / tau
    const logits = [p]
    for (let j = 0; j < n; j++) if (j !== i) logits.push(dot(u0[i], u0[j]) / tau)
    const l = lse(logits)
    loss += l - p
    const a = Math.exp(p - l)
    for (let k = 0; k < d; k++) {
      gu1[i][k] += ((a - 1) * (m / tau) * u2[i][k]) / n
      gu2[i][k] += ((a - 1) * (m / tau) * u1[i][k]) / n
    }
    for (let j = 0; j < n; j++) {
      if (j === i) continue
      const b = Math.exp(dot(u0[i], u0[j]) / tau - l) / (n * tau)
      for (let k = 0; k < d; k++) {
        gu0[i][k] += b * u0[j][k]
        gu0[j][k] += b * u0[i][k]
      }
    }
  }
  return { loss: loss / n, g1: normBackward(z1, gu1), g2: normBackward(z2, gu2), g0: normBackward(z0, gu0) }
}

function bn(z: Mat): { x: Mat; s: Float64Array } {
  const n = z.length,
    d = z[0].length
  const s = new Float64Array(d)
  const x = zeros(n, d)
  for (let k = 0; k < d; k++) {
    let mean = 0
    for (let i = 0; i < n; i++) mean += z[i][k]
    mean /= n
    let v = 0
    for (let i = 0; i < n; i++) v += (z[i][k] - mean) ** 2
    s[k] = Math.sqrt(v / n + 1e-5)
    for (let i = 0; i < n; i++) x[i][k] = (z[i][k] - mean) / s[k]
  }
  return { x, s }
}

function bnBackward(x: Mat, s: Float64Array, g: Mat): Mat {
  const n = x.length,
    d = x[0].length
  const out = zeros(n, d)
  for (let k = 0; k < d; k++) {
    let mg = 0,
      mgx = 0
    for (let i = 0; i < n; i++) {
      mg += g[i][k] / n
      mgx += (g[i][k] * x[i][k]) / n
    }
    for (let i = 0; i < n; i++) out[i][k] = (g[i][k] - mg - x[i][k] * mgx) / s[k]
  }
  return out
}

export function dclRef(z1: Mat, z2: Mat, tauD: number): RefOut {
  const n = z1.length,
    d = z1[0].length
  const b1 = bn(z1),
    b2 = bn(z2)
  const C = Array.from({ length: d }, (_, a) =>
    Array.from({ length: d }, (_, b) => {
      let s = 0
      for (let i = 0; i < n; i++) s += b1.x[i][a] * b2.x[i][b]
      return s / (n * tauD)
    }),
  )
  let loss = 0
  const H = C.map((row, a) => {
    const l = lse(row)
    loss += l - row[a]
    return row.map((c, b) => (Math.exp(c - l) - (a === b ? 1 : 0)) / d)
  })
  const gx1 = zeros(n, d),
    gx2 = zeros(n, d)
  for (let i = 0; i < n; i++)
    for (let a = 0; a < d; a++)
      for (let b = 0; b < d; b++) {
        gx1[i][a] += (b2.x[i][b] * H[a][b]) / (n * tauD)
        gx2[i][b] += (b1.x[i][a] * H[a][b]) / (n * tauD)
      }
  return { loss: loss / d, g1: bnBackward(b1.x, b1.s, gx1), g2: bnBackward(b2.x, b2.s, gx2) }
}

// The error measure and the seeded inputs live in parity.mjs, shared with scripts/gpu-check.mjs.
export { naturalScale, randn, relErr } from './parity.mjs'
