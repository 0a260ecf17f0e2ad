// CPU reference of dimension-wise contrastive learning (DCL), docs/method.md sections 3 and 5.
//
//   X = (z - mean) * rstd per column (biased variance, eps kBnEps), separately for z1 and z2
//   C = X1^T X2 / (n * tauD)                     d x d, reduction over the batch
//   L = mean_d(lse_k C_dk - C_dd)
//   H = (rowsoftmax(C) - I) / d;  dX1 = X2 H^T / (n tauD);  dX2 = X1 H / (n tauD)
//   dz = (dX - mean_n(dX) - X * mean_n(dX * X)) * rstd          (BN backward, per column)
// Everything O(n d) is materialised here (the CPU has the memory), in grow-only per-thread buffers; statistics are
// in double.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "gemm.h"
#include "ops.h"
#include "parallel.h"
#include "scratch.h"

namespace simcsepp::cpu {

namespace {

struct DclScratch {};  // thread_scratch's tag
template <class T>
T* scratch(int slot, int64_t n) {
  return thread_scratch<DclScratch, T>(slot, n);
}

// Slots: floats (dcl's own buffers); doubles (dcl's row losses, the chunks' column sums).
enum FloatSlot { kX1, kX2, kRstd1, kRstd2, kC, kGx };
enum DoubleSlot { kRowLoss, kSum, kSq, kMg, kMgx };

// Column statistics of z [n, d]; writes X = (z - mean) * rstd into x and rstd per column.
// Returns false if z holds NaN, Inf or a value beyond ±kMaxLossInput.
bool batch_normalise(const float* z, int64_t n, int64_t d, float* x, float* rstd) {
  std::atomic<bool> finite{true};
  parallel_for(d, 16, [&](int64_t c0, int64_t c1) {
    const int64_t w = c1 - c0;
    double* sum = scratch<double>(kSum, w);
    double* sq = scratch<double>(kSq, w);
    std::fill(sum, sum + w, 0.0);
    std::fill(sq, sq + w, 0.0);
    bool ok = true;
    for (int64_t i = 0; i < n; ++i) {
      const float* row = z + i * d + c0;
      for (int64_t c = 0; c < w; ++c) {
        if (!(std::fabs(row[c]) <= kMaxLossInput)) ok = false;  // NaN fails too
        sum[c] += row[c];
      }
    }
    for (int64_t c = 0; c < w; ++c) sum[c] /= static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i) {
      const float* row = z + i * d + c0;
      for (int64_t c = 0; c < w; ++c) {
        const double v = row[c] - sum[c];
        sq[c] += v * v;
      }
    }
    for (int64_t c = 0; c < w; ++c) {
      const double r = 1.0 / std::sqrt(sq[c] / static_cast<double>(n) + kBnEps);
      rstd[c0 + c] = static_cast<float>(r);
      for (int64_t i = 0; i < n; ++i) x[i * d + c0 + c] = static_cast<float>((z[i * d + c0 + c] - sum[c]) * r);
    }
    if (!ok) finite.store(false);
  });
  return finite.load();
}

// gz = (gx - mean_n(gx) - x * mean_n(gx * x)) * rstd * weight, written or added.
void bn_backward(const float* gx, const float* x, const float* rstd, int64_t n, int64_t d, double weight,
                 bool accumulate, float* gz) {
  parallel_for(d, 16, [&](int64_t c0, int64_t c1) {
    const int64_t w = c1 - c0;
    double* mg = scratch<double>(kMg, w);
    double* mgx = scratch<double>(kMgx, w);
    std::fill(mg, mg + w, 0.0);
    std::fill(mgx, mgx + w, 0.0);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < w; ++c) {
        const int64_t e = i * d + c0 + c;
        mg[c] += gx[e];
        mgx[c] += static_cast<double>(gx[e]) * x[e];
      }
    for (int64_t c = 0; c < w; ++c) {
      mg[c] /= static_cast<double>(n);
      mgx[c] /= static_cast<double>(n);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < w; ++c) {
        const int64_t e = i * d + c0 + c;
        const float v = static_cast<float>((gx[e] - mg[c] - x[e] * mgx[c]) * rstd[c0 + c] * weight);
        gz[e] = accumulate ? gz[e] + v : v;
      }
  });
}

}  // namespace

LossResult dcl(const DclArgs& a, const LossGradOut& g) {
  const int64_t n = a.n, d = a.d;
  LossResult res;
  float* x1 = scratch<float>(kX1, n * d);
  float* x2 = scratch<float>(kX2, n * d);
  float* rstd1 = scratch<float>(kRstd1, d);
  float* rstd2 = scratch<float>(kRstd2, d);
  if (!batch_normalise(a.z1, n, d, x1, rstd1))
    res.nonFinite = kZ1;
  else if (!batch_normalise(a.z2, n, d, x2, rstd2))
    res.nonFinite = kZ2;
  if (res.nonFinite) return res;

  const float scale = 1.0f / (static_cast<float>(n) * a.temperature);
  float* c = scratch<float>(kC, d * d);
  sgemm(true, false, d, d, n, scale, x1, d, x2, d, 0.0f, c, d);

  // Row softmax of C in place: c becomes H = (R - I) / d.
  double* rowLoss = scratch<double>(kRowLoss, d);
  parallel_for(d, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* row = c + r * d;
      float mx = -INFINITY;
      for (int64_t k = 0; k < d; ++k) mx = std::max(mx, row[k]);
      double s = 0.0;
      for (int64_t k = 0; k < d; ++k) s += std::exp(static_cast<double>(row[k] - mx));
      const double lse = mx + std::log(s);
      rowLoss[r] = lse - row[r];
      for (int64_t k = 0; k < d; ++k)
        row[k] = static_cast<float>((std::exp(row[k] - lse) - (k == r ? 1.0 : 0.0)) / static_cast<double>(d));
    }
  });
  double total = 0.0;
  for (int64_t r = 0; r < d; ++r) total += rowLoss[r];
  res.loss = g.weight * total / static_cast<double>(d);

  float* gx = scratch<float>(kGx, n * d);
  sgemm(false, true, n, d, d, scale, x2, d, c, d, 0.0f, gx, d);  // X2 H^T
  bn_backward(gx, x1, rstd1, n, d, g.weight, g.accumulate, g.gz1);
  sgemm(false, false, n, d, d, scale, x1, d, c, d, 0.0f, gx, d);  // X1 H
  bn_backward(gx, x2, rstd2, n, d, g.weight, g.accumulate, g.gz2);
  return res;
}

}  // namespace simcsepp::cpu
