// SIMCSEPP_ATTENTION (kernels/attention.cu): a value other than fused or tiled is a clear Error that names
// the variable, thrown before anything runs (at bf16 too, where the shape takes the tensor-core kernels), and the next call with a valid value works; likewise
// SIMCSEPP_ATTENTION_CHUNK (the tiled path's sentences per pass) other than a positive whole number. The paths' numbers
// are compared with the CPU in helpers/encoder-parity.mjs (test/cuda-ops-gemm.test.ts). Skipped, with the
// reason printed, when no CUDA device (real or emulated) is usable.
import t from 'tap'
import { cudaStatus, Tensor } from '../lib/index.js'
import * as ops from '../lib/ops.js'
import { withAttentionPath, withEnvVars } from './helpers/encoder-parity.mjs'

const status = cudaStatus()
if (!status.available) {
  t.comment(`skipped: CUDA is not usable (${status.reason})`)
} else {
  t.test('a bad SIMCSEPP_ATTENTION is an Error naming it; a valid one then works', async (t) => {
    const [B, T, NH, HS] = [1, 3, 1, 2]
    const x = () =>
      Tensor.from(
        Float32Array.from({ length: B * T * NH * HS }, (_, i) => 0.1 * i),
        [B, T, NH * HS],
        'cuda',
      )
    const ctx = Tensor.zeros([B, T, NH * HS], 'cuda')
    const probs = Tensor.zeros([B, NH, T, T], 'cuda')
    const mask = Int32Array.from([1, 1, 0])
    const run = () => ops.attentionForward(ctx, probs, x(), x(), x(), mask, NH, null)
    for (const dir of ['forward', 'backward'])
      t.throws(
        () =>
          withAttentionPath('flash', () => {
            if (dir === 'forward') run()
            else ops.attentionBackward(x(), x(), x(), x(), x(), x(), x(), probs, mask, NH, null)
          }),
        /SIMCSEPP_ATTENTION must be 'fused' or 'tiled', not 'flash'/,
        dir,
      )
    // At bf16 the shape takes the tensor-core kernels, which do not read the variable: it is checked all the same.
    t.throws(
      () => withAttentionPath('flash', () => ops.attentionForward(ctx, probs, x(), x(), x(), mask, NH, null, false, null, 'bf16')),
      /SIMCSEPP_ATTENTION must be 'fused' or 'tiled', not 'flash'/,
      'forward at bf16',
    )
    for (const path of ['fused', 'tiled']) {
      withAttentionPath(path, run)
      const p = probs.toFloat32Array()
      // Row 0: q_0 = k_0 = (0, 0.1), k_1 = (0.2, 0.3), key 2 is padding: P = softmax(0.01, 0.03) / sqrt(2) (float64).
      const p1 = 1 / (1 + Math.exp(-0.02 / Math.SQRT2))
      const err = Math.max(Math.abs(p[0] - (1 - p1)), Math.abs(p[1] - p1), Math.abs(p[2]))
      t.ok(err < 1e-6, `${path}: probs row 0 = ${Array.from(p.subarray(0, 3))}, error ${err.toExponential(2)}`)
    }
    for (const chunk of ['0', '-1', '2x', 'one'])
      t.throws(
        () => withEnvVars({ SIMCSEPP_ATTENTION: 'tiled', SIMCSEPP_ATTENTION_CHUNK: chunk }, run),
        new RegExp(`SIMCSEPP_ATTENTION_CHUNK must be a positive whole number of sentences, not '${chunk}'`),
        `SIMCSEPP_ATTENTION_CHUNK=${chunk}`,
      )
    probs.fill(0)
    withEnvVars({ SIMCSEPP_ATTENTION: 'tiled', SIMCSEPP_ATTENTION_CHUNK: '1' }, run)
    t.ok(probs.toFloat32Array()[1] > 0.5, 'then SIMCSEPP_ATTENTION_CHUNK=1 works')
  })
}
