// The emulator's stand-in for <cuda_bf16.h>: __nv_bfloat16 as the top 16 bits of a float, converted with
// round-to-nearest-even; arithmetic goes through float.
#pragma once
#include <cstdint>
#include <cstring>

namespace cuemu {

inline uint16_t float_to_bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffffu) != 0) return static_cast<uint16_t>((x >> 16) | 0x40u);  // NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace cuemu

struct __nv_bfloat16 {
  uint16_t bits;  // no initialiser: trivially constructible, as the toolkit type (so it may be __shared__)
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : bits(::cuemu::float_to_bf16_bits(f)) {}
  operator float() const { return ::cuemu::bf16_bits_to_float(bits); }
};

inline __nv_bfloat16 __float2bfloat16(float f) { return __nv_bfloat16(f); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }
inline float __bfloat162float(__nv_bfloat16 b) { return static_cast<float>(b); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.bits; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short u) {
  __nv_bfloat16 b;
  b.bits = u;
  return b;
}
