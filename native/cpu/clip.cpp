// Gradient clipping on the CPU (ops/optim.h: clip_grad_norm, clip_grad_scale): the sum of squares of
// grad_sum_squares, then torch.nn.utils.clip_grad_norm_'s coefficient (common/clip.h), applied as one float
// scale, or handed to adamw_step to apply.
#include "common/clip.h"

#include "ops.h"

namespace simcsepp::cpu {

double clip_grad_norm(float* g, int64_t n, double maxNorm) {
  const double ss = grad_sum_squares(g, n);
  const float coef = clip_coefficient(ss, maxNorm);
  if (coef != 1.0f) scale_inplace(g, coef, n);
  return ss;
}

double clip_grad_scale(const float* g, int64_t n, double maxNorm, float* scale) {
  const double ss = grad_sum_squares(g, n);
  *scale = clip_coefficient(ss, maxNorm);
  return ss;
}

}  // namespace simcsepp::cpu
