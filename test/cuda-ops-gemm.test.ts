// The CUDA matrix-product ops (kernels/gemm.cu: sgemm, linear; kernels/attention.cu: attention) against the
// CPU reference, table-driven: every op runs on 'cuda' and on 'cpu' with the same inputs, and each output is
// compared with the normalised error max|a - b| / max(max|b|, floor). Shapes cross the 64-wide output tiles
// and the 16-deep reduction chunks and include the degenerate ones (T = 1, one head, R = 1, OC = 1, padded
// keys, a sentence with no real key); dropout runs at p = 0 and p = 0.1 with keepRows mixing 0 and 1, and
// its mask is compared exactly. Small enough for the host emulator (npm run test:emulated).
// Skipped, with the reason printed, when no CUDA device (real or emulated) is usable.
import t, { type Test } from 'tap'
import * as ops from '../lib/ops.js'
import { addon } from '../lib/native.js'
import { Tensor, nativeOf, type Device } from '../lib/tensor.js'
import { randn } from './helpers/parity.mjs'

const status = addon.cudaStatus()
const skip = status.available ? false : `CUDA unavailable: ${status.reason}`
if (skip) console.log(`# skipping the CUDA GEMM op tests: ${skip}`)

// Tolerances of the normalised error (fp32, sums of at most ~100 terms in another order than the CPU's).
const GEMM_TOL = 1e-5 // sgemm, linear forward and backward
const ATTN_TOL = 1e-5 // attention probs, ctx, dq, dk, dv
const FLOOR = 1e-3 // below this the error is measured absolutely

/** max|a - b| / max(max|b|, floor); a NaN or infinity in only one of a, b gives NaN or Infinity, which fails every check. */
function maxErr(a: ArrayLike<number>, b: ArrayLike<number>, floor = FLOOR): number {
  if (a.length !== b.length) return Infinity
  let num = 0
  let den = 0
  for (let i = 0; i < b.length; i++) {
    const same = a[i] === b[i] || (Number.isNaN(a[i]) && Number.isNaN(b[i]))
    const d = same ? 0 : Math.abs(a[i] - b[i])
    if (Number.isNaN(d)) return NaN
    num = Math.max(num, d)
    if (Number.isFinite(b[i])) den = Math.max(den, Math.abs(b[i]))
  }
  return num / Math.max(den, floor)
}

function expectClose(t: Test, what: string, got: Float32Array, want: Float32Array, tol: number) {
  const err = maxErr(got, want)
  t.ok(err < tol, `${what}: normalised error ${err.toExponential(2)} < ${tol}`)
  return err
}

/** Runs `fn` on `device` with tensors made from the given arrays; returns the named tensors' contents afterwards. */
function onDevice(device: Device, inputs: Record<string, [Float32Array, number[]]>, fn: (x: Record<string, Tensor>) => void) {
  const x: Record<string, Tensor> = {}
  for (const [name, [data, shape]] of Object.entries(inputs)) x[name] = Tensor.from(data, shape, device)
  fn(x)
  const out: Record<string, Float32Array> = {}
  for (const [name, tensor] of Object.entries(x)) {
    out[name] = tensor.toFloat32Array()
    tensor.dispose()
  }
  return out
}

/** Runs the same op on 'cuda' and 'cpu'; returns [cuda results, cpu results]. */
function both(inputs: Record<string, [Float32Array, number[]]>, fn: (x: Record<string, Tensor>) => void) {
  return [onDevice('cuda', inputs, fn), onDevice('cpu', inputs, fn)] as const
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1)
let seedCounter = 1
const rand = (shape: number[], scale = 1): [Float32Array, number[]] => [randn(numel(shape), seedCounter++, scale), shape]
const fill = (shape: number[], v: number): [Float32Array, number[]] => [new Float32Array(numel(shape)).fill(v), shape]

const worst: Record<string, number> = {}
function record(op: string, err: number) {
  worst[op] = Math.max(worst[op] ?? 0, err)
}

// ---------------------------------------------------------------------------------------------
// sgemm: C = alpha op(A) op(B) + beta C, through the addon's gemm (lda, ldb, ldc = the row lengths).

const GEMM_SHAPES: [number, number, number][] = [
  // [M, N, K]
  [70, 65, 33],
  [1, 1, 1],
  [1, 130, 17],
  [65, 1, 100],
  [17, 64, 16],
]
const GEMM_SCALARS: [number, number][] = [
  // [alpha, beta]
  [1, 0],
  [0.5, 1.5],
  [-2, 1],
]

t.test('sgemm: CUDA equals CPU for every transpose, alpha and beta', { skip }, async (t) => {
  for (const [M, N, K] of GEMM_SHAPES)
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const [alpha, beta] of GEMM_SCALARS) {
          const inputs = {
            a: rand(transA ? [K, M] : [M, K]),
            b: rand(transB ? [N, K] : [K, N]),
            // beta == 0 must not read C: NaN there must not reach the result.
            c: beta === 0 ? fill([M, N], NaN) : rand([M, N]),
          }
          const [gpu, cpu] = both(inputs, (x) =>
            addon.gemm(nativeOf(x.c, 'c'), nativeOf(x.a, 'a'), nativeOf(x.b, 'b'), transA, transB, alpha, beta, false),
          )
          const what = `sgemm M=${M} N=${N} K=${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} alpha=${alpha} beta=${beta}`
          record('sgemm', expectClose(t, what, gpu.c, cpu.c, GEMM_TOL))
        }
})

t.test('sgemm: alpha = 0 gives beta C without reading A or B', { skip }, async (t) => {
  const [M, N, K] = [70, 65, 33]
  for (const beta of [0, 2, 1]) {
    const inputs = { a: fill([M, K], NaN), b: fill([K, N], Infinity), c: rand([M, N]) }
    const [gpu, cpu] = both(inputs, (x) =>
      addon.gemm(nativeOf(x.c, 'c'), nativeOf(x.a, 'a'), nativeOf(x.b, 'b'), false, false, 0, beta, false),
    )
    t.same(gpu.c, cpu.c, `alpha = 0, beta = ${beta}: C = beta C exactly`)
    t.ok(
      gpu.c.every((v, i) => v === beta * inputs.c[0][i]),
      `alpha = 0, beta = ${beta}: the NaN/Inf in A and B are not read`,
    )
  }
})

// ---------------------------------------------------------------------------------------------
// linear: out = inp W^T + bias; dinp (= or +=) dout W, dweight += dout^T inp, dbias += column sums.

const LINEAR_SHAPES: [number, number, number][] = [
  // [R, C, OC]
  [70, 33, 65],
  [1, 1, 1],
  [1, 33, 70],
  [5, 17, 1],
  [130, 16, 20],
  [200, 128, 192],
]

t.test('linear forward: CUDA equals CPU', { skip }, async (t) => {
  for (const [R, C, OC] of LINEAR_SHAPES)
    for (const withBias of [true, false]) {
      const inputs = {
        out: fill([R, OC], NaN), // overwritten: never read
        inp: rand([R, C]),
        weight: rand([OC, C], 0.2),
        ...(withBias ? { bias: rand([OC]) } : {}),
      }
      const [gpu, cpu] = both(inputs, (x) => ops.linearForward(x.out, x.inp, x.weight, withBias ? x.bias : null))
      record('linear_forward', expectClose(t, `linear forward R=${R} C=${C} OC=${OC} bias=${withBias}`, gpu.out, cpu.out, GEMM_TOL))
    }
})

t.test('linear backward: CUDA equals CPU (dweight, dbias accumulate; dinp overwritten or accumulated; null skips)', { skip }, async (t) => {
  const variants = [
    { name: 'dinp overwritten', dinp: true, dbias: true, accumulate: false },
    { name: 'dinp accumulated', dinp: true, dbias: true, accumulate: true },
    { name: 'no dinp, no dbias', dinp: false, dbias: false, accumulate: false },
  ]
  for (const [R, C, OC] of LINEAR_SHAPES)
    for (const v of variants) {
      const inputs = {
        // Overwritten dinp starts as NaN (must not be read); accumulated gradients start non-zero.
        dinp: v.accumulate ? rand([R, C]) : fill([R, C], NaN),
        dweight: rand([OC, C]),
        dbias: rand([OC]),
        dout: rand([R, OC]),
        inp: rand([R, C]),
        weight: rand([OC, C], 0.2),
      }
      const [gpu, cpu] = both(inputs, (x) =>
        ops.linearBackward(v.dinp ? x.dinp : null, x.dweight, v.dbias ? x.dbias : null, x.dout, x.inp, x.weight, v.accumulate),
      )
      const what = `linear backward R=${R} C=${C} OC=${OC} ${v.name}`
      let err = expectClose(t, `${what}: dweight`, gpu.dweight, cpu.dweight, GEMM_TOL)
      err = Math.max(err, expectClose(t, `${what}: dbias`, gpu.dbias, cpu.dbias, GEMM_TOL))
      if (v.dinp) err = Math.max(err, expectClose(t, `${what}: dinp`, gpu.dinp, cpu.dinp, GEMM_TOL))
      else t.ok(gpu.dinp.every(Number.isNaN), `${what}: dinp untouched`)
      if (!v.dbias) t.same(gpu.dbias, inputs.dbias[0], `${what}: dbias untouched`)
      record('linear_backward', err)
    }
})

t.test('linear backward is deterministic (dbias and dweight bit for bit over runs)', { skip }, async (t) => {
  const [R, C, OC] = [130, 33, 65]
  const inputs = {
    dinp: fill([R, C], 0),
    dweight: fill([OC, C], 0),
    dbias: fill([OC], 0),
    dout: rand([R, OC]),
    inp: rand([R, C]),
    weight: rand([OC, C]),
  }
  const run = () => onDevice('cuda', inputs, (x) => ops.linearBackward(x.dinp, x.dweight, x.dbias, x.dout, x.inp, x.weight))
  const a = run()
  const b = run()
  t.same(a.dbias, b.dbias, 'dbias')
  t.same(a.dweight, b.dweight, 'dweight')
  t.same(a.dinp, b.dinp, 'dinp')
})

// ---------------------------------------------------------------------------------------------
// attention: forward (probs, ctx) and backward (dq, dk, dv), with masks and dropout.

interface AttnCase {
  name: string
  B: number
  T: number
  NH: number
  HS: number
  /** Real tokens per sentence (the rest are padding). */
  lengths: number[]
}

const ATTN_CASES: AttnCase[] = [
  { name: 'padded rows', B: 2, T: 17, NH: 2, HS: 8, lengths: [17, 9] },
  { name: 'one real token', B: 2, T: 17, NH: 2, HS: 8, lengths: [1, 17] },
  { name: 'T = 1', B: 3, T: 1, NH: 1, HS: 5, lengths: [1, 1, 1] },
  { name: 'one head, H = 20, T crosses a tile', B: 1, T: 70, NH: 1, HS: 20, lengths: [66] },
  { name: 'three heads, H = 21, no real key in one sentence', B: 3, T: 5, NH: 3, HS: 7, lengths: [5, 0, 3] },
  { name: 'BERT head size', B: 2, T: 128, NH: 2, HS: 64, lengths: [128, 40] },
]

const maskOf = (c: AttnCase) => Int32Array.from({ length: c.B * c.T }, (_, i) => (i % c.T < c.lengths[Math.floor(i / c.T)] ? 1 : 0))

/** The dropout sites: none, p = 0, and p = 0.1 with keepRows mixing 0 and 1 (and null: every sentence dropped). */
function dropoutSites(B: number): { name: string; site: ops.DropoutSite | null }[] {
  const keepRows = Uint8Array.from({ length: B }, (_, b) => (b % 2 === 1 ? 0 : 1))
  return [
    { name: 'no dropout', site: null },
    { name: 'p = 0', site: { p: 0, seed: 7, offset: 3, keepRows } },
    { name: 'p = 0.1, keepRows', site: { p: 0.1, seed: 12345678901n, offset: 77, keepRows } },
    { name: 'p = 0.1, all rows', site: { p: 0.1, seed: 42, offset: 1000, keepRows: null } },
  ]
}

function attention(c: AttnCase, site: ops.DropoutSite | null, inputs: Record<string, [Float32Array, number[]]>) {
  const mask = maskOf(c)
  return both(inputs, (x) => {
    ops.attentionForward(x.ctx, x.probs, x.q, x.k, x.v, mask, c.NH, site)
    ops.attentionBackward(x.dq, x.dk, x.dv, x.dctx, x.q, x.k, x.v, x.probs, mask, c.NH, site)
  })
}

function attnInputs(c: AttnCase) {
  const act = [c.B, c.T, c.NH * c.HS]
  return {
    ctx: fill(act, NaN),
    probs: fill([c.B, c.NH, c.T, c.T], NaN),
    q: rand(act),
    k: rand(act),
    v: rand(act),
    dctx: rand(act),
    dq: fill(act, NaN),
    dk: fill(act, NaN),
    dv: fill(act, NaN),
  }
}

t.test('attention forward and backward: CUDA equals CPU', { skip }, async (t) => {
  for (const c of ATTN_CASES)
    for (const { name, site } of dropoutSites(c.B)) {
      const [gpu, cpu] = attention(c, site, attnInputs(c))
      const what = `attention ${c.name} (B=${c.B} T=${c.T} NH=${c.NH} HS=${c.HS}) ${name}`
      record('attention_forward', expectClose(t, `${what}: probs`, gpu.probs, cpu.probs, ATTN_TOL))
      record('attention_forward', expectClose(t, `${what}: ctx`, gpu.ctx, cpu.ctx, ATTN_TOL))
      for (const g of ['dq', 'dk', 'dv']) record('attention_backward', expectClose(t, `${what}: ${g}`, gpu[g], cpu[g], ATTN_TOL))
    }
})

// With v_h the one-hot rows e_t (HS >= T), ctx_h = Pd exactly, and with dctx_h the same one-hot rows,
// dv_h = Pd^T exactly: the forward's mask and the backward's regenerated one are read off element by element.
t.test('attention dropout: CUDA draws the CPU mask, element for element, forward and backward', { skip }, async (t) => {
  const c: AttnCase = { name: 'one-hot values', B: 3, T: 20, NH: 2, HS: 24, lengths: [20, 13, 20] }
  const H = c.NH * c.HS
  const oneHot = new Float32Array(c.B * c.T * H)
  for (let b = 0; b < c.B; b++)
    for (let tok = 0; tok < c.T; tok++) for (let h = 0; h < c.NH; h++) oneHot[(b * c.T + tok) * H + h * c.HS + tok] = 1
  const site = { p: 0.1, seed: 987654321, offset: 4242, keepRows: Uint8Array.from([1, 1, 0]) }
  const inputs = {
    ...attnInputs(c),
    v: [oneHot, [c.B, c.T, H]] as [Float32Array, number[]],
    dctx: [oneHot, [c.B, c.T, H]] as [Float32Array, number[]],
  }
  const [gpu, cpu] = attention(c, site, inputs)
  for (const out of ['ctx', 'dv']) {
    let differ = 0
    let dropped = 0
    for (let i = 0; i < cpu[out].length; i++) {
      if ((gpu[out][i] === 0) !== (cpu[out][i] === 0)) differ++
      const b = Math.floor(i / (c.T * H))
      const j = i % c.HS
      const tok = Math.floor(i / H) % c.T
      // A dropped element: a real key (and, for dv, a real query row), in a sentence with dropout.
      const key = out === 'ctx' ? j : tok
      if (cpu[out][i] === 0 && j < c.T && key < c.lengths[b]) dropped++
    }
    t.equal(differ, 0, `${out}: the zero pattern (the dropout mask) is the CPU's`)
    t.ok(dropped > 0, `${out}: dropout dropped ${dropped} elements`)
    record('attention_mask', expectClose(t, `${out}: values`, gpu[out], cpu[out], ATTN_TOL))
  }
  // Sentence 2 has keepRows 0: its ctx is P itself, zero only at padded keys (there are none).
  const s2 = gpu.ctx.subarray(2 * c.T * H)
  let zeros = 0
  for (let i = 0; i < s2.length; i++) if (i % c.HS < c.T && s2[i] === 0) zeros++
  t.equal(zeros, 0, 'keepRows = 0: sentence 2 is not dropped')
})

t.test('attention is deterministic (bit for bit over runs)', { skip }, async (t) => {
  const c = ATTN_CASES[0]
  const site = dropoutSites(c.B)[2].site
  const inputs = attnInputs(c)
  const mask = maskOf(c)
  const run = () =>
    onDevice('cuda', inputs, (x) => {
      ops.attentionForward(x.ctx, x.probs, x.q, x.k, x.v, mask, c.NH, site)
      ops.attentionBackward(x.dq, x.dk, x.dv, x.dctx, x.q, x.k, x.v, x.probs, mask, c.NH, site)
    })
  const a = run()
  const b = run()
  for (const name of ['probs', 'ctx', 'dq', 'dk', 'dv']) t.same(a[name], b[name], name)
})

t.test('worst normalised errors', { skip }, async (t) => {
  t.comment(
    Object.entries(worst)
      .map(([op, e]) => `${op} ${e.toExponential(2)}`)
      .join(', '),
  )
  t.pass()
})
