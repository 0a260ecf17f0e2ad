// The CUDA row-wise and element-wise ops (kernels/elementwise.cu, embedding.cu, layernorm.cu, pooling.cu,
// optim.cu) against the CPU backend: every case of ROWWISE_CASES (helpers/encoder-parity.mjs, which
// scripts/gpu-check.mjs runs on a GPU too; its header lists the shapes and per-op tolerances) runs through
// lib/ops.ts on 'cuda' and on 'cpu' with the same inputs, every output is compared, and the reductions
// run twice on 'cuda' for bit-identical results. Against the host emulator (npm run test:emulated) the
// same checks run. Also: SIMCSEPP_L2_SLABS (kernels/l2_slab.cuh) other than 'off' or a positive whole number is
// an Error naming it. Skipped, with the reason printed, when CUDA is not usable.
import t from 'tap'
import { cudaStatus, Tensor } from '../lib/index.js'
import * as ops from '../lib/ops.js'
import { ROWWISE_CASES, withEnvVars } from './helpers/encoder-parity.mjs'
import { tapParity } from './helpers/op-parity-tap.js'

tapParity(ROWWISE_CASES, 'row-wise op', 'worst measured error per op')

const status = cudaStatus()
if (status.available)
  t.test('a bad SIMCSEPP_L2_SLABS is an Error naming it; a valid one then works', async (t) => {
    const [R, C] = [300, 8]
    const cuda = (shape: number[], v: number) => Tensor.from(new Float32Array(shape[0] * (shape[1] ?? 1)).fill(v), shape, 'cuda')
    const run = () => {
      const dw = cuda([C], 0)
      ops.layerNormBackward(cuda([R, C], 0), dw, cuda([C], 0), cuda([R, C], 1), cuda([R, C], 2), cuda([C], 1), cuda([R], 1), cuda([R], 1))
      return dw.toFloat32Array()
    }
    for (const bad of ['0', '-2', '1.5', 'on', '3x'])
      t.throws(
        () => withEnvVars({ SIMCSEPP_L2_SLABS: bad }, run),
        new RegExp(`SIMCSEPP_L2_SLABS must be 'off' or a positive whole number of row chunks, not '${bad.replace('.', '\\.')}'`),
        bad,
      )
    // dweight = sum over the rows of dout * (x - mean) * rstd = 300 * 1 * (2 - 1) * 1, however the rows are cut.
    for (const good of ['off', '1', '2', '100'])
      t.same(Array.from(withEnvVars({ SIMCSEPP_L2_SLABS: good }, run)), new Array(C).fill(R), good)
  })
