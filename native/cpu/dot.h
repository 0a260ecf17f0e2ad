// Float dot product with eight independent partial sums: the compiler vectorises it, which a single
// running sum prevents (float additions may not be reassociated without -ffast-math).
#pragma once
#include <cstdint>

namespace simcsepp::cpu {

inline float dot(const float* a, const float* b, int64_t d) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= d; k += 8)
    for (int l = 0; l < 8; ++l) s[l] += a[k + l] * b[k + l];
  float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; k < d; ++k) t += a[k] * b[k];
  return t;
}

}  // namespace simcsepp::cpu
