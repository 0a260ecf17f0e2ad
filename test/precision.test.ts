// bf16 precision of the linear layers (native/ops/precision.h): the CPU rounds each operand to bfloat16
// and multiplies in fp32, exactly the function the CUDA tensor-core GEMM computes, so
//   - CPU bf16 equals a float64 product of the rounded operands (to fp32 summation error),
//   - CUDA bf16 equals CPU bf16 as tightly as fp32 does (on a GPU or the emulator),
//   - bf16 differs from fp32 by about the operands' rounding (2^-9 relative each), and a training run in
//     bf16 follows the fp32 run's loss within the tolerance stated below.
import t from 'tap'
import { join } from 'node:path'
import { cudaStatus, Tensor, SentenceEncoder } from '../lib/index.js'
import * as ops from '../lib/ops.js'
import { train } from '../lib/train/train.js'
import type { StepInfo } from '../lib/train/events.js'
import { microModel, tempDir, writeSentences } from './helpers/train-corpus.js'
import { randn } from './helpers/parity.mjs'

/** bfloat16 rounding (nearest, ties to even) in float64 arithmetic on the float32 bits. */
function bf16(x: number): number {
  const f = new Float32Array([x])
  const u = new Uint32Array(f.buffer)
  u[0] = (u[0] + 0x7fff + ((u[0] >>> 16) & 1)) & 0xffff0000
  return f[0]
}

/** max |a - b| / max |b|. */
function rel(a: Float32Array | Float64Array, b: Float32Array | Float64Array): number {
  let num = 0,
    den = 0
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]))
    den = Math.max(den, Math.abs(b[i]))
  }
  return num / den
}

// A linear layer out[R, OC] = inp W^T + b in float64 from the given (possibly rounded) operands.
function linearRef(inp: Float32Array, w: Float32Array, b: Float32Array, R: number, C: number, OC: number, round: (x: number) => number) {
  const out = new Float64Array(R * OC)
  for (let r = 0; r < R; r++)
    for (let o = 0; o < OC; o++) {
      let s = 0
      for (let c = 0; c < C; c++) s += round(inp[r * C + c]) * round(w[o * C + c])
      out[r * OC + o] = s + b[o]
    }
  return out
}

const [R, C, OC] = [37, 70, 45]

t.test('CPU bf16 linear forward is the float64 product of bf16-rounded operands', async (t) => {
  const x = randn(R * C, 1),
    w = randn(OC * C, 2),
    b = randn(OC, 3)
  const out = Tensor.zeros([R, OC])
  ops.linearForward(out, Tensor.from(x, [R, C]), Tensor.from(w, [OC, C]), Tensor.from(b, [OC]), 'bf16')
  const got = out.toFloat32Array()
  t.ok(rel(got, linearRef(x, w, b, R, C, OC, bf16)) < 1e-6, 'bf16 = product of rounded operands')
  const fp32 = rel(
    got,
    linearRef(x, w, b, R, C, OC, (v) => v),
  )
  t.ok(fp32 > 1e-4 && fp32 < 2e-2, `and differs from the fp32 product by the rounding: ${fp32.toExponential(2)}`)
  t.throws(
    () => ops.linearForward(out, Tensor.from(x, [R, C]), Tensor.from(w, [OC, C]), null, 'fp16' as never),
    /Expected precision to be 'fp32' or 'bf16' but received string "fp16"/,
  )
})

t.test('CPU bf16 linear backward: products of rounded operands, the bias gradient in fp32', async (t) => {
  const x = randn(R * C, 4),
    w = randn(OC * C, 5),
    g = randn(R * OC, 6)
  const dinp = Tensor.zeros([R, C]),
    dw = Tensor.zeros([OC, C]),
    db = Tensor.zeros([OC])
  ops.linearBackward(dinp, dw, db, Tensor.from(g, [R, OC]), Tensor.from(x, [R, C]), Tensor.from(w, [OC, C]), false, 'bf16')
  const refDinp = new Float64Array(R * C),
    refDw = new Float64Array(OC * C),
    refDb = new Float64Array(OC)
  for (let r = 0; r < R; r++)
    for (let o = 0; o < OC; o++) {
      const go = g[r * OC + o]
      refDb[o] += go
      for (let c = 0; c < C; c++) {
        refDinp[r * C + c] += bf16(go) * bf16(w[o * C + c])
        refDw[o * C + c] += bf16(go) * bf16(x[r * C + c])
      }
    }
  t.ok(rel(dinp.toFloat32Array(), refDinp) < 1e-6, 'dinp')
  t.ok(rel(dw.toFloat32Array(), refDw) < 1e-6, 'dweight')
  t.ok(rel(db.toFloat32Array(), refDb) < 1e-6, 'dbias from the unrounded dout')
})

const status = cudaStatus()
const noCuda = status.available ? false : `CUDA unavailable: ${status.reason}`
t.test('CUDA bf16 linear (tensor-core GEMM) equals CPU bf16', { skip: noCuda }, async (t) => {
  for (const [r, c, oc] of [
    [1, 1, 1],
    [R, C, OC],
    [130, 64, 65],
  ]) {
    const x = randn(r * c, 7),
      w = randn(oc * c, 8),
      b = randn(oc, 9),
      g = randn(r * oc, 10)
    const run = (device: 'cpu' | 'cuda') => {
      const T = (d: Float32Array, s: number[]) => Tensor.from(d, s, device)
      const out = Tensor.zeros([r, oc], device),
        dinp = T(randn(r * c, 11), [r, c]),
        dw = T(randn(oc * c, 12), [oc, c]),
        db = T(randn(oc, 13), [oc])
      ops.linearForward(out, T(x, [r, c]), T(w, [oc, c]), T(b, [oc]), 'bf16')
      ops.linearBackward(dinp, dw, db, T(g, [r, oc]), T(x, [r, c]), T(w, [oc, c]), true, 'bf16')
      return [out, dinp, dw, db].map((v) => v.toFloat32Array())
    }
    const a = run('cuda'),
      e = run('cpu')
    ;['out', 'dinp (accumulated)', 'dweight', 'dbias'].forEach((name, i) => {
      const d = rel(a[i], e[i])
      t.ok(d < 1e-5, `[${r}, ${c}, ${oc}] ${name}: ${d.toExponential(2)}`)
    })
  }
})

// SIMCSEPP_BF16_OPERANDS (kernels/bf16_copy.cuh): the bf16 products read bf16 copies of their operands (default)
// or the fp32 operands, rounded as the GEMM reads them. The rounding is the same, so simcsepp's kernels give the
// same bits both ways; cuBLASLt may sum in another order (fp32 summation error).
t.test('CUDA bf16: bf16 operand copies and fp32 operands give the same products', { skip: noCuda }, async (t) => {
  const [r, c, oc] = [70, 33, 65]
  const x = randn(r * c, 21),
    w = randn(oc * c, 22),
    b = randn(oc, 23),
    g = randn(r * oc, 24)
  const run = (mode: 'copies' | 'fp32') => {
    process.env.SIMCSEPP_BF16_OPERANDS = mode
    try {
      t.match(cudaStatus().bf16Operands, mode === 'copies' ? /^bf16 copies/ : /^fp32, rounded/, `cudaStatus says ${mode}`)
      const T = (d: Float32Array, s: number[]) => Tensor.from(d, s, 'cuda')
      const out = Tensor.zeros([r, oc], 'cuda'),
        dinp = T(randn(r * c, 25), [r, c]),
        dw = T(randn(oc * c, 26), [oc, c]),
        db = T(randn(oc, 27), [oc])
      // The weight one float into a larger buffer (as a view of the parameter buffer may be): not 16-byte
      // aligned, so its copy takes the conversion's one-element path; the rest take the 4-element path.
      const wOdd = T(Float32Array.from([7, ...w]), [1 + oc * c]).view(1, [oc, c])
      ops.linearForward(out, T(x, [r, c]), wOdd, T(b, [oc]), 'bf16')
      ops.linearBackward(dinp, dw, db, T(g, [r, oc]), T(x, [r, c]), wOdd, true, 'bf16')
      // dinp without a weight gradient, and a weight gradient without dinp: each copy is made only when needed.
      const dinpOnly = T(randn(r * c, 28), [r, c]),
        dwOnly = T(randn(oc * c, 29), [oc, c])
      ops.linearBackward(dinpOnly, Tensor.zeros([oc, c], 'cuda'), null, T(g, [r, oc]), T(x, [r, c]), T(w, [oc, c]), false, 'bf16')
      ops.linearBackward(null, dwOnly, null, T(g, [r, oc]), T(x, [r, c]), T(w, [oc, c]), false, 'bf16')
      return [out, dinp, dw, db, dinpOnly, dwOnly].map((v) => v.toFloat32Array())
    } finally {
      delete process.env.SIMCSEPP_BF16_OPERANDS
    }
  }
  const copies = run('copies'),
    fp32 = run('fp32')
  const kernels = /^simcsepp kernels/.test(cudaStatus().gemm ?? '')
  ;['out', 'dinp (accumulated)', 'dweight', 'dbias', 'dinp alone', 'dweight alone'].forEach((name, i) => {
    if (kernels) t.same(Array.from(copies[i]), Array.from(fp32[i]), `${name}: the same bits on the kernels`)
    else t.ok(rel(copies[i], fp32[i]) < 1e-5, `${name}: equal to summation order on cuBLASLt`)
  })
})

const dir = tempDir('simcsepp-precision-')

// Tolerance: bf16 rounds each operand to 8 significant bits (relative error at most 2^-9 ≈ 2e-3, about
// 1e-3 on average, independent per term), so a D-term product moves by ~1e-3/√D relative and the loss,
// a smooth function of the sentence vectors, by ~1e-3 or less per step. Both runs see the same batches and
// dropout masks; 20 AdamW updates of lr 1e-3 carry that difference into the weights without amplifying it
// beyond the same order. 1% is ten times that bound. Storing each sublayer's output y in bf16 (the default at bf16,
// as autocast's linear layers return it; SIMCSEPP_SUBLAYER_OUTPUT=fp32 keeps it in fp32) rounds once more per element
// before the residual LayerNorm: the same order, and the same tolerance. On the CPU this run measures 4.2e-5 (y in
// fp32: 3.6e-5).
for (const device of ['cpu', 'cuda'] as const)
  t.test(`20 bf16 training steps on ${device} follow the fp32 loss within 1%`, { skip: device === 'cuda' ? noCuda : false }, async (t) => {
    const model = await microModel(dir, `micro-${device}`)
    const data = writeSentences(join(dir, `data-${device}.txt`), 120)
    const run = { model, data, steps: 20, batchSize: 6, maxLen: 10, evalEvery: 0, saveEvery: 0, seed: 5, lr: 1e-3, device }
    const losses = { fp32: [] as number[], bf16: [] as number[], 'bf16, y in fp32': [] as number[] }
    for (const how of ['fp32', 'bf16', 'bf16, y in fp32'] as const) {
      if (how === 'bf16, y in fp32') process.env.SIMCSEPP_SUBLAYER_OUTPUT = 'fp32'
      try {
        await train(
          { ...run, precision: how === 'fp32' ? 'fp32' : 'bf16', out: join(dir, `${device}-${how.replace(/\W+/g, '-')}`) },
          { onStep: (s: StepInfo) => void losses[how].push(s.loss) },
        )
      } finally {
        delete process.env.SIMCSEPP_SUBLAYER_OUTPUT
      }
    }
    t.equal(losses.bf16.length, 20)
    const last = losses.bf16.length - 1
    for (const how of ['bf16', 'bf16, y in fp32'] as const) {
      const d = Math.abs(losses[how][last] - losses.fp32[last]) / losses.fp32[last]
      t.ok(
        d < 0.01,
        `step 20 loss: ${how} ${losses[how][last].toFixed(5)} vs fp32 ${losses.fp32[last].toFixed(5)} (${(100 * d).toFixed(4)}%)`,
      )
      t.not(losses[how][last], losses.fp32[last], `${how} really computes something else`)
    }
    t.not(losses.bf16[last], losses['bf16, y in fp32'][last], 'y stored in bf16 changes the numbers')
  })

t.test('SentenceEncoder precision: fp32 and bf16 on the CPU, auto = fp32 there; bad values refused', async (t) => {
  const model = await microModel(dir, 'encode')
  const enc32 = await SentenceEncoder.load(model, { device: 'cpu', precision: 'fp32' })
  const enc16 = await SentenceEncoder.load(model, { device: 'cpu', precision: 'bf16' })
  const auto = await SentenceEncoder.load(model, { device: 'cpu' })
  try {
    t.equal(auto.precision, 'fp32')
    t.equal(enc16.precision, 'bf16')
    const [a, b, c] = await Promise.all([
      enc32.encode('the cat sees a dog'),
      enc16.encode('the cat sees a dog'),
      auto.encode('the cat sees a dog'),
    ])
    t.same(Array.from(c), Array.from(a), 'auto on the CPU is fp32')
    const d = rel(b, a)
    t.ok(d > 1e-5 && d < 5e-2, `bf16 vectors differ from fp32 by the rounding: ${d.toExponential(2)}`)
  } finally {
    await Promise.all([enc32.close(), enc16.close(), auto.close()])
  }
  await t.rejects(
    SentenceEncoder.load(model, { precision: 'fp16' as never }),
    /load: precision must be 'auto', 'fp32', 'bf16' or 'int8', got "fp16"/,
  )
  await t.rejects(
    train({ model, data: 'x', out: join(dir, 'bad'), precision: 'half' as never }),
    /train: precision must be auto, fp32 or bf16 \(got half\)/,
  )
})
