// The optimiser ops of the op set (backend.h): the AdamW step, the gradient norm's sum of squares and
// the in-place scale that clips it, on raw float32 buffers of n elements; and clipping folded into the AdamW
// step (clip_grad_scale, then adamw_step with its gradScale): one pass over the gradients fewer.
#pragma once
#include <cstdint>

namespace simcsepp {

// torch.optim.AdamW, one step (step is 1-based):
//   p -= lr*wd*p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   p -= lr * (m / (1 - b1^step)) / (sqrt(v / (1 - b2^step)) + eps)
// Hyperparameters are doubles, as torch's Python floats: 1 - beta2 is formed before rounding to
// float32 (1 - 0.999f would be 1.3e-5 off). gradScale: null, or one float on the op's device that multiplies
// every gradient before the update (clip_grad_scale's coefficient), rounded once: the bits of clipping the
// gradients in place and then stepping. The gradients themselves are left as they are.
using AdamwStepFn = void(float* params, const float* grads, float* m, float* v, int64_t n, double lr, double beta1,
                         double beta2, double eps, double weightDecay, int64_t step, const float* gradScale);
// sum g^2 in double: fixed-size chunk partials combined in chunk order (deterministic).
using GradSumSquaresFn = double(const float* g, int64_t n);
// x *= s
using ScaleInplaceFn = void(float* x, float s, int64_t n);
// Gradient clipping as torch.nn.utils.clip_grad_norm_: ss = sum g^2 (as grad_sum_squares); with
// norm = sqrt(ss) and coef = maxNorm / (norm + 1e-6), both in double, g *= (float)coef when norm is
// finite and coef < 1 (common/clip.h). Returns ss (CUDA inside a step graph capture: 0; the graph's results
// hold ss).
using ClipGradNormFn = double(float* g, int64_t n, double maxNorm);
// clip_grad_norm's sum of squares and coefficient without touching g: *scale (one float on g's device) = the
// factor clip_grad_norm would multiply g by, 1 when it would not, for adamw_step's gradScale. Returns ss as
// clip_grad_norm does.
using ClipGradScaleFn = double(const float* g, int64_t n, double maxNorm, float* scale);

}  // namespace simcsepp
