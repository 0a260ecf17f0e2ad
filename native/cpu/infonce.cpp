// CPU reference of the fused InfoNCE losses (SimCSE and off-dropout), docs/method.md sections 1, 2, 5.
//
// Same three-pass structure as kernels/infonce.cu, so the two are easy to hold side by side:
//   1. per row: rinv = 1/max(|z|, eps), finiteness, and (off-dropout) the positive logit p_i;
//   2. per row: lse_i = log sum_j exp(S_ij) (+ exp(p_i)), over column tiles, never storing N x N;
//   3. gradients from lse, through the normalisation without storing u = z*rinv:
//        dL/dz_i = rinv_i * (sum_j G_ij rinv_j b_j / tau - (sum_j G_ij S_ij) rinv_i z_i)
//      where G_ij = dL/dS_ij (u_i . du_i = sum_j G_ij S_ij).
// Tiles of kRowTile x kColTile logits live in a per-chunk buffer; logit tiles and the gradient
// accumulations are small GEMMs (gemm.h). Sums of exponentials and the loss are in double.
#include <algorithm>
#include <cmath>

#include "gemm.h"
#include "ops.h"
#include "parallel.h"
#include "rowwise.h"
#include "scratch.h"

namespace simcsepp::cpu {

namespace {

constexpr int64_t kRowTile = 128;
constexpr int64_t kColTile = 512;

// The losses' temporaries (scratch.h): a call's own buffers, and its chunks' (which the calling thread runs too).
struct InfoNceScratch {};
template <class T>
T* scratch(int slot, int64_t n) {
  return thread_scratch<InfoNceScratch, T>(slot, n);
}
enum CallFloat { kR1, kR2, kR0, kPos, kEscaleF };  // r3 and target reuse kR0 and kPos (simcse)
enum CallDouble { kLse, kEscale, kRowLoss };
enum ChunkFloat { kTile = kEscaleF + 1, kAcc, kMx };  // after the call's float slots
enum ChunkDouble { kSum = kRowLoss + 1, kGs };

// One block of columns of the logit matrix: b rows [m, d] with their inverse norms.
struct ColBlock {
  const float* b;
  const float* rinv;
  int64_t m;
};

// Logits of rows [i0, i0+bi) of a against columns [j0, j0+bj) of a column block:
// out[r * bj + c] = (a_i . b_j) * rinvA_i * rinvB_j / tau.
void logit_tile(const float* a, const float* rinvA, int64_t i0, int64_t bi, const ColBlock& cb, int64_t j0, int64_t bj,
                int64_t d, float invTau, float* out) {
  sgemm(false, true, bi, bj, d, 1.0f, a + i0 * d, d, cb.b + j0 * d, d, 0.0f, out, bj);
  // (rinvA * rinvB) first: the product commutes exactly, so a logit computed from the column
  // side (simcse's z2 gradient) rounds exactly as it did from the row side.
  for (int64_t r = 0; r < bi; ++r) {
    const float ra = rinvA[i0 + r];
    float* row = out + r * bj;
    for (int64_t c = 0; c < bj; ++c) row[c] = row[c] * (ra * cb.rinv[j0 + c]) * invTau;
  }
}

// Pass 2: lse_i over every column block (the diagonal of block 0 masked when maskDiag), plus the
// extra positive logit pos[i] when pos is given.
void row_lse(const float* a, const float* rinvA, int64_t n, int64_t d, const ColBlock* blocks, int nblocks,
             bool maskDiag, const float* pos, float invTau, double* lse) {
  parallel_for((n + kRowTile - 1) / kRowTile, 1, [&](int64_t t0, int64_t t1) {
    float* tile = scratch<float>(kTile, kRowTile * kColTile);
    float* mx = scratch<float>(kMx, kRowTile);
    double* sum = scratch<double>(kSum, kRowTile);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i0 = t * kRowTile, bi = std::min(kRowTile, n - i0);
      for (int64_t r = 0; r < bi; ++r) {
        mx[r] = pos ? pos[i0 + r] : -INFINITY;
        sum[r] = pos ? 1.0 : 0.0;
      }
      for (int k = 0; k < nblocks; ++k) {
        const ColBlock& cb = blocks[k];
        for (int64_t j0 = 0; j0 < cb.m; j0 += kColTile) {
          const int64_t bj = std::min(kColTile, cb.m - j0);
          logit_tile(a, rinvA, i0, bi, cb, j0, bj, d, invTau, tile);
          for (int64_t r = 0; r < bi; ++r) {
            const float* row = tile + r * bj;
            const int64_t skip = (maskDiag && k == 0) ? i0 + r - j0 : -1;  // column index to mask
            float tmax = mx[r];
            for (int64_t c = 0; c < bj; ++c)
              if (c != skip) tmax = std::max(tmax, row[c]);
            if (tmax == -INFINITY) continue;  // every logit so far masked
            double s = mx[r] == -INFINITY ? 0.0 : sum[r] * std::exp(static_cast<double>(mx[r] - tmax));
            float part = 0.0f;  // float exponentials (1 ulp), summed per tile, then in double
            for (int64_t c = 0; c < bj; ++c)
              if (c != skip) part += std::exp(row[c] - tmax);
            s += part;
            mx[r] = tmax;
            sum[r] = s;
          }
        }
      }
      for (int64_t r = 0; r < bi; ++r) lse[i0 + r] = static_cast<double>(mx[r]) + std::log(sum[r]);
    }
  });
}

// Writes (or adds) weight * dz into g for row i given the accumulated sums:
//   acc = sum_j G_ij rinv_j b_j / tau,  gs = sum_j G_ij S_ij.
inline void finish_row(float* g, const float* z, const float* acc, double gs, float rinv, int64_t d, double weight,
                       bool accumulate) {
  const float c1 = static_cast<float>(weight) * rinv;
  const float c2 = static_cast<float>(gs) * rinv;
  for (int64_t k = 0; k < d; ++k) {
    const float v = c1 * (acc[k] - c2 * z[k]);
    g[k] = accumulate ? g[k] + v : v;
  }
}

}  // namespace

LossResult offDropout(const OffDropoutArgs& a, const LossGradOut& g) {
  const int64_t n = a.n, d = a.d;
  const float invTau = 1.0f / a.temperature;
  LossResult res;
  float *r1 = scratch<float>(kR1, n), *r2 = scratch<float>(kR2, n), *r0 = scratch<float>(kR0, n),
        *pos = scratch<float>(kPos, n);
  res.nonFinite = inverse_norms(a.z1, n, d, r1) ? kNone : kZ1;
  if (!res.nonFinite && !inverse_norms(a.z2, n, d, r2)) res.nonFinite = kZ2;
  if (!res.nonFinite && !inverse_norms(a.z0, n, d, r0)) res.nonFinite = kZ0;
  if (res.nonFinite) return res;
  parallel_for(n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) pos[i] = a.posScale * dot(a.z1 + i * d, a.z2 + i * d, d) * r1[i] * r2[i] * invTau;
  });

  // Pass 2.
  const ColBlock cols{a.z0, r0, n};
  double* lse = scratch<double>(kLse, n);
  row_lse(a.z0, r0, n, d, &cols, 1, /*maskDiag=*/true, pos, invTau, lse);

  // Pass 3: z0 is both rows and columns and K is symmetric, so row i's gradient gathers both
  // entries (i, j) and (j, i): W_ij = exp(K_ij - lse_i) + exp(K_ij - lse_j), j != i.
  const double invN = 1.0 / static_cast<double>(n);
  // |K_ij| <= 1/tau, so with c = 1/tau: exp(K - lse_i) + exp(K - lse_j) = exp(K - c) * (e_i + e_j)
  // with e_i = exp(c - lse_i): one exponential per entry instead of two. Both factors stay in
  // double's range while c < 300 (tau > 1/300); below that, two exponentials.
  // In float when both factors fit float's range: exp(K - c) >= exp(-2c) and e_i <= exp(c (1 + |m|))
  // (lse_i >= p_i >= -|m| c), i.e. c (1 + |m|) < 80: tau >= 0.025 at m = 1 (the default is 0.05).
  const double shift = invTau;
  const bool factor = shift < 300.0;
  const bool inFloat = shift * (1.0 + std::fabs(a.posScale)) < 80.0;
  double* escale = scratch<double>(kEscale, n);
  float* escaleF = scratch<float>(kEscaleF, n);
  for (int64_t i = 0; i < n; ++i) {
    escale[i] = factor ? std::exp(shift - lse[i]) : 0.0;
    escaleF[i] = static_cast<float>(escale[i]);
  }
  const float shiftF = static_cast<float>(shift), invNF = static_cast<float>(invN);
  double* rowLoss = scratch<double>(kRowLoss, n);
  parallel_for((n + kRowTile - 1) / kRowTile, 1, [&](int64_t t0, int64_t t1) {
    float* tile = scratch<float>(kTile, kRowTile * kColTile);
    float* acc = scratch<float>(kAcc, kRowTile * d);
    double* gs = scratch<double>(kGs, kRowTile);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i0 = t * kRowTile, bi = std::min(kRowTile, n - i0);
      std::fill(acc, acc + kRowTile * d, 0.0f);
      std::fill(gs, gs + kRowTile, 0.0);
      for (int64_t j0 = 0; j0 < n; j0 += kColTile) {
        const int64_t bj = std::min(kColTile, n - j0);
        logit_tile(a.z0, r0, i0, bi, cols, j0, bj, d, invTau, tile);
        for (int64_t r = 0; r < bi; ++r) {
          float* row = tile + r * bj;
          const int64_t diag = i0 + r - j0;  // the masked column of this row in the tile, if any
          if (inFloat) {
            const float ei = escaleF[i0 + r];
            float s = 0.0f;  // one tile row; summed across tiles in double
            for (int64_t c = 0; c < bj; ++c) {
              const float k = row[c];
              const float w = c == diag ? 0.0f : std::exp(k - shiftF) * (ei + escaleF[j0 + c]) * invNF;
              s += w * k;
              row[c] = w * r0[j0 + c] * invTau;  // weight on z0_j
            }
            gs[r] += s;
            continue;
          }
          const double li = lse[i0 + r];
          const double ei = escale[i0 + r];
          double s = 0.0;
          for (int64_t c = 0; c < bj; ++c) {
            const int64_t j = j0 + c;
            if (c == diag) {
              row[c] = 0.0f;
              continue;
            }
            const double k = row[c];
            const double w =
                (factor ? std::exp(k - shift) * (ei + escale[j]) : std::exp(k - li) + std::exp(k - lse[j])) * invN;
            s += w * k;
            row[c] = static_cast<float>(w) * r0[j] * invTau;  // weight on z0_j
          }
          gs[r] += s;
        }
        sgemm(false, false, bi, d, bj, 1.0f, tile, bj, a.z0 + j0 * d, d, 1.0f, acc, d);
      }
      for (int64_t r = 0; r < bi; ++r) {
        const int64_t i = i0 + r;
        finish_row(g.gz0 + i * d, a.z0 + i * d, acc + r * d, gs[r], r0[i], d, g.weight, g.accumulate);
        // Positive pair: dL/dp_i = (a_i - 1)/N with a_i = exp(p_i - lse_i), p_i = m u1.u2 / tau.
        const double gp = (std::exp(static_cast<double>(pos[i]) - lse[i]) - 1.0) * invN;
        const float coef = static_cast<float>(gp) * a.posScale * invTau;
        const float dotTerm = static_cast<float>(gp * pos[i]);  // u1 . du1 = gp * p_i
        const float* z1 = a.z1 + i * d;
        const float* z2 = a.z2 + i * d;
        float* g1 = g.gz1 + i * d;
        float* g2 = g.gz2 + i * d;
        const float w1 = static_cast<float>(g.weight) * r1[i], w2 = static_cast<float>(g.weight) * r2[i];
        for (int64_t k = 0; k < d; ++k) {
          const float v1 = w1 * (coef * r2[i] * z2[k] - dotTerm * r1[i] * z1[k]);
          const float v2 = w2 * (coef * r1[i] * z1[k] - dotTerm * r2[i] * z2[k]);
          g1[k] = g.accumulate ? g1[k] + v1 : v1;
          g2[k] = g.accumulate ? g2[k] + v2 : v2;
        }
        rowLoss[i] = lse[i] - pos[i];
      }
    }
  });
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += rowLoss[i];
  res.loss = g.weight * total * invN;
  return res;
}

LossResult simcse(const SimcseArgs& a, const LossGradOut& g) {
  const int64_t n = a.n, d = a.d;
  const float invTau = 1.0f / a.temperature;
  LossResult res;
  const int64_t m = a.z3 ? a.m : 0;  // hard negatives
  float *r1 = scratch<float>(kR1, n), *r2 = scratch<float>(kR2, n), *r3 = scratch<float>(kR0, std::max<int64_t>(m, 1));
  res.nonFinite = inverse_norms(a.z1, n, d, r1) ? kNone : kZ1;
  if (!res.nonFinite && !inverse_norms(a.z2, n, d, r2)) res.nonFinite = kZ2;
  if (!res.nonFinite && a.z3 && !inverse_norms(a.z3, m, d, r3)) res.nonFinite = kZ3;
  if (res.nonFinite) return res;

  // The target logit S_ii is kept out of the float tile sums (its column is masked) and enters lse
  // as an exact double term, as off-dropout's positive does: when it dominates, P_ii - 1 is a tiny
  // difference that float sums would round away. Rounded as logit_tile rounds.
  float* target = scratch<float>(kPos, n);
  parallel_for(n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) target[i] = dot(a.z1 + i * d, a.z2 + i * d, d) * (r1[i] * r2[i]) * invTau;
  });
  ColBlock blocks[2] = {{a.z2, r2, n}, {a.z3, r3, m}};
  const int nblocks = a.z3 ? 2 : 1;
  double* lse = scratch<double>(kLse, n);
  row_lse(a.z1, r1, n, d, blocks, nblocks, /*maskDiag=*/true, target, invTau, lse);
  const double invN = 1.0 / static_cast<double>(n);
  // dL/dS_ii = (P_ii - 1) / N, in double from the exact lse.
  auto targetGrad = [&](int64_t i) { return (std::exp(static_cast<double>(target[i]) - lse[i]) - 1.0) * invN; };

  // Row gradients (z1): G_ij = (exp(S_ij - lse_i) - [j == i in block 0]) / N.
  parallel_for((n + kRowTile - 1) / kRowTile, 1, [&](int64_t t0, int64_t t1) {
    float* tile = scratch<float>(kTile, kRowTile * kColTile);
    float* acc = scratch<float>(kAcc, kRowTile * d);
    double* gs = scratch<double>(kGs, kRowTile);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t i0 = t * kRowTile, bi = std::min(kRowTile, n - i0);
      std::fill(acc, acc + kRowTile * d, 0.0f);
      std::fill(gs, gs + kRowTile, 0.0);
      for (int k = 0; k < nblocks; ++k) {
        const ColBlock& cb = blocks[k];
        for (int64_t j0 = 0; j0 < cb.m; j0 += kColTile) {
          const int64_t bj = std::min(kColTile, cb.m - j0);
          logit_tile(a.z1, r1, i0, bi, cb, j0, bj, d, invTau, tile);
          for (int64_t r = 0; r < bi; ++r) {
            float* row = tile + r * bj;
            const int64_t i = i0 + r;
            double s = 0.0;
            for (int64_t c = 0; c < bj; ++c) {
              const int64_t j = j0 + c;
              const bool isTarget = k == 0 && j == i;
              const double sij = isTarget ? target[i] : row[c];
              const double gij = isTarget ? targetGrad(i) : std::exp(sij - lse[i]) * invN;
              s += gij * sij;
              row[c] = static_cast<float>(gij) * cb.rinv[j] * invTau;
            }
            gs[r] += s;
          }
          sgemm(false, false, bi, d, bj, 1.0f, tile, bj, cb.b + j0 * d, d, 1.0f, acc, d);
        }
      }
      for (int64_t r = 0; r < bi; ++r)
        finish_row(g.gz1 + (i0 + r) * d, a.z1 + (i0 + r) * d, acc + r * d, gs[r], r1[i0 + r], d, g.weight,
                   g.accumulate);
    }
  });

  // Column gradients (z2, z3): sum over rows i of G_ij, column tiles are independent.
  float* colGrads[2] = {g.gz2, g.gz3};
  for (int k = 0; k < nblocks; ++k) {
    const ColBlock& cb = blocks[k];
    parallel_for((cb.m + kRowTile - 1) / kRowTile, 1, [&](int64_t t0, int64_t t1) {
      // Logits transposed: tile[c][r] for columns j0+c (as "rows") against rows i (as "columns").
      float* tile = scratch<float>(kTile, kRowTile * kColTile);
      float* acc = scratch<float>(kAcc, kRowTile * d);
      double* gs = scratch<double>(kGs, kRowTile);
      const ColBlock rowsAsCols{a.z1, r1, n};
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t j0 = t * kRowTile, bj = std::min(kRowTile, cb.m - j0);
        std::fill(acc, acc + kRowTile * d, 0.0f);
        std::fill(gs, gs + kRowTile, 0.0);
        for (int64_t i0 = 0; i0 < n; i0 += kColTile) {
          const int64_t bi = std::min(kColTile, n - i0);
          logit_tile(cb.b, cb.rinv, j0, bj, rowsAsCols, i0, bi, d, invTau, tile);
          for (int64_t c = 0; c < bj; ++c) {
            float* row = tile + c * bi;
            const int64_t j = j0 + c;
            double s = 0.0;
            for (int64_t r = 0; r < bi; ++r) {
              const int64_t i = i0 + r;
              const bool isTarget = k == 0 && i == j;
              const double sij = isTarget ? target[i] : row[r];
              const double gij = isTarget ? targetGrad(i) : std::exp(sij - lse[i]) * invN;
              s += gij * sij;
              row[r] = static_cast<float>(gij) * r1[i] * invTau;
            }
            gs[c] += s;
          }
          sgemm(false, false, bj, d, bi, 1.0f, tile, bi, a.z1 + i0 * d, d, 1.0f, acc, d);
        }
        for (int64_t c = 0; c < bj; ++c)
          finish_row(colGrads[k] + (j0 + c) * d, cb.b + (j0 + c) * d, acc + c * d, gs[c], cb.rinv[j0 + c], d, g.weight,
                     g.accumulate);
      }
    });
  }
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += lse[i] - target[i];
  res.loss = g.weight * total * invN;
  return res;
}

}  // namespace simcsepp::cpu

namespace simcsepp::cpu {

size_t offDropoutWorkspaceBytes(int64_t n, int64_t d) {
  const size_t perRow = 4 * sizeof(float) + 2 * sizeof(double);  // r1 r2 r0 pos, lse rowLoss
  const size_t perThread = (kRowTile * kColTile + kRowTile * d) * sizeof(float) + kRowTile * sizeof(double);
  return static_cast<size_t>(n) * perRow + static_cast<size_t>(num_threads()) * perThread;
}

}  // namespace simcsepp::cpu
