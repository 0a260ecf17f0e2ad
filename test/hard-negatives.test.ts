// losses.simcse with hard negatives of any count M (k per example, the n-tuple format: M = k·N), on the
// CPU: against the float64 reference, finite differences, and the identities that say what the extra
// columns are (every hard negative of the batch is a column of every row).
import t from 'tap'
import { Tensor, losses } from 'simcsepp'
import { flat, naturalScale, randn, relErr, simcseRef, toMat, type Mat } from './helpers/reference.js'

/** z1, z2 [n, d] sharing a component (correlated positives), z3 [m, d] around it too (hard negatives). */
function views(n: number, m: number, d: number, seed: number): { z1: Float32Array; z2: Float32Array; z3: Float32Array } {
  const base = randn(n * d, seed)
  const noisy = (k: number) => base.map((v, i) => v + randn(n * d, seed * 31 + k, 0.6)[i])
  const z3 = new Float32Array(m * d)
  const extra = randn(m * d, seed * 17 + 5, 0.8)
  for (let i = 0; i < m * d; i++) z3[i] = base[i % (n * d)] + extra[i]
  return { z1: noisy(1), z2: noisy(2), z3 }
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b))

// M below, equal to and above N; N and M crossing the CPU tiles (128 rows, 512 columns).
const shapes: [number, number, number][] = [
  [1, 1, 5],
  [1, 4, 5],
  [2, 1, 3],
  [3, 9, 7],
  [5, 2, 1],
  [17, 51, 33],
  [64, 192, 16],
  [97, 30, 9],
  [130, 600, 12],
  [300, 900, 6],
]

t.test('simcse with M hard negatives matches the float64 reference', async (t) => {
  for (const [n, m, d] of shapes)
    for (const tau of [0.05, 1]) {
      const v = views(n, m, d, n * 13 + m + d)
      const ref = simcseRef(toMat(v.z1, n, d), toMat(v.z2, n, d), tau, toMat(v.z3, m, d))
      const out = losses.simcse(Tensor.from(v.z1, [n, d]), Tensor.from(v.z2, [n, d]), {
        temperature: tau,
        hardNegatives: Tensor.from(v.z3, [m, d]),
      })
      const what = `N=${n} M=${m} D=${d} τ=${tau}`
      t.ok(close(out.loss, ref.loss), `${what}: loss ${out.loss} vs ${ref.loss}`)
      t.same(out.grads.z3!.shape, [m, d], `${what}: dz3 has the hard negatives' shape`)
      const fl = 0.01 * naturalScale('cos', n, d, tau, v.z1)
      const grads: [string, Tensor, Mat][] = [
        ['dz1', out.grads.z1, ref.g1],
        ['dz2', out.grads.z2, ref.g2],
        ['dz3', out.grads.z3!, ref.g3!],
      ]
      for (const [name, got, want] of grads) {
        const err = relErr(got.toFloat32Array(), flat(want), fl)
        t.ok(err < 2e-4, `${what} ${name}: relative error ${err.toExponential(2)}`)
      }
    }
})

t.test('the hard-negative gradients agree with finite differences', async (t) => {
  for (const [n, m, d] of [
    [2, 6, 3],
    [4, 1, 5],
    [3, 7, 4],
  ] as [number, number, number][]) {
    const tau = 0.3
    const v = views(n, m, d, 7 * n + m)
    const out = losses.simcse(Tensor.from(v.z1, [n, d]), Tensor.from(v.z2, [n, d]), {
      temperature: tau,
      hardNegatives: Tensor.from(v.z3, [m, d]),
    })
    const zs = [toMat(v.z1, n, d), toMat(v.z2, n, d), toMat(v.z3, m, d)]
    const lossOf = () => simcseRef(zs[0], zs[1], tau, zs[2]).loss
    const native = [out.grads.z1, out.grads.z2, out.grads.z3!]
    zs.forEach((z, which) => {
      const h = 1e-6
      const fd = new Float64Array(z.length * d)
      for (let i = 0; i < z.length; i++)
        for (let k = 0; k < d; k++) {
          const keep = z[i][k]
          z[i][k] = keep + h
          const up = lossOf()
          z[i][k] = keep - h
          const down = lossOf()
          z[i][k] = keep
          fd[i * d + k] = (up - down) / (2 * h)
        }
      const err = relErr(native[which].toFloat32Array(), fd, 1e-6)
      t.ok(err < 1e-3, `N=${n} M=${m} D=${d} input ${which + 1}: relative error ${err.toExponential(2)}`)
    })
  }
})

t.test('the hard negatives are columns of every row: their order and their split do not matter', async (t) => {
  const [n, k, d] = [6, 3, 8]
  const m = k * n
  const v = views(n, m, d, 99)
  const z1 = Tensor.from(v.z1, [n, d]),
    z2 = Tensor.from(v.z2, [n, d])
  const all = losses.simcse(z1, z2, { hardNegatives: Tensor.from(v.z3, [m, d]) })
  // Reversed rows: the same loss, and the same gradient row for each hard negative.
  const reversed = new Float32Array(m * d)
  for (let i = 0; i < m; i++) reversed.set(v.z3.subarray((m - 1 - i) * d, (m - i) * d), i * d)
  const rev = losses.simcse(z1, z2, { hardNegatives: Tensor.from(reversed, [m, d]) })
  t.ok(close(rev.loss, all.loss), `reversed: loss ${rev.loss} vs ${all.loss}`)
  const g = all.grads.z3!.toFloat32Array(),
    gr = rev.grads.z3!.toFloat32Array()
  const back = new Float32Array(m * d)
  for (let i = 0; i < m; i++) back.set(gr.subarray((m - 1 - i) * d, (m - i) * d), i * d)
  // Up to the order of the float sums over the columns.
  const err = relErr(back, Float64Array.from(g), 1e-9)
  t.ok(err < 1e-5, `reversed: each negative's gradient row moves with it (relative error ${err.toExponential(2)})`)
  // One negative per example (the first k-th of the rows) is a loss between that of none and that of all.
  const none = losses.simcse(z1, z2).loss
  const one = losses.simcse(z1, z2, { hardNegatives: Tensor.from(v.z3.subarray(0, n * d), [n, d]) }).loss
  t.ok(none < one && one < all.loss, `more negatives, a larger loss: ${none} < ${one} < ${all.loss}`)
})

t.test('hardNegatives of another width, rank or device, and gz3 of another shape, are refused', async (t) => {
  const a = Tensor.from(randn(12, 1), [4, 3]),
    b = Tensor.from(randn(12, 2), [4, 3])
  t.throws(() => losses.simcse(a, b, { hardNegatives: Tensor.zeros([5, 4]) }), /hardNegatives to be a \[M, 3\] tensor.*\[5, 4\]/)
  t.throws(() => losses.simcse(a, b, { hardNegatives: Tensor.zeros([15]) }), /hardNegatives to be a \[M, 3\] tensor.*\[15\]/)
  const z3 = Tensor.from(randn(15, 3), [5, 3])
  const grads = { z1: Tensor.zeros([4, 3]), z2: Tensor.zeros([4, 3]), z3: Tensor.zeros([4, 3]) }
  t.throws(() => losses.simcse(a, b, { hardNegatives: z3, grads }), /grads\.z3 to be a tensor of hardNegatives's shape \[5, 3\]/)
  const ok = losses.simcse(a, b, { hardNegatives: z3, grads: { ...grads, z3: Tensor.zeros([5, 3]) } })
  t.ok(Number.isFinite(ok.loss) && ok.grads.z3!.shape[0] === 5, 'the right shapes work afterwards')
})
