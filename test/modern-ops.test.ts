// ModernBERT's two ops (lib/ops.ts gegluForward/gegluBackward and rope) on the CPU: against the float64 GeGLU and
// transformers' rotary embedding (test/helpers/modernbert-reference.ts), the backward against finite differences
// and, for the rotation, its transpose identity; and the argument checks. CUDA is held to these by the parity tables
// (test/helpers/encoder-parity.mjs).
import t from 'tap'
import * as ops from '../lib/ops.js'
import { Tensor } from '../lib/tensor.js'
import { dot, finiteDiff, gelu } from './helpers/bert-reference.js'
import { gegluRef, ropeAngleRef, ropeRef } from './helpers/modernbert-reference.js'
import { randn, relErr } from './helpers/reference.js'

const T32 = (a: ArrayLike<number>, shape: number[]) => Tensor.from(Float32Array.from(a), shape)

t.test('GeGLU: GELU(a)·g forward, both halves of the backward against finite differences', async (t) => {
  for (const [R, I] of [
    [1, 1],
    [3, 33],
    [7, 130],
  ]) {
    const u = randn(R * 2 * I, R + I, 2.5)
    const dout = randn(R * I, R + I + 1)
    const out = Tensor.zeros([R, I])
    ops.gegluForward(out, T32(u, [R, 2 * I]))
    const err = relErr(out.toFloat32Array(), gegluRef(u, R, I))
    t.ok(err < 1e-6, `R=${R} I=${I}: forward within ${err.toExponential(2)}`)
    const du = Tensor.zeros([R, 2 * I]).fill(7) // overwritten
    ops.gegluBackward(du, T32(u, [R, 2 * I]), T32(dout, [R, I]))
    const u64 = Float64Array.from(u)
    const fd = finiteDiff(() => dot(gegluRef(u64, R, I), dout), u64)
    const gerr = relErr(du.toFloat32Array(), fd)
    t.ok(gerr < 1e-5, `R=${R} I=${I}: backward within ${gerr.toExponential(2)} of finite differences`)
  }
  // The gate's gradient is GELU(a)·dout exactly as the forward's GELU: at g = 1 the forward gives GELU(a).
  const a = Float32Array.from([-3, -0.5, 0, 0.5, 3])
  const out = Tensor.zeros([1, 5])
  ops.gegluForward(out, T32([...a, 1, 1, 1, 1, 1], [1, 10]))
  t.ok(relErr(out.toFloat32Array(), Array.from(a, gelu)) < 1e-6, 'g = 1: the exact GELU')
})

t.test("rotary embedding: transformers' rotation of q and k, v untouched, the inverse its transpose", async (t) => {
  for (const [B, T, NH, HS, theta] of [
    [1, 1, 1, 2, 10000],
    [2, 9, 3, 8, 10000],
    [3, 17, 2, 64, 160000],
    [1, 600, 1, 64, 10000], // positions far along: angles of hundreds of radians
  ]) {
    const H = NH * HS
    const x = randn(B * T * 3 * H, B + T + HS)
    const qkv = T32(x, [B, T, 3 * H])
    ops.rope(qkv, NH, theta)
    const got = qkv.toFloat32Array()
    const want = ropeRef(Float64Array.from(x), B, T, NH, HS, theta)
    const name = `B=${B} T=${T} NH=${NH} HS=${HS} theta=${theta}`
    t.ok(relErr(got, want) < 1e-6, `${name}: forward within ${relErr(got, want).toExponential(2)}`)
    const vSame = Array.from({ length: B * T }, (_, r) => got.subarray(r * 3 * H + 2 * H, (r + 1) * 3 * H)).every((v, r) =>
      v.every((e, i) => e === Math.fround(x[r * 3 * H + 2 * H + i])),
    )
    t.ok(vSame, `${name}: v bit for bit`)
    // <rope(x), y> = <x, rope⁻¹(y)>: the inverse is the backward.
    const y = randn(B * T * 3 * H, B + T + HS + 1)
    const back = T32(y, [B, T, 3 * H])
    ops.rope(back, NH, theta, true)
    const lhs = dot(want, y),
      rhs = dot(x, back.toFloat32Array())
    t.ok(Math.abs(lhs - rhs) <= 1e-5 * Math.sqrt(dot(want, want) * dot(y, y)), `${name}: <R x, y> = <x, R⁻¹ y>`)
    ops.rope(qkv, NH, theta, true)
    t.ok(relErr(qkv.toFloat32Array(), x) < 1e-6, `${name}: inverse after forward is the identity`)
  }
  // The angle is transformers' float32 one: position 1's pairs turn by exactly inv_freq.
  t.equal(ropeAngleRef(1, 0, 64, 10000), 1)
  t.equal(ropeAngleRef(0, 5, 64, 10000), 0)
})

t.test('GeGLU and rotary embedding: validation names the argument', async (t) => {
  const u = Tensor.zeros([2, 8])
  t.throws(() => ops.gegluForward(Tensor.zeros([2, 3]), u), /u/)
  t.throws(() => ops.gegluForward(u.view(0, [2, 4]), u), /out.*u|disjoint|overlap/i)
  t.throws(() => ops.gegluBackward(Tensor.zeros([2, 8]), u, Tensor.zeros([2, 5])), /u/)
  t.throws(() => ops.rope(Tensor.zeros([1, 2, 9]), 1, 10000), /even head size/)
  t.throws(() => ops.rope(Tensor.zeros([1, 2, 10]), 2, 10000), /3H/)
  t.throws(() => ops.rope(Tensor.zeros([1, 2, 24]), 2, 0), /theta/)
  t.throws(() => ops.rope(Tensor.zeros([1, 2, 24]), 2, Number.NaN), /theta/)
  t.throws(() => ops.rope(Tensor.zeros([1, 2, 24]), 2, Number.POSITIVE_INFINITY), /theta/)
  t.throws(() => ops.rope(Tensor.zeros([2, 24]), 2, 10000), /qkv/)
})
