// Arrays held in bfloat16 (ops/encoder.h: LinearBf16, bf16Storage; element i in bytes [2i, 2i + 2) of a float
// array's storage), converted for CPU code that works on floats: the values as floats (exact), or floats stored
// rounded (common/bf16.h's rounding). Row-parallel passes, for the ops' entry points.
#pragma once
#include <cstdint>

#include "common/bf16.h"
#include "parallel.h"

namespace simcsepp::cpu {

// Elements per parallel_for grain of the passes below.
constexpr int64_t kBf16PassGrain = int64_t{1} << 14;

// x[i] = the bf16 value stored at element i of x16, i < n.
inline void bf16_to_floats(float* x, const float* x16, int64_t n) {
  const auto* bits = reinterpret_cast<const uint16_t*>(x16);
  parallel_for(n, kBf16PassGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] = bf16_value(bits[i]);
  });
}

// Element i of x16 = bf16(x[i]), i < n.
inline void floats_to_bf16(float* x16, const float* x, int64_t n) {
  auto* bits = reinterpret_cast<uint16_t*>(x16);
  parallel_for(n, kBf16PassGrain, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) bits[i] = bf16_bits(x[i]);
  });
}

}  // namespace simcsepp::cpu
