// losses.mse (distillation: sentence-transformers' MSELoss) on the CPU: its loss against a float64 mean squared error,
// its gradient against central differences of that reference, k views sharing one target row each (a sentence and
// its translation both taught the teacher's vector of the sentence), and misuse: every argument named.
import t from 'tap'
import { Tensor, losses } from '../lib/index.js'
import { addon } from '../lib/native.js'
import { nativeOf } from '../lib/tensor.js'
import { randn, relErr } from './helpers/parity.mjs'

/** The mean over rows·d of (z_rc − t_{r mod n, c})², in float64. */
function reference(z: ArrayLike<number>, target: ArrayLike<number>, rows: number, d: number): number {
  const n = target.length / d
  let sum = 0
  for (let r = 0; r < rows; r++) for (let c = 0; c < d; c++) sum += (z[r * d + c] - target[(r % n) * d + c]) ** 2
  return sum / (rows * d)
}

for (const [rows, n, d] of [
  [8, 8, 16],
  [10, 5, 7], // two views of 5 sentences, an odd width
  [6, 1, 33], // one target for every row
  [1, 1, 1],
])
  t.test(`loss and gradient: ${rows} rows of width ${d}, ${n} target rows`, async (t) => {
    const zv = randn(rows * d, rows + d)
    const target = randn(n * d, 7 * n + d, 0.5)
    const z = Tensor.from(zv, [rows, d])
    const { loss, grads } = losses.mse(z, target)
    const zd = Float64Array.from(zv)
    const want = reference(zd, target, rows, d)
    t.ok(Math.abs(loss - want) <= 1e-12 * Math.max(1, want), `loss ${loss}, float64 ${want}`)
    // Central differences of the float64 reference, and the exact gradient 2 (z - t) / (rows d).
    const g = grads.z.toFloat32Array()
    const h = 1e-4
    const fd = new Float64Array(rows * d)
    const exact = new Float64Array(rows * d)
    for (let i = 0; i < rows * d; i++) {
      const x = zd[i]
      zd[i] = x + h
      const up = reference(zd, target, rows, d)
      zd[i] = x - h
      const down = reference(zd, target, rows, d)
      zd[i] = x
      fd[i] = (up - down) / (2 * h)
      exact[i] = (2 * (x - target[(Math.floor(i / d) % n) * d + (i % d)])) / (rows * d)
    }
    t.ok(relErr(g, fd) < 1e-6, `gradient vs central differences: ${relErr(g, fd).toExponential(2)}`)
    t.ok(relErr(g, exact) < 1e-6, `gradient vs 2 (z - t) / (rows d): ${relErr(g, exact).toExponential(2)}`)
    // A caller's gradient tensor is written, and the same inputs give the same bits.
    const into = Tensor.zeros([rows, d])
    const again = losses.mse(z, target, { grads: { z: into } })
    t.equal(again.grads.z, into)
    t.equal(again.loss, loss)
    t.same(into.toFloat32Array(), g)
    for (const x of [z, grads.z, into]) x.dispose()
  })

t.test('weight and accumulate (how a step adds it to other terms)', async (t) => {
  const z = Tensor.from(randn(12, 3), [4, 3])
  const target = randn(12, 4)
  const base = losses.mse(z, target)
  const g = Tensor.from(new Float32Array(12).fill(1), [4, 3])
  const loss = addon.mse(nativeOf(z, 'z'), target, nativeOf(g, 'g'), 0.5, true)
  t.ok(Math.abs(loss - 0.5 * base.loss) < 1e-12, 'the loss times the weight')
  const b = base.grads.z.toFloat32Array()
  t.ok(
    g.toFloat32Array().every((v, i) => Math.abs(v - (1 + 0.5 * b[i])) < 1e-6),
    'the weighted gradient added to what the buffer held',
  )
  for (const x of [z, g, base.grads.z]) x.dispose()
})

t.test('misuse names the argument', async (t) => {
  const z = Tensor.from(randn(12, 5), [4, 3])
  t.throws(() => losses.mse(z, [1, 2, 3] as never), /Expected target to be a Float32Array but received/)
  t.throws(
    () => losses.mse(z, new Float32Array(5)),
    /Expected target to hold n rows of z's width 3, n dividing z's 4 rows, but it has 5 values/,
  )
  t.throws(() => losses.mse(z, new Float32Array(9)), /n dividing z's 4 rows, but it has 9 values/, '3 rows do not divide 4')
  t.throws(() => losses.mse(z, new Float32Array(0)), /but it has 0 values/)
  const bad = new Float32Array(6)
  bad[4] = NaN
  t.throws(() => losses.mse(z, bad), /target\[4\] is NaN: the teacher's vectors must be finite/)
  const nan = Tensor.from(
    Float32Array.from({ length: 12 }, (_, i) => (i === 7 ? Infinity : i)),
    [4, 3],
  )
  t.throws(() => losses.mse(nan, new Float32Array(3)), { name: 'RangeError', message: /^z contains NaN or Inf values/ })
  t.throws(
    () => losses.mse(z, new Float32Array(3), { grads: { z: Tensor.zeros([3, 4]) } }),
    /Expected grads\.z to be a tensor of z's shape \[4, 3\]/,
  )
  t.throws(() => losses.mse(z, new Float32Array(3), { grads: 5 } as never), /Expected grads to be \{ z: Tensor \}/)
  t.throws(() => losses.mse(z, new Float32Array(3), { temperature: 1 } as never), /temperature/)
  t.throws(() => losses.mse('z' as never, new Float32Array(3)), /z/)
  z.dispose()
})
