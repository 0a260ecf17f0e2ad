// The exact GELU on the device, y = x Φ(x) with Φ(x) = erfc(-x / sqrt(2)) / 2 (erfc, not 1 + erf, which cancels
// in the left tail), written once: elementwise.cu's gelu_forward and the kernels that recompute a GELU's output
// from its input (bf16_copy.cu's GELU segments, gemm.cu's weight gradient of a layer whose input is a GELU's
// output) evaluate this one expression, so a recomputed value has the bits the forward wrote.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "common/bf16.h"

namespace simcsepp::cuda {

// gelu_backward (elementwise.cu) for a product's output gradient at bf16: dinp = gelu_grad(x, bf16(dout)), the
// gradient rounded to bf16 before GELU' multiplies it (linear_backward's contract at Precision::kBf16; dinp may alias
// dout), with gelu_backward's bf16 handoff.
void gelu_backward_of_bf16(float* dinp, const float* inp, const float* dout, int64_t n);
// The same with the GELU's input kept in bf16 (linearForward's outBf16).
void gelu_backward_of_bf16(float* dinp, const __nv_bfloat16* inp, const float* dout, int64_t n);

// GeluForwardOp<__nv_bfloat16>{act, pre, act16} over [0, n) (act or act16 may be null), on the op stream: the forward
// GELU pass of a bf16 step's MLP (gemm.cu). 8 elements a thread from 16-byte loads when the arrays and n allow
// (elementwise.cu), the same values.
void gelu_forward_of_bf16(float* act, const __nv_bfloat16* pre, __nv_bfloat16* act16, int64_t n);

}  // namespace simcsepp::cuda

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

// A GELU's input as a float: fp32, or kept in bf16 (linearForward's outBf16; exact).
__device__ __forceinline__ float gelu_input(float x) { return x; }
__device__ __forceinline__ float gelu_input(__nv_bfloat16 x) { return __bfloat162float(x); }

// out[i] = GELU(inp[i]) (out may be null: the bf16 copy alone), and bf16 of it into out16 when not null (a bf16
// handoff: bf16_handoff.cuh); for grid.cuh's run_map. TX: the input's type.
template <class TX = float>
struct GeluForwardOp {
  float* out;
  const TX* inp;
  __nv_bfloat16* out16;
  __device__ void operator()(int64_t i) const {
    const float y = gelu(gelu_input(inp[i]));
    if (out != nullptr) out[i] = y;
    if (out16 != nullptr) out16[i] = __float2bfloat16(y);
  }
};

// The forward of a linear layer whose output is kept in bf16 and GELU'd (linearForward's outBf16), in one pass after a
// product written in fp32 into act's memory: x = bf16(act[i]) stored into pre16[i], then act[i] = GELU(x) (act null:
// bf16Next 'only', the handoff alone) and bf16 of it into act16 when not null. Element i is read and written by one
// thread (in place).
struct PreActivationGeluOp {
  float* act;
  const float* product;
  __nv_bfloat16* pre16;
  __nv_bfloat16* act16;
  __device__ void operator()(int64_t i) const {
    const __nv_bfloat16 x = __float2bfloat16(product[i]);
    pre16[i] = x;
    const float y = gelu(__bfloat162float(x));
    if (act != nullptr) act[i] = y;
    if (act16 != nullptr) act16[i] = __float2bfloat16(y);
  }
};

// The product's output gradient at bf16, as GELU' multiplies it: an fp32 product rounded, a bf16 one as stored.
__device__ __forceinline__ float bf16_gradient(float g) { return round_bf16(g); }
__device__ __forceinline__ float bf16_gradient(__nv_bfloat16 g) { return __bfloat162float(g); }

// The backward of a linear layer whose input is GELU(inp), at bf16, in one pass after its input-gradient product
// (gemm.cu): d = gelu_grad(inp[i], bf16(g[i])) for the product's g (TG: fp32, rounded here, or bf16 as the product
// stored it: the same value) into out (g's memory, or null: bf16Next 'only', the copy alone; a bf16 g is only read
// with out null) and bf16 of it into dinp16 when not null (a bf16 handoff), and act16[i] = bf16(GELU(inp[i])), the
// weight gradient's operand (bf16_copy.cuh's GELU segment, the same bits; null when the forward kept it): inp is read
// once for both. load/apply are column_sums.cuh's map_chunks_kernel interface (the pass that also sums d by column: the
// bias gradient of the layer before).
template <class TG, class TX = float>
struct GeluBackwardActOp {
  const TG* dinp;
  float* out;
  const TX* inp;
  __nv_bfloat16* dinp16;
  __nv_bfloat16* act16;
  struct Loaded {
    float x, g;
  };
  __device__ Loaded load(int64_t i) const { return Loaded{gelu_input(inp[i]), bf16_gradient(dinp[i])}; }
  __device__ float apply(int64_t i, Loaded v) const {
    const float d = gelu_grad(v.x, v.g);
    if (out != nullptr) out[i] = d;
    if (dinp16 != nullptr) dinp16[i] = __float2bfloat16(d);
    if (act16 != nullptr) act16[i] = __float2bfloat16(gelu(v.x));
    return d;
  }
  __device__ void operator()(int64_t i) const { apply(i, load(i)); }
};

}  // namespace simcsepp::cuda::detail
