// One output element of a layer norm, out = (x - mean) * rstd * weight + bias, written once: layernorm.cu's forward
// and apply kernels and bf16_copy.cu's LayerNorm segments (a weight gradient's input recomputed as it is rounded)
// evaluate this one expression, so a recomputed value has the bits the forward wrote.
#pragma once

namespace simcsepp::cuda::detail {

__device__ __forceinline__ float ln_output(float x, float m, float rs, float w, float b) {
  return (x - m) * rs * w + b;
}

}  // namespace simcsepp::cuda::detail
