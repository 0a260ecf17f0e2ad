// MPNet's relative-position bias (ops/encoder.h: RelativeBiasForwardFn, RelativeBiasBackwardFn): the gather of the
// bucket table into the [2T - 1, NH] bias the attention adds, and its backward, the table's gradient from the
// attention's per-sentence dRelBias. Small (2T - 1 rows of NH): one thread, in the order the header states, which
// the CUDA kernels (kernels/relative_bias.cu) keep.
#include "common/relative_bucket.h"
#include "ops.h"

namespace simcsepp::cpu {

void relative_bias_forward(float* out, const float* table, int64_t T, int64_t NH) {
  for (int64_t d = 0; d < 2 * T - 1; ++d) {
    const float* row = table + relative_bucket(d - (T - 1)) * NH;
    for (int64_t h = 0; h < NH; ++h) out[d * NH + h] = row[h];
  }
}

void relative_bias_backward(float* dtable, const float* dRel, int64_t B, int64_t T, int64_t NH) {
  const int64_t D = 2 * T - 1;
  for (int64_t d = 0; d < D; ++d) {
    float* row = dtable + relative_bucket(d - (T - 1)) * NH;
    for (int64_t h = 0; h < NH; ++h) {
      float s = 0.0f;
      for (int64_t b = 0; b < B; ++b) s += dRel[(b * D + d) * NH + h];
      row[h] += s;
    }
  }
}

}  // namespace simcsepp::cpu
