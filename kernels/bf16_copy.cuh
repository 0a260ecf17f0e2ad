// bf16 copies of the linear layers' operands (Precision::kBf16): each fp32 operand of a product is rounded
// once to bfloat16 (nearest even, __float2bfloat16: the rounding the CPU backend and gemm_bf16.cuh apply) into
// the op workspace, and the products read the copies: half the bytes, and the GEMM library's bf16 x bf16 ->
// fp32 kernels (the fast ones on every tensor-core GPU) instead of fp32 operands converted inside the GEMM
// (cuBLASLt's COMPUTE_32F_FAST_16BF). linear_backward makes one copy of dout for both of its products.
// The results are the same bits either way on simcsepp's kernels, and equal to summation order on cuBLASLt.
//
// SIMCSEPP_BF16_OPERANDS (read at every op, so a benchmark can compare both in one process):
//   copies  (default) the bf16 copies;
//   fp32    the fp32 operands, rounded by the GEMM as it reads them (the path before the copies).
// The copies are also skipped when cuBLASLt failed its self-check with bf16 operands but passed it with fp32
// operands and bf16 math (kernels/cublaslt.cuh): its kernels on fp32 operands beat gemm_bf16_kernel on copies.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "cuda_check.cuh"

namespace simcsepp::cuda::bf16copy {

enum class Operands { kCopies, kFp32 };

// SIMCSEPP_BF16_OPERANDS now: unset or "copies" -> kCopies, "fp32" -> kFp32 (anything else: kCopies).
Operands operands();
// "bf16 copies" or "fp32 (rounded in the GEMM)", with the variable's setting: cudaStatus().bf16Operands.
const char* describe(Operands o);

// One conversion: dst[i] = bf16(src[i]) for i < n; with gelu, dst[i] = bf16(GELU(src[i])) (gelu.cuh: the bits
// gelu_forward writes), for a weight gradient whose input is a GELU's output kept only as the GELU's input; with
// mean (a LayerNorm segment of rows of C), dst[i] = bf16(ln_output(src[i], mean[r], rstd[r], lnWeight[c],
// lnBias[c])) for i = r C + c (ln_output.cuh: layernorm_apply's bits), for a weight gradient whose input is a
// LayerNorm's output kept only as its input and statistics.
struct Segment {
  const float* src;
  __nv_bfloat16* dst;
  int64_t n;
  bool gelu = false;
  const float* mean = nullptr;  // a LayerNorm segment when not null
  const float* rstd = nullptr;
  const float* lnWeight = nullptr;
  const float* lnBias = nullptr;
  int64_t C = 0;
};

// Runs up to kMaxSegments conversions as one launch on `stream` (count may be 0: nothing is launched).
constexpr int kMaxSegments = 3;
void convert(const Segment* segments, int count, cudaStream_t stream);

// Elements converted by convert() since the process started (launches queued, captured or not: a graph's
// conversions count once, when captured). For tests and benchmarks (cuda_api.h: bf16_counters).
int64_t converted_elements();

}  // namespace simcsepp::cuda::bf16copy
