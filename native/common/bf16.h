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

// The bf16 of f (round_bf16's), as stored: its 16 high bits.
SIMCSEPP_BF16_HD uint16_t bf16_bits(float f) {
  const float r = round_bf16(f);
  uint32_t x;
  std::memcpy(&x, &r, 4);
  return static_cast<uint16_t>(x >> 16);
}

// The float a stored bf16 holds (exact).
SIMCSEPP_BF16_HD float bf16_value(uint16_t b) {
  const uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace simcsepp
