// MPNet's relative-position bias (native/ops/encoder.h: RelativeBiasForwardFn, RelativeBiasBackwardFn), as
// cpu::relative_bias_forward / _backward compute it, bit for bit:
//   forward   out[d, h] = table[bucket(d - (T - 1)), h]: one thread per (d, h) (detail::run_map)
//   backward  dtable[k, h] += sum over d ascending with bucket(d - (T - 1)) = k of sum over b ascending of
//             dRel[b, d, h]: one thread per (k, h), the CPU's loops in its order (no atomics); 32 NH threads,
//             each walking its bucket's diagonals (a small op: (2T - 1) B adds in all per head)
// The buckets are common/relative_bucket.h's.
#include "common/relative_bucket.h"
#include "grid.cuh"

namespace simcsepp::cuda {

namespace {

struct GatherOp {
  float* out;
  const float* table;
  int64_t T, NH;
  __device__ void operator()(int64_t i) const {
    const int64_t d = i / NH, h = i % NH;
    out[i] = table[relative_bucket(d - (T - 1)) * NH + h];
  }
};

struct TableGradOp {
  float* dtable;
  const float* dRel;
  int64_t B, T, NH;
  __device__ void operator()(int64_t i) const {
    const int k = static_cast<int>(i / NH);
    const int64_t h = i % NH, D = 2 * T - 1;
    float acc = dtable[i];
    for (int64_t d = 0; d < D; ++d) {
      if (relative_bucket(d - (T - 1)) != k) continue;
      float s = 0.0f;
      for (int64_t b = 0; b < B; ++b) s += dRel[(b * D + d) * NH + h];
      acc += s;
    }
    dtable[i] = acc;
  }
};

}  // namespace

void relative_bias_forward(float* out, const float* table, int64_t T, int64_t NH) {
  detail::run_map("relative_bias_forward", GatherOp{out, table, T, NH}, (2 * T - 1) * NH);
}

void relative_bias_backward(float* dtable, const float* dRel, int64_t B, int64_t T, int64_t NH) {
  detail::run_map("relative_bias_backward", TableGradOp{dtable, dRel, B, T, NH}, kRelativeBuckets * NH);
}

}  // namespace simcsepp::cuda
