// torch.nn.utils.clip_grad_norm_'s coefficient, shared by the CPU backend (cpu/clip.cpp) and the CUDA kernels
// (kernels/optim.cu) so that both clip alike: from the gradients' sum of squares ss (double), norm = sqrt(ss) and
// coef = maxNorm / (norm + 1e-6), both in double; the gradients are multiplied by (float)coef when norm is finite
// and coef < 1, else left as they are. Returned as that one float factor, 1 when nothing is clipped (g * 1 is g,
// bit for bit, so a fused AdamW may always multiply).
#pragma once
#include <cmath>

#if defined(__CUDACC__)
#define SIMCSEPP_CLIP_HD __host__ __device__ __forceinline__
#else
#define SIMCSEPP_CLIP_HD inline
#endif

namespace simcsepp {

SIMCSEPP_CLIP_HD float clip_coefficient(double sumSquares, double maxNorm) {
#if defined(__CUDA_ARCH__)
  const double norm = sqrt(sumSquares);
  const bool finite = isfinite(norm);
#else
  const double norm = std::sqrt(sumSquares);
  const bool finite = std::isfinite(norm);
#endif
  const double coef = maxNorm / (norm + 1e-6);
  return finite && coef < 1.0 ? static_cast<float>(coef) : 1.0f;
}

}  // namespace simcsepp
