// The CUDA row-wise and element-wise ops (kernels/elementwise.cu, embedding.cu, layernorm.cu, pooling.cu,
// optim.cu) against the CPU backend: every case of ROWWISE_CASES (helpers/encoder-parity.mjs, which
// scripts/gpu-check.mjs runs on a GPU too; its header lists the shapes and per-op tolerances) runs through
// lib/ops.ts on 'cuda' and on 'cpu' with the same inputs, every output is compared, and the reductions
// run twice on 'cuda' for bit-identical results. Against the host emulator (npm run test:emulated) the
// same checks run. Skipped, with the reason printed, when CUDA is not usable.
import { ROWWISE_CASES } from './helpers/encoder-parity.mjs'
import { tapParity } from './helpers/op-parity-tap.js'

tapParity(ROWWISE_CASES, 'row-wise op', 'worst measured error per op')
