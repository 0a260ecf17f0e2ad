// The CPU BERT encoder ops (lib/ops.ts): forwards against independent float64 references
// (test/helpers/bert-reference.ts), backwards against central finite differences of those
// references, accumulate/overwrite conventions, attention masking and dropout, AdamW, validation.
import t, { type Test } from 'tap'
import * as ops from '../lib/ops.js'
import { Tensor, nativeOf } from '../lib/tensor.js'
import { dropout } from '../lib/dropout.js'
import { addon } from '../lib/native.js'
import { randn, relErr } from './helpers/reference.js'
import { roundBf16Array } from './helpers/bf16.js'
import { Bf16Values } from '../lib/bf16-values.js'
import {
  adamwRef,
  attentionRef,
  dot,
  embeddingRef,
  erf,
  f64,
  finiteDiff,
  gelu,
  layerNormRef,
  linearRef,
  poolClsRef,
  poolMeanRef,
  poolMaxRef,
  type AttnDims,
} from './helpers/bert-reference.js'

type Tap = Test

const T32 = (a: ArrayLike<number>, shape: number[]) => Tensor.from(Float32Array.from(a), shape)
const arr = (x: Tensor) => x.toFloat32Array()
const sub = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (v, i) => v - b[i])
const filled = (shape: number[], v: number) => Tensor.zeros(shape).fill(v)

function close(t: Tap, what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number, floor = 1e-9) {
  const err = relErr(got, want, floor)
  t.ok(err < tol, `${what}: relative error ${err.toExponential(2)} < ${tol}`)
}

// Random indices (a subset of coordinates for finite differences on bigger tensors).
function someIndices(n: number, count: number, seed: number): number[] {
  if (count >= n) return Array.from({ length: n }, (_, i) => i)
  const r = randn(count, seed)
  return Array.from(r, (v) => Math.floor((Math.abs(v) * 7919) % n))
}

t.test('erf reference is accurate to 1e-14', async (t) => {
  const known: [number, number][] = [
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [1, 0.8427007929497149],
    [2, 0.9953222650189527],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
    [-1.5, -0.9661051464753108],
  ]
  for (const [x, want] of known) t.ok(Math.abs(erf(x) - want) < 1e-14, `erf(${x}) = ${erf(x)} vs ${want}`)
  t.ok(Math.abs(gelu(1) - 0.8413447460685429) < 1e-14, 'gelu(1) = Φ(1)')
})

t.test('layer norm: forward, saved statistics, backward vs finite differences', async (t) => {
  for (const [R, C, eps] of [
    [6, 7, 1e-5],
    [3, 1, 1e-12],
    [130, 96, 1e-12],
  ] as [number, number, number][]) {
    const x32 = randn(R * C, R + C, 1.5, 0.3),
      w32 = randn(C, 2 * C, 0.5, 1),
      b32 = randn(C, 3 * C, 0.2)
    const dout32 = randn(R * C, 5 * C)
    const [x, w, b] = [f64(x32), f64(w32), f64(b32)]
    const ref = layerNormRef(x, w, b, R, C, eps)
    const out = Tensor.zeros([R, C]),
      mean = Tensor.zeros([R]),
      rstd = Tensor.zeros([R])
    const X = T32(x32, [R, C]),
      W = T32(w32, [C]),
      Bi = T32(b32, [C])
    ops.layerNormForward(out, mean, rstd, X, W, Bi, eps)
    close(t, `R=${R} C=${C} out`, arr(out), ref.out, 1e-5)
    close(t, `R=${R} C=${C} mean`, arr(mean), ref.mean, 1e-6, 1)
    if (C > 1) close(t, `R=${R} C=${C} rstd`, arr(rstd), ref.rstd, 1e-5)
    // The output recomputed from the saved statistics: the forward's bits, apart and in place.
    const sameBits = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]))
    const applied = filled([R, C], 7)
    ops.layerNormApply(applied, X, mean, rstd, W, Bi)
    t.ok(sameBits(arr(applied), arr(out)), `R=${R} C=${C} layerNormApply: the forward's out bit for bit`)
    const inPlace = T32(x32, [R, C])
    ops.layerNormApply(inPlace, inPlace, mean, rstd, W, Bi)
    t.ok(sameBits(arr(inPlace), arr(out)), `R=${R} C=${C} layerNormApply in place`)

    const dinp = filled([R, C], 7),
      dW = filled([C], 0.5),
      dB = filled([C], -0.25)
    ops.layerNormBackward(dinp, dW, dB, T32(dout32, [R, C]), X, W, mean, rstd)
    const loss = () => dot(dout32, layerNormRef(x, w, b, R, C, eps).out)
    const ix = someIndices(R * C, 60, R)
    const gx = arr(dinp)
    close(
      t,
      `R=${R} C=${C} dinp (overwritten) vs FD`,
      ix.map((i) => gx[i]),
      finiteDiff(loss, x, ix),
      1e-4,
      1e-3,
    )
    close(t, `R=${R} C=${C} dweight (+=) vs FD`, sub(arr(dW), new Float64Array(C).fill(0.5)), finiteDiff(loss, w), 1e-4, 1e-3)
    close(t, `R=${R} C=${C} dbias (+=) vs FD`, sub(arr(dB), new Float64Array(C).fill(-0.25)), finiteDiff(loss, b), 1e-4, 1e-3)
    // Deterministic: the same call again adds exactly the same amounts.
    const dW2 = filled([C], 0.5),
      dB2 = filled([C], -0.25),
      dinp2 = Tensor.zeros([R, C])
    ops.layerNormBackward(dinp2, dW2, dB2, T32(dout32, [R, C]), X, W, mean, rstd)
    t.same([arr(dW2), arr(dB2), arr(dinp2)], [arr(dW), arr(dB), arr(dinp)], `R=${R} C=${C}: bitwise reproducible`)
  }
})

t.test('linear: forward with/without bias, backward (all grads, accumulate flags) vs finite differences', async (t) => {
  for (const [R, C, OC] of [
    [5, 4, 3],
    [1, 1, 1],
    [70, 90, 50],
  ]) {
    const x32 = randn(R * C, R * 3 + C),
      w32 = randn(OC * C, OC + 11, 0.3),
      b32 = randn(OC, OC + 12),
      dout32 = randn(R * OC, R + 13)
    const [x, w, b] = [f64(x32), f64(w32), f64(b32)]
    const X = T32(x32, [R, C]),
      W = T32(w32, [OC, C]),
      Bi = T32(b32, [OC]),
      dout = T32(dout32, [R, OC])
    const out = filled([R, OC], 3)
    ops.linearForward(out, X, W, Bi)
    close(t, `${R}x${C}->${OC} out with bias`, arr(out), linearRef(x, w, b, R, C, OC), 1e-5)
    ops.linearForward(out, X, W, null)
    close(t, `${R}x${C}->${OC} out without bias`, arr(out), linearRef(x, w, null, R, C, OC), 1e-5)

    const loss = () => dot(dout32, linearRef(x, w, b, R, C, OC))
    const ix = someIndices(R * C, 50, 1),
      iw = someIndices(OC * C, 50, 2)
    const fdx = finiteDiff(loss, x, ix),
      fdw = finiteDiff(loss, w, iw),
      fdb = finiteDiff(loss, b)
    const pick = (a: ArrayLike<number>, idx: number[]) => idx.map((i) => a[i])

    const dinp = filled([R, C], 9),
      dW = filled([OC, C], 0.5),
      dB = filled([OC], 0.125)
    ops.linearBackward(dinp, dW, dB, dout, X, W, false)
    close(t, `${R}x${C}->${OC} dinp (overwrite) vs FD`, pick(arr(dinp), ix), fdx, 1e-4, 1e-3)
    close(t, `${R}x${C}->${OC} dweight (+=) vs FD`, pick(sub(arr(dW), new Float64Array(OC * C).fill(0.5)), iw), fdw, 1e-4, 1e-3)
    close(t, `${R}x${C}->${OC} dbias (+=) vs FD`, sub(arr(dB), new Float64Array(OC).fill(0.125)), fdb, 1e-4, 1e-3)

    const before = arr(dinp),
      dW0 = arr(dW),
      dB0 = arr(dB)
    ops.linearBackward(dinp, dW, null, dout, X, W, true)
    close(t, `${R}x${C}->${OC} dinp (accumulateInput) = before + FD`, pick(sub(arr(dinp), before), ix), fdx, 1e-4, 1e-3)
    close(t, `${R}x${C}->${OC} dweight accumulates again`, pick(sub(arr(dW), dW0), iw), fdw, 1e-4, 1e-3)
    t.same(arr(dB), dB0, 'dbias null: dbias untouched')

    const dW3 = Tensor.zeros([OC, C]),
      dB3 = Tensor.zeros([OC])
    ops.linearBackward(null, dW3, dB3, dout, X, W)
    close(t, `${R}x${C}->${OC} dinp null: dweight still computed`, pick(arr(dW3), iw), fdw, 1e-4, 1e-3)
    close(t, `${R}x${C}->${OC} dinp null: dbias still computed`, arr(dB3), fdb, 1e-4, 1e-3)
  }
})

t.test('a sublayer output in bf16: stored by linearForward (from a bf16 input too), read by residualLayerNormForward', async (t) => {
  const z = (...shape: number[]) => Tensor.zeros(shape)
  const bits = (a: Float32Array, c: Float32Array) => a.length === c.length && a.every((v, i) => Object.is(v, c[i]))
  const bf16 = (R: number, C: number) => new Bf16Values(z(Math.ceil((R * C) / 2)), [R, C])
  for (const [R, C, sentences] of [
    [3, 5, 3], // odd R * C: the storage's last float half used
    [8, 36, 2],
    [64, 100, 4],
  ] as const) {
    const what = `${R}x${C}`
    const X = T32(randn(R * C, R + C + 1), [R, C]),
      W = T32(randn(C * C, C + 2, 1 / Math.sqrt(C)), [C, C]),
      Bi = T32(randn(C, C + 3), [C])
    const plain = z(R, C)
    ops.linearForward(plain, X, W, Bi, 'bf16')
    const y = bf16(R, C)
    ops.linearForward(y, X, W, Bi, 'bf16')
    const rounded = roundBf16Array(arr(plain))
    t.ok(bits(y.toFloat32Array(), rounded), `${what}: the product rounded to bf16 (round to nearest even)`)
    // From a bf16 input (ctx kept in bf16): as from its values in fp32.
    const both = bf16(R, C),
      viaFp32 = z(R, C)
    ops.linearForward(both, y, W, Bi, 'bf16')
    ops.linearForward(viaFp32, T32(rounded, [R, C]), W, Bi, 'bf16')
    t.ok(bits(both.toFloat32Array(), roundBf16Array(arr(viaFp32))), `${what}: from a bf16 input, as from its values in fp32`)
    // The residual LayerNorm reads y's values: as from them in fp32, bit for bit (dropout included).
    const x = T32(randn(R * C, R + C + 4, 1, 2), [R, C]),
      w = T32(randn(C, C + 5, 0.5, 1), [C]),
      b = T32(randn(C, C + 6, 0.5), [C])
    const site = { p: 0.1, seed: 5, offset: 3 }
    const run = (yy: Tensor | Bf16Values) => {
      const o = [z(R, C), z(R, C), z(R), z(R)] as const
      ops.residualLayerNormForward(...o, yy, x, w, b, 1e-12, sentences, site)
      return o.map(arr)
    }
    const [from16, from32] = [run(y), run(T32(rounded, [R, C]))]
    t.ok(
      from16.every((v, i) => bits(v, from32[i])),
      `${what}: residualLayerNormForward of a bf16 y: out, res, mean, rstd as of its values in fp32`,
    )
  }
  const fwd = (out: Tensor, y: Bf16Values) => ops.residualLayerNormForward(out, z(4, 3), z(4), z(4), y, z(4, 3), z(3), z(3), 1e-5, 2, null)
  t.throws(() => fwd(z(4, 3), new Bf16Values(z(5), [10])), /y holds 10 values, out 12/)
  const shared = z(4, 3)
  t.throws(() => fwd(shared, new Bf16Values(shared.view(0, [6]), [4, 3])), /y and out not to overlap/)
  const n = (...shape: number[]) => nativeOf(z(...shape), 'tensor')
  t.throws(() => addon.linearForward(n(6), n(6), n(3, 3), null, 'bf16', null, false, true, true), /outBf16 with inpBf16 needs rows/)
  t.throws(() => addon.linearForward(n(6), n(5), n(3, 3), null, 'bf16', null, false, true, true, 4), /inp/)
})

t.test('the MLP pre-activation kept in bf16 (Bf16Values): the rounded product, its GELU, and the backward', async (t) => {
  for (const [R, C, OC] of [
    [3, 5, 7], // odd R * OC: the storage's last float half used
    [70, 33, 65],
    [40, 100, 600],
  ]) {
    const what = `${R}x${C}->${OC}`
    const X = T32(randn(R * C, R + C, 1), [R, C]),
      W = T32(randn(OC * C, OC + 5, 1 / Math.sqrt(C)), [OC, C]),
      Bi = T32(randn(OC, OC + 6), [OC])
    const plain = Tensor.zeros([R, OC])
    ops.linearForward(plain, X, W, Bi, 'bf16')
    const pre = new Bf16Values(Tensor.zeros([Math.ceil((R * OC) / 2)]), [R, OC]),
      act = Tensor.zeros([R, OC])
    ops.linearForward(pre, X, W, Bi, 'bf16', act, 'only')
    const rounded = roundBf16Array(arr(plain))
    t.same(pre.toFloat32Array(), rounded, `${what}: the product rounded to bf16, kept`)
    const gelu = Tensor.zeros([R, OC])
    ops.geluForward(gelu, T32(rounded, [R, OC]))
    t.same(arr(act), arr(gelu), `${what}: geluOut is the GELU of the kept values, bit for bit`)
    // The backward reads them as its geluInput: as the same values in fp32, bit for bit.
    const dout = T32(randn(R * C, R + 7), [R, C]),
      W2 = T32(randn(C * OC, C + 9, 0.2), [C, OC])
    const grads = () => ({ dinp: Tensor.zeros([R, OC]), dW: filled([C, OC], 0.5), dB: filled([C], 0.25), s: filled([OC], 0.125) })
    const [a, b] = [grads(), grads()]
    ops.linearBackward(a.dinp, a.dW, a.dB, dout, null, W2, false, 'bf16', pre, true, null, a.s)
    ops.linearBackward(b.dinp, b.dW, b.dB, dout, null, W2, false, 'bf16', T32(rounded, [R, OC]), true, null, b.s)
    for (const k of ['dinp', 'dW', 'dB', 's'] as const) t.same(arr(a[k]), arr(b[k]), `${what}: backward ${k} bit for bit`)
    // The GELU kept in bf16 too (geluOut as Bf16Values: a training model's actBf16), which the backward reads as its
    // inp beside the geluInput instead of recomputing GELU(geluInput): the same bits.
    const pre2 = new Bf16Values(Tensor.zeros([Math.ceil((R * OC) / 2)]), [R, OC]),
      act16 = new Bf16Values(filled([Math.ceil((R * OC) / 2)], 3), [R, OC])
    ops.linearForward(pre2, X, W, Bi, 'bf16', act16)
    t.same(pre2.toFloat32Array(), rounded, `${what}: with a bf16 geluOut, the same kept pre-activation`)
    t.same(act16.toFloat32Array(), roundBf16Array(arr(gelu)), `${what}: a bf16 geluOut holds bf16(GELU(pre)), round to nearest even`)
    const c = grads()
    ops.linearBackward(c.dinp, c.dW, c.dB, dout, act16, W2, false, 'bf16', pre2, true, null, c.s)
    for (const k of ['dinp', 'dW', 'dB', 's'] as const)
      t.same(arr(c[k]), arr(a[k]), `${what}: backward ${k} with the kept GELU as inp, bit for bit`)
  }
  const [R, C, OC] = [4, 3, 5]
  const z = (...shape: number[]) => Tensor.zeros(shape)
  const pre = () => new Bf16Values(z(10), [R, OC])
  t.throws(() => new Bf16Values(z(11), [R, OC]), /storage must hold ceil\(20 \/ 2\) = 10 floats/)
  // Without geluOut a bf16 output is allowed (attention's q | k | v: test/attention-bf16-storage.test.ts), not a handoff.
  t.throws(() => ops.linearForward(pre(), z(R, C), z(OC, C), null, 'bf16', null, true), /bf16Next needs geluOut/)
  t.throws(() => ops.linearForward(pre(), z(R, C), z(OC, C), null, 'fp32', z(R, OC)), /outBf16 needs precision 'bf16'/)
  t.throws(
    () =>
      addon.linearForward(
        nativeOf(z(11), 'x'),
        nativeOf(z(R, C), 'x'),
        nativeOf(z(OC, C), 'x'),
        null,
        'bf16',
        nativeOf(z(R, OC), 'x'),
        false,
        true,
      ),
    /Expected out to hold 10 elements/,
  )
  const back = (geluInput: Bf16Values, inp: Tensor | null, precision: 'fp32' | 'bf16' = 'bf16') =>
    ops.linearBackward(z(R, OC), z(C, OC), null, z(R, C), inp, z(C, OC), false, precision, geluInput)
  t.throws(() => back(pre(), z(R, OC)), /geluInputBf16 needs geluInput, and no inp or a bf16 one/)
  const fwdKept = (act: Bf16Values | Tensor, out: Bf16Values | Tensor = pre(), next: boolean | 'only' = false) =>
    ops.linearForward(out, z(R, C), z(OC, C), null, 'bf16', act, next)
  t.throws(() => fwdKept(pre(), z(R, OC)), /geluOutBf16 needs geluOut and outBf16/)
  t.throws(() => fwdKept(pre(), pre(), 'only'), /bf16Next cannot be used with geluOutBf16/)
  t.throws(() => fwdKept(new Bf16Values(z(9), [18])), /Expected geluOut to hold 10 elements/)
  const shared = z(10)
  t.throws(() => fwdKept(new Bf16Values(shared, [R, OC]), new Bf16Values(shared, [R, OC])), /geluOut and out not to overlap/)
  t.throws(() => back(pre(), null, 'fp32'), /geluInputBf16 needs precision 'bf16'/)
  t.throws(
    () =>
      addon.linearBackward(
        nativeOf(z(R, OC), 'x'),
        nativeOf(z(C, OC), 'x'),
        null,
        nativeOf(z(R, C), 'x'),
        null,
        nativeOf(z(C, OC), 'x'),
        false,
        'bf16',
        nativeOf(z(9), 'x'),
        false,
        null,
        null,
        null,
        null,
        null,
        null,
        true,
      ),
    /Expected geluInput to hold 10 elements/,
  )
})

t.test('linear with the fused GELU: the unfused ops bit for bit, the float64 reference, both precisions', async (t) => {
  const nans = (shape: number[]) => T32(new Float32Array(shape[0] * shape[1]).fill(NaN), shape) // must not be read
  const dgelu = (x: number) => 0.5 * (1 + erf(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI)
  // The unpacked small path, tiles with edges, and K past one cache block (384) in the forward (C) and in the
  // backward's input gradient (OC). On 2 threads: 40 rows and 600 outputs (forward) or inputs (backward) are
  // one column rectangle per thread, each with its epilogue; 200 x 200 outputs (forward: 200 x 600 -> 200)
  // or inputs (backward: 200 x 200 -> 600) are shared, B packed by both threads per K block.
  for (const [R, C, OC] of [
    [3, 5, 7],
    [70, 33, 65],
    [150, 400, 50],
    [64, 40, 500],
    [40, 100, 600],
    [40, 600, 100],
    [200, 600, 200],
    [200, 200, 600],
  ])
    for (const precision of ['fp32', 'bf16'] as const) {
      const what = `${R}x${C}->${OC} ${precision}`
      const x32 = randn(R * C, R + C, 1),
        w32 = randn(OC * C, OC + 5, 1 / Math.sqrt(C)),
        b32 = randn(OC, OC + 6),
        dout32 = randn(R * C, R + 7)
      const X = T32(x32, [R, C]),
        W = T32(w32, [OC, C]),
        Bi = T32(b32, [OC])
      const pre = nans([R, OC]),
        act = nans([R, OC])
      ops.linearForward(pre, X, W, Bi, precision, act)
      const plain = nans([R, OC])
      ops.linearForward(plain, X, W, Bi, precision)
      t.same(arr(pre), arr(plain), `${what}: out is linearForward's`)
      const act2 = Tensor.zeros([R, OC])
      ops.geluForward(act2, pre)
      t.same(arr(act), arr(act2), `${what}: geluOut is geluForward(out) bit for bit`)
      const inPlace = nans([R, OC])
      ops.linearForward(inPlace, X, W, Bi, precision, inPlace)
      t.same(arr(inPlace), arr(act), `${what}: geluOut = out (in place) is the same GELU bit for bit`)
      // bf16Next 'only' leaves geluOut's fp32 values unwritten on CUDA only: the CPU writes them as always.
      const only = nans([R, OC])
      ops.linearForward(nans([R, OC]), X, W, Bi, precision, only, 'only')
      t.same(arr(only), arr(act), `${what}: bf16Next 'only' on the CPU: geluOut written`)
      if (precision === 'fp32') {
        const ref = linearRef(f64(x32), f64(w32), f64(b32), R, C, OC)
        close(t, `${what}: geluOut vs float64 GELU(x Wᵀ + b)`, arr(act), ref.map(gelu), 1e-5)
      }

      // Backward of out = GELU(h) · W2ᵀ with W2 = [C, OC] here playing output.dense: dinp through the GELU.
      const H = T32(randn(R * OC, R + 8, 3), [R, OC]),
        A = Tensor.zeros([R, OC]),
        W2 = T32(randn(C * OC, C + 9, 0.2), [C, OC]),
        dout = T32(dout32, [R, C])
      ops.geluForward(A, H)
      const grads = () => ({ dinp: nans([R, OC]), dW: filled([C, OC], 0.5), dB: filled([C], 0.25) })
      const fused = grads(),
        unfused = grads()
      ops.linearBackward(fused.dinp, fused.dW, fused.dB, dout, A, W2, false, precision, H)
      ops.linearBackward(unfused.dinp, unfused.dW, unfused.dB, dout, A, W2, false, precision)
      // At bf16 GELU' multiplies the product rounded to bf16 (as autocast keeps it; CUDA may store it so).
      const product = precision === 'bf16' ? T32(roundBf16Array(arr(unfused.dinp)), [R, OC]) : unfused.dinp
      if (precision === 'bf16') {
        const raw = arr(unfused.dinp)
        t.ok(
          arr(product).some((v, i) => v !== raw[i]),
          `${what}: the product is not bf16 already`,
        )
      }
      const dpre = Tensor.zeros([R, OC])
      ops.geluBackward(dpre, H, product)
      t.same(
        arr(fused.dinp),
        arr(dpre),
        `${what}: dinp is geluBackward(linearBackward's dinp${precision === 'bf16' ? ' in bf16' : ''}) bit for bit`,
      )
      t.same(arr(fused.dW), arr(unfused.dW), `${what}: dweight unchanged by the fusion`)
      t.same(arr(fused.dB), arr(unfused.dB), `${what}: dbias unchanged by the fusion`)
      // Without inp the op recomputes GELU(H) for the weight gradient: the same bits as with A = geluForward(H).
      const recomputed = grads()
      ops.linearBackward(recomputed.dinp, recomputed.dW, recomputed.dB, dout, null, W2, false, precision, H)
      t.same(arr(recomputed.dinp), arr(fused.dinp), `${what}, inp recomputed: dinp bit for bit`)
      t.same(arr(recomputed.dW), arr(fused.dW), `${what}, inp recomputed: dweight bit for bit`)
      t.same(arr(recomputed.dB), arr(fused.dB), `${what}, inp recomputed: dbias bit for bit`)
      // dinpColumnSums: += the float64 column sums of dinp as the op leaves it (after the GELU's derivative), and
      // bf16Next 'only' still writes dinp on the CPU.
      const summed = { ...grads(), sums: filled([OC], 0.25) }
      ops.linearBackward(summed.dinp, summed.dW, summed.dB, dout, null, W2, false, precision, H, 'only', null, summed.sums)
      t.same(arr(summed.dinp), arr(fused.dinp), `${what}, dinpColumnSums and 'only': dinp written, bit for bit`)
      t.same(arr(summed.dB), arr(fused.dB), `${what}, dinpColumnSums: dbias bit for bit`)
      t.same(arr(summed.sums), columnSumsPlus(arr(fused.dinp), R, OC, 0.25), `${what}: dinpColumnSums += Σ_rows dinp`)
      // The input a LayerNorm's output (layerNormInput): recomputed with layerNormApply's bits, without a buffer.
      const lnX = T32(randn(R * OC, R + 10, 2, 1), [R, OC]),
        lnMean = T32(randn(R, R + 11, 0.3), [R]),
        lnRstd = T32(
          Float32Array.from(randn(R, R + 12, 0.2), (v) => 1 + Math.abs(v)),
          [R],
        ),
        lnW = T32(randn(OC, OC + 13, 0.5, 1), [OC]),
        lnB = T32(randn(OC, OC + 14, 0.5), [OC])
      const applied = Tensor.zeros([R, OC])
      ops.layerNormApply(applied, lnX, lnMean, lnRstd, lnW, lnB)
      const [viaLn, viaInp] = [grads(), grads()]
      const ln = { x: lnX, mean: lnMean, rstd: lnRstd, weight: lnW, bias: lnB }
      ops.linearBackward(viaLn.dinp, viaLn.dW, viaLn.dB, dout, null, W2, false, precision, null, false, ln)
      ops.linearBackward(viaInp.dinp, viaInp.dW, viaInp.dB, dout, applied, W2, false, precision)
      for (const k of ['dinp', 'dW', 'dB'] as const)
        t.same(arr(viaLn[k]), arr(viaInp[k]), `${what}, layerNormInput: ${k} as with inp = layerNormApply(...) bit for bit`)
      if (precision === 'fp32') {
        t.throws(
          () => ops.linearBackward(viaLn.dinp, viaLn.dW, null, dout, applied, W2, false, precision, null, false, ln),
          /layerNormInput cannot be used with inp/,
        )
        t.throws(
          () => ops.linearBackward(viaLn.dinp, viaLn.dW, null, dout, null, W2, false, precision, H, false, ln),
          /layerNormInput cannot be used with geluInput/,
        )
        t.throws(
          () =>
            ops.linearBackward(viaLn.dinp, viaLn.dW, null, dout, null, W2, false, precision, null, false, {
              ...ln,
              rstd: Tensor.zeros([R + 1]),
            }),
          /layerNormInput\.rstd/,
        )
        t.throws(
          () => ops.linearBackward(viaLn.dinp, viaLn.dW, null, dout, null, W2),
          /inp may be null only with geluInput or layerNormInput/,
        )
      }
      if (precision === 'fp32') {
        const h = f64(arr(H)),
          w2 = f64(arr(W2)),
          g = f64(dout32)
        const want = new Float64Array(R * OC)
        for (let r = 0; r < R; r++)
          for (let o = 0; o < OC; o++) {
            let sum = 0
            for (let c = 0; c < C; c++) sum += g[r * C + c] * w2[c * OC + o]
            want[r * OC + o] = sum * dgelu(h[r * OC + o])
          }
        close(t, `${what}: dinp vs float64 (dout·W2) ⊙ GELU'(h)`, arr(fused.dinp), want, 1e-5)
      }
    }
  const z = (...shape: number[]) => Tensor.zeros(shape)
  const out = z(4, 6)
  const wide = z(4, 7)
  t.throws(
    () => ops.linearForward(wide.view(0, [4, 6]), z(4, 3), z(6, 3), null, 'fp32', wide.view(1, [4, 6])),
    /geluOut and out not to overlap/,
  )
  t.throws(() => ops.linearForward(out, z(4, 3), z(6, 3), null, 'fp32', z(4, 5)), /geluOut/)
  const inp = z(4, 6)
  t.throws(() => ops.linearForward(z(4, 6), inp, z(6, 6), null, 'fp32', inp), /geluOut and inp not to overlap/)
  t.throws(
    () => ops.linearForward(out, z(4, 3), z(6, 3), null, 'fp32', z(4, 6), 'yes' as never),
    /Expected bf16Next to be a boolean or 'only' but received/,
  )
  const dinp = z(4, 3)
  t.throws(() => ops.linearBackward(dinp, z(2, 3), null, z(4, 2), z(4, 3), z(2, 3), true, 'fp32', z(4, 3)), /accumulateInput/)
  t.throws(() => ops.linearBackward(null, z(2, 3), null, z(4, 2), z(4, 3), z(2, 3), false, 'fp32', z(4, 3)), /geluInput needs dinp/)
  t.throws(() => ops.linearBackward(dinp, z(2, 3), null, z(4, 2), z(4, 3), z(2, 3), false, 'fp32', dinp), /not to overlap/)
  t.throws(() => ops.linearBackward(dinp, z(2, 3), null, z(4, 2), z(4, 3), z(2, 3), false, 'fp32', z(3, 3)), /geluInput/)
  t.throws(() => ops.linearBackward(dinp, z(2, 3), null, z(4, 2), null, z(2, 3)), /inp may be null only with geluInput/)
  t.throws(
    () => ops.linearBackward(dinp, z(2, 3), null, z(4, 2), null, z(2, 3), false, 'fp32', z(4, 5)),
    /geluInput's last dimension to be C = 3/,
  )
  const sums = (n: number) => z(n)
  t.throws(
    () => ops.linearBackward(null, z(2, 3), null, z(4, 2), z(4, 3), z(2, 3), false, 'fp32', null, false, null, sums(3)),
    /dinpColumnSums needs dinp/,
  )
  t.throws(
    () => ops.linearBackward(dinp, z(2, 3), null, z(4, 2), z(4, 3), z(2, 3), false, 'fp32', null, false, null, sums(2)),
    /dinpColumnSums/,
  )
  t.throws(
    () => ops.linearBackward(dinp, z(2, 3), null, z(4, 2), z(4, 3), z(2, 3), false, 'fp32', null, false, null, dinp.view(0, [3])),
    /dinpColumnSums and dinp not to overlap/,
  )
  const dbias = z(3)
  t.throws(
    () => ops.linearBackward(dinp, z(3, 3), dbias, z(4, 3), z(4, 3), z(3, 3), false, 'fp32', null, false, null, dbias),
    /dinpColumnSums and dbias not to overlap/,
  )
  t.throws(
    () => ops.linearBackward(dinp, z(2, 3), null, z(4, 2), z(4, 3), z(2, 3), false, 'fp32', z(4, 3), 'yes' as never),
    /Expected bf16Next to be a boolean or 'only' but received/,
  )
  // Without a GELU: the sums of dinp as accumulated.
  const X = T32(randn(12, 41, 1), [4, 3]),
    W = T32(randn(6, 42, 1), [2, 3]),
    g = T32(randn(8, 43, 1), [4, 2])
  const acc = T32(randn(12, 44, 1), [4, 3]),
    accSums = z(3)
  ops.linearBackward(acc, z(2, 3), null, g, X, W, true, 'fp32', null, false, null, accSums)
  t.same(arr(accSums), columnSumsPlus(arr(acc), 4, 3, 0), 'accumulateInput: the sums of dinp as the op leaves it')
})

/** fround(start + fround(Σ_rows x[r, c] in float64)) for each column: dinpColumnSums' contract. */
function columnSumsPlus(x: Float32Array, R: number, C: number, start: number): Float32Array {
  const out = new Float32Array(C)
  for (let c = 0; c < C; c++) {
    let s = 0
    for (let r = 0; r < R; r++) s += x[r * C + c]
    out[c] = Math.fround(start + Math.fround(s))
  }
  return out
}

t.test('gelu (exact erf) and tanh: forward and backward', async (t) => {
  const xs = Float32Array.from([...randn(300, 77, 2.5), 0, 1e-3, -1e-3, 5, -5, 8, -8, 0.5, -0.5])
  const n = xs.length
  const dout32 = randn(n, 78)
  const X = T32(xs, [n]),
    out = Tensor.zeros([n]),
    d = filled([n], 4)
  ops.geluForward(out, X)
  close(t, 'gelu forward', arr(out), Array.from(xs, gelu), 1e-6)
  const o = arr(out)
  t.ok(
    xs.every((x, i) => Math.abs(o[i] - gelu(x)) <= 1e-6 * Math.max(1, Math.abs(gelu(x)))),
    'gelu forward element-wise within 1e-6',
  )
  ops.geluBackward(d, X, T32(dout32, [n]))
  const fd = Float64Array.from(xs, (x, i) => (dout32[i] * (gelu(x + 1e-6) - gelu(x - 1e-6))) / 2e-6)
  close(t, 'gelu backward vs FD', arr(d), fd, 1e-5)

  ops.tanhForward(out, X)
  close(t, 'tanh forward', arr(out), Array.from(xs, Math.tanh), 1e-6)
  ops.tanhBackward(d, out, T32(dout32, [n]))
  const fdt = Float64Array.from(xs, (x, i) => (dout32[i] * (Math.tanh(x + 1e-6) - Math.tanh(x - 1e-6))) / 2e-6)
  close(t, 'tanh backward vs FD', arr(d), fdt, 1e-5)
  ops.tanhForward(out, out.view(0, [n])) // in place
  close(
    t,
    'tanh in place (out aliases inp)',
    arr(out),
    Array.from(xs, (x) => Math.tanh(Math.fround(Math.tanh(x)))),
    1e-6,
  )
})

t.test('gelu to float accuracy over [-12, 12], both tails included (vectorised normal CDF)', async (t) => {
  // Φ in float64 without cancellation: 1 - erfc/2 or erfc/2, erfc from the series below 2 and from its
  // continued fraction erfc(y) = e^(-y²)/√π / (y + (1/2)/(y + 1/(y + (3/2)/(y + ...)))) above.
  const erfc = (y: number) => {
    if (y < 2) return 1 - erf(y)
    let k = y
    for (let n = 80; n >= 1; n--) k = y + n / 2 / k
    return Math.exp(-y * y) / Math.sqrt(Math.PI) / k
  }
  const phi = (x: number) => (x < 0 ? erfc(-x / Math.SQRT2) / 2 : 1 - erfc(x / Math.SQRT2) / 2)
  const xs = Float32Array.from({ length: 24001 }, (_, i) => -12 + i / 1000)
  const n = xs.length
  const out = Tensor.zeros([n]),
    d = Tensor.zeros([n])
  ops.geluForward(out, T32(xs, [n]))
  ops.geluBackward(d, T32(xs, [n]), Tensor.from(new Float32Array(n).fill(1), [n]))
  const [o, g] = [arr(out), arr(d)]
  let worstF = 0,
    worstB = 0,
    tailF = 0
  for (let i = 0; i < n; i++) {
    const x = xs[i]
    const f = x * phi(x),
      b = phi(x) + (x * Math.exp((-x * x) / 2)) / Math.sqrt(2 * Math.PI)
    // The derivative Φ + xφ crosses 0 near x = -0.75: its error is measured against its terms' size.
    const ef = Math.abs(o[i] - f) / Math.max(Math.abs(f), 1e-30),
      eb = Math.abs(g[i] - b) / (phi(x) + Math.abs(x * Math.exp((-x * x) / 2)) / Math.sqrt(2 * Math.PI))
    // The float rounding of the exponent -x²/2 (6e-8 · x²/2 absolute) grows into the left tail.
    if (x >= -5) {
      worstF = Math.max(worstF, f === 0 ? Math.abs(o[i]) : ef)
      worstB = Math.max(worstB, eb)
    } else tailF = Math.max(tailF, ef, eb)
  }
  // For comparison, x (1 + erf(x/√2)) / 2 with a correctly rounded float erf has a relative error of up
  // to 5e-2 at x = -5: 1 + erf cancels (float spacing 6e-8 below 1, against 1 + erf = 5.7e-7).
  t.ok(worstF < 1e-6, `forward on [-5, 12]: relative error ${worstF.toExponential(2)} < 1e-6`)
  t.ok(worstB < 1e-6, `backward on [-5, 12]: relative error ${worstB.toExponential(2)} < 1e-6`)
  t.ok(tailF < 1e-5, `both on [-12, -5): relative error ${tailF.toExponential(2)} < 1e-5 (GELU there is at most 1.4e-6)`)
})

t.test('add, addInplace, scaleInplace', async (t) => {
  const n = 40000
  const a32 = randn(n, 1),
    b32 = randn(n, 2)
  const A = T32(a32, [n]),
    B = T32(b32, [n]),
    out = Tensor.zeros([n])
  ops.add(out, A, B)
  t.same(
    arr(out),
    Float32Array.from(a32, (v, i) => v + b32[i]),
    'add is exact',
  )
  ops.add(A, A, B) // out aliases a
  t.same(arr(A), arr(out), 'add with out = a')
  ops.addInplace(A, B)
  t.same(
    arr(A),
    Float32Array.from(arr(out), (v, i) => v + b32[i]),
    'addInplace',
  )
  ops.scaleInplace(B, 0.5)
  t.same(
    arr(B),
    Float32Array.from(b32, (v) => v * 0.5),
    'scaleInplace',
  )
})

t.test('embeddings: forward and scatter-add backward with repeated ids', async (t) => {
  const V = 5,
    P = 6,
    TV = 2,
    H = 3
  const ids = Int32Array.from([1, 3, 1, 1, 0, 4, 3, 1, 2, 1]),
    BT = ids.length
  const posIds = Int32Array.from([0, 1, 2, 3, 4, 0, 1, 2, 3, 5]),
    typeIds = Int32Array.from([0, 0, 0, 1, 1, 0, 1, 0, 0, 0])
  const w32 = randn(V * H, 1),
    p32 = randn(P * H, 2),
    y32 = randn(TV * H, 3),
    dout32 = randn(BT * H, 4)
  const [w, p, y] = [f64(w32), f64(p32), f64(y32)]
  const out = Tensor.zeros([2, 5, H])
  ops.embeddingForward(out, ids, posIds, typeIds, T32(w32, [V, H]), T32(p32, [P, H]), T32(y32, [TV, H]))
  close(t, 'forward', arr(out), embeddingRef(ids, posIds, typeIds, w, p, y, H), 1e-6)
  const dW = filled([V, H], 0.25),
    dP = filled([P, H], 0.25),
    dY = filled([TV, H], 0.25)
  ops.embeddingBackward(dW, dP, dY, T32(dout32, [BT, H]), ids, posIds, typeIds)
  const loss = () => dot(dout32, embeddingRef(ids, posIds, typeIds, w, p, y, H))
  const q = (n: number) => new Float64Array(n).fill(0.25)
  close(t, 'dword (+=) vs FD', sub(arr(dW), q(V * H)), finiteDiff(loss, w), 1e-5, 1e-3)
  close(t, 'dpos (+=) vs FD', sub(arr(dP), q(P * H)), finiteDiff(loss, p), 1e-5, 1e-3)
  close(t, 'dtype (+=) vs FD', sub(arr(dY), q(TV * H)), finiteDiff(loss, y), 1e-5, 1e-3)
  // A null gradient table is skipped; the others get the same sums (its index range is not checked).
  const dP2 = filled([P, H], 0.25)
  ops.embeddingBackward(null, dP2, null, T32(dout32, [BT, H]), ids, posIds, typeIds)
  t.same(arr(dP2), arr(dP), 'dpos alone equals dpos with the other tables')
  t.throws(
    () => ops.embeddingBackward(null, filled([P, H + 1], 0), null, T32(dout32, [BT, H]), ids, posIds, typeIds),
    /Expected dpos to have H = 3 columns \(as dout\)/,
  )

  // Many threads' worth of columns and rows: against a float64 scatter, and reproducible.
  const V2 = 50,
    H2 = 200,
    BT2 = 300
  const ids2 = Int32Array.from(randn(BT2, 9), (v) => Math.floor(Math.abs(v) * 1000) % V2)
  const pos2 = Int32Array.from({ length: BT2 }, (_, i) => i % 20),
    typ2 = Int32Array.from({ length: BT2 }, (_, i) => i % 2)
  const g2 = randn(BT2 * H2, 10)
  const want = new Float64Array(V2 * H2)
  for (let r = 0; r < BT2; r++) for (let c = 0; c < H2; c++) want[ids2[r] * H2 + c] += g2[r * H2 + c]
  const run = () => {
    const a = Tensor.zeros([V2, H2]),
      b = Tensor.zeros([20, H2]),
      c = Tensor.zeros([2, H2])
    ops.embeddingBackward(a, b, c, T32(g2, [BT2, H2]), ids2, pos2, typ2)
    return arr(a)
  }
  const first = run()
  close(t, 'large dword vs float64 scatter', first, want, 1e-6)
  t.same(run(), first, 'large dword reproducible')
})

// The order of the adds (native/common/embedding_runs.h): a table row's rows in runs of 256, each summed from its
// first row, the runs' sums then added to the row in order. Both backends add in this order, so it is checked
// bit for bit here against float32 arithmetic in JavaScript (Math.fround after every add).
t.test('embeddings: the backward adds a row in runs of 256 rows, bit for bit', async (t) => {
  const RUN = 256,
    H = 5,
    BT = 1300
  // Type 0 on 1,100 rows (5 runs, the last of 76), type 1 on 200 (one run); a word shared by 600 rows
  // (3 runs), the others ~10 rows each; positions 0..99 (13 rows each).
  const typeIds = Int32Array.from({ length: BT }, (_, r) => (r % 6 === 1 && r < 1200 ? 1 : 0))
  const ids = Int32Array.from({ length: BT }, (_, r) => (r % 2 === 0 && r < 1200 ? 7 : 8 + (r % 70)))
  const posIds = Int32Array.from({ length: BT }, (_, r) => r % 100)
  const dout = Float32Array.from(randn(BT * H, 21), (v, i) => v * (1 + (i % 7) * 1e3)) // magnitudes that round
  const start = (n: number, seed: number) => Float32Array.from(randn(n * H, seed))
  /** float32 reference: `table` += dout rows of `idArr`, in the runs' order. */
  const reference = (table: Float32Array, idArr: Int32Array) => {
    const out = Float32Array.from(table)
    const rowsOf = new Map<number, number[]>()
    idArr.forEach((id, r) => rowsOf.set(id, [...(rowsOf.get(id) ?? []), r]))
    for (const [id, rows] of rowsOf)
      for (let c = 0; c < H; c++)
        for (let a = 0; a < rows.length; a += RUN) {
          let s = dout[rows[a] * H + c]
          for (let k = a + 1; k < Math.min(rows.length, a + RUN); k++) s = Math.fround(s + dout[rows[k] * H + c])
          out[id * H + c] = Math.fround(out[id * H + c] + s)
        }
    return out
  }
  const [w0, p0, y0] = [start(80, 22), start(100, 23), start(2, 24)]
  const [dW, dP, dY] = [T32(w0, [80, H]), T32(p0, [100, H]), T32(y0, [2, H])]
  ops.embeddingBackward(dW, dP, dY, T32(dout, [BT, H]), ids, posIds, typeIds)
  t.same(dW.toFloat32Array(), reference(w0, ids), 'word rows (one of 600 rows: 3 runs)')
  t.same(dP.toFloat32Array(), reference(p0, posIds), 'position rows (13 rows each: one run)')
  t.same(dY.toFloat32Array(), reference(y0, typeIds), 'type rows (1,100 rows: 5 runs; and one run)')
  // The plain left-to-right sum into a non-zero row differs: the runs' order is what is checked.
  const plain = Float32Array.from(y0)
  typeIds.forEach((id, r) => {
    for (let c = 0; c < H; c++) plain[id * H + c] = Math.fround(plain[id * H + c] + dout[r * H + c])
  })
  t.notSame(plain, dY.toFloat32Array(), 'not the plain row-order sum')
  // From a zero gradient, a row of at most one run gets exactly the plain row-order sum.
  const dP0 = Tensor.zeros([100, H])
  ops.embeddingBackward(null, dP0, null, T32(dout, [BT, H]), ids, posIds, typeIds)
  const plainPos = new Float32Array(100 * H)
  posIds.forEach((id, r) => {
    for (let c = 0; c < H; c++) plainPos[id * H + c] = Math.fround(plainPos[id * H + c] + dout[r * H + c])
  })
  t.same(dP0.toFloat32Array(), plainPos, 'one run from zero: the plain sum')
})

// ---------------------------------------------------------------------------------------------
// Attention

interface AttnCase {
  d: AttnDims
  mask: Int32Array
  q: Float32Array
  k: Float32Array
  v: Float32Array
  dctx: Float32Array
}

function attnCase(d: AttnDims, mask: number[], seed: number): AttnCase {
  const n = d.B * d.T * d.NH * d.HS
  return { d, mask: Int32Array.from(mask), q: randn(n, seed), k: randn(n, seed + 1), v: randn(n, seed + 2), dctx: randn(n, seed + 3) }
}

interface AttnRun {
  ctx: Tensor
  probs: Tensor
  dq: Float32Array
  dk: Float32Array
  dv: Float32Array
}

function runAttention(c: AttnCase, drop: ops.DropoutSite | null): AttnRun {
  const { B, T, NH, HS } = c.d,
    shape = [B, T, NH * HS]
  const [q, k, v] = [T32(c.q, shape), T32(c.k, shape), T32(c.v, shape)]
  const ctx = filled(shape, 5),
    probs = filled([B, NH, T, T], 5)
  ops.attentionForward(ctx, probs, q, k, v, c.mask, NH, drop)
  const dq = filled(shape, 1),
    dk = filled(shape, 2),
    dv = filled(shape, 3)
  ops.attentionBackward(dq, dk, dv, T32(c.dctx, shape), q, k, v, probs, c.mask, NH, drop)
  return { ctx, probs, dq: arr(dq), dk: arr(dk), dv: arr(dv) }
}

// The dropout multipliers of the probs viewed as [B, NH*T*T]: lib/dropout on a tensor of ones.
function dropoutFactors(d: AttnDims, drop: ops.DropoutSite | null): Float32Array | null {
  if (!drop) return null
  const ones = filled([d.B, d.NH * d.T * d.T], 1)
  return arr(dropout(ones, { p: drop.p, seed: drop.seed, offset: drop.offset, keepRows: drop.keepRows ?? undefined }))
}

function checkAttention(t: Tap, name: string, c: AttnCase, drop: ops.DropoutSite | null, fdCount = Infinity): AttnRun {
  const { d } = c
  const factor = dropoutFactors(d, drop)
  const r = runAttention(c, drop)
  const [q, k, v] = [f64(c.q), f64(c.k), f64(c.v)]
  const ref = attentionRef(q, k, v, c.mask, d, factor)
  close(t, `${name}: probs (pre-dropout softmax)`, arr(r.probs), ref.probs, 1e-5)
  close(t, `${name}: ctx`, arr(r.ctx), ref.ctx, 1e-5)
  // ctx is the saved probs after lib/dropout (the [B, NH*T*T] view), times v.
  const P = r.probs.toFloat32Array()
  const dropped = drop
    ? arr(
        dropout(r.probs.view(0, [d.B, d.NH * d.T * d.T]), {
          p: drop.p,
          seed: drop.seed,
          offset: drop.offset,
          keepRows: drop.keepRows ?? undefined,
        }),
      )
    : P
  const H = d.NH * d.HS,
    ctxFromDropped = new Float64Array(d.B * d.T * H)
  for (let b = 0; b < d.B; b++)
    for (let h = 0; h < d.NH; h++)
      for (let i = 0; i < d.T; i++)
        for (let e = 0; e < d.HS; e++) {
          let s = 0
          for (let j = 0; j < d.T; j++) s += dropped[((b * d.NH + h) * d.T + i) * d.T + j] * c.v[(b * d.T + j) * H + h * d.HS + e]
          ctxFromDropped[(b * d.T + i) * H + h * d.HS + e] = s
        }
  close(t, `${name}: ctx = dropout(saved probs) · v`, arr(r.ctx), ctxFromDropped, 1e-6)
  // Backward against finite differences of the reference with the mask held fixed.
  const loss = () => dot(c.dctx, attentionRef(q, k, v, c.mask, d, factor).ctx)
  const n = q.length,
    idx = someIndices(n, fdCount, 17)
  for (const [which, x, g] of [
    ['dq', q, r.dq],
    ['dk', k, r.dk],
    ['dv', v, r.dv],
  ] as [string, Float64Array, Float32Array][])
    close(
      t,
      `${name}: ${which} vs FD`,
      idx.map((i) => g[i]),
      finiteDiff(loss, x, idx),
      1e-4,
      1e-3,
    )
  return r
}

t.test('attention: padding masks, softmax, backward vs finite differences (no dropout)', async (t) => {
  const d = { B: 2, T: 5, NH: 2, HS: 3 }
  // Sentence 0 has 3 real tokens; sentence 1 only position 0.
  const c = attnCase(d, [1, 1, 1, 0, 0, 1, 0, 0, 0, 0], 100)
  const r = checkAttention(t, 'B=2 T=5 NH=2 HS=3', c, null)
  const P = arr(r.probs)
  let maskedZero = true,
    rowsSum = true
  for (let b = 0; b < d.B; b++)
    for (let h = 0; h < d.NH; h++)
      for (let i = 0; i < d.T; i++) {
        let s = 0
        for (let j = 0; j < d.T; j++) {
          const p = P[((b * d.NH + h) * d.T + i) * d.T + j]
          if (!c.mask[b * d.T + j] && p !== 0) maskedZero = false
          s += p
        }
        if (Math.abs(s - 1) > 1e-6) rowsSum = false
      }
  t.ok(maskedZero, 'padded keys get exactly zero probability')
  t.ok(rowsSum, 'every row (padded queries included) sums to 1')
  const only0 = Array.from({ length: d.NH * d.T }, (_, r) => P[d.NH * d.T * d.T + r * d.T])
  t.ok(
    only0.every((p) => p === 1),
    'a sentence with one real key puts probability exactly 1 on it',
  )
})

t.test('attention dropout: Philox [B, NH*T*T] mask, fixed-mask gradients, keepRows', async (t) => {
  const d = { B: 2, T: 5, NH: 2, HS: 3 }
  const c = attnCase(d, [1, 1, 1, 1, 0, 1, 0, 0, 0, 0], 200)
  const drop = { p: 0.3, seed: 1234, offset: 7 }
  const factor = dropoutFactors(d, drop)!
  t.ok(factor.some((f) => f === 0) && factor.some((f) => f !== 0), 'the mask drops some probabilities and keeps others')
  const r = checkAttention(t, 'p=0.3', c, drop)
  const plain = runAttention(c, null)
  t.same(arr(r.probs), arr(plain.probs), 'probs saves the softmax before dropout')
  t.notSame(arr(r.ctx), arr(plain.ctx), 'dropout changes ctx')

  checkAttention(t, 'p=0.3, bigint seed and offset', c, { p: 0.3, seed: 2n ** 40n + 5n, offset: 2n ** 33n })
  const keep = { p: 0.5, seed: 99, offset: 3, keepRows: Uint8Array.from([0, 1]) }
  const rk = checkAttention(t, 'keepRows [0, 1]', c, keep)
  const H = d.NH * d.HS,
    n0 = d.T * H
  t.same(arr(rk.ctx).subarray(0, n0), arr(plain.ctx).subarray(0, n0), 'keepRows = 0: sentence 0 gets no attention dropout')
  t.same(rk.dq.subarray(0, n0), plain.dq.subarray(0, n0), 'keepRows = 0: sentence 0 gradients as without dropout')
  t.notSame(arr(rk.ctx).subarray(n0), arr(plain.ctx).subarray(n0), 'keepRows = 1: sentence 1 is dropped')
  const all = runAttention(c, { p: 1, seed: 1, offset: 0 })
  t.ok(arr(all.ctx).every((x) => x === 0) && all.dq.every((x) => x === 0), 'p = 1 drops everything (zeros, no NaN)')
})

t.test('attention: a sentence without real keys gives zeros, not NaN', async (t) => {
  const d = { B: 2, T: 4, NH: 2, HS: 2 }
  const c = attnCase(d, [1, 1, 0, 0, 0, 0, 0, 0], 300)
  const r = runAttention(c, { p: 0.2, seed: 5, offset: 1 })
  const half = d.T * d.NH * d.HS
  const finite = (a: Float32Array) => a.every(Number.isFinite)
  t.ok(finite(arr(r.ctx)) && finite(arr(r.probs)) && finite(r.dq) && finite(r.dk) && finite(r.dv), 'everything finite')
  t.ok(
    arr(r.ctx)
      .subarray(half)
      .every((x) => x === 0),
    'ctx of the empty sentence is 0',
  )
  t.ok(
    arr(r.probs)
      .subarray(d.NH * d.T * d.T)
      .every((x) => x === 0),
    'probs of the empty sentence are 0',
  )
  t.ok(
    [r.dq, r.dk, r.dv].every((g) => g.subarray(half).every((x) => x === 0)),
    'gradients of the empty sentence are 0',
  )
})

t.test('attention: larger case (packed GEMMs, threads) with dropout', async (t) => {
  const d = { B: 3, T: 17, NH: 4, HS: 8 }
  const mask = Array.from({ length: d.B * d.T }, (_, i) => (i % d.T < [17, 9, 1][Math.floor(i / d.T)] ? 1 : 0))
  checkAttention(t, 'B=3 T=17 NH=4 HS=8 p=0.1', attnCase(d, mask, 400), { p: 0.1, seed: 42, offset: 11 }, 40)
})

t.test('attention: T a multiple of 16 without dropout (the backward reads the saved probs in place)', async (t) => {
  const d = { B: 2, T: 16, NH: 2, HS: 16 }
  const mask = Array.from({ length: d.B * d.T }, (_, i) => (i % d.T < [16, 11][Math.floor(i / d.T)] ? 1 : 0))
  checkAttention(t, 'B=2 T=16 NH=2 HS=16', attnCase(d, mask, 450), null, 20)
})

t.test('attention: odd sizes against float64 (T = 1, 17, 33, 40, 128; head sizes 1, 5, 20, 48, 64; one head)', async (t) => {
  // Sizes that leave partial vectors, tiles and padding in native/cpu/attention.cpp (keys padded to 16, tiles of
  // up to 8 rows x 2 vectors, head rows copied when their size is not a multiple of the vector width), with
  // padding keys, a sentence without real keys (T = 1) and dropout.
  const lengths = (d: AttnDims, real: number[]) =>
    Array.from({ length: d.B * d.T }, (_, i) => (i % d.T < real[Math.floor(i / d.T)] ? 1 : 0))
  const cases: [AttnDims, number[], number][] = [
    [{ B: 2, T: 1, NH: 1, HS: 5 }, [1, 0], 40],
    [{ B: 2, T: 33, NH: 2, HS: 20 }, [33, 17], 20],
    [{ B: 1, T: 40, NH: 3, HS: 1 }, [37], 20],
    [{ B: 1, T: 17, NH: 1, HS: 48 }, [17], 20],
    [{ B: 1, T: 128, NH: 1, HS: 64 }, [100], 12],
  ]
  cases.forEach(([d, real, fd], i) => {
    const name = `B=${d.B} T=${d.T} NH=${d.NH} HS=${d.HS} p=0.1`
    checkAttention(t, name, attnCase(d, lengths(d, real), 500 + 10 * i), { p: 0.1, seed: 77 + i, offset: 5 }, fd)
  })
})

// ---------------------------------------------------------------------------------------------
// Pooling

t.test('pooling: CLS, masked mean, max and mean_sqrt_len, forward and backward (overwrite and accumulate)', async (t) => {
  const B = 3,
    T = 4,
    H = 5
  for (const mask of [Int32Array.from([1, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1]), Int32Array.from([1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0])]) {
    const h32 = randn(B * T * H, mask[1] * 10 + mask[8]),
      dout32 = randn(B * H, 6)
    const h = f64(h32)
    const hidden = T32(h32, [B, T, H]),
      dout = T32(dout32, [B, H]),
      out = filled([B, H], 3)
    const m = mask.join('')
    const cases: [string, () => Float64Array, (o: Tensor) => void, (g: Tensor, acc: boolean) => void][] = [
      ['cls', () => poolClsRef(h, B, T, H), (o) => ops.poolClsForward(o, hidden), (g, acc) => ops.poolClsBackward(g, dout, acc)],
      [
        'mean',
        () => poolMeanRef(h, mask, B, T, H),
        (o) => ops.poolMeanForward(o, hidden, mask),
        (g, acc) => ops.poolMeanBackward(g, dout, mask, acc),
      ],
      [
        'mean_sqrt_len',
        () => poolMeanRef(h, mask, B, T, H, true),
        (o) => ops.poolMeanForward(o, hidden, mask, true),
        (g, acc) => ops.poolMeanBackward(g, dout, mask, acc, true),
      ],
      [
        'max',
        () => poolMaxRef(h, mask, B, T, H),
        (o) => ops.poolMaxForward(o, hidden, mask),
        (g, acc) => ops.poolMaxBackward(g, dout, hidden, mask, acc),
      ],
    ]
    for (const [name, ref, fwd, bwd] of cases) {
      fwd(out)
      close(t, `${name} mask ${m}: forward`, arr(out), ref(), 1e-6)
      const fd = finiteDiff(() => dot(dout32, ref()), h)
      const g = filled([B, T, H], 8)
      bwd(g, false)
      close(t, `${name} mask ${m}: backward (overwrite, other rows zeroed) vs FD`, arr(g), fd, 1e-5, 1e-3)
      const g2 = filled([B, T, H], 0.5)
      bwd(g2, true)
      close(t, `${name} mask ${m}: backward (accumulate) vs FD`, sub(arr(g2), new Float64Array(B * T * H).fill(0.5)), fd, 1e-5, 1e-3)
    }
    if (mask[4] === 0) {
      for (const [name, fwd] of cases.slice(1).map(([n, , f]) => [n, f] as const)) {
        fwd(out)
        t.ok(
          arr(out)
            .subarray(H, 2 * H)
            .every((x) => x === 0),
          `${name} mask ${m}: a sentence without real tokens pools to 0`,
        )
      }
    }
  }
})

t.test('max pooling: ties go to the first real token, padding never wins, a NaN propagates (torch.max)', async (t) => {
  // One sentence of T = 4 tokens, H = 4 columns; token 2 is padding and holds the largest values.
  const mask = Int32Array.from([1, 1, 0, 1])
  const hidden = T32(Float32Array.from([1, 5, 2, NaN, 3, 5, NaN, 4, 9, 9, 9, 9, 3, -1, 7, NaN]), [1, 4, 4])
  const out = filled([1, 4], 0)
  ops.poolMaxForward(out, hidden, mask)
  const o = Array.from(arr(out))
  t.same(o.slice(0, 2), [3, 5], 'each column: the largest real value (padding passed over)')
  t.ok(Number.isNaN(o[2]) && Number.isNaN(o[3]), 'a column holding a NaN pools to NaN, first token or later')
  const g = filled([1, 4, 4], 0)
  ops.poolMaxBackward(g, T32(Float32Array.from([10, 20, 30, 40]), [1, 4]), hidden, mask, false)
  // column 0: 3 at tokens 1 and 3 (a tie: the first); 1: 5 at tokens 0 and 1 (the first); 2: the NaN at token 1
  // (over the later 7); 3: the NaN at token 0 (over the later NaN).
  t.same(Array.from(arr(g)), [0, 20, 0, 40, 10, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'the gradient goes to the chosen token alone')
  const acc = filled([1, 4, 4], 1)
  ops.poolMaxBackward(acc, T32(Float32Array.from([10, 20, 30, 40]), [1, 4]), hidden, mask, true)
  t.same(
    Array.from(arr(acc)),
    Array.from(arr(g), (x) => x + 1),
    'accumulate adds the same gradient, the other elements left as they were',
  )
  t.throws(
    () => ops.poolMaxBackward(hidden, T32(new Float32Array(4), [1, 4]), hidden, mask),
    /dhidden.*hidden|hidden.*dhidden/,
    'dhidden may not be hidden',
  )
})

// ---------------------------------------------------------------------------------------------
// Optimiser

t.test('AdamW matches torch.optim.AdamW over 5 steps', async (t) => {
  // Gradients of scale 1e-8 make eps (1e-8) matter, so its placement, sqrt(v̂) + eps, is tested;
  // small parameters keep their fp32 rounding far below the update being compared.
  for (const n of [37, 50000])
    for (const wd of [0, 0.01])
      for (const [pScale, gScale] of [
        [1, 1],
        [0.01, 1e-8],
      ]) {
        const lr = 1e-3,
          b1 = 0.9,
          b2 = 0.999,
          eps = 1e-8
        const name = `n=${n} wd=${wd} |p|~${pScale} |g|~${gScale}`
        const p0 = randn(n, n + 1, pScale)
        const P = T32(p0, [n]),
          M = Tensor.zeros([n]),
          V = Tensor.zeros([n])
        const p = f64(p0),
          m = new Float64Array(n),
          v = new Float64Array(n)
        for (let step = 1; step <= 5; step++) {
          const g = randn(n, n * 10 + step, step === 3 ? gScale * 1e-3 : gScale) // one step with tinier gradients
          ops.adamwStep(P, T32(g, [n]), M, V, lr, b1, b2, eps, wd, step)
          adamwRef(p, g, m, v, lr, b1, b2, eps, wd, step)
        }
        close(t, `${name}: m`, arr(M), m, 1e-5, 0)
        close(t, `${name}: v`, arr(V), v, 1e-5, 0)
        close(t, `${name}: params`, arr(P), p, 1e-6)
        close(t, `${name}: total update p - p0`, sub(arr(P), p0), sub(p, p0), pScale === 1 ? 1e-4 : 1e-5)
      }
  // Weight decay alone (zero gradients) shrinks by (1 - lr*wd) per step.
  const P = T32([2, -4], [2]),
    M = Tensor.zeros([2]),
    V = Tensor.zeros([2])
  ops.adamwStep(P, Tensor.zeros([2]), M, V, 0.1, 0.9, 0.999, 1e-8, 0.5, 1)
  close(t, 'decoupled weight decay', arr(P), [2 * 0.95, -4 * 0.95], 1e-7)
})

t.test('gradSumSquares: double accumulation, reproducible', async (t) => {
  for (const n of [1, 1000, 1_000_003]) {
    const g = randn(n, n)
    const want = g.reduce((s, x) => s + x * x, 0)
    const G = T32(g, [n])
    const got = ops.gradSumSquares(G)
    t.ok(Math.abs(got - want) <= 1e-12 * want, `n=${n}: ${got} vs ${want}`)
    t.equal(ops.gradSumSquares(G), got, `n=${n}: reproducible`)
  }
  t.equal(ops.gradSumSquares(Tensor.zeros([0])), 0, 'empty tensor')
})

// ---------------------------------------------------------------------------------------------
// Validation

t.test('fused residual + dropout + layer norm: bit for bit the unfused sequence, forward and backward', async (t) => {
  const R = 12,
    C = 20,
    sentences = 3
  const [y, x, w, b, dout] = [randn(R * C, 1), randn(R * C, 2), randn(C, 3), randn(C, 4), randn(R * C, 5)]
  const bits = (a: Float32Array, c: Float32Array) => a.every((v, i) => Object.is(v, c[i]))
  const z = (...s: number[]) => Tensor.zeros(s)
  for (const site of [null, { p: 0.25, seed: 99, offset: 7, keepRows: Uint8Array.from([1, 0, 1]), firstRow: 4 }]) {
    const what = site ? 'p = 0.25, keepRows, firstRow 4' : 'no dropout'
    const [out, res, m, r] = [Tensor.zeros([R, C]), Tensor.zeros([R, C]), Tensor.zeros([R]), Tensor.zeros([R])]
    ops.residualLayerNormForward(out, res, m, r, T32(y, [R, C]), T32(x, [R, C]), T32(w, [C]), T32(b, [C]), 1e-12, sentences, site)
    // Unfused: dropout over [sentences, rest], add, layer norm.
    const seq = T32(y, [R, C])
    if (site) ops.dropout(seq.view(0, [sentences, (R / sentences) * C]), seq.view(0, [sentences, (R / sentences) * C]), site)
    ops.addInplace(seq, T32(x, [R, C]))
    const [seqOut, sm, sr] = [Tensor.zeros([R, C]), Tensor.zeros([R]), Tensor.zeros([R])]
    ops.layerNormForward(seqOut, sm, sr, seq, T32(w, [C]), T32(b, [C]), 1e-12)
    t.ok(bits(arr(res), arr(seq)) && bits(arr(out), arr(seqOut)) && bits(arr(m), arr(sm)) && bits(arr(r), arr(sr)), `${what}: forward`)
    // x given as the LayerNorm whose output it is (recomputed with layerNormApply's bits): the same bits; 'only'
    // still writes out on the CPU.
    const xLn = {
      x: T32(dout, [R, C]),
      mean: T32(randn(R, 6, 0.2), [R]),
      rstd: T32(
        Float32Array.from(randn(R, 7), (v) => 1 + Math.abs(v)),
        [R],
      ),
      weight: T32(w, [C]),
      bias: T32(b, [C]),
    }
    const applied = Tensor.zeros([R, C])
    ops.layerNormApply(applied, xLn.x, xLn.mean, xLn.rstd, xLn.weight, xLn.bias)
    const viaX = [Tensor.zeros([R, C]), Tensor.zeros([R, C]), Tensor.zeros([R]), Tensor.zeros([R])] as const
    const viaLn = [Tensor.zeros([R, C]), Tensor.zeros([R, C]), Tensor.zeros([R]), Tensor.zeros([R])] as const
    ops.residualLayerNormForward(...viaX, T32(y, [R, C]), applied, T32(w, [C]), T32(b, [C]), 1e-12, sentences, site)
    ops.residualLayerNormForward(...viaLn, T32(y, [R, C]), xLn, T32(w, [C]), T32(b, [C]), 1e-12, sentences, site, 'only')
    t.ok(
      viaX.every((v, i) => bits(arr(v), arr(viaLn[i]))),
      `${what}: x recomputed from its LayerNorm: out, res, mean, rstd as with x = layerNormApply(...)`,
    )
    // outBf16: bf16(out) kept as well (a training model's h1Bf16 / h2Bf16), the rest unchanged.
    const viaKept = [Tensor.zeros([R, C]), Tensor.zeros([R, C]), Tensor.zeros([R]), Tensor.zeros([R])] as const
    const kept = new Bf16Values(filled([Math.ceil((R * C) / 2)], 7), [R, C])
    ops.residualLayerNormForward(...viaKept, T32(y, [R, C]), xLn, T32(w, [C]), T32(b, [C]), 1e-12, sentences, site, 'only', kept)
    t.ok(
      viaKept.every((v, i) => bits(arr(v), arr(viaLn[i]))) && bits(kept.toFloat32Array(), roundBf16Array(arr(viaKept[0]))),
      `${what}: outBf16 holds bf16(out), round to nearest even; out, res, mean, rstd unchanged`,
    )
    // Inference's call: out, res and y one tensor (no LayerNorm input kept); res = y alone, and out = y alone.
    for (const [alias, o, rs] of [
      ['out = res = y', 'y', 'y'],
      ['res = y', 'out', 'y'],
      ['out = y', 'y', 'res'],
    ] as const) {
      const [Y, O, Rs, m2, r2] = [T32(y, [R, C]), Tensor.zeros([R, C]), Tensor.zeros([R, C]), Tensor.zeros([R]), Tensor.zeros([R])]
      const pick = (which: 'y' | 'out' | 'res') => (which === 'y' ? Y : which === 'out' ? O : Rs)
      ops.residualLayerNormForward(pick(o), pick(rs), m2, r2, Y, T32(x, [R, C]), T32(w, [C]), T32(b, [C]), 1e-12, sentences, site)
      const resBits = rs === o ? true : bits(arr(pick(rs)), arr(seq))
      t.ok(
        bits(arr(pick(o)), arr(seqOut)) && resBits && bits(arr(m2), arr(sm)) && bits(arr(r2), arr(sr)),
        `${what}: ${alias}, the same bits`,
      )
    }
    if (site)
      t.ok(
        arr(res).some((v, i) => v === x[i] && y[i] !== 0),
        `${what}: some elements dropped`,
      )

    const [dres, dy, dw, db] = [Tensor.zeros([R, C]), site ? Tensor.zeros([R, C]) : null, Tensor.zeros([C]), Tensor.zeros([C])]
    ops.layerNormDropoutBackward(dres, dy, dw, db, T32(dout, [R, C]), res, T32(w, [C]), m, r, sentences, site)
    const [sres, sw, sb] = [Tensor.zeros([R, C]), Tensor.zeros([C]), Tensor.zeros([C])]
    ops.layerNormBackward(sres, sw, sb, T32(dout, [R, C]), res, T32(w, [C]), m, r)
    t.ok(bits(arr(dres), arr(sres)) && bits(arr(dw), arr(sw)) && bits(arr(db), arr(sb)), `${what}: dres, dweight, dbias`)
    if (site && dy) {
      const sdy = Tensor.zeros([R, C])
      ops.dropout(sres.view(0, [sentences, (R / sentences) * C]), sdy.view(0, [sentences, (R / sentences) * C]), site)
      t.ok(bits(arr(dy), arr(sdy)), `${what}: dy`)
    }
    // dyColumnSums: += the float64 column sums of dy (dres without dy); 'only' still writes dy on the CPU.
    const [dres2, dy2, sums] = [Tensor.zeros([R, C]), dy ? Tensor.zeros([R, C]) : null, filled([C], 0.5)]
    ops.layerNormDropoutBackward(dres2, dy2, z(C), z(C), T32(dout, [R, C]), res, T32(w, [C]), m, r, sentences, site, 'only', sums)
    t.ok(bits(arr(dres2), arr(dres)) && (!dy || bits(arr(dy2!), arr(dy))), `${what}, dyColumnSums and 'only': dres and dy written`)
    t.same(arr(sums), columnSumsPlus(arr(dy ?? dres), R, C, 0.5), `${what}: dyColumnSums += Σ_rows dy`)
  }
  const site = { p: 0.1, seed: 1, offset: 0 }
  const ln4 = { x: z(4, 3), mean: z(4), rstd: z(4), weight: z(3), bias: z(3) }
  const fwd = (x: Tensor | ops.LayerNormInput, mean = z(4)) =>
    ops.residualLayerNormForward(z(4, 3), z(4, 3), mean, z(4), z(4, 3), x, z(3), z(3), 1e-5, 2, null)
  t.throws(() => fwd({ ...ln4, rstd: z(5) }), /xInput\.rstd/)
  t.throws(() => fwd({ ...ln4, weight: z(4) }), /xInput\.weight/)
  t.throws(() => fwd(ln4, ln4.mean), /mean and xInput\.mean not to overlap/)
  const withKept = (out: Tensor, kept: Bf16Values, x: Tensor | ops.LayerNormInput = z(4, 3)) =>
    ops.residualLayerNormForward(out, z(4, 3), z(4), z(4), z(4, 3), x, z(3), z(3), 1e-5, 2, null, false, kept)
  t.throws(() => withKept(z(4, 3), new Bf16Values(z(5), [10])), /outBf16 holds 10 values, out 12/)
  const keptRows = z(4, 3)
  t.throws(() => withKept(keptRows, new Bf16Values(keptRows.view(0, [6]), [4, 3])), /outBf16 and out not to overlap/)
  const lnKept = { ...ln4, bias: z(6) }
  t.throws(
    () => withKept(z(4, 3), new Bf16Values(lnKept.bias, [4, 3]), { ...lnKept, bias: lnKept.bias.view(0, [3]) }),
    /outBf16 and xInput\.bias not to overlap/,
  )
  const n = (...shape: number[]) => nativeOf(z(...shape), 'tensor')
  t.throws(
    () =>
      addon.residualLayerNormForward(
        n(4, 3),
        n(4, 3),
        n(4),
        n(4),
        n(4, 3),
        n(4, 3),
        n(3),
        n(3),
        1e-5,
        2,
        0,
        0,
        0,
        null,
        0,
        false,
        null,
        null,
        null,
        null,
        null,
        n(5),
      ),
    /outBf16/,
  )
  t.throws(
    () => addon.residualLayerNormForward(n(4, 3), n(4, 3), n(4), n(4), n(4, 3), null, n(3), n(3), 1e-5, 2, 0, 0, 0, null, 0),
    /Expected x, or xInput/,
  )
  const lnBack = (dres: Tensor, sums: Tensor) =>
    ops.layerNormDropoutBackward(dres, null, z(3), z(3), z(4, 3), z(4, 3), z(3), z(4), z(4), 2, null, false, sums)
  t.throws(() => lnBack(z(4, 3), z(4)), /dyColumnSums/)
  const dres = z(4, 3)
  t.throws(() => lnBack(dres, dres.view(3, [3])), /dyColumnSums and dres not to overlap/)
  t.throws(
    () => ops.residualLayerNormForward(z(4, 3), z(4, 3), z(4), z(4), z(4, 3), z(4, 3), z(3), z(3), 1e-5, 3, site),
    /sentences to divide the 4 rows/,
  )
  const shared = z(5, 3)
  t.throws(
    () =>
      ops.residualLayerNormForward(z(4, 3), shared.view(0, [4, 3]), z(4), z(4), shared.view(3, [4, 3]), z(4, 3), z(3), z(3), 1e-5, 2, null),
    /res and y not to overlap/,
  )
  t.throws(
    () =>
      ops.residualLayerNormForward(shared.view(3, [4, 3]), z(4, 3), z(4), z(4), shared.view(0, [4, 3]), z(4, 3), z(3), z(3), 1e-5, 2, null),
    /out and y not to overlap/,
  )
  t.throws(
    () =>
      ops.residualLayerNormForward(
        shared.view(0, [4, 3]),
        shared.view(0, [4, 3]),
        z(4),
        z(4),
        z(4, 3),
        shared.view(3, [4, 3]),
        z(3),
        z(3),
        1e-5,
        2,
        null,
      ),
    /res and x not to overlap/,
  )
  t.throws(() => ops.residualLayerNormForward(z(4, 3), z(4, 3), z(4), z(4), z(4, 2), z(4, 3), z(3), z(3), 1e-5, 2, null), /\by\b/)
  t.throws(
    () => ops.layerNormDropoutBackward(z(4, 3), null, z(3), z(3), z(4, 3), z(4, 3), z(3), z(4), z(4), 2, site),
    /dy \(the gradient through the dropout\) when p > 0/,
  )
  t.throws(
    () =>
      ops.layerNormDropoutBackward(z(4, 3), z(4, 3), z(3), z(3), z(4, 3), z(4, 3), z(3), z(4), z(4), 2, {
        ...site,
        keepRows: new Uint8Array(3),
      }),
    /keepRows/,
  )
})

t.test('attention with packed q|k|v equals separate tensors bit for bit, forward and backward', async (t) => {
  const { packQkv, unpackQkv } = await import('./helpers/encoder-parity.mjs')
  const [B, T, NH, HS] = [3, 6, 2, 4]
  const H = NH * HS
  const [q, k, v, dctx] = [randn(B * T * H, 11), randn(B * T * H, 12), randn(B * T * H, 13), randn(B * T * H, 14)]
  const mask = Int32Array.from({ length: B * T }, (_, i) => (i % T < [6, 3, 1][Math.floor(i / T)] ? 1 : 0))
  const site = { p: 0.2, seed: 5, offset: 9, keepRows: Uint8Array.from([1, 0, 1]), firstRow: 2 }
  const shape = [B, T, H]
  const [ctx, probs, dq, dk, dv] = [
    Tensor.zeros(shape),
    Tensor.zeros([B, NH, T, T]),
    Tensor.zeros(shape),
    Tensor.zeros(shape),
    Tensor.zeros(shape),
  ]
  const [tq, tk, tv] = [T32(q, shape), T32(k, shape), T32(v, shape)]
  ops.attentionForward(ctx, probs, tq, tk, tv, mask, NH, site)
  ops.attentionBackward(dq, dk, dv, T32(dctx, shape), tq, tk, tv, probs, mask, NH, site)
  const qkv = T32(packQkv([q, k, v], H), [B, T, 3 * H])
  const [pctx, pprobs, dqkv] = [Tensor.zeros(shape), Tensor.zeros([B, NH, T, T]), Tensor.zeros([B, T, 3 * H])]
  ops.attentionForward(pctx, pprobs, qkv, null, null, mask, NH, site)
  ops.attentionBackward(dqkv, null, null, T32(dctx, shape), qkv, null, null, pprobs, mask, NH, site)
  const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]))
  t.ok(same(arr(pctx), arr(ctx)) && same(arr(pprobs), arr(probs)), 'ctx and probs')
  for (const [i, g] of [dq, dk, dv].entries()) t.ok(same(unpackQkv(arr(dqkv), H, i), arr(g)), `${['dq', 'dk', 'dv'][i]}`)
  const z = (...s: number[]) => Tensor.zeros(s)
  t.throws(
    () => ops.attentionForward(z(B, T, H), z(B, NH, T, T), qkv, z(B, T, H), null, mask, NH),
    /Expected v to be a Tensor \(or k and v both null/,
  )
  t.throws(() => ops.attentionForward(z(B, T, H), z(B, NH, T, T), z(B, T, 2 * H), null, null, mask, NH), /\bq\b.*\[3, 6, 24\]/)
  t.throws(
    () => ops.attentionBackward(z(B, T, H), z(B, T, H), z(B, T, H), z(B, T, H), qkv, null, null, z(B, NH, T, T), mask, NH),
    /dq, dk, dv to be packed exactly when q, k, v are/,
  )
  // dqkvColumnSums: += the float64 column sums of the packed gradient (the q/k/v bias gradient), bf16Next 'only'
  // still writing it on the CPU.
  const [dqkv2, sums] = [T32(new Float32Array(B * T * 3 * H).fill(NaN), [B, T, 3 * H]), filled([3 * H], 0.25)]
  ops.attentionBackward(dqkv2, null, null, T32(dctx, shape), qkv, null, null, pprobs, mask, NH, site, 'only', null, null, 'fp32', sums)
  t.ok(same(arr(dqkv2), arr(dqkv)), "dqkvColumnSums and 'only': the gradient written, bit for bit")
  t.same(arr(sums), columnSumsPlus(arr(dqkv), B * T, 3 * H, 0.25), 'dqkvColumnSums += Σ_rows of the packed gradient')
  /** The backward of qkv (packed: grads [dq]) or of tq, tk, tv (grads [dq, dk, dv]) with colSums. */
  const back = (grads: Tensor[], colSums: Tensor) => {
    const [a, b, c] = grads.length === 1 ? [qkv, null, null] : [tq, tk, tv]
    ops.attentionBackward(
      grads[0],
      grads[1] ?? null,
      grads[2] ?? null,
      z(B, T, H),
      a,
      b,
      c,
      probs,
      mask,
      NH,
      null,
      false,
      null,
      null,
      'fp32',
      colSums,
    )
  }
  t.throws(() => back([z(B, T, 3 * H)], z(3 * H + 1)), /dqkvColumnSums/)
  const dqkv3 = z(B, T, 3 * H)
  t.throws(() => back([dqkv3], dqkv3.view(0, [3 * H])), /dqkvColumnSums and dq not to overlap/)
  t.throws(() => back([z(B, T, H), z(B, T, H), z(B, T, H)], z(3 * H)), /dqkvColumnSums needs the packed gradient/)
})

t.test('attention without probs (inference): ctx bit for bit as with them; the backward still needs them', async (t) => {
  const { packQkv } = await import('./helpers/encoder-parity.mjs')
  const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]))
  // T = 1, T not a multiple of the 16 the CPU pads keys to, T a multiple of it; a sentence without real keys.
  const cases: [AttnDims, number[]][] = [
    [{ B: 2, T: 1, NH: 1, HS: 5 }, [1, 0]],
    [{ B: 3, T: 17, NH: 2, HS: 8 }, [17, 9, 0]],
    [{ B: 2, T: 16, NH: 3, HS: 4 }, [16, 5]],
  ]
  for (const [i, [d, real]] of cases.entries()) {
    const mask = Int32Array.from({ length: d.B * d.T }, (_, j) => (j % d.T < real[Math.floor(j / d.T)] ? 1 : 0))
    const c = attnCase(d, [...mask], 700 + 10 * i)
    const H = d.NH * d.HS,
      shape = [d.B, d.T, H]
    const qkv = T32(packQkv([c.q, c.k, c.v], H), [d.B, d.T, 3 * H])
    for (const drop of [null, { p: 0.25, seed: 9, offset: 4, keepRows: Uint8Array.from({ length: d.B }, (_, b) => b % 2) }]) {
      const name = `B=${d.B} T=${d.T} NH=${d.NH} HS=${d.HS}${drop ? ' p=0.25, keepRows' : ''}`
      const kept = runAttention(c, drop)
      const [ctx, pctx] = [filled(shape, 5), filled(shape, 5)]
      ops.attentionForward(ctx, null, T32(c.q, shape), T32(c.k, shape), T32(c.v, shape), c.mask, d.NH, drop)
      ops.attentionForward(pctx, null, qkv, null, null, c.mask, d.NH, drop)
      t.ok(same(arr(ctx), arr(kept.ctx)), `${name}: ctx`)
      t.ok(same(arr(pctx), arr(kept.ctx)), `${name}: ctx, packed q|k|v`)
    }
  }
  const [B, T, NH, H] = [2, 3, 2, 4]
  const z = (...s: number[]) => Tensor.zeros(s)
  const mask = new Int32Array(B * T).fill(1)
  t.throws(() => ops.attentionForward(z(B, T, H), z(B, NH, T, T + 1), z(B, T, 3 * H), null, null, mask, NH), /\bprobs\b/)
  t.throws(
    () => ops.attentionBackward(z(B, T, 3 * H), null, null, z(B, T, H), z(B, T, 3 * H), null, null, z(B, NH, T + 1, T), mask, NH),
    /\bprobs\b/,
  )
})

t.test('attention backward without probs forms them again: dq, dk, dv bit for bit as with them', async (t) => {
  const { packQkv, unpackQkv } = await import('./helpers/encoder-parity.mjs')
  const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]))
  // T = 1, T not a multiple of the 16 the CPU pads keys to (the saved probs are copied padded), T a multiple of
  // it (read in place); a sentence without real keys; a head size the vectors do not divide.
  const cases: [AttnDims, number[]][] = [
    [{ B: 2, T: 1, NH: 1, HS: 5 }, [1, 0]],
    [{ B: 3, T: 17, NH: 2, HS: 8 }, [17, 9, 0]],
    [{ B: 2, T: 32, NH: 3, HS: 20 }, [32, 5]],
  ]
  for (const [i, [d, real]] of cases.entries()) {
    const mask = Int32Array.from({ length: d.B * d.T }, (_, j) => (j % d.T < real[Math.floor(j / d.T)] ? 1 : 0))
    const c = attnCase(d, [...mask], 800 + 10 * i)
    const H = d.NH * d.HS,
      shape = [d.B, d.T, H]
    for (const drop of [null, { p: 0.25, seed: 9, offset: 4, keepRows: Uint8Array.from({ length: d.B }, (_, b) => b % 2), firstRow: 3 }]) {
      const name = `B=${d.B} T=${d.T} NH=${d.NH} HS=${d.HS}${drop ? ' p=0.25, keepRows, firstRow' : ''}`
      const kept = runAttention(c, drop)
      const [q, k, v] = [T32(c.q, shape), T32(c.k, shape), T32(c.v, shape)]
      const [dq, dk, dv] = [filled(shape, 1), filled(shape, 2), filled(shape, 3)]
      ops.attentionBackward(dq, dk, dv, T32(c.dctx, shape), q, k, v, null, c.mask, d.NH, drop)
      t.ok(same(arr(dq), kept.dq) && same(arr(dk), kept.dk) && same(arr(dv), kept.dv), `${name}: dq, dk, dv`)
      const qkv = T32(packQkv([c.q, c.k, c.v], H), [d.B, d.T, 3 * H])
      const dqkv = filled([d.B, d.T, 3 * H], 4)
      ops.attentionBackward(dqkv, null, null, T32(c.dctx, shape), qkv, null, null, null, c.mask, d.NH, drop)
      const packed = [0, 1, 2].map((w) => unpackQkv(arr(dqkv), H, w))
      t.ok(same(packed[0], kept.dq) && same(packed[1], kept.dk) && same(packed[2], kept.dv), `${name}: packed q|k|v`)
    }
  }
})

t.test('validation names the offending argument', async (t) => {
  const z = (...s: number[]) => Tensor.zeros(s)
  t.throws(() => ops.layerNormForward(z(4, 3), z(4), z(4), z(4, 3), z(4), z(3), 1e-5), /weight.*\[3\].*\[4\]/)
  t.throws(() => ops.layerNormForward(z(4, 3), z(3), z(4), z(4, 3), z(3), z(3), 1e-5), /mean/)
  t.throws(() => ops.layerNormForward(z(4, 3), z(4), z(4), z(4, 3), z(3), z(3), 0), /eps.*> 0/)
  t.throws(() => ops.layerNormApply(z(4, 2), z(4, 3), z(4), z(4), z(3), z(3)), /\bout\b/)
  t.throws(() => ops.layerNormApply(z(4, 3), z(4, 3), z(3), z(4), z(3), z(3)), /mean/)
  t.throws(() => ops.layerNormApply(z(4, 3), z(4, 3), z(4), z(5), z(3), z(3)), /rstd/)
  t.throws(() => ops.layerNormApply(z(4, 3), z(4, 3), z(4), z(4), z(3), z(2)), /bias/)
  const rows = z(5, 3)
  t.throws(() => ops.layerNormApply(rows.view(3, [4, 3]), rows.view(0, [4, 3]), z(4), z(4), z(3), z(3)), /out and inp not to overlap/)
  t.throws(() => ops.layerNormBackward(z(4, 3), z(3), z(2), z(4, 3), z(4, 3), z(3), z(4), z(4)), /dbias/)
  t.throws(() => ops.linearForward(z(4, 2), z(4, 5), z(2, 3), null), /inp.*C = 3/)
  t.throws(() => ops.linearForward(z(4, 3), z(4, 3), z(2, 3), null), /out/)
  t.throws(() => ops.linearForward(z(4, 2), z(4, 3), z(2, 3), z(3)), /bias.*\[2\]/)
  t.throws(() => ops.linearBackward(z(4, 3), z(3, 2), null, z(4, 2), z(4, 3), z(2, 3)), /dweight/)
  t.throws(() => ops.geluForward(z(5), z(6)), /inp.*5 elements/)
  t.throws(() => ops.add(z(5), z(5), z(4)), /\bb\b/)
  const ids = Int32Array.from([0, 1, 2])
  t.throws(
    () => ops.embeddingForward(z(3, 2), Int32Array.from([0, 5, 1]), ids, Int32Array.from([0, 0, 0]), z(5, 2), z(4, 2), z(1, 2)),
    /ids\[1\] = 5.*word \(5 rows\)/,
  )
  t.throws(
    () => ops.embeddingForward(z(3, 2), ids, Int32Array.from([0, 1]), Int32Array.from([0, 0, 0]), z(5, 2), z(4, 2), z(1, 2)),
    /posIds.*3 entries/,
  )
  t.throws(() => ops.embeddingForward(z(3, 2), ids, ids, Int32Array.from([0, -1, 0]), z(5, 2), z(4, 2), z(1, 2)), /typeIds\[1\]/)
  t.throws(() => ops.embeddingForward(z(3, 2), ids, ids, ids, z(5, 2), z(4, 3), z(3, 2)), /pos.*H = 2/)
  t.throws(() => ops.embeddingForward(z(3, 2), [0, 1, 2] as never, ids, ids, z(5, 2), z(4, 2), z(3, 2)), /ids to be an Int32Array/)
  const q = z(2, 3, 4),
    mask = new Int32Array(6).fill(1)
  t.throws(() => ops.attentionForward(z(2, 3, 4), z(2, 2, 3, 3), q, q, q, mask, 3), /numHeads.*divide/)
  t.throws(() => ops.attentionForward(z(2, 3, 4), z(2, 2, 3, 2), q, q, q, mask, 2), /probs.*\[2, 2, 3, 3\]/)
  t.throws(() => ops.attentionForward(z(2, 3, 4), z(2, 2, 3, 3), q, z(2, 3, 5), q, mask, 2), /\bk\b.*\[2, 3, 4\]/)
  t.throws(() => ops.attentionForward(z(2, 3, 4), z(2, 2, 3, 3), q, q, q, new Int32Array(5), 2), /mask.*6 entries/)
  t.throws(() => ops.attentionForward(z(2, 3, 4), z(2, 2, 3, 3), q, q, q, mask, 2, { p: 1.5, seed: 1, offset: 0 }), /\bp\b.*\[0, 1\]/)
  t.throws(() => ops.attentionForward(z(2, 3, 4), z(2, 2, 3, 3), q, q, q, mask, 2, { p: 0.1, seed: -1, offset: 0 }), /seed/)
  t.throws(
    () => ops.attentionForward(z(2, 3, 4), z(2, 2, 3, 3), q, q, q, mask, 2, { p: 0.1, seed: 1, offset: 0, keepRows: new Uint8Array(3) }),
    /keepRows/,
  )
  t.throws(() => ops.attentionBackward(z(2, 3, 4), z(2, 3, 4), z(2, 3, 3), z(2, 3, 4), q, q, q, z(2, 2, 3, 3), mask, 2), /\bdv\b/)
  t.throws(() => ops.poolClsForward(z(2, 5), z(2, 3, 4)), /out.*\[2, 4\]/)
  t.throws(() => ops.poolMeanBackward(z(2, 3, 4), z(2, 4), new Int32Array(5), false), /mask/)
  t.throws(() => ops.adamwStep(z(3), z(3), z(3), z(3), 1e-3, 0.9, 0.999, 1e-8, 0, 0), /step.*>= 1/)
  t.throws(() => ops.adamwStep(z(3), z(3), z(2), z(3), 1e-3, 0.9, 0.999, 1e-8, 0, 1), /\bm\b/)
  t.throws(() => ops.adamwStep(z(3), z(3), z(3), z(3), 1e-3, 1, 0.999, 1e-8, 0, 1), /beta1/)
  t.throws(() => ops.gradSumSquares({} as never), /g to be a Tensor/)
  const gone = z(3)
  gone.dispose()
  t.throws(() => ops.scaleInplace(gone, 2), /x is a disposed Tensor/)
  // The raw addon validates too.
  t.throws(
    () => addon.layerNormForward({} as never, {} as never, {} as never, {} as never, {} as never, {} as never, 1e-5),
    /out to be a Tensor/,
  )
  t.throws(() => (addon.attentionForward as unknown as () => void)(), /ctx/)
})

t.test('CUDA tensors: ops with a kernel run, the others and mixed devices are refused', async (t) => {
  if (!addon.cudaStatus().available) {
    t.pass('no CUDA device here: skipped')
    return
  }
  const g = Tensor.zeros([4], 'cuda')
  t.equal(ops.gradSumSquares(g), 0, 'gradSumSquares runs on CUDA')
  t.throws(() => ops.geluForward(Tensor.zeros([4]), g), /Expected inp to be on out's device 'cpu' but it is on 'cuda'/)
  if (!addon.backendOps('cuda').includes('linear_forward')) {
    const w = Tensor.zeros([4, 4], 'cuda')
    t.throws(
      () => ops.linearForward(Tensor.zeros([1, 4], 'cuda'), g.view(0, [1, 4]), w, null),
      /linearForward has no CUDA implementation yet \(out is on 'cuda'\)/,
    )
    w.dispose()
  }
  g.dispose()
})
