// Small row-wise helpers shared by the CPU loss ops.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

#include "dot.h"
#include "ops/losses.h"
#include "parallel.h"

namespace simcsepp::cpu {

// rinv[i] = 1 / max(|z_i|, kNormEps) for rows of z [n, d]; returns false if z holds NaN, Inf or a
// value beyond ±kMaxLossInput.
inline bool inverse_norms(const float* z, int64_t n, int64_t d, float* rinv) {
  std::atomic<bool> finite{true};
  parallel_for(n, 64, [&](int64_t b, int64_t e) {
    bool ok = true;
    for (int64_t i = b; i < e; ++i) {
      const float* row = z + i * d;
      double s = 0.0;
      for (int64_t k = 0; k < d; ++k) {
        if (!(std::fabs(row[k]) <= kMaxLossInput)) ok = false;  // NaN fails too
        s += static_cast<double>(row[k]) * row[k];
      }
      rinv[i] = static_cast<float>(1.0 / std::max(std::sqrt(s), static_cast<double>(kNormEps)));
    }
    if (!ok) finite.store(false);
  });
  return finite.load();
}

}  // namespace simcsepp::cpu
