// The CUDA matrix-product ops (kernels/gemm.cu: sgemm, linear; kernels/attention.cu: attention) against the
// CPU reference: every case of GEMM_CASES (helpers/encoder-parity.mjs, which scripts/gpu-check.mjs runs on
// a GPU too; its header lists the shapes and tolerances) runs on 'cuda' and on 'cpu' with the same inputs.
// Small enough for the host emulator (npm run test:emulated). Skipped, with the reason printed, when no
// CUDA device (real or emulated) is usable.
import { GEMM_CASES } from './helpers/encoder-parity.mjs'
import { tapParity } from './helpers/op-parity-tap.js'

tapParity(GEMM_CASES, 'GEMM op', 'worst normalised errors')
