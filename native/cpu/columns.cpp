// The leading columns of [R, H] rows (ops/encoder.h LeadingColumnsFn, AddLeadingColumnsFn): Matryoshka training
// copies the first d dimensions of every sentence vector into rows of their own, for losses that read contiguous
// rows, and adds those losses' gradients back into the first d columns. Rows are independent: chunks of rows run on
// the pool, a row's columns in order.
#include <algorithm>
#include <cstring>

#include "ops.h"
#include "parallel.h"

namespace simcsepp::cpu {

namespace {
// About 16 Ki floats a chunk: these ops move little data per row.
int64_t row_grain(int64_t d) { return std::max<int64_t>(1, (int64_t{1} << 14) / std::max<int64_t>(1, d)); }
}  // namespace

void leading_columns(float* out, const float* inp, int64_t R, int64_t d, int64_t H) {
  parallel_for(R, row_grain(d), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) std::memcpy(out + r * d, inp + r * H, static_cast<size_t>(d) * sizeof(float));
  });
}

void add_leading_columns(float* dinp, const float* dout, float scale, int64_t R, int64_t d, int64_t H) {
  parallel_for(R, row_grain(d), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      float* di = dinp + r * H;
      const float* g = dout + r * d;
      for (int64_t c = 0; c < d; ++c) di[c] += scale * g[c];
    }
  });
}

}  // namespace simcsepp::cpu
