// The exact GELU on the device, y = x Φ(x) with Φ(x) = erfc(-x / sqrt(2)) / 2 (erfc, not 1 + erf, which cancels
// in the left tail), written once: elementwise.cu's gelu_forward and the kernels that recompute a GELU's output
// from its input (bf16_copy.cu's GELU segments, gemm.cu's weight gradient of a layer whose input is a GELU's
// output) evaluate this one expression, so a recomputed value has the bits the forward wrote.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace simcsepp::cuda::detail {

constexpr float kInvSqrt2 = 0.70710678118654752f;

__device__ __forceinline__ float gelu(float x) { return x * (0.5f * erfcf(-x * kInvSqrt2)); }

// out[i] = GELU(inp[i]), and bf16 of it into out16 when not null (a bf16 handoff: bf16_handoff.cuh); for
// grid.cuh's run_map.
struct GeluForwardOp {
  float* out;
  const float* inp;
  __nv_bfloat16* out16;
  __device__ void operator()(int64_t i) const {
    const float y = gelu(inp[i]);
    out[i] = y;
    if (out16 != nullptr) out16[i] = __float2bfloat16(y);
  }
};

}  // namespace simcsepp::cuda::detail
