// CPU reference of CoSENT over scored pairs (ops/losses.h; Su 2022, sentence-transformers' CoSENTLoss):
//
//   c_i = sim(z1_i, z2_i),  s_i = c_i / tau,  P = {(i, j): y_i < y_j}
//   L = log(1 + sum_P exp(s_i - s_j)) = M + log(exp(-M) + sum_P e_ij),  e_ij = exp(s_i - s_j - M),
//       M = max(0, max_P (s_i - s_j))  (so no term overflows)
//   dL/ds_k = (sum_{j: y_k < y_j} e_kj - sum_{i: y_i < y_k} e_ik) / Z,  Z = exp(-M) + sum_P e_ij
//   dL/dz1_k = dL/ds_k / tau * (u2_k - c_k u1_k) * rinv1_k,  u = z * rinv,  rinv = 1 / max(|z|, eps)
//   (and z2 symmetrically).
// AnglE's similarity is |q| with q = cos(x, R y) |R y| / |y| = (x . R y) rinv_x rinv_y (ops/losses.h): the same
// formulas with z1's partner R z2 and z2's partner R^T z1 in place of the other vector, times sign(q).
// The pair terms are O(n^2) scalars, never stored: each row's out- and in-sums are accumulated in double, rows in
// parallel, and Z adds the rows' sums in row order, so the result does not depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cmath>

#include "ops.h"
#include "parallel.h"
#include "scratch.h"

namespace simcsepp::cpu {

namespace {

struct CosentScratch {};  // thread_scratch's tag
enum DoubleSlot { kS, kC, kR1, kR2, kOut, kIn, kSign };

// v[i], or the zero an odd width is padded with (AnglE's halves).
inline double padded(const float* v, int64_t d, int64_t i) { return i < d ? v[i] : 0.0; }

// Element k of x's partner in the similarity: y itself (cosine), or R y (AnglE, h = ceil(d / 2)):
// (R y)_k = y_k - y_{h+k} for k < h, y_{k-h} + y_k beyond.
inline double partner_of_z1(const float* y, int64_t d, int64_t h, bool angle, int64_t k) {
  if (!angle) return y[k];
  return k < h ? padded(y, d, k) - padded(y, d, h + k) : padded(y, d, k - h) + padded(y, d, k);
}
// Element k of y's partner: x (cosine), or R^T x (AnglE): x_k + x_{h+k} for k < h, x_k - x_{k-h} beyond.
inline double partner_of_z2(const float* x, int64_t d, int64_t h, bool angle, int64_t k) {
  if (!angle) return x[k];
  return k < h ? padded(x, d, k) + padded(x, d, h + k) : padded(x, d, k) - padded(x, d, k - h);
}

// Row k's sums over its pairs: out = sum_{j: y_k < y_j} exp(s_k - s_j - m), in = sum_{i: y_i < y_k} exp(s_i - s_k - m).
void row_sums(const double* s, const float* y, int64_t n, int64_t k, double m, double& out, double& in) {
  double o = 0.0, p = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    if (y[k] < y[j]) o += std::exp(s[k] - s[j] - m);
    if (y[j] < y[k]) p += std::exp(s[j] - s[k] - m);
  }
  out = o;
  in = p;
}

}  // namespace

LossResult cosent(const CosentArgs& a, const LossGradOut& g) {
  const int64_t n = a.n, d = a.d;
  if (n <= 0) return LossResult{};
  double* s = thread_scratch<CosentScratch, double>(kS, n);
  double* c = thread_scratch<CosentScratch, double>(kC, n);
  double* r1 = thread_scratch<CosentScratch, double>(kR1, n);
  double* r2 = thread_scratch<CosentScratch, double>(kR2, n);
  double* out = thread_scratch<CosentScratch, double>(kOut, n);
  double* in = thread_scratch<CosentScratch, double>(kIn, n);
  double* sign = thread_scratch<CosentScratch, double>(kSign, n);
  const double invTau = 1.0 / static_cast<double>(a.temperature);
  const bool angle = a.similarity == kAngle;
  const int64_t h = (d + 1) / 2;
  // 1. Cosines, and the first input holding NaN, Inf or a value beyond kMaxLossInput.
  std::atomic<int> bad{kNone};
  parallel_for(n, 64, [&](int64_t i0, int64_t i1) {
    int found = kNone;
    for (int64_t i = i0; i < i1; ++i) {
      const float* x = a.z1 + i * d;
      const float* v = a.z2 + i * d;
      double dot = 0.0, xx = 0.0, vv = 0.0;
      for (int64_t k = 0; k < d; ++k) {
        if (!(std::fabs(x[k]) <= kMaxLossInput)) found = kZ1;
        if (!(std::fabs(v[k]) <= kMaxLossInput) && found != kZ1) found = kZ2;
        dot += static_cast<double>(x[k]) * partner_of_z1(v, d, h, angle, k);
        xx += static_cast<double>(x[k]) * x[k];
        vv += static_cast<double>(v[k]) * v[k];
      }
      r1[i] = 1.0 / std::max(std::sqrt(xx), static_cast<double>(kNormEps));
      r2[i] = 1.0 / std::max(std::sqrt(vv), static_cast<double>(kNormEps));
      c[i] = dot * r1[i] * r2[i];
      sign[i] = !angle ? 1.0 : c[i] > 0 ? 1.0 : c[i] < 0 ? -1.0 : 0.0;  // d|q|/dq (0 at 0, as torch's abs)
      s[i] = c[i] * sign[i] * invTau;
    }
    // The smaller code wins: z1 before z2, as the other losses report.
    for (int want = found, cur = bad.load(); want != kNone && (cur == kNone || want < cur);)
      if (bad.compare_exchange_weak(cur, want)) break;
  });
  if (bad.load() != kNone) return LossResult{0.0, bad.load()};

  // 2. M: the largest term's exponent (0 for the 1 of log(1 + ...)); a max is exact in any order.
  // Each row's largest into out[] first (rows in parallel), which step 3 then overwrites.
  parallel_for(n, 16, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double mi = 0.0;
      for (int64_t j = 0; j < n; ++j)
        if (a.scores[i] < a.scores[j]) mi = std::max(mi, s[i] - s[j]);
      out[i] = mi;
    }
  });
  const double m = *std::max_element(out, out + n);
  // 3. Each row's sums (rows in parallel, each in column order), Z in row order.
  parallel_for(n, 16, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) row_sums(s, a.scores, n, k, m, out[k], in[k]);
  });
  double z = std::exp(-m);
  for (int64_t k = 0; k < n; ++k) z += out[k];
  const double loss = m + std::log(z);

  // 4. Gradients through the cosines.
  const auto grad = [&](const float* self, const float* other, double rs, double ro, double ck, double gc, bool ofZ1,
                        float* dst) {
    for (int64_t k = 0; k < d; ++k) {
      const double p = ofZ1 ? partner_of_z1(other, d, h, angle, k) : partner_of_z2(other, d, h, angle, k);
      const double v = gc * (p * ro - ck * self[k] * rs) * rs;
      dst[k] = g.accumulate ? dst[k] + static_cast<float>(v) : static_cast<float>(v);
    }
  };
  parallel_for(n, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const double gc = (out[i] - in[i]) / z * invTau * sign[i] * static_cast<double>(static_cast<float>(g.weight));
      if (g.gz1) grad(a.z1 + i * d, a.z2 + i * d, r1[i], r2[i], c[i], gc, true, g.gz1 + i * d);
      if (g.gz2) grad(a.z2 + i * d, a.z1 + i * d, r2[i], r1[i], c[i], gc, false, g.gz2 + i * d);
    }
  });
  return LossResult{loss * g.weight, kNone};
}

}  // namespace simcsepp::cpu
