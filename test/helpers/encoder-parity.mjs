// The encoder ops' CUDA-vs-CPU parity tables, shared by test/cuda-ops-gemm.test.ts and
// test/cuda-ops-rowwise.test.ts (tap, through TypeScript, with lib/) and scripts/gpu-check.mjs (plain
// node on a GPU machine, with dist/). Plain JavaScript with JSDoc types, written against an injected
// `lib` ({ Tensor, ops, addon, nativeOf, Bf16Values }), so a GPU run checks the very shapes, inputs, tolerances and
// error measures the tests use.
//
// A case runs one op (or a forward and its backward) on the device under test and on 'cpu' with the same
// inputs and returns its checks ({ ok, message }: one tap assertion each; one PASS/FAIL line in gpu-check).
// Inputs are seeded draws made when a case runs, so the tables cost nothing to load. Cases of one `group`
// form one tap subtest.
//
// GEMM_CASES (kernels/gemm.cu: sgemm, linear; kernels/attention.cu and attention_small.cu): compared with the normalised error
// max|a − b| / max(max|b|, 1e-3) below 1e-5 (fp32 sums of at most ~100 terms in another order than the
// CPU's). Shapes cross the 64-wide output tiles and the 16-deep reduction chunks and include the degenerate
// ones (T = 1, one head, R = 1, OC = 1, padded keys, a sentence with no real key); dropout runs at p = 0 and
// p = 0.1 with keepRows mixing 0 and 1, and its mask is compared exactly. Outputs that must not be read
// start as NaN. The linear layer's fused GELU (geluOut forward, geluInput backward) runs over the same
// shapes, with pre-activations of standard deviation 3 so that both of GELU's tails count.
//
// ROWWISE_CASES (kernels/elementwise.cu, modern.cu, embedding.cu, layernorm.cu, pooling.cu, optim.cu): GPU
// erff/expf/tanhf differ from libm by ulps and nvcc may fuse a*b + c, so: normalised error
// ‖cuda − cpu‖ / ‖cpu‖ below 1e-6 for the element-wise ops and below 1e-5 for the row reductions (layer
// norm, mean pooling); bit-identical for the embedding (the same float additions in the same order) and
// CLS pooling (copies); AdamW within 4 ulps per element (the same roundings: common/adamw.h);
// gradSumSquares within 1e-12 relative of the CPU's double sum. Shapes are odd on purpose: 1 row, H = 1,
// H not a multiple of 32/64, T = 1, padded tokens and a sentence with a single (or no) real token,
// repeated ids, null gradient tables, accumulate on/off, element counts past one grid of the grid-stride
// loops.
//
// The reductions must also be deterministic: a second run on the device gives bit-identical outputs.
import { bitEqual, randn, relErr } from './parity.mjs'

const f32 = new Float32Array(1),
  u32 = new Uint32Array(f32.buffer)
/** v rounded to bfloat16, to nearest even (common/bf16.h's round_bf16). @param {number} v */
function roundBf16(v) {
  f32[0] = v
  const x = u32[0]
  if ((x & 0x7f800000) === 0x7f800000) return f32[0]
  u32[0] = (x + 0x7fff + ((x >>> 16) & 1)) & 0xffff0000
  return f32[0]
}
/** The n bf16 values stored two a float in `storage`, as floats. @param {Float32Array} storage @param {number} n */
function bf16Floats(storage, n) {
  const halves = new Uint16Array(storage.buffer, storage.byteOffset, n)
  return Float32Array.from(halves, (h) => {
    u32[0] = h << 16
    return f32[0]
  })
}

/**
 * @typedef {'cpu' | 'cuda'} Device
 * @typedef {import('../../lib/tensor.js').Tensor} Tensor
 * @typedef {{
 *   Tensor: typeof import('../../lib/tensor.js').Tensor,
 *   ops: typeof import('../../lib/ops.js'),
 *   addon: import('../../lib/native.js').Addon,
 *   nativeOf: typeof import('../../lib/tensor.js').nativeOf,
 *   Bf16Values: typeof import('../../lib/bf16-values.js').Bf16Values,
 * }} EncoderLib what the cases run: lib/ in the tests, dist/ in gpu-check
 * @typedef {{ op: string, value: number, unit: string }} Measure
 * @typedef {{ ok: boolean, message: string, measure?: Measure }} Check one assertion, and what it measured (for the worst errors)
 * @typedef {{ group: string, name: string, work: number, run(lib: EncoderLib, device: Device): Check[] }} ParityCase
 *   work: a rough count of the CPU reference's arithmetic, for gpu-check's time estimates
 * @typedef {{ maxErr: number } | { relErr: number } | { ulps: number } | 'exact'} Tolerance
 * @typedef {Record<string, Float32Array | number>} Outputs
 * @typedef {Record<string, [Float32Array, number[]]>} Inputs
 */

// ---------------------------------------------------------------------------------------------
// Error measures and checks

/**
 * max|a − b| / max(max|b|, floor); a NaN or infinity in only one of a, b gives NaN or Infinity, which
 * fails every check.
 * @param {ArrayLike<number>} a
 * @param {ArrayLike<number>} b
 */
export function maxErr(a, b, floor = 1e-3) {
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

/** Largest distance in units in the last place between two float32 arrays. */
export function maxUlps(/** @type {Float32Array} */ a, /** @type {Float32Array} */ b) {
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length)
  const ib = new Int32Array(b.buffer, b.byteOffset, b.length)
  const key = (/** @type {number} */ v) => (v < 0 ? -(v & 0x7fffffff) : v)
  let worst = 0
  for (let i = 0; i < ia.length; i++) worst = Math.max(worst, Math.abs(key(ia[i]) - key(ib[i])))
  return worst
}

/**
 * Compares an output on the device under test with the CPU's, by `tol`.
 * @param {string} op what the measure is recorded under
 * @param {string} what the message's subject
 * @param {Float32Array | number | undefined} got
 * @param {Float32Array | number} want
 * @param {Tolerance} tol
 * @returns {Check}
 */
export function compare(op, what, got, want, tol) {
  if (got === undefined) return { ok: false, message: `${what}: no output` }
  if (typeof got === 'number' || typeof want === 'number') {
    // A scalar result (gradSumSquares): relative error.
    const err = Math.abs(Number(got) - Number(want)) / Math.max(Math.abs(Number(want)), 1e-300)
    const limit = typeof tol === 'object' && 'relErr' in tol ? tol.relErr : 0
    return {
      ok: err <= limit,
      message: `${what}: ${got} vs ${want}, relative error ${err.toExponential(2)} <= ${limit}`,
      measure: { op, value: err, unit: 'rel' },
    }
  }
  if (got.length !== want.length) return { ok: false, message: `${what}: ${got.length} elements vs ${want.length}` }
  if (tol === 'exact') {
    const r = bitEqual(got, want)
    return {
      ok: r.equal,
      message: `${what}: bit-identical (${r.diff} of ${r.total} elements differ)`,
      measure: { op, value: r.diff, unit: 'elements differ' },
    }
  }
  if ('ulps' in tol) {
    const u = maxUlps(got, want)
    return { ok: u <= tol.ulps, message: `${what}: ${u} ulps <= ${tol.ulps}`, measure: { op, value: u, unit: 'ulps' } }
  }
  if ('maxErr' in tol) {
    const err = maxErr(got, want)
    return {
      ok: err < tol.maxErr,
      message: `${what}: normalised error ${err.toExponential(2)} < ${tol.maxErr}`,
      measure: { op, value: err, unit: 'max-normalised' },
    }
  }
  const err = relErr(got, want)
  return {
    ok: err < tol.relErr && got.every(Number.isFinite),
    message: `${what}: normalised error ${err.toExponential(2)} < ${tol.relErr}`,
    measure: { op, value: err, unit: 'rel' },
  }
}

/**
 * `a` and `b` are equal bit for bit (two runs of a deterministic op; an output that must stay untouched).
 * @param {string} what
 * @param {Float32Array} a
 * @param {Float32Array} b
 * @returns {Check}
 */
export function identical(what, a, b) {
  const r = bitEqual(a, b)
  return { ok: r.equal, message: `${what}: bit-identical (${r.diff} of ${r.total} elements differ)` }
}

/** The worst measured error of each op and unit, over the checks recorded. */
export class WorstErrors {
  constructor() {
    /** @type {Map<string, Measure>} */
    this.worst = new Map()
  }

  /** @param {Check} check */
  record(check) {
    const m = check.measure
    if (!m) return
    const key = `${m.op} ${m.unit}`
    const prev = this.worst.get(key)
    if (!prev || !(prev.value >= m.value)) this.worst.set(key, m) // NaN is the worst
  }

  /** One line per op and unit: `op: value unit`. */
  lines() {
    const fmt = (/** @type {Measure} */ m) =>
      m.unit === 'ulps' || m.unit === 'elements differ' ? String(m.value) : m.value.toExponential(2)
    return [...this.worst.values()].map((m) => `${m.op}: ${fmt(m)} ${m.unit}`)
  }
}

/**
 * The cases by group, in table order.
 * @param {ParityCase[]} cases
 */
export function groupCases(cases) {
  /** @type {Map<string, ParityCase[]>} */
  const groups = new Map()
  for (const c of cases) groups.set(c.group, [...(groups.get(c.group) ?? []), c])
  return groups
}

// ---------------------------------------------------------------------------------------------
// Running on one device

/** Makes the tensors of one run on one device, and frees them afterwards. */
export class Bench {
  /**
   * @param {EncoderLib} lib
   * @param {Device} device
   */
  constructor(lib, device) {
    this.lib = lib
    this.device = device
    /** @type {Tensor[]} */
    this.made = []
  }

  /** @param {Float32Array} data @param {number[]} [shape] */
  from(data, shape = [data.length]) {
    const x = this.lib.Tensor.from(data, shape, this.device)
    this.made.push(x)
    return x
  }

  /** @param {number[]} shape */
  zeros(shape) {
    const x = this.lib.Tensor.zeros(shape, this.device)
    this.made.push(x)
    return x
  }

  /** A tensor per input. @param {Inputs} inputs */
  tensors(inputs) {
    /** @type {Record<string, Tensor>} */
    const x = {}
    for (const [name, [data, shape]] of Object.entries(inputs)) x[name] = this.from(data, shape)
    return x
  }

  dispose() {
    for (const x of this.made) x.dispose()
  }
}

/**
 * Runs `build` on `device` with a fresh Bench; every tensor it made is freed afterwards.
 * @template T
 * @param {EncoderLib} lib
 * @param {Device} device
 * @param {(d: Bench) => T} build
 * @returns {T}
 */
export function runOn(lib, device, build) {
  const d = new Bench(lib, device)
  try {
    return build(d)
  } finally {
    d.dispose()
  }
}

/**
 * Runs `fn` on tensors made from `inputs` on `device`; returns every tensor's contents afterwards.
 * @param {EncoderLib} lib
 * @param {Device} device
 * @param {Inputs} inputs
 * @param {(x: Record<string, Tensor>) => void} fn
 * @returns {Record<string, Float32Array>}
 */
function afterRun(lib, device, inputs, fn) {
  return runOn(lib, device, (d) => {
    const x = d.tensors(inputs)
    fn(x)
    return Object.fromEntries(Object.entries(x).map(([name, t]) => [name, t.toFloat32Array()]))
  })
}

/**
 * The same op on `device` and on 'cpu'; returns [device results, cpu results].
 * @param {EncoderLib} lib
 * @param {Device} device
 * @param {Inputs} inputs
 * @param {(x: Record<string, Tensor>) => void} fn
 */
function both(lib, device, inputs, fn) {
  return [afterRun(lib, device, inputs, fn), afterRun(lib, 'cpu', inputs, fn)]
}

/**
 * A case whose outputs are all compared with the CPU's by one tolerance (and, when `deterministic`,
 * between two runs on the device); `build` makes its inputs from the case alone, so both devices get the
 * same. Messages read `<op> <shape> <output>: ...`.
 * @param {{ group: string, op: string, shape: string, tol: Tolerance, work: number, deterministic?: boolean, build(d: Bench): Outputs }} c
 * @returns {ParityCase}
 */
function outputsCase(c) {
  const name = `${c.op} ${c.shape}`
  return {
    group: c.group,
    name,
    work: c.work,
    run(lib, device) {
      const want = runOn(lib, 'cpu', c.build)
      const got = runOn(lib, device, c.build)
      const checks = Object.entries(want).map(([out, w]) => compare(c.op, `${name} ${out}`, got[out], w, c.tol))
      if (c.deterministic) {
        const again = runOn(lib, device, c.build)
        const differs = Object.keys(got).find((out) => {
          const [x, y] = [got[out], again[out]]
          return !(typeof x === 'number' || typeof y === 'number' ? Object.is(x, y) : bitEqual(x, y).equal)
        })
        checks.push({
          ok: differs === undefined,
          message: `${name}: a second run is bit-identical${differs ? ` (${differs} differs)` : ''}`,
        })
      }
      return checks
    },
  }
}

// ---------------------------------------------------------------------------------------------
// Inputs

const numel = (/** @type {number[]} */ shape) => shape.reduce((a, b) => a * b, 1)

/** Seeded inputs for one case: each draw takes the next seed. */
class Draws {
  constructor(/** @type {number} */ seed) {
    this.seed = seed
  }

  /** @param {number[]} shape @returns {[Float32Array, number[]]} */
  rand(shape, scale = 1) {
    return [randn(numel(shape), this.seed++, scale), shape]
  }

  /** @param {number[]} shape @param {number} v @returns {[Float32Array, number[]]} */
  fill(shape, v) {
    return [new Float32Array(numel(shape)).fill(v), shape]
  }
}

/**
 * Calls `make` once, on first use.
 * @template T
 * @param {() => T} make
 * @returns {() => T}
 */
function once(make) {
  /** @type {{ value: T } | null} */
  let made = null
  return () => (made ??= { value: make() }).value
}

/** Integers in [0, n), repeating (a seeded draw). */
function indices(/** @type {number} */ count, /** @type {number} */ n, /** @type {number} */ seed) {
  return Int32Array.from(randn(count, seed), (v) => Math.floor(Math.abs(v) * 7919) % n)
}

/** Sentences b of T tokens with lengths[b] real tokens first, then padding (mask 0). */
function paddedMask(/** @type {number} */ T, /** @type {number[]} */ lengths) {
  return Int32Array.from({ length: lengths.length * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0))
}

// ---------------------------------------------------------------------------------------------
// GEMM_CASES: sgemm, linear, attention

const GEMM_TOL = { maxErr: 1e-5 } // sgemm, linear forward and backward
const ATTN_TOL = { maxErr: 1e-5 } // attention probs, ctx, dq, dk, dv
// At bf16 (T <= 128, HS <= 64: kernels/attention_mma(_long).cu against the CPU's rounded operands) ctx, dq, dk, dv by the norm:
// the sums run in another order, so Pd and dS / sqrt(HS) can round to the neighbouring bfloat16 now and then (one
// element off by 2^-8 of itself), which a max-normalised bound would have to allow everywhere. Unrounded products
// are ~1e-3 away (test/attention-bf16.test.ts), ten times this bound.
const ATTN_BF16_TOL = { relErr: 1e-4 }

/** @type {ParityCase[]} */
export const GEMM_CASES = []

// Each GEMM case draws from its own block of seeds, fixed by its place in the table.
let nextSeed = 1

/**
 * Adds a case to GEMM_CASES; each run of it draws its inputs from a fresh Draws on the case's seeds.
 * @param {string} group
 * @param {string} name
 * @param {number} work
 * @param {(lib: EncoderLib, device: Device, g: Draws) => Check[]} run
 */
function gemmCase(group, name, work, run) {
  const seed = nextSeed
  nextSeed += 16
  GEMM_CASES.push({ group, name, work, run: (lib, device) => run(lib, device, new Draws(seed)) })
}

// sgemm: C = alpha op(A) op(B) + beta C, through the addon's gemm (lda, ldb, ldc = the row lengths).
{
  const group = 'sgemm: CUDA equals CPU for every transpose, alpha and beta'
  for (const [M, N, K] of [
    // [M, N, K]
    [70, 65, 33],
    [1, 1, 1],
    [1, 130, 17],
    [65, 1, 100],
    [17, 64, 16],
  ])
    for (const transA of [false, true])
      for (const transB of [false, true])
        for (const [alpha, beta] of [
          [1, 0],
          [0.5, 1.5],
          [-2, 1],
        ]) {
          const name = `sgemm M=${M} N=${N} K=${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} alpha=${alpha} beta=${beta}`
          gemmCase(group, name, M * N * K, (lib, device, g) => {
            const inputs = {
              a: g.rand(transA ? [K, M] : [M, K]),
              b: g.rand(transB ? [N, K] : [K, N]),
              // beta == 0 must not read C: NaN there must not reach the result.
              c: beta === 0 ? g.fill([M, N], NaN) : g.rand([M, N]),
            }
            const [gpu, cpu] = both(lib, device, inputs, (x) =>
              lib.addon.gemm(lib.nativeOf(x.c, 'c'), lib.nativeOf(x.a, 'a'), lib.nativeOf(x.b, 'b'), transA, transB, alpha, beta, false),
            )
            return [compare('sgemm', name, gpu.c, cpu.c, GEMM_TOL)]
          })
        }
}

// alpha = 0: C = beta C without reading A or B (NaN and Infinity there).
for (const beta of [0, 2, 1]) {
  const [M, N, K] = [70, 65, 33]
  const name = `sgemm alpha = 0, beta = ${beta}`
  gemmCase('sgemm: alpha = 0 gives beta C without reading A or B', name, M * N, (lib, device, g) => {
    const inputs = { a: g.fill([M, K], NaN), b: g.fill([K, N], Infinity), c: g.rand([M, N]) }
    const [gpu, cpu] = both(lib, device, inputs, (x) =>
      lib.addon.gemm(lib.nativeOf(x.c, 'c'), lib.nativeOf(x.a, 'a'), lib.nativeOf(x.b, 'b'), false, false, 0, beta, false),
    )
    return [
      identical(`${name}: C = beta C exactly, as on the CPU`, gpu.c, cpu.c),
      { ok: gpu.c.every((v, i) => v === beta * inputs.c[0][i]), message: `${name}: the NaN/Inf in A and B are not read` },
    ]
  })
}

// linear: out = inp W^T + bias; dinp (= or +=) dout W, dweight += dout^T inp, dbias += column sums.
const LINEAR_SHAPES = [
  // [R, C, OC]
  [70, 33, 65],
  [1, 1, 1],
  [1, 33, 70],
  [5, 17, 1],
  [130, 16, 20],
  [200, 128, 192],
  [9000, 4, 40], // 71 chunks of 128 rows for dbias: the finishing sum's ring of 32 (fill, loop, last batch, tail)
]

for (const [R, C, OC] of LINEAR_SHAPES)
  for (const withBias of [true, false]) {
    const name = `linear forward R=${R} C=${C} OC=${OC} bias=${withBias}`
    gemmCase('linear forward: CUDA equals CPU', name, R * C * OC, (lib, device, g) => {
      const inputs = {
        out: g.fill([R, OC], NaN), // overwritten: never read
        inp: g.rand([R, C]),
        weight: g.rand([OC, C], 0.2),
        ...(withBias ? { bias: g.rand([OC]) } : {}),
      }
      const [gpu, cpu] = both(lib, device, inputs, (x) => lib.ops.linearForward(x.out, x.inp, x.weight, withBias ? x.bias : null))
      return [compare('linear_forward', name, gpu.out, cpu.out, GEMM_TOL)]
    })
  }

for (const [R, C, OC] of LINEAR_SHAPES)
  for (const v of [
    { name: 'dinp overwritten', dinp: true, dbias: true, accumulate: false },
    { name: 'dinp accumulated', dinp: true, dbias: true, accumulate: true },
    { name: 'no dinp, no dbias', dinp: false, dbias: false, accumulate: false },
  ]) {
    const name = `linear backward R=${R} C=${C} OC=${OC} ${v.name}`
    gemmCase(
      'linear backward: CUDA equals CPU (dweight, dbias accumulate; dinp overwritten or accumulated; null skips)',
      name,
      2 * R * C * OC,
      (lib, device, g) => {
        const inputs = {
          // Overwritten dinp starts as NaN (must not be read); accumulated gradients start non-zero.
          dinp: v.accumulate ? g.rand([R, C]) : g.fill([R, C], NaN),
          dweight: g.rand([OC, C]),
          dbias: g.rand([OC]),
          dout: g.rand([R, OC]),
          inp: g.rand([R, C]),
          weight: g.rand([OC, C], 0.2),
        }
        const [gpu, cpu] = both(lib, device, inputs, (x) =>
          lib.ops.linearBackward(v.dinp ? x.dinp : null, x.dweight, v.dbias ? x.dbias : null, x.dout, x.inp, x.weight, v.accumulate),
        )
        const checks = [
          compare('linear_backward', `${name}: dweight`, gpu.dweight, cpu.dweight, GEMM_TOL),
          compare('linear_backward', `${name}: dbias`, gpu.dbias, cpu.dbias, GEMM_TOL),
        ]
        if (v.dinp) checks.push(compare('linear_backward', `${name}: dinp`, gpu.dinp, cpu.dinp, GEMM_TOL))
        else checks.push({ ok: gpu.dinp.every(Number.isNaN), message: `${name}: dinp untouched` })
        if (!v.dbias) checks.push(identical(`${name}: dbias untouched`, gpu.dbias, inputs.dbias[0]))
        return checks
      },
    )
  }

// The MLP's fused GELU: linearForward's geluOut = GELU(out), linearBackward's dinp ⊙ GELU'(geluInput).
for (const [R, C, OC] of LINEAR_SHAPES) {
  const name = `linear forward + GELU R=${R} C=${C} OC=${OC}`
  gemmCase('linear forward with geluOut: CUDA equals CPU', name, R * C * OC, (lib, device, g) => {
    const inputs = {
      out: g.fill([R, OC], NaN),
      act: g.fill([R, OC], NaN),
      inp: g.rand([R, C]),
      weight: g.rand([OC, C], 0.5),
      bias: g.rand([OC]),
    }
    const [gpu, cpu] = both(lib, device, inputs, (x) => lib.ops.linearForward(x.out, x.inp, x.weight, x.bias, 'fp32', x.act))
    // The GELU in place (geluOut = out, as inference runs it): the device's separate geluOut bit for bit.
    const inPlace = afterRun(lib, device, inputs, (x) => lib.ops.linearForward(x.out, x.inp, x.weight, x.bias, 'fp32', x.out))
    return [
      compare('linear_forward', `${name}: out`, gpu.out, cpu.out, GEMM_TOL),
      compare('linear_forward', `${name}: geluOut`, gpu.act, cpu.act, GEMM_TOL),
      identical(`${name}: in place, the separate geluOut`, inPlace.out, gpu.act),
    ]
  })
}

for (const [R, C, OC] of LINEAR_SHAPES) {
  const name = `linear backward + GELU R=${R} C=${C} OC=${OC}`
  gemmCase("linear backward with geluInput: CUDA equals CPU (dinp ⊙ GELU')", name, 2 * R * C * OC, (lib, device, g) => {
    const inputs = {
      dinp: g.fill([R, C], NaN),
      dweight: g.rand([OC, C]),
      dbias: g.rand([OC]),
      dout: g.rand([R, OC]),
      inp: g.rand([R, C]),
      weight: g.rand([OC, C], 0.2),
      pre: g.rand([R, C], 3),
    }
    const [gpu, cpu] = both(lib, device, inputs, (x) =>
      lib.ops.linearBackward(x.dinp, x.dweight, x.dbias, x.dout, x.inp, x.weight, false, 'fp32', x.pre),
    )
    return [
      compare('linear_backward', `${name}: dinp`, gpu.dinp, cpu.dinp, GEMM_TOL),
      compare('linear_backward', `${name}: dweight`, gpu.dweight, cpu.dweight, GEMM_TOL),
    ]
  })
}

// bf16 training's MLP with its GELU kept (linearForward's Bf16Values geluOut: BertModel's actBf16 on CUDA): the
// pre-activation and the GELU stored in bf16, and output.dense's backward reading the kept GELU as its inp beside the
// geluInput. By the norm against the CPU (the products' sums run in another order, so a stored value can round to the
// neighbouring bfloat16 now and then, as ATTN_BF16_TOL says); on the device, the backward bit for bit that of the
// GELU recomputed from the kept pre-activation (inp null).
const LINEAR_BF16_TOL = { relErr: 1e-4 }
for (const [R, C, OC] of LINEAR_SHAPES) {
  const name = `linear forward + bf16 GELU kept, backward from it R=${R} C=${C} OC=${OC}`
  gemmCase('bf16 MLP with the GELU kept in bf16: CUDA equals CPU', name, 3 * R * C * OC, (lib, device, g) => {
    const inputs = {
      inp: g.rand([R, C]),
      weight: g.rand([OC, C], 0.5),
      bias: g.rand([OC]),
      dout: g.rand([R, C]),
      w2: g.rand([C, OC], 0.2),
    }
    const half = Math.ceil((R * OC) / 2)
    const run = (/** @type {Device} */ on) =>
      runOn(lib, on, (d) => {
        const x = d.tensors(inputs)
        const pre = new lib.Bf16Values(d.zeros([half]), [R, OC]),
          act = new lib.Bf16Values(d.zeros([half]), [R, OC])
        lib.ops.linearForward(pre, x.inp, x.weight, x.bias, 'bf16', act)
        /** @param {any} kept */
        const backward = (kept) => {
          const [dinp, dw, sums] = [d.zeros([R, OC]), d.zeros([C, OC]), d.zeros([OC])]
          lib.ops.linearBackward(dinp, dw, null, x.dout, kept, x.w2, false, 'bf16', pre, false, null, sums)
          return [dinp, dw, sums].map((v) => v.toFloat32Array())
        }
        const [dinp, dw, sums] = backward(act)
        const again = backward(null)
        return {
          pre: bf16Floats(pre.storage.toFloat32Array(), R * OC),
          act: bf16Floats(act.storage.toFloat32Array(), R * OC),
          dinp,
          dw,
          sums,
          recomputedDiffers: [dinp, dw, sums].reduce((n, v, i) => n + bitEqual(v, again[i]).diff, 0),
        }
      })
    const [gpu, cpu] = [run(device), run('cpu')]
    const checks = /** @type {const} */ (['pre', 'act', 'dinp', 'dw', 'sums']).map((out) =>
      compare('linear_backward', `${name}: ${out}`, gpu[out], cpu[out], LINEAR_BF16_TOL),
    )
    checks.push({ ok: gpu.recomputedDiffers === 0, message: `${name}: the backward's bits with GELU(pre) recomputed` })
    checks.push({ ok: cpu.recomputedDiffers === 0, message: `${name}: the same on the CPU` })
    return checks
  })
}

/**
 * linearBackward with its input recomputed inside the op (`recompute`) against the op given that input (`keep`
 * writes it into x.kept first): on the device bit for bit, at fp32 and at bf16 with both operand paths, writing
 * nothing where inp would be; at fp32 also the CPU's results. `extra` draws the inputs the recomputation reads.
 * @param {string} what @param {string} group
 * @param {(g: Draws, R: number, C: number) => Record<string, any>} extra
 * @param {(lib: EncoderLib, x: any, precision: 'fp32' | 'bf16') => void} recompute
 * @param {(lib: EncoderLib, x: any, precision: 'fp32' | 'bf16') => void} keep
 */
function recomputedInputCases(what, group, extra, recompute, keep) {
  for (const [R, C, OC] of LINEAR_SHAPES)
    for (const [precision, operands] of /** @type {const} */ ([
      ['fp32', undefined],
      ['bf16', 'copies'],
      ['bf16', 'fp32'],
    ])) {
      const name = `${what} R=${R} C=${C} OC=${OC} ${precision}${operands ? ` (${operands} operands)` : ''}`
      gemmCase(group, name, 3 * R * C * OC, (lib, device, g) => {
        const inputs = {
          dinp: g.fill([R, C], NaN),
          dweight: g.rand([OC, C]),
          dbias: g.rand([OC]),
          dout: g.rand([R, OC]),
          weight: g.rand([OC, C], 0.2),
          kept: g.fill([R, C], NaN),
          ...extra(g, R, C),
        }
        const before = process.env.SIMCSEPP_BF16_OPERANDS
        if (operands) process.env.SIMCSEPP_BF16_OPERANDS = operands
        try {
          const run = (/** @type {Device} */ d, /** @type {boolean} */ kept) =>
            afterRun(lib, d, inputs, (x) => (kept ? keep : recompute)(lib, x, precision))
          const [recomputed, given] = [run(device, false), run(device, true)]
          const checks = ['dinp', 'dweight', 'dbias'].map((out) =>
            identical(`${name}: ${out} as with the input given`, recomputed[out], given[out]),
          )
          checks.push({ ok: recomputed.kept.every(Number.isNaN), message: `${name}: nothing written where inp would be` })
          if (precision === 'fp32') {
            const cpu = run('cpu', false)
            for (const out of ['dinp', 'dweight', 'dbias'])
              checks.push(compare('linear_backward', `${name}: ${out}`, recomputed[out], cpu[out], GEMM_TOL))
          }
          return checks
        } finally {
          if (before === undefined) delete process.env.SIMCSEPP_BF16_OPERANDS
          else process.env.SIMCSEPP_BF16_OPERANDS = before
        }
      })
    }
}

// With layerNormInput, linearBackward recomputes its input as that LayerNorm's output (layerNormApply's bits; at bf16
// on CUDA as the input's copy is made, a LayerNorm segment of kernels/bf16_copy.cu). C not a multiple of 4 too (the
// copy's rows then straddle its 4-element steps).
recomputedInputCases(
  "linear backward, inp a LayerNorm's output recomputed",
  'linear backward with layerNormInput: the bits of inp = layerNormApply(...); CUDA equals CPU at fp32',
  (g, R, C) => ({ x: g.rand([R, C], 2), mean: g.rand([R], 0.3), rstd: g.fill([R], 1.25), lnW: g.rand([C], 0.5), lnB: g.rand([C], 0.5) }),
  (lib, x, precision) =>
    lib.ops.linearBackward(x.dinp, x.dweight, x.dbias, x.dout, null, x.weight, false, precision, null, false, {
      x: x.x,
      mean: x.mean,
      rstd: x.rstd,
      weight: x.lnW,
      bias: x.lnB,
    }),
  (lib, x, precision) => {
    lib.ops.layerNormApply(x.kept, x.x, x.mean, x.rstd, x.lnW, x.lnB)
    lib.ops.linearBackward(x.dinp, x.dweight, x.dbias, x.dout, x.kept, x.weight, false, precision)
  },
)

// Without inp, linearBackward recomputes GELU(geluInput) for the weight gradient (the model keeps only the GELU's
// input): the CPU's results, and on the device the bits of a run given inp = geluForward(geluInput), at fp32 and
// at bf16 with both operand paths (bf16 copies: the pass that multiplies dinp by GELU'(x) also rounds GELU(x) for the
// weight gradient, kernels/gemm.cu, where a run with inp converts inp and runs gelu_backward apart; fp32 operands:
// GELU into the workspace).
recomputedInputCases(
  'linear backward + GELU, inp recomputed',
  'linear backward without inp: GELU(geluInput) recomputed, the bits of inp = GELU(geluInput); CUDA equals CPU at fp32',
  (g, R, C) => ({ pre: g.rand([R, C], 3) }),
  (lib, x, precision) => lib.ops.linearBackward(x.dinp, x.dweight, x.dbias, x.dout, null, x.weight, false, precision, x.pre),
  (lib, x, precision) => {
    lib.ops.geluForward(x.kept, x.pre)
    lib.ops.linearBackward(x.dinp, x.dweight, x.dbias, x.dout, x.kept, x.weight, false, precision, x.pre)
  },
)

{
  const [R, C, OC] = [130, 33, 65]
  const name = `linear backward R=${R} C=${C} OC=${OC} twice`
  gemmCase('linear backward is deterministic (dbias and dweight bit for bit over runs)', name, 4 * R * C * OC, (lib, device, g) => {
    const inputs = {
      dinp: g.fill([R, C], 0),
      dweight: g.fill([OC, C], 0),
      dbias: g.fill([OC], 0),
      dout: g.rand([R, OC]),
      inp: g.rand([R, C]),
      weight: g.rand([OC, C]),
    }
    const run = () => afterRun(lib, device, inputs, (x) => lib.ops.linearBackward(x.dinp, x.dweight, x.dbias, x.dout, x.inp, x.weight))
    const [a, b] = [run(), run()]
    return ['dbias', 'dweight', 'dinp'].map((out) => identical(`${name}: ${out}`, a[out], b[out]))
  })
}

// attention: forward (probs, ctx) and backward (dq, dk, dv), with masks and dropout. On CUDA, shapes with
// T <= 128 and HS <= 128 take the fused kernels (kernels/attention_small.cu) unless SIMCSEPP_ATTENTION=tiled
// (a case's `path`), the others the tiled SGEMMs (kernels/attention.cu): both are compared with the CPU.

/**
 * @typedef {{ name: string, B: number, T: number, NH: number, HS: number, lengths: number[], path?: 'fused' | 'tiled',
 *   precision?: 'fp32' | 'bf16', rel?: boolean }} AttnCase
 *   lengths: real tokens per sentence (the rest are padding); path: SIMCSEPP_ATTENTION for the CUDA run;
 *   precision: the op's (bf16: the tensor-core kernels for T <= 128, HS <= 64); rel: with a relative-position bias (and
 *   its gradient)
 * @typedef {import('../../lib/ops.js').DropoutSite} DropoutSite
 */

/** @type {AttnCase[]} */
const ATTN_CASES = [
  { name: 'padded rows', B: 2, T: 17, NH: 2, HS: 8, lengths: [17, 9] },
  { name: 'one real token', B: 2, T: 17, NH: 2, HS: 8, lengths: [1, 17] },
  { name: 'T = 1', B: 3, T: 1, NH: 1, HS: 5, lengths: [1, 1, 1] },
  { name: 'one head, H = 20, T crosses a tile', B: 1, T: 70, NH: 1, HS: 20, lengths: [66] },
  { name: 'three heads, H = 21, no real key in one sentence', B: 3, T: 5, NH: 3, HS: 7, lengths: [5, 0, 3] },
  { name: 'BERT head size', B: 2, T: 128, NH: 2, HS: 64, lengths: [128, 40] },
  // The tiled path: T or HS over the fused kernels' 128, and small shapes with SIMCSEPP_ATTENTION=tiled.
  { name: 'T over 128 (tiled)', B: 2, T: 131, NH: 1, HS: 6, lengths: [131, 97] },
  { name: 'HS over 128 (tiled)', B: 2, T: 9, NH: 2, HS: 130, lengths: [9, 4] },
  { name: 'padded rows, SIMCSEPP_ATTENTION=tiled', B: 2, T: 17, NH: 2, HS: 8, lengths: [17, 9], path: 'tiled' },
  { name: 'T = 1, SIMCSEPP_ATTENTION=tiled', B: 3, T: 1, NH: 1, HS: 5, lengths: [1, 1, 1], path: 'tiled' },
  // The fused kernels' edges: every thread's 8 columns (HS = 128) over 8 query tiles (T = 128), one partial tile.
  { name: 'largest fused shape', B: 1, T: 128, NH: 1, HS: 128, lengths: [101] },
  { name: 'odd T and HS, SIMCSEPP_ATTENTION=fused', B: 2, T: 33, NH: 3, HS: 17, lengths: [33, 20], path: 'fused' },
  // bf16: the tensor-core kernels (kernels/attention_mma.cu), 32- and 64-row blocks, padded tiles, head sizes not a
  // multiple of 16, a sentence with no real key, the largest shape, and a relative-position bias (MPNet's).
  { name: 'bf16, padded rows', B: 2, T: 17, NH: 2, HS: 8, lengths: [17, 9], precision: 'bf16' },
  { name: 'bf16, T = 1', B: 3, T: 1, NH: 1, HS: 5, lengths: [1, 1, 1], precision: 'bf16' },
  { name: 'bf16, no real key in one sentence', B: 3, T: 5, NH: 3, HS: 7, lengths: [5, 0, 3], precision: 'bf16' },
  { name: 'bf16, BERT head size', B: 2, T: 32, NH: 2, HS: 64, lengths: [32, 11], precision: 'bf16' },
  { name: 'bf16, odd T and HS', B: 2, T: 33, NH: 3, HS: 17, lengths: [33, 20], precision: 'bf16' },
  { name: 'bf16, largest shape', B: 1, T: 64, NH: 1, HS: 64, lengths: [57], precision: 'bf16' },
  { name: 'bf16, relative bias', B: 2, T: 19, NH: 2, HS: 16, lengths: [19, 12], precision: 'bf16', rel: true },
  // The long kernels (kernels/attention_mma_long.cu, 64 < T <= 128): query rows 64 at a time, two backward kernels.
  { name: 'bf16, T = 65 (a chunk of one row)', B: 2, T: 65, NH: 2, HS: 12, lengths: [65, 30], precision: 'bf16' },
  { name: 'bf16, T = 128, BERT head size', B: 1, T: 128, NH: 2, HS: 64, lengths: [101], precision: 'bf16' },
  { name: 'bf16, T = 97, odd HS, relative bias', B: 2, T: 97, NH: 1, HS: 7, lengths: [97, 0], precision: 'bf16', rel: true },
  { name: 'fp32, relative bias', B: 2, T: 19, NH: 2, HS: 16, lengths: [19, 12], rel: true },
]

/** @param {AttnCase} c */
const maskOf = (c) => paddedMask(c.T, c.lengths)

/**
 * The dropout sites: none, p = 0, and p = 0.1 with keepRows mixing 0 and 1 (and null: every sentence dropped).
 * @param {number} B
 * @returns {{ name: string, site: DropoutSite | null }[]}
 */
function dropoutSites(B) {
  const keepRows = Uint8Array.from({ length: B }, (_, b) => (b % 2 === 1 ? 0 : 1))
  return [
    { name: 'no dropout', site: null },
    { name: 'p = 0', site: { p: 0, seed: 7, offset: 3, keepRows } },
    { name: 'p = 0.1, keepRows', site: { p: 0.1, seed: 12345678901n, offset: 77, keepRows } },
    { name: 'p = 0.1, all rows', site: { p: 0.1, seed: 42, offset: 1000, keepRows: null } },
  ]
}

/** @param {AttnCase} c @param {Draws} g @returns {Inputs} */
function attnInputs(c, g) {
  const act = [c.B, c.T, c.NH * c.HS]
  /** @type {Inputs} */
  const inputs = {
    ctx: g.fill(act, NaN),
    probs: g.fill([c.B, c.NH, c.T, c.T], NaN),
    q: g.rand(act),
    k: g.rand(act),
    v: g.rand(act),
    dctx: g.rand(act),
    dq: g.fill(act, NaN),
    dk: g.fill(act, NaN),
    dv: g.fill(act, NaN),
  }
  if (c.rel) {
    inputs.rel = g.rand([2 * c.T - 1, c.NH])
    inputs.dRel = g.fill([c.B, 2 * c.T - 1, c.NH], NaN)
  }
  return inputs
}

/**
 * Attention forward then backward on tensors made from `inputs`; returns every tensor's contents.
 * @param {EncoderLib} lib
 * @param {Device} device
 * @param {AttnCase} c
 * @param {DropoutSite | null} site
 * @param {Inputs} inputs
 * @param {boolean} [keepProbs] false: both ways without probs (the backward forms P again)
 */
function attention(lib, device, c, site, inputs, keepProbs = true) {
  const mask = maskOf(c)
  const precision = c.precision ?? 'fp32'
  return withAttentionPath(c.path, () =>
    afterRun(lib, device, inputs, (x) => {
      const [rel, dRel] = c.rel ? [x.rel, x.dRel] : [null, null]
      const probs = keepProbs ? x.probs : null
      lib.ops.attentionForward(x.ctx, probs, x.q, x.k, x.v, mask, c.NH, site, false, rel, precision)
      lib.ops.attentionBackward(x.dq, x.dk, x.dv, x.dctx, x.q, x.k, x.v, probs, mask, c.NH, site, false, rel, dRel, precision)
    }),
  )
}

/** The tolerance of an attention output at the case's precision (probs: the fp32 softmax either way). */
const attnTol = (/** @type {AttnCase} */ c, /** @type {string} */ out) =>
  c.precision === 'bf16' && out !== 'probs' ? ATTN_BF16_TOL : ATTN_TOL

/**
 * fn() with SIMCSEPP_ATTENTION = path (unchanged when undefined), then the variable as it was.
 * @template R
 * @param {string | undefined} path
 * @param {() => R} fn
 * @returns {R}
 */
export function withAttentionPath(path, fn) {
  return withEnvVars({ SIMCSEPP_ATTENTION: path }, fn)
}

/**
 * fn() with the environment variables set (those undefined unchanged), then each as it was.
 * @template R
 * @param {Record<string, string | undefined>} vars
 * @param {() => R} fn
 * @returns {R}
 */
export function withEnvVars(vars, fn) {
  const set = /** @type {[string, string][]} */ (Object.entries(vars).filter(([, v]) => v !== undefined))
  const before = set.map(([name]) => /** @type {const} */ ([name, process.env[name]]))
  for (const [name, v] of set) process.env[name] = v
  try {
    return fn()
  } finally {
    for (const [name, v] of before)
      if (v === undefined) delete process.env[name]
      else process.env[name] = v
  }
}

/** @param {AttnCase} c */
const attnWork = (c) => 6 * c.B * c.NH * c.T * c.T * c.HS

for (const c of ATTN_CASES)
  for (const { name: siteName, site } of dropoutSites(c.B)) {
    const name = `attention ${c.name} (B=${c.B} T=${c.T} NH=${c.NH} HS=${c.HS}) ${siteName}`
    gemmCase('attention forward and backward: CUDA equals CPU', name, attnWork(c), (lib, device, g) => {
      const inputs = attnInputs(c, g)
      const [gpu, cpu] = [attention(lib, device, c, site, inputs), attention(lib, 'cpu', c, site, inputs)]
      return [
        compare('attention_forward', `${name}: probs`, gpu.probs, cpu.probs, ATTN_TOL),
        compare('attention_forward', `${name}: ctx`, gpu.ctx, cpu.ctx, attnTol(c, 'ctx')),
        ...['dq', 'dk', 'dv'].map((d) => compare('attention_backward', `${name}: ${d}`, gpu[d], cpu[d], attnTol(c, d))),
        ...(c.rel ? [compare('attention_backward', `${name}: dRelBias`, gpu.dRel, cpu.dRel, ATTN_TOL)] : []),
      ]
    })
  }

// At bf16 the backward without probs (training on CUDA keeps none up to 32 tokens: lib/model/activations.ts keepsProbs)
// forms P again: up to 32 tokens in the backward kernel's own blocks, beyond by the forward kernel into a workspace
// (kernels/attention.cu): the bits of the backward given the forward's probs, and the CPU's values.
for (const c of ATTN_CASES.filter((c) => c.precision === 'bf16' && c.T <= 33))
  for (const { name: siteName, site } of dropoutSites(c.B)) {
    const name = `attention ${c.name} (B=${c.B} T=${c.T} NH=${c.NH} HS=${c.HS}) without probs, ${siteName}`
    gemmCase('attention at bf16 without probs: the bits of the backward with them', name, attnWork(c), (lib, device, g) => {
      const inputs = attnInputs(c, g)
      const withProbs = attention(lib, device, c, site, inputs)
      const without = attention(lib, device, c, site, inputs, false)
      const cpu = attention(lib, 'cpu', c, site, inputs, false)
      return ['ctx', 'dq', 'dk', 'dv', ...(c.rel ? ['dRel'] : [])].flatMap((out) => [
        identical(`${name}: ${out}`, without[out], withProbs[out]),
        compare(
          out === 'ctx' ? 'attention_forward' : 'attention_backward',
          `${name}: ${out} vs CPU`,
          without[out],
          cpu[out],
          out === 'dRel' ? ATTN_TOL : attnTol(c, out),
        ),
      ])
    })
  }

// The tiled path runs over the batch a chunk of sentences at a time (SIMCSEPP_ATTENTION_CHUNK sets the chunk; by
// default as many as fit 64 MiB): every chunking gives the bits of one pass, forward and backward, with dropout
// drawn for sentences placed as a data-parallel rank's runs of rows (the chunks' places in the batch). And the
// forward without probs (inference), on both paths and in chunks: ctx bit for bit the forward's with probs; and
// the backward without them (training beyond KEEP_PROBS_MAX_T).
{
  /** @type {AttnCase} */
  const c = { name: 'five sentences', B: 5, T: 19, NH: 2, HS: 8, lengths: [19, 7, 0, 19, 12], path: 'tiled' }
  const shape = `(B=${c.B} T=${c.T} NH=${c.NH} HS=${c.HS})`
  const keepRows = Uint8Array.from([1, 0, 1, 1, 0])
  /** @type {{ name: string, site: DropoutSite | null }[]} */
  const sites = [
    { name: 'no dropout', site: null },
    {
      name: "p = 0.1, keepRows, a rank's runs of rows",
      site: { p: 0.1, seed: 99, offset: 5, keepRows, firstRow: { first: 3, block: 2, stride: 9, skip: 1 } },
    },
  ]
  for (const chunk of [1, 2, 3])
    for (const { name: siteName, site } of sites) {
      const name = `attention ${shape} in chunks of ${chunk} sentences, ${siteName}`
      gemmCase('attention, tiled path: chunks of sentences give the bits of one pass', name, attnWork(c), (lib, device, g) => {
        const inputs = attnInputs(c, g)
        const whole = attention(lib, device, c, site, inputs)
        const chunked = withEnvVars({ SIMCSEPP_ATTENTION_CHUNK: String(chunk) }, () => attention(lib, device, c, site, inputs))
        const cpu = attention(lib, 'cpu', c, site, inputs)
        return ['probs', 'ctx', 'dq', 'dk', 'dv'].flatMap((out) => [
          identical(`${name}: ${out}`, chunked[out], whole[out]),
          compare(
            out === 'probs' || out === 'ctx' ? 'attention_forward' : 'attention_backward',
            `${name}: ${out} vs CPU`,
            chunked[out],
            cpu[out],
            ATTN_TOL,
          ),
        ])
      })
    }
  for (const [path, chunk] of /** @type {['fused' | 'tiled', string | undefined][]} */ ([
    ['fused', undefined],
    ['tiled', undefined],
    ['tiled', '2'],
  ]))
    for (const { name: siteName, site } of sites) {
      const name = `attention ${shape} without probs, ${path}${chunk ? ` in chunks of ${chunk}` : ''}, ${siteName}`
      gemmCase('attention forward without probs (inference): ctx as with them', name, attnWork(c) / 3, (lib, device, g) => {
        const inputs = attnInputs(c, g)
        const mask = maskOf(c)
        const forward = (/** @type {Device} */ dev, /** @type {boolean} */ keep) =>
          withEnvVars({ SIMCSEPP_ATTENTION: path, SIMCSEPP_ATTENTION_CHUNK: chunk }, () =>
            afterRun(lib, dev, { ctx: inputs.ctx, probs: inputs.probs, q: inputs.q, k: inputs.k, v: inputs.v }, (x) =>
              lib.ops.attentionForward(x.ctx, keep ? x.probs : null, x.q, x.k, x.v, mask, c.NH, site),
            ),
          )
        const [without, kept, cpu] = [forward(device, false), forward(device, true), forward('cpu', false)]
        return [
          identical(`${name}: ctx`, without.ctx, kept.ctx),
          identical(`${name}: probs untouched`, without.probs, inputs.probs[0]),
          compare('attention_forward', `${name}: ctx vs CPU`, without.ctx, cpu.ctx, ATTN_TOL),
        ]
      })
    }
  // The backward without probs forms P again on the tiled path (the fused kernel has no room for it): the bits
  // of the tiled backward given the tiled forward's probs.
  for (const [path, chunk] of /** @type {['fused' | 'tiled', string | undefined][]} */ ([
    ['fused', undefined],
    ['tiled', undefined],
    ['tiled', '2'],
  ]))
    for (const { name: siteName, site } of sites) {
      const name = `attention ${shape} backward without probs, ${path}${chunk ? ` in chunks of ${chunk}` : ''}, ${siteName}`
      gemmCase('attention backward without probs: the tiled backward with them', name, attnWork(c), (lib, device, g) => {
        const inputs = attnInputs(c, g)
        const mask = maskOf(c)
        const withProbs = attention(lib, device, c, site, inputs) // the tiled path (c.path)
        const without = withEnvVars({ SIMCSEPP_ATTENTION: path, SIMCSEPP_ATTENTION_CHUNK: chunk }, () =>
          afterRun(lib, device, inputs, (x) => lib.ops.attentionBackward(x.dq, x.dk, x.dv, x.dctx, x.q, x.k, x.v, null, mask, c.NH, site)),
        )
        const cpu = afterRun(lib, 'cpu', inputs, (x) =>
          lib.ops.attentionBackward(x.dq, x.dk, x.dv, x.dctx, x.q, x.k, x.v, null, mask, c.NH, site),
        )
        return ['dq', 'dk', 'dv'].flatMap((d) => [
          identical(`${name}: ${d}`, without[d], withProbs[d]),
          compare('attention_backward', `${name}: ${d} vs CPU`, without[d], cpu[d], ATTN_TOL),
        ])
      })
    }
}

// Packed q/k/v (the model's fused projection): q, k, v as the column blocks of one [B, T, 3H] tensor (k, v
// null) and dq, dk, dv likewise, against the CPU's separate tensors: the same values (bit for bit on the CPU,
// which computes the same products with another row stride).
/**
 * [B*T, 3H] rows q | k | v from three [B*T, H] arrays, or the block `which` of such rows.
 * @param {Float32Array[]} parts
 * @param {number} H
 */
export function packQkv(parts, H) {
  const rows = parts[0].length / H
  const out = new Float32Array(rows * 3 * H)
  for (let r = 0; r < rows; r++) for (let k = 0; k < 3; k++) out.set(parts[k].subarray(r * H, (r + 1) * H), r * 3 * H + k * H)
  return out
}
/** @param {Float32Array} packed @param {number} H @param {number} which */
export function unpackQkv(packed, H, which) {
  const rows = packed.length / (3 * H)
  const out = new Float32Array(rows * H)
  for (let r = 0; r < rows; r++) out.set(packed.subarray(r * 3 * H + which * H, r * 3 * H + (which + 1) * H), r * H)
  return out
}
for (const c of [
  ATTN_CASES[0],
  ATTN_CASES[4],
  ATTN_CASES[5],
  ATTN_CASES[6],
  ATTN_CASES[8],
  ATTN_CASES[15],
  ATTN_CASES[16],
  ATTN_CASES[19],
]) {
  const site = dropoutSites(c.B)[2]
  const name = `attention ${c.name} (B=${c.B} T=${c.T} NH=${c.NH} HS=${c.HS}) packed q|k|v, ${site.name}`
  gemmCase('attention with packed q|k|v: CUDA equals CPU with separate tensors', name, 2 * attnWork(c), (lib, device, g) => {
    const inputs = attnInputs(c, g)
    const H = c.NH * c.HS
    const cpu = attention(lib, 'cpu', c, site.site, inputs)
    const mask = maskOf(c)
    const qkv = packQkv([inputs.q[0], inputs.k[0], inputs.v[0]], H)
    const got = withAttentionPath(c.path, () =>
      afterRun(
        lib,
        device,
        {
          ctx: inputs.ctx,
          probs: inputs.probs,
          qkv: [qkv, [c.B, c.T, 3 * H]],
          dctx: inputs.dctx,
          dqkv: [new Float32Array(qkv.length).fill(NaN), [c.B, c.T, 3 * H]],
        },
        (x) => {
          const precision = c.precision ?? 'fp32'
          // bf16Next: the kernels also write the bf16 handoffs of ctx and of the packed gradient.
          const next = precision === 'bf16'
          lib.ops.attentionForward(x.ctx, x.probs, x.qkv, null, null, mask, c.NH, site.site, next, null, precision)
          lib.ops.attentionBackward(
            x.dqkv,
            null,
            null,
            x.dctx,
            x.qkv,
            null,
            null,
            x.probs,
            mask,
            c.NH,
            site.site,
            next,
            null,
            null,
            precision,
          )
        },
      ),
    )
    return [
      compare('attention_forward', `${name}: probs`, got.probs, cpu.probs, ATTN_TOL),
      compare('attention_forward', `${name}: ctx`, got.ctx, cpu.ctx, attnTol(c, 'ctx')),
      ...['dq', 'dk', 'dv'].map((d, k) => compare('attention_backward', `${name}: ${d}`, unpackQkv(got.dqkv, H, k), cpu[d], attnTol(c, d))),
    ]
  })
}

// With v_h the one-hot rows e_t (HS >= T), ctx_h = Pd exactly, and with dctx_h the same one-hot rows,
// dv_h = Pd^T exactly: the forward's mask and the backward's regenerated one are read off element by element.
// Also with the sentences placed in a larger batch as a data-parallel rank's runs of rows (RowPlacement).
for (const [placed, firstRow, precision] of /** @type {[string, import('../../lib/native.js').RowPlacement, 'fp32' | 'bf16'][]} */ ([
  ['', 0, 'fp32'],
  [", a rank's runs of rows", { first: 3, block: 2, stride: 9, skip: 1 }, 'fp32'],
  [', bf16', 0, 'bf16'],
  [", a rank's runs of rows, bf16", { first: 3, block: 2, stride: 9, skip: 1 }, 'bf16'],
])) {
  /** @type {AttnCase} */
  const c = { name: 'one-hot values', B: 3, T: 20, NH: 2, HS: 24, lengths: [20, 13, 20], precision }
  const name = `attention dropout mask (B=${c.B} T=${c.T} NH=${c.NH} HS=${c.HS}, one-hot values${placed})`
  gemmCase('attention dropout: CUDA draws the CPU mask, element for element, forward and backward', name, attnWork(c), (lib, device, g) => {
    const H = c.NH * c.HS
    const oneHot = new Float32Array(c.B * c.T * H)
    for (let b = 0; b < c.B; b++)
      for (let tok = 0; tok < c.T; tok++) for (let h = 0; h < c.NH; h++) oneHot[(b * c.T + tok) * H + h * c.HS + tok] = 1
    const site = { p: 0.1, seed: 987654321, offset: 4242, keepRows: Uint8Array.from([1, 1, 0]), firstRow }
    /** @type {Inputs} */
    const inputs = { ...attnInputs(c, g), v: [oneHot, [c.B, c.T, H]], dctx: [oneHot, [c.B, c.T, H]] }
    const [gpu, cpu] = [attention(lib, device, c, site, inputs), attention(lib, 'cpu', c, site, inputs)]
    /** @type {Check[]} */
    const checks = []
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
      checks.push(
        { ok: differ === 0, message: `${out}: the zero pattern (the dropout mask) is the CPU's (${differ} elements differ)` },
        { ok: dropped > 0, message: `${out}: dropout dropped ${dropped} elements` },
        compare('attention_mask', `${out}: values`, gpu[out], cpu[out], attnTol(c, out)),
      )
    }
    // Sentence 2 has keepRows 0: its ctx is P itself, zero only at padded keys (there are none).
    const s2 = gpu.ctx.subarray(2 * c.T * H)
    let zeros = 0
    for (let i = 0; i < s2.length; i++) if (i % c.HS < c.T && s2[i] === 0) zeros++
    checks.push({ ok: zeros === 0, message: `keepRows = 0: sentence 2 is not dropped (${zeros} zeros)` })
    return checks
  })
}

// At bf16 the backward without probs forms P again, above 32 tokens with the mma forward, a chunk of sentences at a
// time (up to 32, in its own blocks: no chunks): the bits of the backward with the forward's probs, whatever the chunk. Above 64 tokens the backward runs in chunks with
// probs too (its scratch is a chunk's): whatever the chunk, the same bits.
for (const chunk of [undefined, '1', '2'])
  for (const c of [ATTN_CASES[12], ATTN_CASES[16], ATTN_CASES[19]]) {
    const site = dropoutSites(c.B)[2]
    const name = `attention ${c.name} (B=${c.B} T=${c.T} NH=${c.NH} HS=${c.HS}) backward without probs${chunk ? ` in chunks of ${chunk}` : ''}, ${site.name}`
    gemmCase('attention at bf16, backward without probs: the bits of the backward with them', name, attnWork(c), (lib, device, g) => {
      const inputs = attnInputs(c, g)
      const mask = maskOf(c)
      const withProbs = attention(lib, device, c, site.site, inputs)
      const without = withEnvVars({ SIMCSEPP_ATTENTION_CHUNK: chunk }, () =>
        afterRun(lib, device, inputs, (x) =>
          lib.ops.attentionBackward(x.dq, x.dk, x.dv, x.dctx, x.q, x.k, x.v, null, mask, c.NH, site.site, false, null, null, 'bf16'),
        ),
      )
      const chunked = withEnvVars({ SIMCSEPP_ATTENTION_CHUNK: chunk }, () => attention(lib, device, c, site.site, inputs))
      return ['dq', 'dk', 'dv'].flatMap((d) => [
        identical(`${name}: ${d}`, without[d], withProbs[d]),
        identical(`${name}: ${d} with probs, in the same chunks`, chunked[d], withProbs[d]),
      ])
    })
  }

for (const c of [ATTN_CASES[0], ATTN_CASES[12], ATTN_CASES[19]]) {
  const name = `attention ${c.name} (B=${c.B} T=${c.T} NH=${c.NH} HS=${c.HS}) p = 0.1, keepRows, twice`
  gemmCase('attention is deterministic (bit for bit over runs)', name, 2 * attnWork(c), (lib, device, g) => {
    const site = dropoutSites(c.B)[2].site
    const inputs = attnInputs(c, g)
    const [a, b] = [attention(lib, device, c, site, inputs), attention(lib, device, c, site, inputs)]
    return ['probs', 'ctx', 'dq', 'dk', 'dv'].map((out) => identical(`${name}: ${out}`, a[out], b[out]))
  })
}

// ---------------------------------------------------------------------------------------------
// ROWWISE_CASES: element-wise ops, embeddings, layer norm, pooling, AdamW, gradSumSquares, clipGradNorm, clipGradScale

const ELEMENTWISE = { relErr: 1e-6 }
const REDUCTION = { relErr: 1e-5 }

/** @type {ParityCase[]} */
export const ROWWISE_CASES = []

/**
 * A row-wise case; its group is `<op>: CUDA equals CPU`.
 * @param {{ op: string, shape: string, tol: Tolerance, work: number, deterministic?: boolean, build(d: Bench): Outputs }} c
 */
const rowwise = (c) => ROWWISE_CASES.push(outputsCase({ ...c, group: `${c.op}: CUDA equals CPU` }))

// Element-wise: sizes below, across and past one warp, and past one grid (4096 blocks x 256 threads).
for (const n of [1, 31, 33, 1000, 4097]) {
  const x = once(() => randn(n, n, 3))
  const g = once(() => randn(n, n + 1))
  const y = once(() => randn(n, n + 2))
  /** @param {string} op @param {(d: Bench) => Outputs} build */
  const add = (op, build) => rowwise({ op, shape: `n=${n}`, tol: ELEMENTWISE, work: n, build })
  // The activations: forward from x; backward from what its forward saved (GELU: x, tanh: tanh(x)).
  for (const [forward, backward, saved] of /** @type {const} */ ([
    ['geluForward', 'geluBackward', (/** @type {number} */ v) => v],
    ['tanhForward', 'tanhBackward', Math.tanh],
  ])) {
    add(forward, (d) => {
      const out = d.zeros([n])
      d.lib.ops[forward](out, d.from(x()))
      return { out: out.toFloat32Array() }
    })
    add(backward, (d) => {
      const dinp = d.zeros([n])
      d.lib.ops[backward](dinp, d.from(x().map(saved)), d.from(g()))
      return { dinp: dinp.toFloat32Array() }
    })
  }
  add('add', (d) => {
    const out = d.zeros([n])
    const a = d.from(x())
    const b = d.from(y())
    d.lib.ops.add(out, a, b)
    const outA = d.from(x())
    d.lib.ops.add(outA, outA, b) // out aliases a
    const outB = d.from(y())
    d.lib.ops.add(outB, a, outB) // out aliases b
    return { out: out.toFloat32Array(), aliasA: outA.toFloat32Array(), aliasB: outB.toFloat32Array() }
  })
  add('addInplace', (d) => {
    const dst = d.from(x())
    d.lib.ops.addInplace(dst, d.from(y()))
    return { dst: dst.toFloat32Array() }
  })
  add('scaleInplace', (d) => {
    const v = d.from(x())
    d.lib.ops.scaleInplace(v, 0.37)
    return { x: v.toFloat32Array() }
  })
}
{
  const n = 4096 * 256 + 1001
  const x = once(() => randn(n, 5, 3))
  rowwise({
    op: 'geluForward',
    shape: `n=${n} (grid-stride)`,
    tol: ELEMENTWISE,
    work: n,
    build: (d) => {
      const out = d.zeros([n])
      d.lib.ops.geluForward(out, d.from(x()))
      return { out: out.toFloat32Array() }
    },
  })
}

// ModernBERT's GeGLU ([R, 2I] -> [R, I]) and rotary embedding (in place on q, k of [B, T, 3H]; forward and inverse):
// element-wise, so ELEMENTWISE's tolerance. The rotation's angles are the same floats on both (common/rope.h), its
// cos and sin both taken in double: positions past 500 turn by hundreds of radians without parting the two.
for (const [R, I] of [
  [1, 1],
  [3, 33],
  [17, 100],
  [64, 1152], // ModernBERT-base's intermediate size
]) {
  const u = once(() => randn(R * 2 * I, R + I, 3))
  const dout = once(() => randn(R * I, R + I + 1))
  rowwise({
    op: 'gegluForward',
    shape: `R=${R} I=${I}`,
    tol: ELEMENTWISE,
    work: 3 * R * I,
    build: (d) => {
      const out = d.zeros([R, I])
      d.lib.ops.gegluForward(out, d.from(u(), [R, 2 * I]))
      return { out: out.toFloat32Array() }
    },
  })
  rowwise({
    op: 'gegluBackward',
    shape: `R=${R} I=${I}`,
    tol: ELEMENTWISE,
    work: 4 * R * I,
    build: (d) => {
      const du = d.zeros([R, 2 * I])
      d.lib.ops.gegluBackward(du, d.from(u(), [R, 2 * I]), d.from(dout(), [R, I]))
      return { du: du.toFloat32Array() }
    },
  })
}
for (const [B, T, NH, HS, theta] of [
  [1, 1, 1, 2, 10000],
  [2, 9, 3, 8, 10000],
  [3, 33, 2, 64, 160000],
  [1, 520, 4, 64, 10000],
]) {
  const H = NH * HS
  const x = once(() => randn(B * T * 3 * H, B + T + HS))
  for (const inverse of [false, true])
    rowwise({
      op: 'rope',
      shape: `B=${B} T=${T} NH=${NH} HS=${HS} theta=${theta}${inverse ? ' inverse' : ''}`,
      tol: ELEMENTWISE,
      work: B * T * 2 * H,
      build: (d) => {
        const qkv = d.from(x(), [B, T, 3 * H])
        d.lib.ops.rope(qkv, NH, theta, inverse)
        return { qkv: qkv.toFloat32Array() }
      },
    })
}

// Matryoshka training's leading columns ([R, H] -> [R, d], and the gradient added back with a weight): a copy is
// exact; the weighted add is one product and one sum per element (an FMA on the GPU may round once less).
for (const [R, d, H] of [
  [1, 1, 1],
  [5, 3, 7],
  [33, 64, 768],
  [300, 257, 384],
]) {
  const x = once(() => randn(R * H, R + d + H, 3))
  const g = once(() => randn(R * d, R + d + H + 1))
  rowwise({
    op: 'leadingColumns',
    shape: `R=${R} d=${d} H=${H}`,
    tol: 'exact',
    work: R * d,
    build: (b) => {
      const out = b.zeros([R, d])
      b.lib.ops.leadingColumns(out, b.from(x(), [R, H]))
      return { out: out.toFloat32Array() }
    },
  })
  for (const scale of [1, 0.3])
    rowwise({
      op: 'addLeadingColumns',
      shape: `R=${R} d=${d} H=${H} scale=${scale}`,
      tol: scale === 1 ? 'exact' : ELEMENTWISE,
      work: R * d,
      build: (b) => {
        const dinp = b.from(x(), [R, H])
        b.lib.ops.addLeadingColumns(dinp, b.from(g(), [R, d]), scale)
        return { dinp: dinp.toFloat32Array() }
      },
    })
}

// Embeddings: [BT, H], table rows (word, pos, type); ids repeat so the scatter-add accumulates.
for (const [B, T, H, vocab, types] of [
  [1, 1, 1, 1, 1],
  [1, 5, 33, 3, 2],
  [2, 6, 64, 4, 2],
  [4, 10, 70, 7, 2],
  [7, 1, 129, 50, 1], // T = 1
  [50, 2, 16, 3, 1], // groups of ~33 and 100 rows: the CUDA backward's ring of 32 rows, its last batch and tail
  [8, 64, 768, 1000, 2], // BERT-base width
  // A type row shared by 1,300 rows: 6 runs of 256 (the last of 20) and their finish; vocabulary rows of ~260
  // rows, around one run; positions of 20 rows, one run each (common/embedding_runs.h).
  [20, 65, 40, 5, 1],
]) {
  const BT = B * T
  const inputs = once(() => ({
    ids: indices(BT, vocab, BT + H),
    posIds: Int32Array.from({ length: BT }, (_, r) => r % T),
    typeIds: indices(BT, types, BT + 2 * H),
    word: randn(vocab * H, H),
    pos: randn(T * H, H + 1),
    type: randn(types * H, H + 2),
    dout: randn(BT * H, H + 3),
  }))
  const shape = `B=${B} T=${T} H=${H} vocab=${vocab}`
  rowwise({
    op: 'embeddingForward',
    shape,
    tol: 'exact',
    work: BT * H,
    build: (d) => {
      const { ids, posIds, typeIds, word, pos, type } = inputs()
      const out = d.zeros([BT, H])
      d.lib.ops.embeddingForward(out, ids, posIds, typeIds, d.from(word, [vocab, H]), d.from(pos, [T, H]), d.from(type, [types, H]))
      return { out: out.toFloat32Array() }
    },
  })
  for (const present of [
    [true, true, true],
    [false, true, true],
    [true, false, false],
    [false, false, false],
  ]) {
    rowwise({
      op: 'embeddingBackward',
      shape: `${shape} tables=${present.map((p) => (p ? 'y' : 'null')).join(',')}`,
      tol: 'exact',
      work: BT * H,
      deterministic: true,
      build: (d) => {
        const { ids, posIds, typeIds, word, pos, type, dout } = inputs()
        // The gradient tables start non-zero: the op adds into them.
        const tabs = [d.from(word, [vocab, H]), d.from(pos, [T, H]), d.from(type, [types, H])]
        const [dw, dp, dt] = tabs.map((x, k) => (present[k] ? x : null))
        d.lib.ops.embeddingBackward(dw, dp, dt, d.from(dout, [BT, H]), ids, posIds, typeIds)
        return { dword: tabs[0].toFloat32Array(), dpos: tabs[1].toFloat32Array(), dtype: tabs[2].toFloat32Array() }
      },
    })
  }
}

// Layer norm: [R, C]; `shift` moves the rows' mean far from 0 (a one-pass E[x²] − mean² would cancel).
for (const [R, C, eps, shift] of [
  [1, 1, 1e-12, 0],
  [1, 33, 1e-5, 0],
  [3, 64, 1e-12, 5],
  [7, 100, 1e-12, 0],
  [130, 37, 1e-5, 0], // more rows than one 128-row chunk of the parameter gradients
  [300, 96, 1e-12, 300],
  [512, 768, 1e-12, 0], // BERT-base width
]) {
  const inputs = once(() => ({
    x: randn(R * C, R + C, 1, shift),
    w: randn(C, C + 1, 0.5, 1),
    b: randn(C, C + 2, 0.5),
    dout: randn(R * C, R + C + 3),
    dw0: randn(C, C + 4),
    db0: randn(C, C + 5),
  }))
  /** The saved statistics both backwards use (the CPU forward's). @param {EncoderLib} lib */
  const cpuStats = (lib) =>
    runOn(lib, 'cpu', (d) => {
      const { x, w, b } = inputs()
      const [m, r] = [d.zeros([R]), d.zeros([R])]
      lib.ops.layerNormForward(d.zeros([R, C]), m, r, d.from(x, [R, C]), d.from(w), d.from(b), eps)
      return { mean: m.toFloat32Array(), rstd: r.toFloat32Array() }
    })
  const shape = `R=${R} C=${C} eps=${eps} shift=${shift}`
  rowwise({
    op: 'layerNormForward',
    shape,
    tol: REDUCTION,
    work: 2 * R * C,
    deterministic: true,
    build: (d) => {
      const { x, w, b } = inputs()
      const [out, m, r] = [d.zeros([R, C]), d.zeros([R]), d.zeros([R])]
      const [wt, bt] = [d.from(w), d.from(b)]
      d.lib.ops.layerNormForward(out, m, r, d.from(x, [R, C]), wt, bt, eps)
      const inPlace = d.from(x, [R, C]) // out aliases inp
      d.lib.ops.layerNormForward(inPlace, d.zeros([R]), d.zeros([R]), inPlace, wt, bt, eps)
      return { out: out.toFloat32Array(), mean: m.toFloat32Array(), rstd: r.toFloat32Array(), inPlace: inPlace.toFloat32Array() }
    },
  })
  // The output recomputed from the saved statistics (the CPU forward's, so both devices start alike), apart and
  // in place; applyDiffers: elements where this device's forward output differs from its recomputation from
  // the statistics that forward saved (0 on every device: the forward's bits).
  rowwise({
    op: 'layerNormApply',
    shape,
    tol: ELEMENTWISE,
    work: R * C,
    deterministic: true,
    build: (d) => {
      const { x, w, b } = inputs()
      const { mean, rstd } = cpuStats(d.lib)
      const [xt, wt, bt, m, r] = [d.from(x, [R, C]), d.from(w), d.from(b), d.from(mean), d.from(rstd)]
      const out = d.zeros([R, C])
      d.lib.ops.layerNormApply(out, xt, m, r, wt, bt)
      const inPlace = d.from(x, [R, C])
      d.lib.ops.layerNormApply(inPlace, inPlace, m, r, wt, bt)
      const forward = d.zeros([R, C])
      const [fm, fr] = [d.zeros([R]), d.zeros([R])]
      d.lib.ops.layerNormForward(forward, fm, fr, xt, wt, bt, eps)
      const again = d.zeros([R, C])
      d.lib.ops.layerNormApply(again, xt, fm, fr, wt, bt)
      const applyDiffers = bitEqual(again.toFloat32Array(), forward.toFloat32Array()).diff
      return { out: out.toFloat32Array(), inPlace: inPlace.toFloat32Array(), applyDiffers }
    },
  })
  rowwise({
    op: 'layerNormBackward',
    shape,
    tol: REDUCTION,
    work: 3 * R * C,
    deterministic: true,
    build: (d) => {
      const { x, w, dout, dw0, db0 } = inputs()
      const { mean, rstd } = cpuStats(d.lib)
      const [dinp, dw, db] = [d.zeros([R, C]), d.from(dw0), d.from(db0)]
      const [xt, wt, m, r] = [d.from(x, [R, C]), d.from(w), d.from(mean), d.from(rstd)]
      d.lib.ops.layerNormBackward(dinp, dw, db, d.from(dout, [R, C]), xt, wt, m, r)
      const inPlace = d.from(dout, [R, C]) // dinp aliases dout
      d.lib.ops.layerNormBackward(inPlace, d.from(dw0), d.from(db0), inPlace, xt, wt, m, r)
      // On CUDA the two passes (parameter sums, dinp) run a slab of rows at a time (kernels/l2_slab.cuh): with slabs
      // of one 128-row chunk (SIMCSEPP_L2_SLABS=1), in place too, the bits of one pass over all rows.
      const oneChunkSlabs = withEnvVars({ SIMCSEPP_L2_SLABS: '1' }, () => {
        const [sd, sw, sb] = [d.from(dout, [R, C]), d.from(dw0), d.from(db0)]
        d.lib.ops.layerNormBackward(sd, sw, sb, sd, xt, wt, m, r)
        return [sd, sw, sb].map((x) => x.toFloat32Array())
      })
      const all = [inPlace.toFloat32Array(), dw.toFloat32Array(), db.toFloat32Array()]
      const slabsDiffer = oneChunkSlabs.reduce((n, a, i) => n + bitEqual(a, all[i]).diff, 0)
      return { dinp: dinp.toFloat32Array(), dweight: all[1], dbias: all[2], inPlace: all[0], slabsDiffer }
    },
  })
}

// The fused sublayer output (residualLayerNormForward, layerNormDropoutBackward): [R, C] rows of
// `sentences` sentences, hidden dropout at p with keepRows and a micro-batch's firstRow. Each case also
// runs the unfused sequence (dropout, addInplace, layerNorm; layerNorm backward, dropout) on the same device
// and counts the elements where it differs from the fused op: 0 on every device.
for (const [
  R,
  C,
  sentences,
  p,
  keepRows,
  firstRow,
] of /** @type {[number, number, number, number, number[] | null, import('../../lib/native.js').RowPlacement][]} */ ([
  [1, 1, 1, 0, null, 0],
  [6, 33, 2, 0.1, [1, 0], 0],
  [12, 100, 3, 0.1, [0, 1, 1], 5],
  [20, 36, 5, 0.1, [1, 0, 1, 1, 1], { first: 1, block: 2, stride: 6, skip: 1 }], // a rank's runs of rows

  [7, 64, 7, 0.5, null, 0],
  [130, 37, 10, 0.1, null, 3], // more rows than one 128-row chunk of the parameter gradients
  [256, 768, 8, 0.1, [1, 1, 0, 1, 1, 1, 1, 0], 0], // BERT-base width
])) {
  const inputs = once(() => ({
    y: randn(R * C, R + C + 10, 1),
    x: randn(R * C, R + C + 11, 1, 2),
    w: randn(C, C + 12, 0.5, 1),
    b: randn(C, C + 13, 0.5),
    dout: randn(R * C, R + C + 14),
    dw0: randn(C, C + 15),
    db0: randn(C, C + 16),
  }))
  const site = p > 0 ? { p, seed: 1234567, offset: 77, keepRows: keepRows ? Uint8Array.from(keepRows) : null, firstRow } : null
  const asDropout = site && { ...site, firstRow }
  const shape = `R=${R} C=${C} sentences=${sentences} p=${p} keepRows=${keepRows ? keepRows.join('') : 'all'} firstRow=${JSON.stringify(firstRow)}`
  /** Elements where two arrays differ (bits). @param {Float32Array} a @param {Float32Array} b */
  const differing = (a, b) => bitEqual(a, b).diff
  rowwise({
    op: 'residualLayerNormForward',
    shape,
    tol: REDUCTION,
    work: 3 * R * C,
    deterministic: true,
    build: (d) => {
      const { y, x, w, b } = inputs()
      const [wt, bt, xt] = [d.from(w), d.from(b), d.from(x, [R, C])]
      const [out, res, m, r] = [d.zeros([R, C]), d.zeros([R, C]), d.zeros([R]), d.zeros([R])]
      d.lib.ops.residualLayerNormForward(out, res, m, r, d.from(y, [R, C]), xt, wt, bt, 1e-12, sentences, site)
      const inPlace = d.from(y, [R, C]) // out aliases y, as the model calls it
      const res2 = d.zeros([R, C])
      d.lib.ops.residualLayerNormForward(inPlace, res2, d.zeros([R]), d.zeros([R]), inPlace, xt, wt, bt, 1e-12, sentences, site)
      const all = d.from(y, [R, C]) // out = res = y: inference's call (no LayerNorm input kept)
      d.lib.ops.residualLayerNormForward(all, all, d.zeros([R]), d.zeros([R]), all, xt, wt, bt, 1e-12, sentences, site)
      // The unfused sequence on this device.
      const seq = d.from(y, [R, C])
      const seqRows = seq.view(0, [sentences, (R / sentences) * C])
      if (asDropout) d.lib.ops.dropout(seqRows, seqRows, asDropout)
      d.lib.ops.addInplace(seq, xt)
      const seqOut = d.zeros([R, C])
      d.lib.ops.layerNormForward(seqOut, d.zeros([R]), d.zeros([R]), seq, wt, bt, 1e-12)
      const [o, rs] = [out.toFloat32Array(), res.toFloat32Array()]
      /**
       * The fused op into fresh arrays [out, res, mean, rstd] from yy (fp32 or Bf16Values), out's copy into keep.
       * @param {any} yy @param {any} keep
       */
      const fused = (yy, keep = null) => {
        const o4 = [d.zeros([R, C]), d.zeros([R, C]), d.zeros([R]), d.zeros([R])]
        d.lib.ops.residualLayerNormForward(o4[0], o4[1], o4[2], o4[3], yy, xt, wt, bt, 1e-12, sentences, site, false, keep)
        return o4.map((v) => v.toFloat32Array())
      }
      // With outBf16: out's bf16 copy kept as well (a model's h1Bf16 / h2Bf16), out unchanged.
      const kept = d.zeros([Math.ceil((R * C) / 2)])
      const keptOut = fused(d.from(y, [R, C]), new d.lib.Bf16Values(kept, [R, C]))[0]
      // y in bf16 (a sublayer output its product stored rounded): as its values in fp32, on this device.
      const yRounded = Float32Array.from(y, roundBf16)
      const y16 = new Float32Array(Math.ceil((R * C) / 2))
      new Uint16Array(y16.buffer).set(Uint16Array.from(new Uint32Array(yRounded.buffer), (u) => u >>> 16))
      const fromBf16 = fused(new d.lib.Bf16Values(d.from(y16), [R, C])),
        fromFp32 = fused(d.from(yRounded, [R, C]))
      return {
        out: o,
        res: rs,
        mean: m.toFloat32Array(),
        rstd: r.toFloat32Array(),
        inPlace: inPlace.toFloat32Array(),
        unfusedDiffers: differing(o, seqOut.toFloat32Array()) + differing(rs, seq.toFloat32Array()),
        // Elements where out = res = y differs from the separate out: 0 on every device.
        aliasedDiffers: differing(o, all.toFloat32Array()),
        // Elements where the kept copy is not bf16(out) (round to nearest even), or out differs with it: 0 everywhere.
        keptDiffers: differing(bf16Floats(kept.toFloat32Array(), R * C), o.map(roundBf16)) + differing(keptOut, o),
        // Elements where reading y from bf16 storage differs from reading its values in fp32: 0 everywhere.
        yBf16Differs: fromBf16.reduce((n, v, i) => n + differing(v, fromFp32[i]), 0),
      }
    },
  })
  rowwise({
    op: 'layerNormDropoutBackward',
    shape,
    tol: REDUCTION,
    work: 4 * R * C,
    deterministic: true,
    build: (d) => {
      const { y, x, w, b, dout, dw0, db0 } = inputs()
      // The forward's res and statistics, on the CPU (both devices start from the same saved tensors).
      const saved = runOn(d.lib, 'cpu', (c) => {
        const [out, res, m, r] = [c.zeros([R, C]), c.zeros([R, C]), c.zeros([R]), c.zeros([R])]
        d.lib.ops.residualLayerNormForward(
          out,
          res,
          m,
          r,
          c.from(y, [R, C]),
          c.from(x, [R, C]),
          c.from(w),
          c.from(b),
          1e-12,
          sentences,
          site,
        )
        return { res: res.toFloat32Array(), mean: m.toFloat32Array(), rstd: r.toFloat32Array() }
      })
      const [rt, wt, m, r, go] = [d.from(saved.res, [R, C]), d.from(w), d.from(saved.mean), d.from(saved.rstd), d.from(dout, [R, C])]
      const [dres, dy, dw, db] = [d.zeros([R, C]), site ? d.zeros([R, C]) : null, d.from(dw0), d.from(db0)]
      d.lib.ops.layerNormDropoutBackward(dres, dy, dw, db, go, rt, wt, m, r, sentences, site)
      // The unfused sequence on this device.
      const [seqRes, seqW, seqB] = [d.zeros([R, C]), d.from(dw0), d.from(db0)]
      d.lib.ops.layerNormBackward(seqRes, seqW, seqB, go, rt, wt, m, r)
      const seqDy = d.zeros([R, C])
      if (asDropout)
        d.lib.ops.dropout(seqRes.view(0, [sentences, (R / sentences) * C]), seqDy.view(0, [sentences, (R / sentences) * C]), asDropout)
      const [gr, gy] = [dres.toFloat32Array(), dy ? dy.toFloat32Array() : new Float32Array(0)]
      // The op summing dy's columns as well (dyColumnSums: the bias gradient of the linear layer before), which on
      // CUDA is a pass of row statistics and one in the sums' chunk grid, a slab of rows at a time
      // (kernels/l2_slab.cuh): with slabs of one 128-row chunk (SIMCSEPP_L2_SLABS=1) and with all rows at once
      // ('off') the same bits, and those of the op without the sums.
      /** @param {string} slabs */
      const summing = (slabs) =>
        withEnvVars({ SIMCSEPP_L2_SLABS: slabs }, () => {
          const [sr, sy, sw, sb, sums] = [d.zeros([R, C]), site ? d.zeros([R, C]) : null, d.from(dw0), d.from(db0), d.zeros([C])]
          d.lib.ops.layerNormDropoutBackward(sr, sy, sw, sb, go, rt, wt, m, r, sentences, site, false, sums)
          return [sr, sy, sw, sb, sums].map((x) => (x ? x.toFloat32Array() : new Float32Array(0)))
        })
      const [oneChunkSlabs, allRows] = [summing('1'), summing('off')]
      const plain = [gr, gy, dw.toFloat32Array(), db.toFloat32Array()]
      return {
        dres: gr,
        dy: gy,
        dweight: plain[2],
        dbias: plain[3],
        dyColumnSums: allRows[4],
        unfusedDiffers:
          differing(gr, seqRes.toFloat32Array()) +
          (dy ? differing(gy, seqDy.toFloat32Array()) : 0) +
          differing(plain[2], seqW.toFloat32Array()) +
          differing(plain[3], seqB.toFloat32Array()),
        slabsDiffer: oneChunkSlabs.reduce((n, a, i) => n + differing(a, allRows[i]), 0),
        summingDiffers: plain.reduce((n, a, i) => n + differing(a, allRows[i]), 0),
      }
    },
  })
}

// Pooling: [B, T, H] with each sentence's mask (padding, one real token, none, gaps, T = 1).
for (const [B, T, H, mask] of /** @type {[number, number, number, Int32Array][]} */ ([
  [1, 1, 1, paddedMask(1, [1])],
  [2, 5, 33, paddedMask(5, [5, 1])],
  [3, 7, 70, paddedMask(7, [3, 7, 0])],
  [4, 1, 40, paddedMask(1, [1, 1, 0, 1])],
  [2, 4, 65, Int32Array.from([1, 0, 1, 0, 0, 1, 1, 0])],
  [5, 33, 129, paddedMask(33, [33, 1, 17, 32, 2])],
  [16, 64, 768, paddedMask(64, [64, 1, 9, 33, 60, 2, 17, 40, 64, 5, 12, 63, 30, 31, 8, 50])], // BERT-base width
])) {
  const inputs = once(() => ({
    hidden: randn(B * T * H, B * T + H),
    // Whole numbers in [-2, 2]: most columns' maxima are ties, which both backends give to the first token.
    ties: randn(B * T * H, B * T + H + 2).map((x) => Math.max(-2, Math.min(2, Math.round(x)))),
    dout: randn(B * H, B + H),
    dh0: randn(B * T * H, B * T + H + 1),
  }))
  const shape = `B=${B} T=${T} H=${H}`
  rowwise({
    op: 'poolClsForward',
    shape,
    tol: 'exact',
    work: B * H,
    build: (d) => {
      const out = d.zeros([B, H])
      d.lib.ops.poolClsForward(out, d.from(inputs().hidden, [B, T, H]))
      return { out: out.toFloat32Array() }
    },
  })
  rowwise({
    op: 'poolMeanForward',
    shape,
    tol: REDUCTION,
    work: B * T * H,
    deterministic: true,
    build: (d) => {
      const out = d.from(inputs().dout, [B, H]) // overwritten
      d.lib.ops.poolMeanForward(out, d.from(inputs().hidden, [B, T, H]), mask)
      return { out: out.toFloat32Array() }
    },
  })
  rowwise({
    op: 'poolMeanForward',
    shape: `${shape} sqrtLen`,
    tol: REDUCTION,
    work: B * T * H,
    deterministic: true,
    build: (d) => {
      const out = d.from(inputs().dout, [B, H]) // overwritten
      d.lib.ops.poolMeanForward(out, d.from(inputs().hidden, [B, T, H]), mask, true)
      return { out: out.toFloat32Array() }
    },
  })
  for (const values of /** @type {const} */ (['hidden', 'ties'])) {
    rowwise({
      op: 'poolMaxForward',
      shape: `${shape} ${values}`,
      tol: 'exact',
      work: B * T * H,
      build: (d) => {
        const out = d.from(inputs().dout, [B, H]) // overwritten
        d.lib.ops.poolMaxForward(out, d.from(inputs()[values], [B, T, H]), mask)
        return { out: out.toFloat32Array() }
      },
    })
  }
  for (const accumulate of [false, true]) {
    rowwise({
      op: 'poolClsBackward',
      shape: `${shape} accumulate=${accumulate}`,
      tol: 'exact',
      work: B * T * H,
      build: (d) => {
        const dh = d.from(inputs().dh0, [B, T, H])
        d.lib.ops.poolClsBackward(dh, d.from(inputs().dout, [B, H]), accumulate)
        return { dhidden: dh.toFloat32Array() }
      },
    })
    rowwise({
      op: 'poolMeanBackward',
      shape: `${shape} accumulate=${accumulate}`,
      tol: ELEMENTWISE,
      work: B * T * H,
      build: (d) => {
        const dh = d.from(inputs().dh0, [B, T, H])
        d.lib.ops.poolMeanBackward(dh, d.from(inputs().dout, [B, H]), mask, accumulate)
        return { dhidden: dh.toFloat32Array() }
      },
    })
    rowwise({
      op: 'poolMeanBackward',
      shape: `${shape} accumulate=${accumulate} sqrtLen`,
      tol: ELEMENTWISE,
      work: B * T * H,
      build: (d) => {
        const dh = d.from(inputs().dh0, [B, T, H])
        d.lib.ops.poolMeanBackward(dh, d.from(inputs().dout, [B, H]), mask, accumulate, true)
        return { dhidden: dh.toFloat32Array() }
      },
    })
    for (const values of /** @type {const} */ (['hidden', 'ties'])) {
      rowwise({
        op: 'poolMaxBackward',
        shape: `${shape} ${values} accumulate=${accumulate}`,
        tol: 'exact',
        work: B * T * H,
        build: (d) => {
          const dh = d.from(inputs().dh0, [B, T, H])
          d.lib.ops.poolMaxBackward(dh, d.from(inputs().dout, [B, H]), d.from(inputs()[values], [B, T, H]), mask, accumulate)
          return { dhidden: dh.toFloat32Array() }
        },
      })
    }
  }
}

// AdamW: several consecutive steps (the state carries over), then one late step, per hyperparameter set.
for (const n of [1, 33, 4099, 70001]) {
  for (const [lr, beta1, beta2, eps, wd] of [
    [1e-3, 0.9, 0.999, 1e-8, 0.01],
    [5e-5, 0.8, 0.98, 1e-6, 0],
  ]) {
    const inputs = once(() => ({
      p0: randn(n, n, 0.1),
      grads: [1, 2, 3].map((k) => randn(n, n + k, 1e-2).map((v, i) => (i % 11 === 0 ? 0 : v))),
    }))
    rowwise({
      op: 'adamwStep',
      shape: `n=${n} lr=${lr} betas=${beta1},${beta2} eps=${eps} wd=${wd}`,
      tol: { ulps: 4 },
      work: 4 * n,
      build: (d) => {
        const { p0, grads } = inputs()
        const [p, m, v] = [d.from(p0), d.zeros([n]), d.zeros([n])]
        for (const [k, step] of [1, 2, 3, 1000].entries())
          d.lib.ops.adamwStep(p, d.from(grads[k % 3]), m, v, lr, beta1, beta2, eps, wd, step)
        return { params: p.toFloat32Array(), m: m.toFloat32Array(), v: v.toFloat32Array() }
      },
    })
  }
}

// Clipping folded into AdamW (clipGradScale, then adamwStep with its gradScale) for a clipped and an unclipped
// norm: the updated state and the factor; on each device it must equal clipGradNorm then adamwStep bit for bit
// and leave the gradients as they were (else the case throws).
for (const [n, maxNorm] of [
  [1, 1e-3],
  [70001, 0.5],
  [70001, 1e6],
]) {
  const inputs = once(() => ({ p0: randn(n, n + 3, 0.1), g: randn(n, n + 5, 0.3, 0.01) }))
  rowwise({
    op: 'clipGradScale',
    shape: `n=${n} maxNorm=${maxNorm} (then adamwStep with gradScale)`,
    // The factor is formed from sums that may differ by double rounding (see clipGradNorm below).
    tol: ELEMENTWISE,
    work: 5 * n,
    build: (d) => {
      const { p0, g } = inputs()
      const run = (/** @type {boolean} */ fused) => {
        const [p, m, v, scale] = [d.from(p0), d.zeros([n]), d.zeros([n]), d.zeros([1])]
        let sum = 0,
          grads = d.from(g)
        for (const step of [1, 2]) {
          if (step > 1) grads = d.from(g) // each step's gradients afresh (clipGradNorm scales them in place)
          if (fused) sum = d.lib.ops.clipGradScale(grads, maxNorm, scale)
          else sum = d.lib.ops.clipGradNorm(grads, maxNorm)
          d.lib.ops.adamwStep(p, grads, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, step, fused ? scale : null)
        }
        return {
          params: p.toFloat32Array(),
          m: m.toFloat32Array(),
          v: v.toFloat32Array(),
          grads: grads.toFloat32Array(),
          scale: scale.toFloat32Array(),
          sum,
        }
      }
      const fused = run(true),
        apart = run(false)
      // On each device: the bits of clipGradNorm then adamwStep, and the gradients as they were (a failed case).
      const differs = /** @type {const} */ (['params', 'm', 'v']).find((k) => !bitEqual(fused[k], apart[k]).equal)
      if (differs || fused.sum !== apart.sum) throw new Error(`${differs ?? 'sum'} differs from clipGradNorm then adamwStep`)
      if (!bitEqual(fused.grads, Float32Array.from(g)).equal) throw new Error('clipGradScale or adamwStep wrote the gradients')
      return { params: fused.params, m: fused.m, v: fused.v, scale: fused.scale, sum: fused.sum }
    },
  })
}

// gradSumSquares: one element, one chunk of 16384, one element past it, many chunks.
for (const n of [1, 100, 16384, 16385, 100003, 1100000]) {
  const g = once(() => randn(n, n, 0.3, 0.01))
  rowwise({
    op: 'gradSumSquares',
    shape: `n=${n}`,
    tol: { relErr: 1e-12 },
    work: n,
    deterministic: true,
    build: (d) => ({ sum: d.lib.ops.gradSumSquares(d.from(g())) }),
  })
}

// clipGradNorm: the sum of squares (the same kernels as gradSumSquares) and the clipped gradients, for a
// norm above maxNorm (scaled) and below it (left alone). The coefficient is formed in double from sums
// that may differ by double rounding, so a scaled element may differ by an ulp.
for (const [n, maxNorm] of [
  [1, 1e-3],
  [16385, 0.5],
  [16385, 1e6],
  [100003, 1],
  [1100000, 0.5], // 68 chunk partials: the device sum's ring of 32 (fill, loop, last batch, tail)
]) {
  const g = once(() => randn(n, n + 7, 0.3, 0.01))
  rowwise({
    op: 'clipGradNorm',
    shape: `n=${n} maxNorm=${maxNorm}`,
    tol: { relErr: 1e-7 },
    work: n,
    deterministic: true,
    build: (d) => {
      const t = d.from(g())
      const before = d.lib.ops.gradSumSquares(t)
      const sum = d.lib.ops.clipGradNorm(t, maxNorm)
      // 1 when the sum equals gradSumSquares' bit for bit (on CUDA: the same partials added in the same order,
      // on the device and on the host), as on the CPU.
      return { sum, sameSumAsGradSumSquares: Number(sum === before), g: t.toFloat32Array() }
    },
  })
}
