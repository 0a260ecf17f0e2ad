// CPU selective dropout (see DropoutArgs in backend.h). Bit-identical to kernels/dropout.cu: the
// same Philox draw per element index and the same float arithmetic (x * (1 / (1 - p))).
#include <algorithm>
#include <vector>

#include "clones.h"
#include "common/philox.h"
#include "dropout_span.h"
#include "ops.h"
#include "parallel.h"
#include "uniforms.h"

namespace simcsepp::cpu {

namespace {
constexpr int64_t kChunk = 4096;  // uniforms drawn per batch (stays in L1)
}  // namespace

// A function of its own, with p and scale by value, so that the loop vectorises: read through a reference, they
// might change with each store.
SIMCSEPP_CLONES void dropout_span(float* o, const float* v, const float* u, float p, float scale, int64_t n) {
  for (int64_t i = 0; i < n; ++i) o[i] = u[i] >= p ? v[i] * scale : 0.0f;
}

void dropout(const DropoutArgs& a) {
  const float scale = a.p < 1.0f ? 1.0f / (1.0f - a.p) : 0.0f;
  parallel_for(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, a.cols)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = a.x + r * a.cols;
      float* y = a.y + r * a.cols;
      if ((a.keepRows && a.keepRows[r] == 0) || a.p <= 0.0f) {
        if (y != x) std::copy(x, x + a.cols, y);
        continue;
      }
      const uint64_t base = static_cast<uint64_t>(a.rowIndex.at(r)) * static_cast<uint64_t>(a.cols);
      thread_local std::vector<float> u;
      for (int64_t c0 = 0; c0 < a.cols; c0 += kChunk) {
        const int64_t w = std::min(kChunk, a.cols - c0);
        u.resize(static_cast<size_t>(w));
        bulk_dropout_uniforms(a.seed, a.offset, base + static_cast<uint64_t>(c0), w, u.data());
        dropout_span(y + c0, x + c0, u.data(), a.p, scale, w);
      }
    }
  });
}

}  // namespace simcsepp::cpu
