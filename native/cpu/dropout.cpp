// CPU selective dropout (see DropoutArgs in backend.h). Bit-identical to kernels/dropout.cu: the
// same Philox draw per element index and the same float arithmetic (x * (1 / (1 - p))).
#include <algorithm>

#include "../../kernels/philox.cuh"
#include "../backend.h"
#include "parallel.h"

namespace simcsepp::cpu {

void dropout(const DropoutArgs& a) {
  const float scale = a.p < 1.0f ? 1.0f / (1.0f - a.p) : 0.0f;
  parallel_for(a.rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(1, a.cols)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = a.x + r * a.cols;
      float* y = a.y + r * a.cols;
      if ((a.keepRows && a.keepRows[r] == 0) || a.p <= 0.0f) {
        if (y != x)
          for (int64_t c = 0; c < a.cols; ++c) y[c] = x[c];
        continue;
      }
      const uint64_t base = static_cast<uint64_t>(r) * static_cast<uint64_t>(a.cols);
      for (int64_t c = 0; c < a.cols; ++c) {
        const float u = dropout_uniform(a.seed, a.offset, base + static_cast<uint64_t>(c));
        y[c] = u >= a.p ? x[c] * scale : 0.0f;
      }
    }
  });
}

}  // namespace simcsepp::cpu
