// unit_rows (unit_rows.h). In JavaScript the same loops took 16 ns an element (1.2 s for 100,000 x 768); the sum's
// one dependent chain per row is kept (its order is the JavaScript's), but four rows' chains run side by side.
#include "unit_rows.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#include "parallel.h"

namespace simcsepp::cpu {

namespace {

// The first element of row r that is not finite, as a flat index, or -1.
int64_t first_non_finite(const float* row, int64_t r, int64_t dim) {
  for (int64_t j = 0; j < dim; ++j)
    if (!std::isfinite(row[j])) return r * dim + j;
  return -1;
}

// Rows [r0, r0 + R) scaled, R <= 4, their sums in R independent chains.
template <int R>
void scale_rows(float* x, int64_t r0, int64_t dim) {
  double s[R] = {};
  for (int64_t j = 0; j < dim; ++j)
    for (int q = 0; q < R; ++q) {
      const double v = x[(r0 + q) * dim + j];
      s[q] += v * v;
    }
  for (int q = 0; q < R; ++q) {
    const double inv = s[q] > 0 ? 1.0 / std::sqrt(s[q]) : 0.0;
    float* row = x + (r0 + q) * dim;
    for (int64_t j = 0; j < dim; ++j) row[j] = static_cast<float>(static_cast<double>(row[j]) * inv);
  }
}

}  // namespace

int64_t unit_rows(float* x, int64_t rows, int64_t dim) {
  if (rows <= 0 || dim <= 0) return -1;
  std::atomic<int64_t> bad{-1};
  parallel_for(rows, std::max<int64_t>(4, (int64_t{1} << 15) / dim), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r += 4) {
      const int64_t n = std::min<int64_t>(4, e - r);
      for (int64_t q = 0; q < n; ++q) {
        const int64_t at = first_non_finite(x + (r + q) * dim, r + q, dim);
        if (at < 0) continue;
        // Keep the smallest index over the threads.
        int64_t seen = bad.load();
        while ((seen < 0 || at < seen) && !bad.compare_exchange_weak(seen, at)) {
        }
        return;
      }
      if (n == 4)
        scale_rows<4>(x, r, dim);
      else
        for (int64_t q = 0; q < n; ++q) scale_rows<1>(x, r + q, dim);
    }
  });
  return bad.load();
}

}  // namespace simcsepp::cpu
