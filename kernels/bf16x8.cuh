// Eight bfloat16 values moved as one 16-byte load or store (an int4: the host emulator has no uint4), for the
// element-wise passes over bf16 arrays: one 2-byte access per thread at a time leaves too few bytes in flight for a
// GPU's memory (Little's law: an H100 needs a few MB in flight; 270 K resident threads of 2 bytes each give 0.5 MB),
// while a thread holding several of these keeps 64 bytes or more in flight. Element k of a group lies in bits
// [16k, 16k + 16) of the 128, little-endian as the GPU stores it: the same values as element-wise accesses.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace simcsepp::cuda::detail {

// Whether 8-element groups can be loaded at p (16-byte aligned; null counts as aligned: an absent array).
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

__device__ __forceinline__ int4 load_bf16x8(const __nv_bfloat16* p) { return *reinterpret_cast<const int4*>(p); }

// The 8 values of a group as floats (exact).
__device__ __forceinline__ void unpack_bf16x8(const int4& g, float (&x)[8]) {
  const int w[4] = {g.x, g.y, g.z, g.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const unsigned u = static_cast<unsigned>(w[k]);
    x[2 * k] = __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(u & 0xffffu)));
    x[2 * k + 1] = __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(u >> 16)));
  }
}

// bf16 of 8 floats (__float2bfloat16's rounding, as element-wise stores) stored as one group at p.
__device__ __forceinline__ void store_bf16x8(__nv_bfloat16* p, const float (&y)[8]) {
  int w[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const unsigned lo = __bfloat16_as_ushort(__float2bfloat16(y[2 * k]));
    const unsigned hi = __bfloat16_as_ushort(__float2bfloat16(y[2 * k + 1]));
    w[k] = static_cast<int>(lo | hi << 16);
  }
  *reinterpret_cast<int4*>(p) = make_int4(w[0], w[1], w[2], w[3]);
}

// 8 floats stored at p (16-byte aligned) as two 16-byte stores.
__device__ __forceinline__ void store_floatx8(float* p, const float (&y)[8]) {
  *reinterpret_cast<float4*>(p) = make_float4(y[0], y[1], y[2], y[3]);
  *reinterpret_cast<float4*>(p + 4) = make_float4(y[4], y[5], y[6], y[7]);
}

}  // namespace simcsepp::cuda::detail
