// The CPU loss kernels against independent float64 references, finite differences and the
// invariants of docs/method.md §5.
import t, { type Test } from 'tap'
import { Tensor, losses } from 'simcsepp'
import { dclRef, flat, naturalScale, offDropoutRef, randn, relErr, simcseRef, toMat, type Mat } from './helpers/reference.js'

type Inputs = { a: Float32Array[]; n: number; d: number }

function inputs(n: number, d: number, seed: number, count = 3): Inputs {
  // z1, z2 share a component so the positives are positively correlated, as in training.
  const base = randn(n * d, seed)
  const a = Array.from({ length: count }, (_, k) => {
    const noise = randn(n * d, seed * 31 + k + 1, 0.6)
    return base.map((v, i) => v + noise[i])
  })
  return { a, n, d }
}

const mats = (x: Inputs) => x.a.map((v) => toMat(v, x.n, x.d))
const tensors = (x: Inputs) => x.a.map((v) => Tensor.from(v, [x.n, x.d]))

// fp32 logits carry ~1e-7·|S| absolute error, so where the loss saturates (P_ii -> 1) or the exact
// gradient vanishes (D = 1 for cosines, N = 2 for batch normalisation) the net gradient is far
// smaller than its terms. Errors are therefore relative to max(‖ref‖, 1% of the gradient's natural
// scale): a row whose softmax put all its mass on one wrong column.
function check(t: Tap, what: string, got: Tensor, want: Mat | undefined, tol: number, floor = 1e-9) {
  const err = relErr(got.toFloat32Array(), flat(want!), floor)
  t.ok(err < tol, `${what}: relative error ${err.toExponential(2)} < ${tol}`)
}
type Tap = Test

const sizes: [number, number][] = [
  [1, 1],
  [1, 5],
  [2, 1],
  [2, 3],
  [3, 7],
  [7, 1],
  [17, 33],
  [64, 16],
  [97, 9],
  [300, 12],
]

t.test('simcse matches the float64 reference', async (t) => {
  for (const [n, d] of sizes)
    for (const tau of [0.05, 1]) {
      const x = inputs(n, d, n * 100 + d)
      const [z1, z2, z3] = tensors(x)
      const [m1, m2, m3] = mats(x)
      const ref = simcseRef(m1, m2, tau)
      const fl = 0.01 * naturalScale('cos', n, d, tau, x.a[0])
      const out = losses.simcse(z1, z2, { temperature: tau })
      t.ok(
        Math.abs(out.loss - ref.loss) <= 1e-5 * Math.max(1, Math.abs(ref.loss)),
        `N=${n} D=${d} τ=${tau}: loss ${out.loss} vs ${ref.loss}`,
      )
      check(t, `N=${n} D=${d} τ=${tau} dz1`, out.grads.z1, ref.g1, 2e-4, fl)
      check(t, `N=${n} D=${d} τ=${tau} dz2`, out.grads.z2, ref.g2, 2e-4, fl)
      const refH = simcseRef(m1, m2, tau, m3)
      const outH = losses.simcse(z1, z2, { temperature: tau, hardNegatives: z3 })
      t.ok(Math.abs(outH.loss - refH.loss) <= 1e-5 * Math.max(1, Math.abs(refH.loss)), `hard negatives N=${n} D=${d}: loss`)
      check(t, `hard negatives N=${n} D=${d} dz1`, outH.grads.z1, refH.g1, 2e-4, fl)
      check(t, `hard negatives N=${n} D=${d} dz2`, outH.grads.z2, refH.g2, 2e-4, fl)
      check(t, `hard negatives N=${n} D=${d} dz3`, outH.grads.z3!, refH.g3, 2e-4, fl)
    }
})

t.test('offDropout matches the float64 reference', async (t) => {
  for (const [n, d] of sizes)
    for (const [tau, m] of [
      [0.05, 1],
      [0.05, 0.9],
      [0.5, 1.3],
    ]) {
      const x = inputs(n, d, n * 7 + d)
      const [z1, z2, z0] = tensors(x)
      const ref = offDropoutRef(...(mats(x) as [Mat, Mat, Mat]), tau, m)
      const fl = 0.01 * naturalScale('cos', n, d, tau, x.a[0])
      const out = losses.offDropout(z1, z2, z0, { temperature: tau, posScale: m })
      t.ok(
        Math.abs(out.loss - ref.loss) <= 1e-5 * Math.max(1, Math.abs(ref.loss)),
        `N=${n} D=${d} τ=${tau} m=${m}: loss ${out.loss} vs ${ref.loss}`,
      )
      check(t, `N=${n} D=${d} τ=${tau} m=${m} dz1`, out.grads.z1, ref.g1, 2e-4, fl)
      check(t, `N=${n} D=${d} τ=${tau} m=${m} dz2`, out.grads.z2, ref.g2, 2e-4, fl)
      check(t, `N=${n} D=${d} τ=${tau} m=${m} dz0`, out.grads.z0!, ref.g0, 2e-4, fl)
    }
})

t.test('dcl matches the float64 reference', async (t) => {
  for (const [n, d] of [...sizes, [40, 70] as [number, number]])
    for (const tauD of [5, 0.2]) {
      const x = inputs(n, d, n * 13 + d)
      const [z1, z2] = tensors(x)
      const [m1, m2] = mats(x)
      const ref = dclRef(m1, m2, tauD)
      const out = losses.dcl(z1, z2, { temperature: tauD })
      t.ok(
        Math.abs(out.loss - ref.loss) <= 1e-5 * Math.max(1, Math.abs(ref.loss)),
        `N=${n} D=${d} τd=${tauD}: loss ${out.loss} vs ${ref.loss}`,
      )
      const fl = 0.01 * naturalScale('dcl', n, d, tauD, x.a[0])
      check(t, `N=${n} D=${d} τd=${tauD} dz1`, out.grads.z1, ref.g1, 5e-4, fl)
      check(t, `N=${n} D=${d} τd=${tauD} dz2`, out.grads.z2, ref.g2, 5e-4, fl)
      if (n === 1 || d === 1) {
        const maxAbs = Math.max(...out.grads.z1.toFloat32Array().map(Math.abs), ...out.grads.z2.toFloat32Array().map(Math.abs))
        t.ok(maxAbs < 1e-6, `N=${n} D=${d}: gradients vanish (max |g| ${maxAbs})`)
      }
    }
})

// Central differences of the float64 reference loss, against the native fp32 gradient.
function fdCheck(t: Tap, name: string, lossOf: (zs: Mat[]) => number, x: Inputs, native: Tensor[], tol: number, floor: number) {
  const zs = mats(x)
  const h = 1e-6
  zs.forEach((z, which) => {
    if (!native[which]) return
    const fd = new Float64Array(x.n * x.d)
    for (let i = 0; i < x.n; i++)
      for (let k = 0; k < x.d; k++) {
        const keep = z[i][k]
        z[i][k] = keep + h
        const up = lossOf(zs)
        z[i][k] = keep - h
        const down = lossOf(zs)
        z[i][k] = keep
        fd[i * x.d + k] = (up - down) / (2 * h)
      }
    const err = relErr(native[which].toFloat32Array(), fd, floor)
    t.ok(err < tol, `${name} input ${which}: native gradient vs finite differences, relative error ${err.toExponential(2)}`)
  })
}

t.test('gradients agree with finite differences', async (t) => {
  for (const [n, d] of [
    [2, 1],
    [2, 3],
    [5, 4],
    [6, 9],
    [11, 3],
  ] as [number, number][]) {
    for (const tau of [0.05, 0.7]) {
      const x = inputs(n, d, n + d * 5, 3)
      const [z1, z2, z3] = tensors(x)
      const fl = 0.01 * naturalScale('cos', n, d, tau, x.a[0])
      const s = losses.simcse(z1, z2, { temperature: tau })
      fdCheck(t, `simcse N=${n} D=${d} τ=${tau}`, (zs) => simcseRef(zs[0], zs[1], tau).loss, x, [s.grads.z1, s.grads.z2], 1e-3, fl)
      const h = losses.simcse(z1, z2, { temperature: tau, hardNegatives: z3 })
      fdCheck(
        t,
        `simcse+hard N=${n} D=${d} τ=${tau}`,
        (zs) => simcseRef(zs[0], zs[1], tau, zs[2]).loss,
        x,
        [h.grads.z1, h.grads.z2, h.grads.z3!],
        1e-3,
        fl,
      )
      for (const m of [1, 0.9]) {
        const o = losses.offDropout(z1, z2, z3, { temperature: tau, posScale: m })
        fdCheck(
          t,
          `offDropout N=${n} D=${d} τ=${tau} m=${m}`,
          (zs) => offDropoutRef(zs[0], zs[1], zs[2], tau, m).loss,
          x,
          [o.grads.z1, o.grads.z2, o.grads.z0!],
          1e-3,
          fl,
        )
      }
    }
    for (const tauD of [5, 0.3]) {
      if (d === 1) continue
      const x = inputs(n, d, n * 3 + d, 2)
      const [z1, z2] = tensors(x)
      const o = losses.dcl(z1, z2, { temperature: tauD })
      fdCheck(
        t,
        `dcl N=${n} D=${d} τd=${tauD}`,
        (zs) => dclRef(zs[0], zs[1], tauD).loss,
        x,
        [o.grads.z1, o.grads.z2],
        1e-3,
        0.01 * naturalScale('dcl', n, d, tauD, x.a[0]),
      )
    }
  }
  // SimCSE++ is off-dropout + λ·DCL, gradients included.
  const x = inputs(6, 5, 99)
  const [z1, z2, z0] = tensors(x)
  const pp = losses.simcsePlusPlus(z1, z2, z0, { dclWeight: 0.1, dclTemperature: 5 })
  fdCheck(
    t,
    'simcse++ N=6 D=5',
    (zs) => offDropoutRef(zs[0], zs[1], zs[2], 0.05).loss + 0.1 * dclRef(zs[0], zs[1], 5).loss,
    x,
    [pp.grads.z1, pp.grads.z2, pp.grads.z0!],
    1e-3,
    0.01 * naturalScale('cos', 6, 5, 0.05, x.a[0]),
  )
})

t.test('invariants: z·∂L/∂z = 0 for cosine losses, DCL gradient columns sum to 0', async (t) => {
  const n = 40,
    d = 24
  const x = inputs(n, d, 5)
  const [z1, z2, z0] = tensors(x)
  const rowDots = (z: Float32Array, g: Float32Array) => {
    let worst = 0
    for (let i = 0; i < n; i++) {
      let s = 0,
        zz = 0,
        gg = 0
      for (let k = 0; k < d; k++) {
        s += z[i * d + k] * g[i * d + k]
        zz += z[i * d + k] ** 2
        gg += g[i * d + k] ** 2
      }
      worst = Math.max(worst, Math.abs(s) / Math.max(Math.sqrt(zz * gg), 1e-30))
    }
    return worst
  }
  const s = losses.simcse(z1, z2)
  const o = losses.offDropout(z1, z2, z0)
  for (const [name, z, g] of [
    ['simcse z1', x.a[0], s.grads.z1],
    ['simcse z2', x.a[1], s.grads.z2],
    ['off z1', x.a[0], o.grads.z1],
    ['off z2', x.a[1], o.grads.z2],
    ['off z0', x.a[2], o.grads.z0!],
  ] as [string, Float32Array, Tensor][]) {
    const w = rowDots(z, g.toFloat32Array())
    t.ok(w < 1e-5, `${name}: max |z_i·g_i|/(|z_i||g_i|) = ${w.toExponential(2)}`)
  }
  const dc = losses.dcl(z1, z2)
  for (const [name, g] of [
    ['dcl z1', dc.grads.z1],
    ['dcl z2', dc.grads.z2],
  ] as [string, Tensor][]) {
    const a = g.toFloat32Array()
    let worst = 0,
      scale = 0
    for (let k = 0; k < d; k++) {
      let sum = 0
      for (let i = 0; i < n; i++) {
        sum += a[i * d + k]
        scale = Math.max(scale, Math.abs(a[i * d + k]))
      }
      worst = Math.max(worst, Math.abs(sum))
    }
    t.ok(worst < 1e-5 * scale * n, `${name}: max |column sum| ${worst.toExponential(2)} (max |g| ${scale.toExponential(2)})`)
  }
})

t.test('edge cases: N = 1 gives zero instance losses and gradients; D = 1 gives zero DCL', async (t) => {
  const z = Tensor.from(Float32Array.from([0.3, -1, 2]), [1, 3])
  const w = Tensor.from(Float32Array.from([1, 0.5, -0.2]), [1, 3])
  for (const out of [losses.simcse(z, w), losses.offDropout(z, w, z)]) {
    t.equal(out.loss, 0)
    for (const g of Object.values(out.grads)) t.same(Array.from(g!.toFloat32Array()), [0, 0, 0])
  }
  const a = Tensor.from(Float32Array.from([1, 2, 3, 5]), [4, 1])
  const b = Tensor.from(Float32Array.from([2, -1, 0, 1]), [4, 1])
  const dc = losses.dcl(a, b)
  t.equal(dc.loss, 0)
  t.ok(dc.grads.z1.toFloat32Array().every((v) => v === 0))
})

t.test("simcsePlusPlus = offDropout + λ·dcl, and its defaults are the paper's", async (t) => {
  const x = inputs(33, 20, 3)
  const [z1, z2, z0] = tensors(x)
  const pp = losses.simcsePlusPlus(z1, z2, z0)
  const off = losses.offDropout(z1, z2, z0, { temperature: 0.05, posScale: 1 })
  const dc = losses.dcl(z1, z2, { temperature: 5 })
  t.ok(Math.abs(pp.loss - (off.loss + 0.1 * dc.loss)) < 1e-9, `loss ${pp.loss}`)
  const g1 = off.grads.z1.toFloat32Array().map((v, i) => v + 0.1 * dc.grads.z1.toFloat32Array()[i])
  t.ok(relErr(pp.grads.z1.toFloat32Array(), g1) < 1e-6, 'z1 gradient is the weighted sum')
  t.ok(relErr(pp.grads.z0!.toFloat32Array(), off.grads.z0!.toFloat32Array()) === 0, 'z0 gets no DCL gradient')
  const noDcl = losses.simcsePlusPlus(z1, z2, z0, { dclWeight: 0 })
  t.equal(noDcl.loss, off.loss)
})

t.test('saturated softmax: tiny gradients stay accurate (the positive logit dominates)', async (t) => {
  // cos(z1_i, z2_i) ≈ 0.9999 and τ = 0.05: 1 − P_ii ~ 1e-6, so the gradients are differences of
  // nearly equal numbers; they must still match float64 closely, without any error floor.
  for (const [n, d] of [
    [7, 768],
    [40, 64],
  ] as [number, number][]) {
    const z1 = randn(n * d, 5 + n)
    const noise = randn(n * d, 6 + n, 0.01)
    const z2 = z1.map((v, i) => v + noise[i])
    const z0 = randn(n * d, 7 + n) // off-dropout negatives: spread out
    const [m1, m2, m0] = [toMat(z1, n, d), toMat(z2, n, d), toMat(z0, n, d)]
    const [t1, t2, t0] = [z1, z2, z0].map((a) => Tensor.from(a, [n, d]))
    const s = losses.simcse(t1, t2),
      sr = simcseRef(m1, m2, 0.05)
    t.ok(Math.abs(s.loss - sr.loss) <= 1e-4 * Math.abs(sr.loss) + 1e-9, `simcse N=${n} D=${d}: loss ${s.loss} vs ${sr.loss}`)
    for (const [k, ref] of [
      ['z1', sr.g1],
      ['z2', sr.g2],
    ] as const) {
      const err = relErr(s.grads[k].toFloat32Array(), flat(ref))
      t.ok(
        err < 1e-3,
        `simcse N=${n} D=${d} d${k}: relative error ${err.toExponential(2)} (|g| ${Math.sqrt(flat(ref).reduce((a, v) => a + v * v, 0)).toExponential(1)})`,
      )
    }
    const o = losses.offDropout(t1, t2, t0),
      or = offDropoutRef(m1, m2, m0, 0.05)
    for (const [k, ref] of [
      ['z1', or.g1],
      ['z2', or.g2],
    ] as const) {
      const err = relErr(o.grads[k].toFloat32Array(), flat(ref))
      t.ok(err < 1e-3, `offDropout N=${n} D=${d} d${k}: relative error ${err.toExponential(2)}`)
    }
  }
})

t.test('the unfused benchmark baseline computes the same loss and gradients', async (t) => {
  const { addon } = await import('../lib/native.js')
  const { nativeOf, Tensor: LibTensor } = await import('../lib/tensor.js')
  for (const [n, d] of [
    [1, 4],
    [7, 33],
    [300, 12],
  ] as [number, number][]) {
    const x = inputs(n, d, 40 + n)
    const z = x.a.map((v) => LibTensor.from(v, [n, d]))
    const g = [0, 1, 2].map(() => LibTensor.zeros([n, d]))
    const [n1, n2, n0] = z.map((v) => nativeOf(v, 'z'))
    const r = addon.offDropoutUnfused(n1, n2, n0, 0.05, 0.9, ...(g.map((v) => nativeOf(v, 'g')) as [never, never, never]))
    const ref = offDropoutRef(...(mats(x) as [Mat, Mat, Mat]), 0.05, 0.9)
    t.ok(Math.abs(r.loss - ref.loss) <= 1e-5 * Math.max(1, ref.loss), `N=${n} D=${d}: loss ${r.loss} vs ${ref.loss}`)
    const fl = 0.01 * naturalScale('cos', n, d, 0.05, x.a[0])
    for (const [k, want] of [
      [0, ref.g1],
      [1, ref.g2],
      [2, ref.g0],
    ] as [number, Mat][]) {
      const err = relErr(g[k].toFloat32Array(), flat(want), fl)
      t.ok(err < 2e-4, `N=${n} D=${d} gradient ${k}: relative error ${err.toExponential(2)}`)
    }
    t.equal(r.workspaceBytes, (n * n + 4 * n * d + 5 * n) * 4, 'reports the N×N + 4ND + 5N floats it allocates')
  }
})
