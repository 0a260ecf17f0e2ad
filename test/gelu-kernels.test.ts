// The CPU GELU's three versions (native/cpu/bert_ops.cpp: AVX-512, AVX2 with FMA, and the baseline, whose fused
// multiply-adds are libm calls) compute the same bits: in the ops, and in the GEMM epilogues of the linear layers
// (forward's geluOut, backward's geluInput). Each version runs in its own process (SIMCSEPP_GELU_KERNEL is read
// once); those this CPU lacks are skipped. Accuracy against float64 references is in test/ops.test.ts.
import t from 'tap'
import { addon } from '../lib/native.js'
import { runSelfAsChild } from './helpers/self-child.js'
import { Tensor } from '../lib/tensor.js'
import * as ops from '../lib/ops.js'
import { randn } from './helpers/parity.mjs'

// Both tails, the exponential's clamp (x²/2 past 104), zeros, tiny values, and a length that leaves a partial
// vector of 16 and of 8 at the end.
const EDGES = [0, -0, 1e-30, -1e-30, 1e-8, -3e-3, 0.5, -0.5, 5, -5, 9.4, -9.4, 9.6, -9.6, 14, -14, 15, -15, 30, -30, 1e6, -1e6]

function results(): string[] {
  const bits: string[] = []
  const keep = (x: Tensor) => bits.push(Buffer.from(x.toFloat32Array().buffer).toString('base64'))
  const xs = Float32Array.from([...randn(1000, 5, 3), ...EDGES])
  const n = xs.length
  const x = Tensor.from(xs, [n]),
    dout = Tensor.from(randn(n, 6), [n]),
    out = Tensor.zeros([n]),
    dinp = Tensor.zeros([n])
  ops.geluForward(out, x)
  ops.geluBackward(dinp, x, dout)
  keep(out)
  keep(dinp)
  // The epilogues: [R, OC] = [37, 45] tiles cut at every edge.
  const [R, C, OC] = [37, 19, 45]
  const inp = Tensor.from(randn(R * C, 7), [R, C]),
    w = Tensor.from(randn(OC * C, 8, 0.8), [OC, C]),
    b = Tensor.from(randn(OC, 9), [OC])
  const pre = Tensor.zeros([R, OC]),
    act = Tensor.zeros([R, OC])
  ops.linearForward(pre, inp, w, b, 'fp32', act)
  keep(act)
  const dw = Tensor.zeros([C, OC])
  // Backward of a layer whose input was act (pre its GELU input): dinp = (dout2 · W2) ⊙ GELU'(pre).
  const w2 = Tensor.from(randn(C * OC, 10, 0.5), [C, OC]),
    dout2 = Tensor.from(randn(R * C, 11), [R, C]),
    dact = Tensor.zeros([R, OC])
  ops.linearBackward(dact, dw, null, dout2, act, w2, false, 'fp32', pre)
  keep(dact)
  return bits
}

if (process.env.SIMCSEPP_GELU_KERNEL_TEST_CHILD) {
  process.stdout.write(JSON.stringify({ kernel: addon.gemmInfo().geluKernel, bits: results() }))
} else {
  const run = (kernel: string) =>
    runSelfAsChild<{ kernel: string; bits: string[] }>(import.meta.url, 'SIMCSEPP_GELU_KERNEL_TEST_CHILD', { SIMCSEPP_GELU_KERNEL: kernel })
  const baseline = run('baseline')
  t.test('GELU kernels: the baseline runs when asked for', async (t) => {
    t.equal(baseline.kernel, 'baseline')
    t.equal(baseline.bits.length, 4)
  })
  t.test('GELU kernels: unset, the widest this CPU has', async (t) => {
    t.ok(['avx512', 'avx2', 'baseline'].includes(addon.gemmInfo().geluKernel), addon.gemmInfo().geluKernel)
  })
  for (const kernel of ['avx2', 'avx512']) {
    const got = run(kernel)
    t.test(
      `GELU kernels: ${kernel} gives the baseline's bits`,
      { skip: got.kernel === kernel ? false : `this CPU has no ${kernel} (${got.kernel} ran)` },
      async (t) => {
        got.bits.forEach((b, i) => t.equal(b, baseline.bits[i], ['geluForward', 'geluBackward', 'linear geluOut', 'linear geluInput'][i]))
      },
    )
  }
}
