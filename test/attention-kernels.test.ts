// The CPU attention's three kernels (native/cpu/attention.cpp: AVX-512, AVX2 and portable vectors of 16, 8 and 4
// floats), forward and backward: each product sums every element over k in order, the row sums run in 8 double
// lanes whatever the vector width, and the AVX2 and AVX-512 products fuse their multiply-adds, so those two give
// the same bits and the portable kernel (separate multiplies and adds) agrees with them to rounding. Each kernel runs in its own process
// (SIMCSEPP_ATTENTION_KERNEL is read once); those this CPU lacks are skipped. Float64 references for the same
// shapes are in test/ops.test.ts.
import t from 'tap'
import { addon } from '../lib/native.js'
import { runSelfAsChild } from './helpers/self-child.js'
import { Tensor } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { randn } from './helpers/parity.mjs'

// [B, T, NH, HS]: partial vectors and tiles at every width (T = 1, 33; head sizes 4, 20, 64), one head.
const shapes: [number, number, number, number][] = [
  [3, 33, 2, 20],
  [2, 1, 1, 4],
  [2, 32, 4, 64],
  [1, 70, 1, 12],
]

function results(): string[] {
  const bits: string[] = []
  const keep = (x: Tensor) => bits.push(Buffer.from(x.toFloat32Array().buffer).toString('base64'))
  shapes.forEach(([B, T, NH, HS], i) => {
    const H = NH * HS
    // Sentence b has T - 3b real tokens (at least none), so some rows have padding keys and one none at T = 1.
    const mask = Int32Array.from({ length: B * T }, (_, j) => (j % T < T - 3 * Math.floor(j / T) ? 1 : 0))
    const qkv = Tensor.from(randn(B * T * 3 * H, 60 + i), [B, T, 3 * H])
    const dctx = Tensor.from(randn(B * T * H, 70 + i), [B, T, H])
    const drop = { p: 0.2, seed: 11 + i, offset: 3, keepRows: Uint8Array.from({ length: B }, (_, b) => (b === 1 ? 0 : 1)) }
    const ctx = Tensor.zeros([B, T, H]),
      probs = Tensor.zeros([B, NH, T, T]),
      dqkv = Tensor.zeros([B, T, 3 * H])
    ops.attentionForward(ctx, probs, qkv, null, null, mask, NH, drop)
    ops.attentionBackward(dqkv, null, null, dctx, qkv, null, null, probs, mask, NH, drop)
    for (const x of [ctx, probs, dqkv]) keep(x)
  })
  return bits
}

if (process.env.SIMCSEPP_ATTENTION_KERNEL_TEST_CHILD) {
  process.stdout.write(JSON.stringify({ kernel: addon.gemmInfo().attentionKernel, bits: results() }))
} else {
  const run = (kernel: string) =>
    runSelfAsChild<{ kernel: string; bits: string[] }>(import.meta.url, 'SIMCSEPP_ATTENTION_KERNEL_TEST_CHILD', {
      SIMCSEPP_ATTENTION_KERNEL: kernel,
    })
  const generic = run('generic')
  t.test('attention kernels: the portable one runs when asked for', async (t) => {
    t.equal(generic.kernel, 'generic')
    t.equal(generic.bits.length, 3 * shapes.length)
  })
  t.test('attention kernels: unset, the widest this CPU has', async (t) => {
    t.ok(['avx512', 'avx2', 'generic'].includes(addon.gemmInfo().attentionKernel), addon.gemmInfo().attentionKernel)
  })
  const floats = (b: string) => {
    const buf = Buffer.from(b, 'base64')
    return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4)
  }
  // max |got - want| over max |want|: the fused kernels round each product-sum once where the portable one rounds
  // twice, a difference of a few float ulps of the largest element (measured: at most 3.7e-7).
  const normalisedError = (got: Float32Array, want: Float32Array) => {
    let err = 0,
      scale = 0
    want.forEach((w, j) => {
      err = Math.max(err, Math.abs(got[j] - w))
      scale = Math.max(scale, Math.abs(w))
    })
    return scale === 0 ? err : err / scale
  }
  const label = (i: number) => {
    const [B, T, NH, HS] = shapes[Math.floor(i / 3)]
    return `${['ctx', 'probs', 'dqkv'][i % 3]} B=${B} T=${T} NH=${NH} HS=${HS}`
  }
  const fused = Object.fromEntries(['avx2', 'avx512'].map((kernel) => [kernel, run(kernel)]))
  for (const [kernel, got] of Object.entries(fused)) {
    t.test(
      `attention kernels: ${kernel} within rounding of the portable kernel`,
      { skip: got.kernel === kernel ? false : `this CPU has no ${kernel} (${got.kernel} ran)` },
      async (t) => {
        got.bits.forEach((b, i) => {
          const err = normalisedError(floats(b), floats(generic.bits[i]))
          t.ok(err <= 2e-6, `${label(i)}: normalised error ${err.toExponential(2)}`)
        })
      },
    )
  }
  t.test(
    'attention kernels: avx2 and avx512 give the same bits (both fuse every multiply-add)',
    {
      skip: fused.avx2.kernel === 'avx2' && fused.avx512.kernel === 'avx512' ? false : 'this CPU lacks AVX2 or AVX-512',
    },
    async (t) => {
      fused.avx512.bits.forEach((b, i) => t.equal(b, fused.avx2.bits[i], label(i)))
    },
  )
}
