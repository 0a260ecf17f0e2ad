// The exact GELU on the device, y = x Φ(x) with Φ(x) = erfc(-x / sqrt(2)) / 2 (erfc, not 1 + erf, which cancels
// in the left tail), written once: elementwise.cu's gelu_forward and the kernels that recompute a GELU's output
// from its input (bf16_copy.cu's GELU segments, gemm.cu's weight gradient of a layer whose input is a GELU's
// output) evaluate this one expression, so a recomputed value has the bits the forward wrote.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace simcsepp::cuda::detail {

constexpr float kInvSqrt2 = 0.70710678118654752f;

constexpr float kInvSqrt2Pi = 0.39894228040143268f;

__device__ __forceinline__ float gelu(float x) { return x * (0.5f * erfcf(-x * kInvSqrt2)); }

// dout * GELU'(x) = dout * (Φ(x) + x φ(x)): elementwise.cu's gelu_backward and gemm.cu's fused pass, one expression.
__device__ __forceinline__ float gelu_grad(float x, float dout) {
  const float cdf = 0.5f * erfcf(-x * kInvSqrt2);
  const float pdf = kInvSqrt2Pi * expf(-0.5f * x * x);
  return dout * (cdf + x * pdf);
}

// out[i] = GELU(inp[i]) (out may be null: the bf16 copy alone), and bf16 of it into out16 when not null (a bf16
// handoff: bf16_handoff.cuh); for grid.cuh's run_map.
struct GeluForwardOp {
  float* out;
  const float* inp;
  __nv_bfloat16* out16;
  __device__ void operator()(int64_t i) const {
    const float y = gelu(inp[i]);
    if (out != nullptr) out[i] = y;
    if (out16 != nullptr) out16[i] = __float2bfloat16(y);
  }
};

// The backward of a linear layer whose input is GELU(inp), in one pass after its input-gradient product (gemm.cu):
// d = gelu_grad(inp[i], dinp[i]) into out (dinp itself, or null: bf16Next 'only', the copy alone) and bf16 of it into
// dinp16 when not null (a bf16 handoff), and act16[i] = bf16(GELU(inp[i])), the weight gradient's operand
// (bf16_copy.cuh's GELU segment, the same bits): inp is read once for both. load/apply are column_sums.cuh's
// map_chunks_kernel interface (the pass that also sums d by column: the bias gradient of the layer before).
struct GeluBackwardActOp {
  const float* dinp;
  float* out;
  const float* inp;
  __nv_bfloat16* dinp16;
  __nv_bfloat16* act16;
  struct Loaded {
    float x, g;
  };
  __device__ Loaded load(int64_t i) const { return Loaded{inp[i], dinp[i]}; }
  __device__ float apply(int64_t i, Loaded v) const {
    const float d = gelu_grad(v.x, v.g);
    if (out != nullptr) out[i] = d;
    if (dinp16 != nullptr) dinp16[i] = __float2bfloat16(d);
    act16[i] = __float2bfloat16(gelu(v.x));
    return d;
  }
  __device__ void operator()(int64_t i) const { apply(i, load(i)); }
};

}  // namespace simcsepp::cuda::detail
