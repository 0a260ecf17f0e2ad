// Rounding a float to the nearest bfloat16 (8 significant bits), ties to even, kept in a float: the
// operand rounding of the bf16 matrix products (ops/precision.h), identical on host and device
// (cuda_bf16.h's __float2bfloat16 rounds the same way). NaN stays NaN; overflow rounds to infinity.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define SIMCSEPP_BF16_HD __host__ __device__ __forceinline__
#else
#define SIMCSEPP_BF16_HD inline
#endif

namespace simcsepp {

SIMCSEPP_BF16_HD float round_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7f800000u) == 0x7f800000u) return f;  // Inf and NaN unchanged
  x = (x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace simcsepp
