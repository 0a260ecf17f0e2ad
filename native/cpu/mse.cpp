// CPU reference of the distillation loss (ops/losses.h; sentence-transformers' MSELoss):
//
//   L = sum_{r,c} (z_rc - t_{r mod n, c})^2 / (rows d),   dL/dz_rc = 2 (z_rc - t_{r mod n, c}) / (rows d)
//
// Each row's sum of squares in double (rows in parallel, each in column order), the total in row order, so the
// result does not depend on the thread count.
#include <atomic>
#include <cmath>

#include "ops.h"
#include "parallel.h"
#include "scratch.h"

namespace simcsepp::cpu {

namespace {
struct MseScratch {};  // thread_scratch's tag
}  // namespace

LossResult mse(const MseArgs& a, const LossGradOut& g) {
  const int64_t rows = a.rows, d = a.d;
  if (rows <= 0 || d <= 0) return LossResult{};
  double* rowSums = thread_scratch<MseScratch, double>(0, rows);
  const double count = static_cast<double>(rows) * static_cast<double>(d);
  // The gradient's factor: as the CUDA kernel forms it (weight rounded to float, as every loss takes it).
  const double scale = 2.0 / count * static_cast<double>(static_cast<float>(g.weight));
  std::atomic<bool> bad{false};
  parallel_for(rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* z = a.z + r * d;
      const float* t = a.target + (r % a.n) * d;
      double sum = 0.0;
      for (int64_t c = 0; c < d; ++c) {
        if (!(std::fabs(z[c]) <= kMaxLossInput)) bad.store(true, std::memory_order_relaxed);
        const double e = static_cast<double>(z[c]) - t[c];
        sum += e * e;
        if (g.gz1) {
          const float v = static_cast<float>(scale * e);
          float* dst = g.gz1 + r * d + c;
          *dst = g.accumulate ? *dst + v : v;
        }
      }
      rowSums[r] = sum;
    }
  });
  if (bad.load()) return LossResult{0.0, kZ1};
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) total += rowSums[r];
  return LossResult{total / count * g.weight, kNone};
}

}  // namespace simcsepp::cpu
