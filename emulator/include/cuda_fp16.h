// The emulator's stand-in for <cuda_fp16.h>: __half as its IEEE binary16 bits, converted with
// round-to-nearest-even; arithmetic goes through float (what the emulator checks is logic, not the
// last bit of half-precision arithmetic).
#pragma once
#include <math.h>

#include <cstdint>
#include <cstring>

namespace cuemu {

inline uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xffu) return static_cast<uint16_t>(sign | 0x7c00u | (mant != 0 ? 0x200u | (mant >> 13) : 0u));
  const int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow: infinity
  if (e <= 0) {                                               // subnormal or zero
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    const int shift = 14 - e;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1u), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (h & 1u) != 0)) ++h;
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0)) ++h;  // a carry into the exponent is correct rounding
  return static_cast<uint16_t>(sign | h);
}

inline float half_bits_to_float(uint16_t h) {
  const bool negative = (h & 0x8000u) != 0;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  float v;
  if (exp == 0) {
    v = ldexpf(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant != 0 ? NAN : INFINITY;
  } else {
    v = ldexpf(static_cast<float>(mant | 0x400u), static_cast<int>(exp) - 25);
  }
  return negative ? -v : v;
}

}  // namespace cuemu

struct __half {
  uint16_t bits;  // no initialiser: trivially constructible, as the toolkit type (so it may be __shared__)
  __half() = default;
  __half(float f) : bits(::cuemu::float_to_half_bits(f)) {}
  operator float() const { return ::cuemu::half_bits_to_float(bits); }
};
using half = __half;

inline __half __float2half(float f) { return __half(f); }
inline __half __float2half_rn(float f) { return __half(f); }
inline float __half2float(__half h) { return static_cast<float>(h); }
inline __half operator+(__half a, __half b) { return __half(static_cast<float>(a) + static_cast<float>(b)); }
inline __half operator-(__half a, __half b) { return __half(static_cast<float>(a) - static_cast<float>(b)); }
inline __half operator*(__half a, __half b) { return __half(static_cast<float>(a) * static_cast<float>(b)); }
inline __half operator/(__half a, __half b) { return __half(static_cast<float>(a) / static_cast<float>(b)); }
