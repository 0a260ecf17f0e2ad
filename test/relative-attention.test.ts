// The attention ops with a relative-position bias (MPNet's: S[b, h, i, j] += relBias[j - i + T - 1, h]) and its
// gradient (dRelBias [B, 2T - 1, NH]: each sentence's score gradient summed along each diagonal): the CPU against
// a float64 reference and its finite differences, with padding, dropout, packed q|k|v and P formed again; on
// CUDA (a GPU or the emulator) the fused and the tiled paths against the CPU.
import t, { type Test } from 'tap'
import { cudaStatus } from '../lib/index.js'
import * as ops from '../lib/ops.js'
import { Tensor, type Device } from '../lib/tensor.js'
import { dropout } from '../lib/dropout.js'
import { attentionRef, dot, f64, finiteDiff, type AttnDims } from './helpers/bert-reference.js'
import { hfRelativeBucket } from './helpers/model-reference.js'
import { randn, relErr } from './helpers/reference.js'

interface Case {
  d: AttnDims
  mask: Int32Array
  qkv: Float32Array // packed [B, T, 3H]
  dctx: Float32Array
  rel: Float32Array // [2T - 1, NH]
}

function makeCase(d: AttnDims, lengths: number[], seed: number): Case {
  const H = d.NH * d.HS
  return {
    d,
    mask: Int32Array.from({ length: d.B * d.T }, (_, i) => (i % d.T < lengths[Math.floor(i / d.T)] ? 1 : 0)),
    qkv: Float32Array.from(randn(d.B * d.T * 3 * H, seed)),
    dctx: Float32Array.from(randn(d.B * d.T * H, seed + 1)),
    rel: Float32Array.from(randn((2 * d.T - 1) * d.NH, seed + 2), (x) => 2 * x),
  }
}

/** q, k, v of the packed rows as separate [B, T, H] arrays. */
function split(c: Case): [Float64Array, Float64Array, Float64Array] {
  const H = c.d.NH * c.d.HS,
    rows = c.d.B * c.d.T
  return [0, 1, 2].map((part) => {
    const out = new Float64Array(rows * H)
    for (let r = 0; r < rows; r++) for (let e = 0; e < H; e++) out[r * H + e] = c.qkv[r * 3 * H + part * H + e]
    return out
  }) as [Float64Array, Float64Array, Float64Array]
}

interface Run {
  ctx: Float32Array
  probs: Float32Array
  dqkv: Float32Array
  dRel: Float32Array
}

/** Forward (probs kept) and backward (with the saved probs, or forming P again) on `device`, packed. */
function run(c: Case, device: Device, drop: ops.DropoutSite | null, keepProbs = true): Run {
  const { B, T, NH, HS } = c.d,
    H = NH * HS
  const qkv = Tensor.from(c.qkv, [B, T, 3 * H], device)
  const rel = Tensor.from(c.rel, [2 * T - 1, NH], device)
  const ctx = Tensor.zeros([B, T, H], device),
    probs = Tensor.zeros([B, NH, T, T], device)
  ops.attentionForward(ctx, probs, qkv, null, null, c.mask, NH, drop, false, rel)
  const dqkv = Tensor.zeros([B, T, 3 * H], device).fill(7),
    dRel = Tensor.zeros([B, 2 * T - 1, NH], device).fill(7)
  const dctx = Tensor.from(c.dctx, [B, T, H], device)
  ops.attentionBackward(dqkv, null, null, dctx, qkv, null, null, keepProbs ? probs : null, c.mask, NH, drop, false, rel, dRel)
  const out = { ctx: ctx.toFloat32Array(), probs: probs.toFloat32Array(), dqkv: dqkv.toFloat32Array(), dRel: dRel.toFloat32Array() }
  for (const x of [qkv, rel, ctx, probs, dqkv, dRel, dctx]) x.dispose()
  return out
}

function factors(d: AttnDims, drop: ops.DropoutSite | null): Float32Array | null {
  if (!drop) return null
  const ones = Tensor.zeros([d.B, d.NH * d.T * d.T]).fill(1)
  return dropout(ones, { p: drop.p, seed: drop.seed, offset: drop.offset }).toFloat32Array()
}

function close(t: Test, what: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: number) {
  const err = relErr(got, want, 1e-9)
  t.ok(err < tol, `${what}: relative error ${err.toExponential(2)} < ${tol}`)
}

const CASES: [string, AttnDims, number[], ops.DropoutSite | null][] = [
  ['B=2 T=5 NH=2 HS=3, padding', { B: 2, T: 5, NH: 2, HS: 3 }, [5, 3], null],
  ['B=3 T=7 NH=3 HS=4, dropout', { B: 3, T: 7, NH: 3, HS: 4 }, [7, 2, 1], { p: 0.2, seed: 9, offset: 4 }],
  ['B=1 T=1 NH=1 HS=2', { B: 1, T: 1, NH: 1, HS: 2 }, [1], null],
  ['B=2 T=18 NH=2 HS=8 (keys past one vector), dropout', { B: 2, T: 18, NH: 2, HS: 8 }, [18, 11], { p: 0.1, seed: 3, offset: 1 }],
]

for (const [label, d, lengths, drop] of CASES)
  t.test(`CPU, ${label}: forward and gradients against float64`, async (t) => {
    const c = makeCase(d, lengths, 40 + d.T)
    const r = run(c, 'cpu', drop)
    const [q, k, v] = split(c)
    const f = factors(d, drop)
    const rel = f64(c.rel)
    const ref = attentionRef(q, k, v, c.mask, d, f, rel)
    close(t, 'probs', r.probs, ref.probs, 1e-5)
    close(t, 'ctx', r.ctx, ref.ctx, 1e-5)
    const loss = () => dot(c.dctx, attentionRef(q, k, v, c.mask, d, f, rel).ctx)
    const H = d.NH * d.HS
    for (const [which, x, part] of [
      ['dq', q, 0],
      ['dk', k, 1],
      ['dv', v, 2],
    ] as const) {
      const idx = Array.from({ length: Math.min(x.length, 24) }, (_, i) => (i * 7919) % x.length)
      const got = idx.map((i) => r.dqkv[Math.floor(i / H) * 3 * H + part * H + (i % H)])
      close(t, `${which} vs FD`, got, finiteDiff(loss, x, idx), 2e-4)
    }
    // The shared bias's gradient is the sum of the sentences' (dRelBias is per sentence).
    const D = (2 * d.T - 1) * d.NH
    const summed = Array.from({ length: D }, (_, i) => {
      let s = 0
      for (let b = 0; b < d.B; b++) s += r.dRel[b * D + i]
      return s
    })
    close(t, 'sum over sentences of dRelBias vs FD', summed, finiteDiff(loss, rel), 2e-4)
  })

t.test('CPU: dRelBias is per sentence; P formed again gives the same bits; the bias changes the output', async (t) => {
  const d = { B: 3, T: 9, NH: 2, HS: 4 }
  const c = makeCase(d, [9, 4, 6], 7)
  const drop = { p: 0.25, seed: 5, offset: 2 }
  const whole = run(c, 'cpu', drop)
  const again = run(c, 'cpu', drop, false)
  t.ok(Buffer.from(again.dqkv.buffer).equals(Buffer.from(whole.dqkv.buffer)), 'dq|dk|dv without saved probs: same bits')
  t.ok(Buffer.from(again.dRel.buffer).equals(Buffer.from(whole.dRel.buffer)), 'dRelBias without saved probs: same bits')
  // Sentence 1 alone: its own dRelBias row, whatever else is in the batch (no dropout: the masks depend on the row).
  const plain = run(c, 'cpu', null)
  const H = d.NH * d.HS,
    D = (2 * d.T - 1) * d.NH
  const one: Case = {
    ...c,
    d: { ...d, B: 1 },
    mask: c.mask.slice(d.T, 2 * d.T),
    qkv: c.qkv.slice(d.T * 3 * H, 2 * d.T * 3 * H),
    dctx: c.dctx.slice(d.T * H, 2 * d.T * H),
  }
  t.same(run(one, 'cpu', null).dRel, plain.dRel.slice(D, 2 * D), "sentence 1's row")
  const zero = run({ ...c, rel: new Float32Array(c.rel.length) }, 'cpu', null)
  const none = Tensor.zeros([d.B, d.T, H])
  const qkv = Tensor.from(c.qkv, [d.B, d.T, 3 * H])
  ops.attentionForward(none, null, qkv, null, null, c.mask, d.NH)
  t.same(zero.ctx, none.toFloat32Array(), 'a zero bias gives the unbiased attention bit for bit')
  t.notSame(plain.ctx, zero.ctx, 'a bias changes it')
})

t.test('argument checks name relBias and dRelBias', async (t) => {
  const d = { B: 1, T: 4, NH: 2, HS: 2 },
    H = 4
  const qkv = Tensor.zeros([1, 4, 3 * H]),
    ctx = Tensor.zeros([1, 4, H]),
    mask = new Int32Array(4).fill(1)
  t.throws(() => ops.attentionForward(ctx, null, qkv, null, null, mask, 2, null, false, Tensor.zeros([8, 2])), /relBias/)
  const dq = Tensor.zeros([1, 4, 3 * H])
  t.throws(
    () => ops.attentionBackward(dq, null, null, ctx, qkv, null, null, null, mask, 2, null, false, null, Tensor.zeros([1, 7, 2])),
    /Expected relBias with dRelBias/,
  )
  t.throws(
    () =>
      ops.attentionBackward(
        dq,
        null,
        null,
        ctx,
        qkv,
        null,
        null,
        null,
        mask,
        2,
        null,
        false,
        Tensor.zeros([7, 2]),
        Tensor.zeros([1, 7, 3]),
      ),
    /dRelBias/,
  )
  void d
})

const status = cudaStatus()
const cudaSkip = status.available ? false : `CUDA unavailable: ${status.reason}`

/** f() with SIMCSEPP_ATTENTION (and SIMCSEPP_ATTENTION_CHUNK) set, both read at every call. */
function withPath<T>(path: 'fused' | 'tiled', chunk: string | undefined, f: () => T): T {
  const before = [process.env.SIMCSEPP_ATTENTION, process.env.SIMCSEPP_ATTENTION_CHUNK]
  process.env.SIMCSEPP_ATTENTION = path
  if (chunk === undefined) delete process.env.SIMCSEPP_ATTENTION_CHUNK
  else process.env.SIMCSEPP_ATTENTION_CHUNK = chunk
  try {
    return f()
  } finally {
    for (const [name, v] of [
      ['SIMCSEPP_ATTENTION', before[0]],
      ['SIMCSEPP_ATTENTION_CHUNK', before[1]],
    ] as const)
      if (v === undefined) delete process.env[name]
      else process.env[name] = v
  }
}

for (const [label, d, lengths, drop] of [
  ...CASES,
  [
    'B=2 T=37 NH=2 HS=5 (three tiles, HS not a multiple of 4), dropout',
    { B: 2, T: 37, NH: 2, HS: 5 },
    [37, 20],
    { p: 0.1, seed: 2, offset: 3 },
  ],
] as [string, AttnDims, number[], ops.DropoutSite | null][])
  t.test(`CUDA fused and tiled vs CPU, ${label}`, { skip: cudaSkip }, async (t) => {
    const c = makeCase(d, lengths, 90 + d.T)
    const cpu = run(c, 'cpu', drop)
    for (const [path, chunk, keep] of [
      ['fused', undefined, true],
      ['tiled', undefined, true],
      ['tiled', '1', false],
    ] as const) {
      const gpu = withPath(path, chunk, () => run(c, 'cuda', drop, keep))
      const what = `${path}${chunk ? ', a sentence per chunk' : ''}${keep ? '' : ', P formed again'}`
      close(t, `${what}: ctx`, gpu.ctx, cpu.ctx, 1e-5)
      close(t, `${what}: dq|dk|dv`, gpu.dqkv, cpu.dqkv, 1e-5)
      close(t, `${what}: dRelBias`, gpu.dRel, cpu.dRel, 1e-5)
    }
  })

t.test('relativeBiasForward: the buckets of transformers, table rows gathered', async (t) => {
  const NH = 3,
    T = 300
  const table = Float32Array.from({ length: 32 * NH }, (_, i) => Math.floor(i / NH) * 10 + (i % NH))
  const out = Tensor.zeros([2 * T - 1, NH])
  ops.relativeBiasForward(out, Tensor.from(table, [32, NH]))
  const got = out.toFloat32Array()
  const bad: string[] = []
  for (let d = 0; d < 2 * T - 1; d++)
    for (let h = 0; h < NH; h++) if (got[d * NH + h] !== hfRelativeBucket(d - (T - 1)) * 10 + h) bad.push(`rel ${d - (T - 1)}`)
  t.same(bad, [], 'relative positions -299 .. 299')
  // Values worth naming: the exact ones, the logarithmic ones either side of 16 and 32, the cap.
  t.same(
    [0, -1, 1, -7, -8, -15, -16, -22, -23, -31, -32, -90, -91, 500, 8].map(hfRelativeBucket),
    [0, 1, 17, 7, 8, 9, 10, 10, 11, 11, 12, 14, 15, 31, 24],
  )
  t.throws(() => ops.relativeBiasForward(Tensor.zeros([4, NH]), Tensor.from(table, [32, NH])), /2T - 1 rows/)
  t.throws(() => ops.relativeBiasForward(Tensor.zeros([5, NH]), Tensor.zeros([31, NH])), /table to be \[buckets >= 32, 3\]/)
})

t.test('relativeBiasBackward: the table gradient, summed over sentences then diagonals, accumulated', async (t) => {
  const B = 3,
    T = 40,
    NH = 2,
    D = 2 * T - 1
  const dRel = Float32Array.from(randn(B * D * NH, 5))
  const start = Float32Array.from(randn(32 * NH, 6))
  const dtable = Tensor.from(start, [32, NH])
  ops.relativeBiasBackward(dtable, Tensor.from(dRel, [B, D, NH]))
  const want = Float64Array.from(start)
  for (let d = 0; d < D; d++)
    for (let h = 0; h < NH; h++) for (let b = 0; b < B; b++) want[hfRelativeBucket(d - (T - 1)) * NH + h] += dRel[(b * D + d) * NH + h]
  close(t, 'dtable', dtable.toFloat32Array(), want, 1e-6)
  t.throws(() => ops.relativeBiasBackward(Tensor.zeros([32, NH]), Tensor.zeros([B, 4, NH])), /2T - 1 rows per sentence/)
})

t.test('relative bias ops on CUDA: the CPU bits', { skip: cudaSkip }, async (t) => {
  const NH = 4,
    T = 150,
    B = 5,
    D = 2 * T - 1
  const table = Float32Array.from(randn(32 * NH, 8))
  const run = (device: Device) => {
    const out = Tensor.zeros([D, NH], device)
    ops.relativeBiasForward(out, Tensor.from(table, [32, NH], device))
    const dtable = Tensor.from(table, [32, NH], device)
    ops.relativeBiasBackward(dtable, Tensor.from(Float32Array.from(randn(B * D * NH, 9)), [B, D, NH], device))
    return [out.toFloat32Array(), dtable.toFloat32Array()]
  }
  const [a, b] = [run('cpu'), run('cuda')]
  t.same(b[0], a[0], 'forward')
  t.same(b[1], a[1], 'backward')
})
