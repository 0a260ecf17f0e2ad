// The CPU's int8 linear layer (native/cpu/linear_int8.h) and its users: the op against a JavaScript computation of
// the same formula (per-channel weight scales, per-row input scales, exact int32 sums, float32 epilogue) bit for
// bit, with every kernel this CPU runs, at odd sizes and on zero, NaN and infinite rows; its argument checks;
// BertModel.quantizeInt8 and SentenceEncoder's precision 'int8' against fp32.
import t from 'tap'
import { SentenceEncoder } from '../lib/index.js'
import { BertModel } from '../lib/model/bert.js'
import * as ops from '../lib/ops.js'
import type { Int8Kernel } from '../lib/native.js'
import { Tensor } from '../lib/tensor.js'
import { saveTinyModel, sentences, tinyConfig } from './helpers/encoder-tiny-model.js'
import { randn } from './helpers/reference.js'

const f = Math.fround

/** rint: to nearest, ties to even (Math.round takes ties up). */
function rint(v: number): number {
  const r = Math.round(v)
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/** A row's int8 values and scale, as linear_int8.h defines them (float32 arithmetic). */
function quantizeRow(x: Float32Array, off: number, n: number): { q: Int32Array; s: number } {
  let amax = 0
  let finite = true
  for (let k = 0; k < n; k++) {
    const a = Math.abs(x[off + k])
    if (!Number.isFinite(a)) finite = false
    else amax = Math.max(amax, a)
  }
  const q = new Int32Array(n)
  if (!finite) return { q, s: NaN }
  if (amax === 0) return { q, s: 0 }
  const inv = f(127 / amax)
  for (let k = 0; k < n; k++) q[k] = Math.min(127, Math.max(-127, rint(f(x[off + k] * inv))))
  return { q, s: f(amax / 127) }
}

/** out [R, OC] = the int8 layer's formula for x [R, C], W [OC, C], bias [OC] | null. */
function int8Reference(x: Float32Array, W: Float32Array, bias: Float32Array | null, R: number, C: number, OC: number): Float32Array {
  const wq = Array.from({ length: OC }, (_, o) => quantizeRow(W, o * C, C))
  const out = new Float32Array(R * OC)
  for (let r = 0; r < R; r++) {
    const xr = quantizeRow(x, r * C, C)
    for (let o = 0; o < OC; o++) {
      let acc = 0
      for (let k = 0; k < C; k++) acc += xr.q[k] * wq[o].q[k]
      const v = f(f(acc) * f(xr.s * wq[o].s))
      out[r * OC + o] = bias ? f(v + bias[o]) : v
    }
  }
  return out
}

function kernels(): Int8Kernel[] {
  const runnable: Int8Kernel[] = []
  for (const k of ['generic', 'avxvnni', 'avx512vnni', 'dotprod'] as const) {
    try {
      ops.int8Kernel(k)
      runnable.push(k)
    } catch {
      // not on this CPU
    }
  }
  return runnable
}

const original = ops.int8Kernel()
t.teardown(() => void ops.int8Kernel(original))

/** Index of the first element where a and b differ (NaN equals NaN), or -1. */
function firstDifference(a: Float32Array, b: Float32Array): number {
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i]) && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i
  return a.length === b.length ? -1 : a.length
}

// [R, C, OC]: one of everything, tile and vector edges on each side (6 rows, 4 k per group, 64 outputs per panel).
const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [2, 3, 5],
  [6, 4, 64],
  [7, 77, 65],
  [13, 130, 130],
  [5, 17, 63],
  [12, 256, 192],
]

t.test('the op gives the formula bit for bit with every kernel this CPU runs', async (t) => {
  const ks = kernels()
  t.ok(ks.includes('generic'), `kernels: ${ks.join(', ')}`)
  for (const [R, C, OC] of SHAPES) {
    const x = Float32Array.from(randn(R * C, R + C), (v) => 3 * v)
    const W = Float32Array.from(randn(OC * C, OC + 1), (v) => 0.05 * v)
    const b = Float32Array.from(randn(OC, 9), (v) => 0.1 * v)
    const inp = Tensor.from(x, [R, C])
    for (const withBias of [true, false]) {
      const want = int8Reference(x, W, withBias ? b : null, R, C, OC)
      for (const k of ks) {
        ops.int8Kernel(k) // the weight's quantization too
        const packed = ops.int8PackWeight(Tensor.from(W, [OC, C]))
        const out = Tensor.zeros([R, OC])
        ops.linearInt8Forward(out, inp, packed, withBias ? Tensor.from(b, [OC]) : null)
        const got = out.toFloat32Array()
        t.equal(firstDifference(got, want), -1, `[${R}, ${C}] x [${OC}, ${C}]ᵀ${withBias ? ' + b' : ''}, ${k}: the formula's bits`)
      }
    }
  }
})

t.test('the int8 product is near the fp32 one, as its step sizes allow', async (t) => {
  const [R, C, OC] = [16, 384, 96]
  const x = Float32Array.from(randn(R * C, 3)),
    W = Float32Array.from(randn(OC * C, 4), (v) => 0.05 * v)
  const out = Tensor.zeros([R, OC]),
    ref = Tensor.zeros([R, OC])
  ops.linearInt8Forward(out, Tensor.from(x, [R, C]), ops.int8PackWeight(Tensor.from(W, [OC, C])), null)
  ops.linearForward(ref, Tensor.from(x, [R, C]), Tensor.from(W, [OC, C]), null)
  const a = out.toFloat32Array(),
    e = ref.toFloat32Array()
  let num = 0,
    den = 0
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - e[i]) ** 2
    den += e[i] ** 2
  }
  // Each operand's rounding error is uniform in ± half a step (max|row| / 127): for Gaussian rows of 384 values,
  // max ≈ 3σ, so a relative error of about sqrt(2) · 3 / 127 / sqrt(12) ≈ 1% per product in RMS.
  const rel = Math.sqrt(num / den)
  t.ok(rel > 1e-3 && rel < 0.02, `relative RMS error ${rel.toExponential(2)}`)
})

t.test('zero, NaN and infinite rows; zero weight rows; the GELU epilogue', async (t) => {
  const [R, C, OC] = [5, 9, 70]
  const x = Float32Array.from(randn(R * C, 5))
  x.fill(0, 1 * C, 2 * C) // row 1: zeros
  x[2 * C + 4] = NaN // row 2: a NaN
  x[3 * C] = -Infinity // row 3: an infinity
  const W = Float32Array.from(randn(OC * C, 6))
  W.fill(0, 3 * C, 4 * C) // output 3: a zero row
  const b = Float32Array.from(randn(OC, 7))
  const packed = ops.int8PackWeight(Tensor.from(W, [OC, C]))
  for (const k of kernels()) {
    ops.int8Kernel(k)
    const out = Tensor.zeros([R, OC])
    ops.linearInt8Forward(out, Tensor.from(x, [R, C]), packed, Tensor.from(b, [OC]))
    const y = out.toFloat32Array()
    t.equal(firstDifference(y, int8Reference(x, W, b, R, C, OC)), -1, `${k}: the formula's bits`)
    t.same(Array.from(y.subarray(OC, 2 * OC)), Array.from(b), `${k}: a zero row gives the bias`)
    t.ok(y.subarray(2 * OC, 4 * OC).every(Number.isNaN), `${k}: NaN and infinite rows give NaN rows`)
    t.ok(
      [0, 4].every((r) => y.subarray(r * OC, (r + 1) * OC).every(Number.isFinite)),
      `${k}: the other rows are finite`,
    )
    t.equal(y[4 * OC + 3], b[3], `${k}: a zero weight row gives its bias`)
    // GELU: apart from out, and in place, as gelu_forward gives it.
    const gelu = Tensor.zeros([R, OC]),
      inPlace = Tensor.zeros([R, OC]),
      want = Tensor.zeros([R, OC])
    ops.linearInt8Forward(out, Tensor.from(x, [R, C]), packed, Tensor.from(b, [OC]), gelu)
    ops.linearInt8Forward(inPlace, Tensor.from(x, [R, C]), packed, Tensor.from(b, [OC]), inPlace)
    ops.geluForward(want, Tensor.from(y, [R, OC]))
    t.equal(firstDifference(out.toFloat32Array(), y), -1, `${k}: out keeps the pre-activation`)
    t.equal(firstDifference(gelu.toFloat32Array(), want.toFloat32Array()), -1, `${k}: geluOut = GELU(out)`)
    t.equal(firstDifference(inPlace.toFloat32Array(), want.toFloat32Array()), -1, `${k}: GELU in place`)
  }
})

t.test('argument checks name the argument', async (t) => {
  const W = Tensor.from(Float32Array.from(randn(12, 8)), [4, 3])
  const packed = ops.int8PackWeight(W)
  const inp = Tensor.zeros([2, 3]),
    out = Tensor.zeros([2, 4])
  t.throws(
    () => ops.linearInt8Forward(out, inp, Tensor.zeros([packed.numel]), null),
    /Expected packed to hold a weight packed by int8PackWeight/,
  )
  t.throws(
    () => ops.linearInt8Forward(out, inp, packed.view(0, [16]), null),
    /Expected packed to hold a weight packed by int8PackWeight/,
    'a truncated copy',
  )
  t.throws(
    () => ops.linearInt8Forward(out, Tensor.zeros([2, 4]), packed, null),
    /Expected inp's last dimension to be C = 3 \(packed holds an \[4, 3\] weight\)/,
  )
  t.throws(() => ops.linearInt8Forward(Tensor.zeros([2, 5]), inp, packed, null), /out/)
  t.throws(() => ops.linearInt8Forward(out, inp, packed, Tensor.zeros([3])), /bias/)
  t.throws(() => ops.linearInt8Forward(out, inp, packed, null, Tensor.zeros([3, 4])), /geluOut/)
  const both = Tensor.zeros([16])
  t.throws(() => ops.linearInt8Forward(both.view(0, [2, 4]), both.view(4, [2, 3]), packed, null), /Expected out and inp not to overlap/)
  t.throws(
    () => ops.int8PackWeight(Tensor.from(new Float32Array([1, 2, 3, 4, Infinity, 6]), [2, 3])),
    /Expected weight to hold finite values but element 4 \(row 1\) is Infinity/,
  )
  t.throws(() => ops.int8PackWeight(Tensor.zeros([6])), /Expected weight to be \[OC, C\] but received \[6\]/)
  t.throws(() => ops.int8Kernel('sse' as Int8Kernel), /Expected force to be 'avx512vnni', 'avxvnni', 'dotprod' or 'generic'/)
  const gone = Tensor.zeros([2, 3])
  gone.dispose()
  t.throws(() => ops.linearInt8Forward(out, gone, packed, null), /inp/)
  t.equal(ops.int8Kernel(), ops.int8Kernel(), 'int8Kernel() names the kernel in use')
})

t.test('BertModel.quantizeInt8: eval passes in int8, near fp32, independent of the batch; training refused', async (t) => {
  const config = tinyConfig({ hiddenSize: 64, intermediateSize: 128, numAttentionHeads: 4 })
  const model = BertModel.create(config, { seed: 3 })
  const B = 6,
    T = 9
  const lengths = [9, 7, 3, 9, 1, 5]
  const inputIds = Int32Array.from({ length: B * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 5 + ((i * 7) % 40) : 0))
  const attentionMask = Int32Array.from(inputIds, (v) => (v ? 1 : 0))
  const batch = { inputIds, attentionMask, tokenTypeIds: new Int32Array(B * T), shape: [B, T] as [number, number] }
  const fp32 = model.embed(batch, 'mean').toFloat32Array()
  t.notOk(model.int8)
  model.quantizeInt8()
  t.ok(model.int8)
  const int8 = model.embed(batch, 'mean').toFloat32Array()
  const H = config.hiddenSize
  for (let b = 0; b < B; b++) {
    const u = fp32.subarray(b * H, (b + 1) * H),
      v = int8.subarray(b * H, (b + 1) * H)
    let uv = 0,
      uu = 0,
      vv = 0
    for (let i = 0; i < H; i++) {
      uv += u[i] * v[i]
      uu += u[i] * u[i]
      vv += v[i] * v[i]
    }
    const d = 1 - uv / Math.sqrt(uu * vv)
    t.ok(d > 0 && d < 2e-3, `sentence ${b}: 1 - cos(int8, fp32) = ${d.toExponential(2)}`)
  }
  // Each row has its own scale, so a sentence's vector does not depend on the batch it is in.
  for (const b of [2, 4]) {
    const one = {
      inputIds: inputIds.slice(b * T, b * T + lengths[b]),
      attentionMask: attentionMask.slice(b * T, b * T + lengths[b]),
      tokenTypeIds: new Int32Array(lengths[b]),
      shape: [1, lengths[b]] as [number, number],
    }
    const alone = model.embed(one, 'mean').toFloat32Array()
    t.equal(firstDifference(alone, int8.subarray(b * H, (b + 1) * H)), -1, `sentence ${b} alone: the same bits as in the batch`)
  }
  t.throws(
    () => model.trainForward(batch, { seed: 1, step: 0 }),
    /trainForward: this model runs its products in int8 \(quantizeInt8\), for inference only/,
  )
  model.quantizeInt8() // again: the old copies are freed, the result is the same
  t.equal(firstDifference(model.embed(batch, 'mean').toFloat32Array(), int8), -1, 'quantized again: the same vectors')
  model.dispose()
  t.throws(() => model.quantizeInt8(), /disposed/)
})

t.test("SentenceEncoder precision 'int8'", async (t) => {
  const dir = await saveTinyModel({ seed: 4, config: { hiddenSize: 64, intermediateSize: 128, numAttentionHeads: 4 } })
  const texts = sentences(40, 11)
  const fp32 = await SentenceEncoder.load(dir, { device: 'cpu', precision: 'fp32', pooling: 'mean' })
  const int8 = await SentenceEncoder.load(dir, { precision: 'int8', pooling: 'mean' })
  t.teardown(async () => {
    await fp32.close()
    await int8.close()
  })
  t.equal(int8.precision, 'int8')
  t.equal(int8.device, 'cpu', "device 'auto' with int8: the CPU")
  const a = await fp32.encode(texts),
    b = await int8.encode(texts)
  let worst = 0
  for (let i = 0; i < texts.length; i++) {
    let uv = 0,
      uu = 0,
      vv = 0
    for (let k = 0; k < a[i].length; k++) {
      uv += a[i][k] * b[i][k]
      uu += a[i][k] ** 2
      vv += b[i][k] ** 2
    }
    worst = Math.max(worst, 1 - uv / Math.sqrt(uu * vv))
  }
  t.ok(worst > 0 && worst < 2e-3, `largest 1 - cos(int8, fp32) over ${texts.length} sentences: ${worst.toExponential(2)}`)
  const unsorted = await int8.encode(texts, { sortByLength: false, batchSize: 7 })
  t.ok(
    unsorted.every((v, i) => firstDifference(v, b[i]) === -1),
    'other batches: the same bits',
  )
  t.equal(fp32.precisionNote, undefined)
  t.equal(int8.precisionNote, ops.int8Kernel() === 'generic' ? int8.precisionNote : undefined, 'a VNNI kernel: no note')
  // The kernel is the process's (the worker threads share the addon): the portable one is named as slow.
  ops.int8Kernel('generic')
  const portable = await SentenceEncoder.load(dir, { precision: 'int8', pooling: 'mean' })
  try {
    t.match(portable.precisionNote, /this CPU has no int8 dot-product instructions .* several times slower than fp32's/)
    const v = await portable.encode(texts)
    t.ok(
      v.every((x, i) => firstDifference(x, b[i]) === -1),
      'the portable kernel: the same bits',
    )
  } finally {
    ops.int8Kernel(original)
    await portable.close()
  }
  await t.rejects(SentenceEncoder.load(dir, { device: 'cuda', precision: 'int8' }), /precision 'int8' runs on the CPU/)
  await t.rejects(
    SentenceEncoder.load(dir, { precision: 'int4' as 'int8' }),
    /precision must be 'auto', 'fp32', 'bf16' or 'int8', got "int4"/,
  )
})
