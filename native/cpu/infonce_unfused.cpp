// The unfused off-dropout InfoNCE, made of separate ops as a framework would run it: normalise,
// one GEMM for the N x N logits, masked row log-sum-exp, softmax, two gradient GEMMs and the
// normalisation backward. It materialises the N x N matrix: it exists only as the benchmark's
// baseline for the fused kernels (npx simcsepp bench losses), never for training.
#include <cmath>
#include <string>
#include <vector>

#include "gemm.h"
#include "ops.h"
#include "parallel.h"
#include "rowwise.h"

namespace simcsepp::cpu {

namespace {

void normalise(const float* z, int64_t n, int64_t d, float* u, float* rinv) {
  inverse_norms(z, n, d, rinv);
  parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i)
      for (int64_t k = 0; k < d; ++k) u[i * d + k] = z[i * d + k] * rinv[i];
  });
}

// dz = weight * (g - (g.u) u) * rinv, row by row, written or (accumulate) added.
void normalise_backward(const float* gu, const float* u, const float* rinv, int64_t n, int64_t d, const LossGradOut& g,
                        float* gz) {
  const float w = static_cast<float>(g.weight);
  parallel_for(n, 64, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const float s = dot(gu + i * d, u + i * d, d);
      for (int64_t k = 0; k < d; ++k) {
        const float v = w * (gu[i * d + k] - s * u[i * d + k]) * rinv[i];
        gz[i * d + k] = g.accumulate ? gz[i * d + k] + v : v;
      }
    }
  });
}

}  // namespace

LossResult offDropoutUnfused(const OffDropoutArgs& a, const LossGradOut& g, size_t* workspaceBytes) {
  const int64_t n = a.n, d = a.d;
  const float invTau = 1.0f / a.temperature;
  std::vector<float> u1(n * d), u2(n * d), u0(n * d), r1(n), r2(n), r0(n), pos(n), lse(n), gu(n * d);
  std::vector<float> k(n * n);
  if (workspaceBytes) *workspaceBytes = (k.size() + 4 * n * d + 5 * n) * sizeof(float);
  normalise(a.z1, n, d, u1.data(), r1.data());
  normalise(a.z2, n, d, u2.data(), r2.data());
  normalise(a.z0, n, d, u0.data(), r0.data());
  for (int64_t i = 0; i < n; ++i) pos[i] = a.posScale * dot(u1.data() + i * d, u2.data() + i * d, d) * invTau;
  sgemm(false, true, n, n, d, invTau, u0.data(), d, u0.data(), d, 0.0f, k.data(), n);
  // Masked row softmax over [K_i, p_i]; K becomes B = Q[:, :N] / (N tau) in place.
  LossResult res;
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    float* row = k.data() + i * n;
    row[i] = -INFINITY;
    float mx = pos[i];
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, row[j]);
    double s = std::exp(static_cast<double>(pos[i] - mx));
    for (int64_t j = 0; j < n; ++j) s += std::exp(static_cast<double>(row[j] - mx));
    lse[i] = static_cast<float>(mx + std::log(s));
    total += lse[i] - pos[i];
    for (int64_t j = 0; j < n; ++j) row[j] = std::exp(row[j] - lse[i]) * invTau / static_cast<float>(n);
  }
  res.loss = g.weight * total / static_cast<double>(n);
  // dU0 = (B + B^T) U0 / (N tau): two GEMMs.
  sgemm(false, false, n, d, n, 1.0f, k.data(), n, u0.data(), d, 0.0f, gu.data(), d);
  sgemm(true, false, n, d, n, 1.0f, k.data(), n, u0.data(), d, 1.0f, gu.data(), d);
  normalise_backward(gu.data(), u0.data(), r0.data(), n, d, g, g.gz0);
  for (int64_t i = 0; i < n; ++i) {
    const float c = (std::exp(pos[i] - lse[i]) - 1.0f) / static_cast<float>(n) * a.posScale * invTau;
    for (int64_t q = 0; q < d; ++q) gu[i * d + q] = c * u2[i * d + q];
  }
  normalise_backward(gu.data(), u1.data(), r1.data(), n, d, g, g.gz1);
  for (int64_t i = 0; i < n; ++i) {
    const float c = (std::exp(pos[i] - lse[i]) - 1.0f) / static_cast<float>(n) * a.posScale * invTau;
    for (int64_t q = 0; q < d; ++q) gu[i * d + q] = c * u1[i * d + q];
  }
  normalise_backward(gu.data(), u2.data(), r2.data(), n, d, g, g.gz2);
  return res;
}

}  // namespace simcsepp::cpu

namespace simcsepp::cpu {

std::string offDropoutUnfusedFit(int64_t n, int64_t /*d*/) {
  const double nn = static_cast<double>(n) * static_cast<double>(n);
  return nn > 2.0e9 ? "offDropoutUnfused: N x N logits would not fit in memory" : "";
}

}  // namespace simcsepp::cpu
