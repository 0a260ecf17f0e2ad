// torch.optim.AdamW's per-step constants and per-element update (ops/optim.h), shared by the CPU
// backend (cpu/bert_ops.cpp) and the CUDA kernel (kernels/optim.cu) so that both round alike:
//   - the constants are formed in double, as torch's Python floats are, and rounded to float once,
//     on the host: step_size = lr / (1 - beta1^step), sqrt(1 - beta2^step), 1 - lr * wd, 1 - beta1, ...;
//   - the update is float arithmetic with every product, quotient, square root and sum rounded on its
//     own (no fused multiply-add). The device code spells the roundings out (__fmul_rn, __fadd_rn,
//     __fdiv_rn, __fsqrt_rn, which nvcc never contracts); host builds (the CPU backend, the emulator)
//     target x86-64 without FMA, so their plain operators round the same way.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define SIMCSEPP_ADAMW_HD __host__ __device__ __forceinline__
#else
#define SIMCSEPP_ADAMW_HD inline
#endif

namespace simcsepp {

struct AdamwConstants {
  float b1, omb1, b2, omb2;  // beta1, 1 - beta1, beta2, 1 - beta2
  float stepSize;            // lr / (1 - beta1^step)
  float bc2Sqrt;             // sqrt(1 - beta2^step)
  float decay;               // 1 - lr * weightDecay
  float eps;
};

inline AdamwConstants adamw_constants(double lr, double beta1, double beta2, double eps, double weightDecay,
                                      int64_t step) {
  const double s = static_cast<double>(step);
  const double bc1 = 1.0 - std::pow(beta1, s), bc2 = 1.0 - std::pow(beta2, s);
  return AdamwConstants{static_cast<float>(beta1),
                        static_cast<float>(1.0 - beta1),
                        static_cast<float>(beta2),
                        static_cast<float>(1.0 - beta2),
                        static_cast<float>(lr / bc1),
                        static_cast<float>(std::sqrt(bc2)),
                        static_cast<float>(1.0 - lr * weightDecay),
                        static_cast<float>(eps)};
}

// Correctly rounded float operations, never fused.
#if defined(__CUDA_ARCH__)
__device__ __forceinline__ float adamw_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float adamw_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ float adamw_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ float adamw_sqrt(float a) { return __fsqrt_rn(a); }
#else
inline float adamw_mul(float a, float b) { return a * b; }
inline float adamw_add(float a, float b) { return a + b; }
inline float adamw_div(float a, float b) { return a / b; }
inline float adamw_sqrt(float a) { return std::sqrt(a); }
#endif

// One element: decoupled weight decay first, then
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps).
SIMCSEPP_ADAMW_HD void adamw_update(const AdamwConstants& k, float& p, float& m, float& v, float g) {
  m = adamw_add(adamw_mul(k.b1, m), adamw_mul(k.omb1, g));
  v = adamw_add(adamw_mul(k.b2, v), adamw_mul(adamw_mul(k.omb2, g), g));
  const float decayed = adamw_mul(p, k.decay);
  const float denom = adamw_add(adamw_div(adamw_sqrt(v), k.bc2Sqrt), k.eps);
  p = adamw_add(decayed, -adamw_mul(k.stepSize, adamw_div(m, denom)));
}

}  // namespace simcsepp
