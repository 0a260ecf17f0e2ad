// MPNet's relative-position buckets (transformers' MPNetEncoder.relative_position_bucket with the 32 buckets and
// maximum distance 128 that its compute_position_bias always passes), on the host and on the device.
// For a query at i and a key at j, n = i - j: keys after the query (n < 0) take buckets 16..31, the others
// 0..15; |n| < 8 is its own bucket, farther ones share logarithmic buckets,
//   8 + floor(log(|n| / 8) / log(128 / 8) * 8) = 8 + floor(2 log2(|n| / 8)) = 2 + floor(log2(|n|^2)),
// capped at 15. transformers computes the logarithm in float32; the integer form is the exact value of that
// real expression, and float32 agrees with it everywhere: the expression is an integer only at |n| = 8, 16, 32,
// 64 and 128, where float32's log(2^k) is k times its log(2) and the quotient is exact, and elsewhere it is at
// least 0.05 away from the next integer for |n| < 91 (from 91 on the cap applies).
#pragma once
#include <cstdint>

#include "common/philox.h"  // SIMCSEPP_HD

namespace simcsepp {

constexpr int kRelativeBuckets = 32;

// The bucket of relative position rel = j - i.
SIMCSEPP_HD int relative_bucket(int64_t rel) {
  const int64_t n = -rel;
  const int base = n < 0 ? kRelativeBuckets / 2 : 0;
  const int64_t a = n < 0 ? -n : n;
  if (a < 8) return base + static_cast<int>(a);
  const uint64_t sq = static_cast<uint64_t>(a) * static_cast<uint64_t>(a);
  int log2 = 0;
  for (uint64_t x = sq; x > 1; x >>= 1) ++log2;  // floor(log2(a^2))
  const int v = 2 + log2;
  return base + (v < 15 ? v : 15);
}

}  // namespace simcsepp
