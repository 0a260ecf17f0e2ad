// Warp-wide reductions (all 32 lanes take part and all receive the result), shared by the kernels
// that reduce one row per warp (infonce.cu, infonce_unfused.cu).
#pragma once

namespace simcsepp::cuda {

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace simcsepp::cuda
