// Attention at precision 'bf16' on the CPU (native/cpu/attention.cpp; the contract in native/ops/encoder.h): the
// products take bfloat16-rounded operands, the sums and the softmax stay fp32. Held to float64 references
// built from the same rounded operands:
//   - probs: bit for bit the fp32 op's on pre-rounded q, k (the same products of the same values);
//   - ctx = bf16(fround(P · dropout factor)) · bf16(v), from the op's own probs: only the fp32 sums differ;
//   - dv = bf16(Pd)ᵀ bf16(dctx) likewise; dq = bf16(dS / √HS) bf16(k), dk = bf16(dS / √HS)ᵀ bf16(q) with dS formed
//     in float64 from the op's probs: there a rounding can land on the neighbouring bfloat16 (dS's fp32 and
//     float64 values differ in the last bits; none did in these cases: 1e-7), so their bound is 1e-4, and the
//     test checks that the fp32 op's numbers (~5e-3 away) are far outside it.
// Shapes past the contract (T = 129, HS = 72) run at fp32: bit for bit the fp32 op. The CUDA kernels are held to
// these CPU numbers by helpers/encoder-parity.mjs.
import t from 'tap'
import * as ops from '../lib/ops.js'
import { Tensor } from '../lib/tensor.js'
import { dropout } from '../lib/dropout.js'
import { randn } from './helpers/parity.mjs'

const bf16 = (x: number): number => {
  const f = new Float32Array([x])
  const u = new Uint32Array(f.buffer)
  if ((u[0] & 0x7f800000) !== 0x7f800000) u[0] = ((u[0] + 0x7fff + ((u[0] >>> 16) & 1)) & 0xffff0000) >>> 0
  return f[0]
}
const rounded = (a: ArrayLike<number>) => Float64Array.from(a, bf16)

/** max|got − want| / max|want| */
function maxErr(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0,
    den = 1e-30
  for (let i = 0; i < want.length; i++) {
    num = Math.max(num, Math.abs(got[i] - want[i]))
    den = Math.max(den, Math.abs(want[i]))
  }
  return num / den
}

interface Case {
  B: number
  T: number
  NH: number
  HS: number
  lengths: number[]
}

function run(c: Case, precision: 'fp32' | 'bf16', x: Record<string, Float32Array>, drop: ops.DropoutSite | null) {
  const shape = [c.B, c.T, c.NH * c.HS]
  const T = (a: Float32Array) => Tensor.from(a, shape)
  const [q, k, v] = [T(x.q), T(x.k), T(x.v)]
  const mask = Int32Array.from({ length: c.B * c.T }, (_, i) => (i % c.T < c.lengths[Math.floor(i / c.T)] ? 1 : 0))
  const ctx = Tensor.zeros(shape),
    probs = Tensor.zeros([c.B, c.NH, c.T, c.T])
  ops.attentionForward(ctx, probs, q, k, v, mask, c.NH, drop, false, null, precision)
  const [dq, dk, dv] = [Tensor.zeros(shape), Tensor.zeros(shape), Tensor.zeros(shape)]
  ops.attentionBackward(dq, dk, dv, T(x.dctx), q, k, v, probs, mask, c.NH, drop, false, null, null, precision)
  // Without probs: P formed again with the forward's bits.
  const [eq, ek, ev] = [Tensor.zeros(shape), Tensor.zeros(shape), Tensor.zeros(shape)]
  ops.attentionBackward(eq, ek, ev, T(x.dctx), q, k, v, null, mask, c.NH, drop, false, null, null, precision)
  const f = (y: Tensor) => y.toFloat32Array()
  return { ctx: f(ctx), probs: f(probs), dq: f(dq), dk: f(dk), dv: f(dv), again: [f(eq), f(ek), f(ev)] }
}

/** The float64 references of the bf16 contract from the op's own probs P (see the header). */
function reference(c: Case, x: Record<string, Float32Array>, P: Float32Array, factor: Float32Array | null, roundDS: boolean) {
  const { B, T, NH, HS } = c,
    H = NH * HS,
    scale = Math.fround(1 / Math.sqrt(HS))
  const [qb, kb, vb, gb] = [rounded(x.q), rounded(x.k), rounded(x.v), rounded(x.dctx)]
  const ctx = new Float64Array(B * T * H),
    dq = new Float64Array(B * T * H),
    dk = new Float64Array(B * T * H),
    dv = new Float64Array(B * T * H)
  const at = (b: number, i: number, h: number, e: number) => (b * T + i) * H + h * HS + e
  for (let b = 0; b < B; b++)
    for (let h = 0; h < NH; h++) {
      const blk = (b * NH + h) * T * T
      const pd = Float64Array.from({ length: T * T }, (_, e) => bf16(Math.fround(P[blk + e] * (factor ? factor[blk + e] : 1))))
      const dS = new Float64Array(T * T)
      for (let i = 0; i < T; i++) {
        const dP = new Float64Array(T)
        let dotSum = 0
        for (let j = 0; j < T; j++) {
          let s = 0
          for (let e = 0; e < HS; e++) s += gb[at(b, i, h, e)] * vb[at(b, j, h, e)]
          dP[j] = s * (factor ? factor[blk + i * T + j] : 1)
          dotSum += dP[j] * P[blk + i * T + j]
        }
        for (let j = 0; j < T; j++) {
          const ds = P[blk + i * T + j] * (dP[j] - dotSum) * scale
          dS[i * T + j] = roundDS ? bf16(ds) : ds
        }
      }
      for (let i = 0; i < T; i++)
        for (let e = 0; e < HS; e++) {
          let sc = 0,
            sq = 0,
            sk = 0,
            sv = 0
          for (let j = 0; j < T; j++) {
            sc += pd[i * T + j] * vb[at(b, j, h, e)]
            sq += dS[i * T + j] * kb[at(b, j, h, e)]
            sk += dS[j * T + i] * qb[at(b, j, h, e)]
            sv += pd[j * T + i] * gb[at(b, j, h, e)]
          }
          ctx[at(b, i, h, e)] = sc
          dq[at(b, i, h, e)] = sq
          dk[at(b, i, h, e)] = sk
          dv[at(b, i, h, e)] = sv
        }
    }
  return { ctx, dq, dk, dv }
}

const CASES: Case[] = [
  { B: 2, T: 17, NH: 2, HS: 8, lengths: [17, 9] },
  { B: 1, T: 64, NH: 2, HS: 64, lengths: [50] },
  { B: 3, T: 1, NH: 1, HS: 5, lengths: [1, 1, 0] },
  { B: 2, T: 33, NH: 3, HS: 20, lengths: [33, 1] },
  { B: 2, T: 100, NH: 2, HS: 12, lengths: [100, 67] }, // the long kernels' shapes (64 < T <= 128)
  { B: 1, T: 128, NH: 1, HS: 64, lengths: [128] },
]

for (const c of CASES)
  for (const withDrop of [false, true]) {
    const name = `B=${c.B} T=${c.T} NH=${c.NH} HS=${c.HS}${withDrop ? ', dropout p = 0.1' : ''}`
    t.test(`attention at bf16 (CPU): ${name}`, async (t) => {
      const n = c.B * c.T * c.NH * c.HS
      const x = { q: randn(n, 1), k: randn(n, 2), v: randn(n, 3), dctx: randn(n, 4) }
      const keepRows = Uint8Array.from({ length: c.B }, (_, b) => (b === 1 ? 0 : 1))
      const drop = withDrop ? { p: 0.1, seed: 9, offset: 4, keepRows } : null
      const got = run(c, 'bf16', x, drop)
      const onRounded = run(c, 'fp32', { ...x, q: Float32Array.from(x.q, bf16), k: Float32Array.from(x.k, bf16) }, drop)
      t.same(Buffer.from(got.probs.buffer), Buffer.from(onRounded.probs.buffer), 'probs: the fp32 op on rounded q, k, bit for bit')
      const factor = drop
        ? dropout(Tensor.zeros([c.B, c.NH * c.T * c.T]).fill(1), {
            p: drop.p,
            seed: drop.seed,
            offset: drop.offset,
            keepRows,
          }).toFloat32Array()
        : null
      const ref = reference(c, x, got.probs, factor, true)
      for (const out of ['ctx', 'dv'] as const) {
        const err = maxErr(got[out], ref[out])
        t.ok(err < 1e-6, `${out}: error ${err.toExponential(2)} < 1e-6 of the float64 reference`)
      }
      const fp32 = run(c, 'fp32', x, drop)
      const unrounded = reference(c, x, got.probs, factor, false)
      for (const out of ['dq', 'dk'] as const) {
        const err = maxErr(got[out], ref[out])
        t.ok(err < 1e-4, `${out}: error ${err.toExponential(2)} < 1e-4 of the float64 reference`)
        const fp32Err = maxErr(fp32[out], ref[out])
        if (c.T > 1) t.ok(fp32Err > 10 * err, `${out}: the fp32 op is further from it (${fp32Err.toExponential(2)})`)
        if (c.T > 1) t.ok(maxErr(unrounded[out], ref[out]) > 0, `${out}: dS's rounding changes the reference`)
      }
      got.again.forEach((g, i) =>
        t.same(
          Buffer.from(g.buffer),
          Buffer.from([got.dq, got.dk, got.dv][i].buffer),
          `${['dq', 'dk', 'dv'][i]} without probs: the same bits`,
        ),
      )
    })
  }

t.test('attention at bf16 (CPU): shapes past T = 128 or HS = 64 run at fp32', async (t) => {
  for (const c of [
    { B: 1, T: 129, NH: 1, HS: 8, lengths: [120] },
    { B: 2, T: 5, NH: 1, HS: 72, lengths: [5, 3] },
  ]) {
    const n = c.B * c.T * c.NH * c.HS
    const x = { q: randn(n, 5), k: randn(n, 6), v: randn(n, 7), dctx: randn(n, 8) }
    const [a, b] = [run(c, 'bf16', x, null), run(c, 'fp32', x, null)]
    for (const out of ['ctx', 'probs', 'dq', 'dk', 'dv'] as const)
      t.same(Buffer.from(a[out].buffer), Buffer.from(b[out].buffer), `T=${c.T} HS=${c.HS}: ${out} as at fp32`)
  }
})

t.test('attention: a bad precision is an Error naming it', async (t) => {
  const x = Tensor.zeros([1, 2, 4])
  const probs = Tensor.zeros([1, 1, 2, 2])
  t.throws(
    () => ops.attentionForward(x, probs, x, x, x, Int32Array.of(1, 1), 1, null, false, null, 'fp16' as 'fp32'),
    /Expected precision to be 'fp32' or 'bf16'/,
  )
})
