// The CUDA row-wise and element-wise ops (kernels/elementwise.cu, embedding.cu, layernorm.cu,
// pooling.cu, optim.cu) against the CPU backend: each op at each shape of a table runs through
// lib/ops.ts on 'cuda' and on 'cpu' with the same inputs, and every output is compared.
// Tolerances, per op (GPU erff/expf/tanhf differ from libm by ulps and nvcc may fuse a*b + c):
//   normalised error ‖cuda − cpu‖ / ‖cpu‖ below 1e-6 for the element-wise ops and below 1e-5 for the
//   row reductions (layer norm, mean pooling); bit-identical for the embedding (the same float
//   additions in the same order) and CLS pooling (copies); AdamW within 4 ulps per element (the same
//   roundings: common/adamw.h); gradSumSquares within 1e-12 relative of the CPU's double sum.
// The reductions must also be deterministic: a second CUDA run gives bit-identical outputs.
// Shapes are odd on purpose: 1 row, H = 1, H not a multiple of 32/64, T = 1, padded tokens and a
// sentence with a single (or no) real token, repeated ids, null gradient tables, accumulate on/off,
// element counts past one grid of the grid-stride loops. Skipped, with the reason printed, when CUDA
// is not usable; against the host emulator (npm run test:emulated) the same checks run.
import t, { type Test } from 'tap'
import * as ops from '../lib/ops.js'
import { Tensor, type Device } from '../lib/tensor.js'
import { addon } from '../lib/native.js'
import { bitEqual, randn, relErr } from './helpers/parity.mjs'

const status = addon.cudaStatus()
const skip = status.available ? false : `CUDA unavailable: ${status.reason}`
if (skip) console.log(`# skipping the CUDA row-wise op tests: ${skip}`)

/** How a CUDA output must agree with the CPU's. */
type Tolerance = { relErr: number } | { ulps: number } | 'exact'
type Outputs = Record<string, Float32Array | number>

/** One op at one shape; `run` builds its inputs from the case alone (so both devices get the same). */
interface Case {
  op: string
  shape: string
  tol: Tolerance
  run: (d: Bench) => Outputs
  /** Also run it twice on CUDA and require bit-identical outputs (the reductions). */
  deterministic?: boolean
}

/** Makes the tensors of one run on one device, and frees them afterwards. */
class Bench {
  private made: Tensor[] = []
  constructor(readonly device: Device) {}
  from(data: Float32Array, shape: number[] = [data.length]): Tensor {
    const x = Tensor.from(data, shape, this.device)
    this.made.push(x)
    return x
  }
  zeros(shape: number[]): Tensor {
    const x = Tensor.zeros(shape, this.device)
    this.made.push(x)
    return x
  }
  dispose(): void {
    for (const x of this.made) x.dispose()
  }
}

function runOn(c: Case, device: Device): Outputs {
  const d = new Bench(device)
  try {
    return c.run(d)
  } finally {
    d.dispose()
  }
}

/** Largest distance in units in the last place between two float32 arrays. */
function maxUlps(a: Float32Array, b: Float32Array): number {
  const ia = new Int32Array(a.buffer, a.byteOffset, a.length)
  const ib = new Int32Array(b.buffer, b.byteOffset, b.length)
  const key = (v: number) => (v < 0 ? -(v & 0x7fffffff) : v)
  let worst = 0
  for (let i = 0; i < ia.length; i++) worst = Math.max(worst, Math.abs(key(ia[i]) - key(ib[i])))
  return worst
}

// The worst measured error of each op (normalised error, ulps or differing elements), for the summary.
const worst = new Map<string, { value: number; unit: string }>()
function record(op: string, value: number, unit: string): void {
  if (value >= (worst.get(op)?.value ?? -1)) worst.set(op, { value, unit })
}

function compare(t: Test, c: Case, name: string, got: Float32Array | number, want: Float32Array | number): void {
  const what = `${c.op} ${c.shape} ${name}`
  if (typeof got === 'number' || typeof want === 'number') {
    // A scalar result (gradSumSquares): relative error.
    const err = Math.abs(Number(got) - Number(want)) / Math.max(Math.abs(Number(want)), 1e-300)
    const tol = c.tol !== 'exact' && 'relErr' in c.tol ? c.tol.relErr : 0
    record(c.op, err, 'rel')
    t.ok(err <= tol, `${what}: ${got} vs ${want}, relative error ${err.toExponential(2)} <= ${tol}`)
    return
  }
  if (got.length !== want.length) {
    t.fail(`${what}: ${got.length} elements vs ${want.length}`)
    return
  }
  if (c.tol === 'exact') {
    const r = bitEqual(got, want)
    record(c.op, r.diff, 'elements differ')
    t.ok(r.equal, `${what}: bit-identical (${r.diff} of ${r.total} elements differ)`)
  } else if ('ulps' in c.tol) {
    const u = maxUlps(got, want)
    record(c.op, u, 'ulps')
    t.ok(u <= c.tol.ulps, `${what}: ${u} ulps <= ${c.tol.ulps}`)
  } else {
    const err = relErr(got, want)
    record(c.op, err, 'rel')
    t.ok(err < c.tol.relErr && got.every(Number.isFinite), `${what}: normalised error ${err.toExponential(2)} < ${c.tol.relErr}`)
  }
}

// ---------------------------------------------------------------------------------------------
// Inputs

const ELEMENTWISE = { relErr: 1e-6 }
const REDUCTION = { relErr: 1e-5 }

/** Integers in [0, n), repeating (a seeded draw). */
function indices(count: number, n: number, seed: number): Int32Array {
  const r = randn(count, seed)
  return Int32Array.from(r, (v) => Math.floor(Math.abs(v) * 7919) % n)
}

/** Sentences b of T tokens with lengths[b] real tokens first, then padding (mask 0). */
function paddedMask(T: number, lengths: number[]): Int32Array {
  return Int32Array.from({ length: lengths.length * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 : 0))
}

// ---------------------------------------------------------------------------------------------
// The table

const cases: Case[] = []

// Element-wise: sizes below, across and past one warp, and past one grid (4096 blocks x 256 threads).
for (const n of [1, 31, 33, 1000, 4097]) {
  const x = randn(n, n, 3)
  const g = randn(n, n + 1)
  const y = randn(n, n + 2)
  const shape = `n=${n}`
  const add = (op: string, run: Case['run']) => cases.push({ op, shape, tol: ELEMENTWISE, run })
  add('geluForward', (d) => {
    const out = d.zeros([n])
    ops.geluForward(out, d.from(x))
    return { out: out.toFloat32Array() }
  })
  add('geluBackward', (d) => {
    const dinp = d.zeros([n])
    ops.geluBackward(dinp, d.from(x), d.from(g))
    return { dinp: dinp.toFloat32Array() }
  })
  add('tanhForward', (d) => {
    const out = d.zeros([n])
    ops.tanhForward(out, d.from(x))
    return { out: out.toFloat32Array() }
  })
  add('tanhBackward', (d) => {
    const dinp = d.zeros([n])
    ops.tanhBackward(dinp, d.from(x.map(Math.tanh)), d.from(g))
    return { dinp: dinp.toFloat32Array() }
  })
  add('add', (d) => {
    const out = d.zeros([n])
    const a = d.from(x)
    const b = d.from(y)
    ops.add(out, a, b)
    const outA = d.from(x)
    ops.add(outA, outA, b) // out aliases a
    const outB = d.from(y)
    ops.add(outB, a, outB) // out aliases b
    return { out: out.toFloat32Array(), aliasA: outA.toFloat32Array(), aliasB: outB.toFloat32Array() }
  })
  add('addInplace', (d) => {
    const dst = d.from(x)
    ops.addInplace(dst, d.from(y))
    return { dst: dst.toFloat32Array() }
  })
  add('scaleInplace', (d) => {
    const v = d.from(x)
    ops.scaleInplace(v, 0.37)
    return { x: v.toFloat32Array() }
  })
}
{
  const n = 4096 * 256 + 1001
  const x = randn(n, 5, 3)
  cases.push({
    op: 'geluForward',
    shape: `n=${n} (grid-stride)`,
    tol: ELEMENTWISE,
    run: (d) => {
      const out = d.zeros([n])
      ops.geluForward(out, d.from(x))
      return { out: out.toFloat32Array() }
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
  [8, 64, 768, 1000, 2], // BERT-base width
]) {
  const BT = B * T
  const ids = indices(BT, vocab, BT + H)
  const posIds = Int32Array.from({ length: BT }, (_, r) => r % T)
  const typeIds = indices(BT, types, BT + 2 * H)
  const word = randn(vocab * H, H)
  const pos = randn(T * H, H + 1)
  const type = randn(types * H, H + 2)
  const dout = randn(BT * H, H + 3)
  const shape = `B=${B} T=${T} H=${H} vocab=${vocab}`
  cases.push({
    op: 'embeddingForward',
    shape,
    tol: 'exact',
    run: (d) => {
      const out = d.zeros([BT, H])
      ops.embeddingForward(out, ids, posIds, typeIds, d.from(word, [vocab, H]), d.from(pos, [T, H]), d.from(type, [types, H]))
      return { out: out.toFloat32Array() }
    },
  })
  for (const present of [
    [true, true, true],
    [false, true, true],
    [true, false, false],
    [false, false, false],
  ]) {
    cases.push({
      op: 'embeddingBackward',
      shape: `${shape} tables=${present.map((p) => (p ? 'y' : 'null')).join(',')}`,
      tol: 'exact',
      deterministic: true,
      run: (d) => {
        // The gradient tables start non-zero: the op adds into them.
        const tabs = [d.from(word, [vocab, H]), d.from(pos, [T, H]), d.from(type, [types, H])]
        const [dw, dp, dt] = tabs.map((x, k) => (present[k] ? x : null))
        ops.embeddingBackward(dw, dp, dt, d.from(dout, [BT, H]), ids, posIds, typeIds)
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
  const x = randn(R * C, R + C, 1, shift)
  const w = randn(C, C + 1, 0.5, 1)
  const b = randn(C, C + 2, 0.5)
  const dout = randn(R * C, R + C + 3)
  const dw0 = randn(C, C + 4)
  const db0 = randn(C, C + 5)
  // The saved statistics both backwards use (the CPU forward's).
  const mean = new Float32Array(R)
  const rstd = new Float32Array(R)
  {
    const [xt, wt, bt, out, m, r] = [
      Tensor.from(x, [R, C]),
      Tensor.from(w, [C]),
      Tensor.from(b, [C]),
      Tensor.zeros([R, C]),
      Tensor.zeros([R]),
      Tensor.zeros([R]),
    ]
    ops.layerNormForward(out, m, r, xt, wt, bt, eps)
    mean.set(m.toFloat32Array())
    rstd.set(r.toFloat32Array())
    for (const v of [xt, wt, bt, out, m, r]) v.dispose()
  }
  const shape = `R=${R} C=${C} eps=${eps} shift=${shift}`
  cases.push({
    op: 'layerNormForward',
    shape,
    tol: REDUCTION,
    deterministic: true,
    run: (d) => {
      const [out, m, r] = [d.zeros([R, C]), d.zeros([R]), d.zeros([R])]
      const [wt, bt] = [d.from(w), d.from(b)]
      ops.layerNormForward(out, m, r, d.from(x, [R, C]), wt, bt, eps)
      const inPlace = d.from(x, [R, C]) // out aliases inp
      ops.layerNormForward(inPlace, d.zeros([R]), d.zeros([R]), inPlace, wt, bt, eps)
      return { out: out.toFloat32Array(), mean: m.toFloat32Array(), rstd: r.toFloat32Array(), inPlace: inPlace.toFloat32Array() }
    },
  })
  cases.push({
    op: 'layerNormBackward',
    shape,
    tol: REDUCTION,
    deterministic: true,
    run: (d) => {
      const [dinp, dw, db] = [d.zeros([R, C]), d.from(dw0), d.from(db0)]
      const [xt, wt, m, r] = [d.from(x, [R, C]), d.from(w), d.from(mean), d.from(rstd)]
      ops.layerNormBackward(dinp, dw, db, d.from(dout, [R, C]), xt, wt, m, r)
      const inPlace = d.from(dout, [R, C]) // dinp aliases dout
      ops.layerNormBackward(inPlace, d.from(dw0), d.from(db0), inPlace, xt, wt, m, r)
      return { dinp: dinp.toFloat32Array(), dweight: dw.toFloat32Array(), dbias: db.toFloat32Array(), inPlace: inPlace.toFloat32Array() }
    },
  })
}

// Pooling: [B, T, H] with each sentence's mask (padding, one real token, none, gaps, T = 1).
for (const [B, T, H, mask] of [
  [1, 1, 1, paddedMask(1, [1])],
  [2, 5, 33, paddedMask(5, [5, 1])],
  [3, 7, 70, paddedMask(7, [3, 7, 0])],
  [4, 1, 40, paddedMask(1, [1, 1, 0, 1])],
  [2, 4, 65, Int32Array.from([1, 0, 1, 0, 0, 1, 1, 0])],
  [5, 33, 129, paddedMask(33, [33, 1, 17, 32, 2])],
  [16, 64, 768, paddedMask(64, [64, 1, 9, 33, 60, 2, 17, 40, 64, 5, 12, 63, 30, 31, 8, 50])], // BERT-base width
] as [number, number, number, Int32Array][]) {
  const hidden = randn(B * T * H, B * T + H)
  const dout = randn(B * H, B + H)
  const dh0 = randn(B * T * H, B * T + H + 1)
  const shape = `B=${B} T=${T} H=${H}`
  cases.push({
    op: 'poolClsForward',
    shape,
    tol: 'exact',
    run: (d) => {
      const out = d.zeros([B, H])
      ops.poolClsForward(out, d.from(hidden, [B, T, H]))
      return { out: out.toFloat32Array() }
    },
  })
  cases.push({
    op: 'poolMeanForward',
    shape,
    tol: REDUCTION,
    deterministic: true,
    run: (d) => {
      const out = d.from(dout, [B, H]) // overwritten
      ops.poolMeanForward(out, d.from(hidden, [B, T, H]), mask)
      return { out: out.toFloat32Array() }
    },
  })
  for (const accumulate of [false, true]) {
    cases.push({
      op: 'poolClsBackward',
      shape: `${shape} accumulate=${accumulate}`,
      tol: 'exact',
      run: (d) => {
        const dh = d.from(dh0, [B, T, H])
        ops.poolClsBackward(dh, d.from(dout, [B, H]), accumulate)
        return { dhidden: dh.toFloat32Array() }
      },
    })
    cases.push({
      op: 'poolMeanBackward',
      shape: `${shape} accumulate=${accumulate}`,
      tol: ELEMENTWISE,
      run: (d) => {
        const dh = d.from(dh0, [B, T, H])
        ops.poolMeanBackward(dh, d.from(dout, [B, H]), mask, accumulate)
        return { dhidden: dh.toFloat32Array() }
      },
    })
  }
}

// AdamW: several consecutive steps (the state carries over), then one late step, per hyperparameter set.
for (const n of [1, 33, 4099, 70001]) {
  for (const [lr, beta1, beta2, eps, wd] of [
    [1e-3, 0.9, 0.999, 1e-8, 0.01],
    [5e-5, 0.8, 0.98, 1e-6, 0],
  ]) {
    const p0 = randn(n, n, 0.1)
    const grads = [1, 2, 3].map((k) => randn(n, n + k, 1e-2).map((v, i) => (i % 11 === 0 ? 0 : v)))
    cases.push({
      op: 'adamwStep',
      shape: `n=${n} lr=${lr} betas=${beta1},${beta2} eps=${eps} wd=${wd}`,
      tol: { ulps: 4 },
      run: (d) => {
        const [p, m, v] = [d.from(p0), d.zeros([n]), d.zeros([n])]
        for (const [k, step] of [1, 2, 3, 1000].entries()) ops.adamwStep(p, d.from(grads[k % 3]), m, v, lr, beta1, beta2, eps, wd, step)
        return { params: p.toFloat32Array(), m: m.toFloat32Array(), v: v.toFloat32Array() }
      },
    })
  }
}

// gradSumSquares: one element, one chunk of 16384, one element past it, many chunks.
for (const n of [1, 100, 16384, 16385, 100003, 1100000]) {
  const g = randn(n, n, 0.3, 0.01)
  cases.push({
    op: 'gradSumSquares',
    shape: `n=${n}`,
    tol: { relErr: 1e-12 },
    deterministic: true,
    run: (d) => ({ sum: ops.gradSumSquares(d.from(g)) }),
  })
}

// ---------------------------------------------------------------------------------------------
// The checks

/** Whether two runs' outputs are bit-identical; names the first that is not. */
function sameBits(a: Outputs, b: Outputs): string | null {
  for (const [name, x] of Object.entries(a)) {
    const y = b[name]
    const equal = typeof x === 'number' ? Object.is(x, y) : typeof y !== 'number' && bitEqual(x, y).equal
    if (!equal) return name
  }
  return null
}

for (const op of [...new Set(cases.map((c) => c.op))]) {
  t.test(`${op}: CUDA equals CPU`, { skip }, async (t) => {
    for (const c of cases.filter((k) => k.op === op)) {
      const want = runOn(c, 'cpu')
      const got = runOn(c, 'cuda')
      for (const [name, w] of Object.entries(want)) compare(t, c, name, got[name], w)
      if (c.deterministic) {
        const differs = sameBits(got, runOn(c, 'cuda'))
        t.equal(differs, null, `${c.op} ${c.shape}: a second CUDA run is bit-identical`)
      }
    }
  })
}

t.test('worst measured error per op', { skip }, async (t) => {
  for (const [op, { value, unit }] of worst) t.comment(`${op}: ${unit === 'rel' ? value.toExponential(2) : value} ${unit}`)
  t.ok(worst.size > 0, 'errors were measured')
})
