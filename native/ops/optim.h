// The optimiser ops of the op set (backend.h): the AdamW step, the gradient norm's sum of squares and
// the in-place scale that clips it, on raw float32 buffers of n elements.
#pragma once
#include <cstdint>

namespace simcsepp {

// torch.optim.AdamW, one step (step is 1-based):
//   p -= lr*wd*p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)
// Hyperparameters are doubles, as torch's Python floats: 1 - beta2 is formed before rounding to
// float32 (1 - 0.999f would be 1.3e-5 off).
using AdamwStepFn = void(float* params, const float* grads, float* m, float* v, int64_t n, double lr, double beta1,
                         double beta2, double eps, double weightDecay, int64_t step);
// sum g^2 in double: fixed-size chunk partials combined in chunk order (deterministic).
using GradSumSquaresFn = double(const float* g, int64_t n);
// x *= s
using ScaleInplaceFn = void(float* x, float s, int64_t n);
// Gradient clipping as torch.nn.utils.clip_grad_norm_: ss = sum g^2 (as grad_sum_squares); with
// norm = sqrt(ss) and coef = maxNorm / (norm + 1e-6), both in double, g *= (float)coef when norm is
// finite and coef < 1. Returns ss (CUDA inside a step graph capture: 0; the graph's results hold ss).
using ClipGradNormFn = double(float* g, int64_t n, double maxNorm);

}  // namespace simcsepp
