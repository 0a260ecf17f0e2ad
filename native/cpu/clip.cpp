// Gradient clipping on the CPU (ops/optim.h: clip_grad_norm): the sum of squares of grad_sum_squares,
// then torch.nn.utils.clip_grad_norm_'s coefficient, formed in double, applied as one float scale.
#include <cmath>

#include "ops.h"

namespace simcsepp::cpu {

double clip_grad_norm(float* g, int64_t n, double maxNorm) {
  const double ss = grad_sum_squares(g, n);
  const double norm = std::sqrt(ss);
  const double coef = maxNorm / (norm + 1e-6);
  if (std::isfinite(norm) && coef < 1.0) scale_inplace(g, static_cast<float>(coef), n);
  return ss;
}

}  // namespace simcsepp::cpu
