// Fused InfoNCE losses (docs/method.md sections 1, 2, 5) without materialising the N x N logits.
//
//   simcse:     S_ij = u1_i . c_j / tau over the columns c = [u2 ; u3] (u = z / max(|z|, 1e-12); u3 has m rows,
//               every hard negative of the batch, any count),
//               L = mean_i(lse_j S_ij - S_ii),  G = (softmax_row(S) - I) / N,
//               dL/du1 = G [u2; u3] / tau,  dL/d[u2; u3] = G^T u1 / tau.
//   offDropout: p_i = m u1_i . u2_i / tau,  K_ij = u0_i . u0_j / tau (j != i; K_ii is excluded),
//               lse_i = log(exp(p_i) + sum_{j != i} exp(K_ij)),  L = mean_i(lse_i - p_i),
//               dL/du1_i = (a_i - 1) m u2_i / (N tau) with a_i = exp(p_i - lse_i) (u2 symmetric),
//               dL/du0 = (B + B^T) u0 / (N tau) with B_ij = exp(K_ij - lse_i).
//   Normalisation backward without storing u: with W = N * dL/dS (row i of the owning side),
//               dL/dz_i = rinv_i / N * ( sum_j W_ij rinv_j z_j / tau - (sum_j W_ij S_ij) rinv_i z_i ),
//   because g . u_i = sum_j W_ij S_ij / N for g = dL/du_i (docs/method.md section 5, normalisation rule).
//
// Three launches, then ordered_sum of the loss parts (after one cudaMemsetAsync of the result header and
// the loss parts):
//   1. infonce_rows_kernel: one warp per row: rinv of each input, cos(z1_i, z2_i), NaN/Inf flag.
//   2. infonce_lse_kernel: a block owns 64 rows, loops over 64-column tiles; each tile's logits come
//      from dot_tile (64x64 outputs, 16x16 threads x 4x4 registers, D reduced in chunks of 16 through
//      shared memory); each thread keeps an online (max, sum) per row, merged over the 16 lanes of a
//      row at the end. The state sums the negatives only; the positive (offDropout p_i, simcse S_ii) is
//      combined at the end as softplus / sigmoid of lse(negatives) - positive, so loss_i and a_i - 1 stay
//      accurate when the positive dominates. Writes lse (N floats), each warp's loss sum (a double per
//      warp, added in a fixed order by ordered_sum: the same bits on every run, unlike atomics), simcse's
//      P_ii - 1 (into the cosv buffer); offDropout also writes the positive-pair gradients dz1, dz2 of its
//      rows here (they need only a_i - 1).
//   3. infonce_grad_kernel: a block owns 64 vectors of one input ("own" side) and loops over the 64-row
//      tiles of the other side: recomputes the logit tile, forms W (64x64, scaled by rinv of the other
//      side) in shared memory, and multiplies it by the other side's raw z in 64-wide D chunks
//      (the same 4x4 register micro-kernel), adding into an [own rows, D] accumulator that only this
//      block touches (no atomics). The accumulator is the output gradient itself when not
//      accumulating, else an N x D workspace slice. simcse runs row blocks (own = z1) and column
//      blocks (own = z2, z3; other = z1, lse indexed by the other side) in the same launch.
// Scratch beyond the outputs: 4N + M floats and N/8 doubles (M = N for offDropout), plus N x D (M x D for
// gz3) per accumulated output when `accumulate` is set.
#include <algorithm>
#include <cmath>

#include "cuda_check.cuh"
#include "launch.cuh"
#include "ordered_sum.cuh"
#include "tile_gemm.cuh"
#include "warp_reduce.cuh"

namespace simcsepp::cuda {

namespace {

using namespace tile;
using detail::DeviceHeader;

// ---------------------------------------------------------------------------------------------
// Launch 1: per-row norms, the positive pair's cosine, non-finite detection.

struct RowsParams {
  const float* z[3];  // z1, z2, then z3 (simcse, may be absent) or z0 (offDropout)
  int code[3];        // NonFinite code of each input
  float* rinv[3];
  int count;    // 2 or 3 inputs
  float* cosv;  // cos(z1_i, z2_i)
  int64_t n, d;
  int64_t m;  // rows of the third input (simcse's z3 may have more or fewer than n); the launch covers max(n, m)
  int* flag;
};

__global__ void __launch_bounds__(256) infonce_rows_kernel(RowsParams P) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (row >= max(P.n, P.m)) return;  // whole warps leave together (row is uniform per warp)
  // Which inputs have this row (uniform per warp): z1 and z2 below n, the third below m.
  bool has[3] = {row < P.n, row < P.n, row < P.m};
  float ss[3] = {0.0f, 0.0f, 0.0f}, dot = 0.0f;
  bool bad[3] = {false, false, false};
  for (int64_t c = lane; c < P.d; c += 32) {
    float x[3] = {0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int k = 0; k < 3; ++k) {
      if (k >= P.count) break;
      if (!has[k]) continue;
      x[k] = P.z[k][row * P.d + c];
      bad[k] |= !(fabsf(x[k]) <= kMaxLossInput);  // NaN, Inf or too large (as the CPU op)
      ss[k] = fmaf(x[k], x[k], ss[k]);
    }
    dot = fmaf(x[0], x[1], dot);
  }
  dot = warp_sum(dot);
  float rinv[3] = {0.0f, 0.0f, 0.0f};
#pragma unroll
  for (int k = 0; k < 3; ++k) {
    if (k >= P.count) break;
    if (!has[k]) continue;
    ss[k] = warp_sum(ss[k]);
    rinv[k] = 1.0f / fmaxf(sqrtf(ss[k]), kNormEps);
    const bool anyBad = __any_sync(0xffffffffu, bad[k]);
    if (lane == 0) {
      P.rinv[k][row] = rinv[k];
      if (anyBad) detail::flag_non_finite(P.flag, P.code[k]);
    }
  }
  if (lane == 0 && has[0]) P.cosv[row] = dot * rinv[0] * rinv[1];
}

// ---------------------------------------------------------------------------------------------
// Online log-sum-exp state; (-inf, 0) is the empty set. Never forms (-inf) - (-inf).

struct Lse {
  float m, s;
};

__device__ __forceinline__ void lse_merge(Lse& a, float m2, float s2) {
  const float mn = fmaxf(a.m, m2);
  if (mn == -INFINITY) return;                      // both empty
  a.s = a.s * expf(a.m - mn) + s2 * expf(m2 - mn);  // expf(-inf) = 0 for an empty side
  a.m = mn;
}

// Adds four logits (masked ones are -inf) to a row's state.
__device__ __forceinline__ void lse_add4(Lse& a, const float v[4]) {
  const float tmax = fmaxf(fmaxf(v[0], v[1]), fmaxf(v[2], v[3]));
  if (tmax == -INFINITY) return;  // fully masked: nothing to add
  if (tmax > a.m) {
    a.s *= expf(a.m - tmax);
    a.m = tmax;
  }
  a.s += expf(v[0] - a.m) + expf(v[1] - a.m) + expf(v[2] - a.m) + expf(v[3] - a.m);
}

// ---------------------------------------------------------------------------------------------
// Launches 2 and 3.

struct NceParams {
  int64_t n, d;
  int64_t m;  // rows of zc (simcse's z3: any count; offDropout's z0: n)
  float invTau, posScale, invN, weight;
  bool off;         // offDropout (else simcse)
  const float* z1;  // positive pair
  const float* z2;
  const float* zc;  // z3 (simcse, may be null) or z0 (offDropout)
  const float* rinv1;
  const float* rinv2;
  const float* rinvc;
  const float* cosv;
  float* lse;
  float* tgt;  // simcse: P_ii - 1 per row (in the cosv buffer, which simcse does not use after launch 1)
  DeviceHeader* hdr;
  double* lossParts;  // [tiles x warps]: each warp's loss sum (ordered_sum adds them)
  // Gradient destinations and accumulators (acc == out when not accumulating).
  float* out1;
  float* out2;
  float* outc;
  float* acc1;
  float* acc2;
  float* accc;
  bool accumulate;
};

// Rows come from z1 (simcse) or z0 (offDropout); column part 0 is z2 / z0, part 1 is z3 (simcse only).
__device__ __forceinline__ const float* row_z(const NceParams& P) { return P.off ? P.zc : P.z1; }
__device__ __forceinline__ const float* row_rinv(const NceParams& P) { return P.off ? P.rinvc : P.rinv1; }
__device__ __forceinline__ int col_parts(const NceParams& P) { return (!P.off && P.zc != nullptr) ? 2 : 1; }
__device__ __forceinline__ const float* col_z(const NceParams& P, int part) {
  return P.off ? P.zc : (part == 0 ? P.z2 : P.zc);
}
__device__ __forceinline__ const float* col_rinv(const NceParams& P, int part) {
  return P.off ? P.rinvc : (part == 0 ? P.rinv2 : P.rinvc);
}
__device__ __forceinline__ int64_t col_count(const NceParams& P, int part) { return part == 0 ? P.n : P.m; }

// offDropout: dz1, dz2 of rows r0..r0+63 from coef_r = (a_r - 1) m / (N tau) * weight:
//   dz1 = coef rinv1 (rinv2 z2 - cos rinv1 z1),  dz2 = coef rinv2 (rinv1 z1 - cos rinv2 z2).
__device__ void positive_grads(const NceParams& P, int64_t r0, const float* coef) {
  const int64_t rows = min(static_cast<int64_t>(kTile), P.n - r0);
  for (int64_t idx = threadIdx.x; idx < rows * P.d; idx += kThreads) {
    const int64_t r = r0 + idx / P.d, e = r * P.d + idx % P.d;
    const float c = coef[idx / P.d], r1 = P.rinv1[r], r2 = P.rinv2[r], cs = P.cosv[r];
    const float x1 = P.z1[e], x2 = P.z2[e];
    const float g1 = c * r1 * (r2 * x2 - cs * r1 * x1);
    const float g2 = c * r2 * (r1 * x1 - cs * r2 * x2);
    if (P.out1) P.out1[e] = P.accumulate ? P.out1[e] + g1 : g1;
    if (P.out2) P.out2[e] = P.accumulate ? P.out2[e] + g2 : g2;
  }
}

__global__ void __launch_bounds__(kThreads, 2) infonce_lse_kernel(NceParams P) {
  if (P.hdr->flag != 0) return;  // non-finite input: the result is an error anyway
  __shared__ __align__(16) float As[kK][kPad];
  __shared__ __align__(16) float Bs[kK][kPad];
  __shared__ float diag[kTile];  // simcse: S_ii as computed in the tile (so N = 1 gives exactly 0)
  __shared__ float coef[kTile];  // offDropout: positive-gradient coefficient per row
  const int tx = tid_x(), ty = tid_y();
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const float* A = row_z(P);
  float ra[4];
  Lse st[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = r0 + ty * 4 + i;
    ra[i] = r < P.n ? row_rinv(P)[r] : 0.0f;
    st[i] = Lse{-INFINITY, 0.0f};
  }
  for (int part = 0; part < col_parts(P); ++part) {
    const float* B = col_z(P, part);
    const float* rinvB = col_rinv(P, part);
    const int64_t cols = col_count(P, part);
    for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
      float acc[4][4];
      dot_tile(A, r0, P.n, B, c0, cols, P.d, As, Bs, acc);
      float rb[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) rb[j] = c0 + tx * 4 + j < cols ? rinvB[c0 + tx * 4 + j] : 0.0f;
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t r = r0 + ty * 4 + i;
        float v[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t c = c0 + tx * 4 + j;
          const float s = acc[i][j] * (ra[i] * rb[j]) * P.invTau;  // same bits from either side
          // The state holds the negatives only: offDropout excludes K_ii entirely, simcse adds its target
          // S_ii (kept in diag[]) at the end, so that P_ii - 1 and the loss do not cancel (see below).
          const bool valid = c < cols && !(part == 0 && c == r);
          v[j] = valid ? s : -INFINITY;
          if (!P.off && part == 0 && c == r) diag[ty * 4 + i] = s;
        }
        lse_add4(st[i], v);
      }
    }
  }
  // Merge the 16 partial states of each row (lanes tx = 0..15 of a half warp).
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, st[i].m, o);
      const float s2 = __shfl_xor_sync(0xffffffffu, st[i].s, o);
      lse_merge(st[i], m2, s2);
    }
  __syncthreads();  // diag[] writes are visible
  double loss = 0.0;
  if (tx == 0) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t r = r0 + ty * 4 + i;
      if (r >= P.n) continue;
      // With x = lse(negatives) - pos: loss_i = lse_i - pos = softplus(x) and 1 - a_i = sigmoid(x). Forming
      // them from lse_i instead (float, ~20 + tiny) loses everything once the positive dominates (x << 0):
      // at x = -16, lse_i - pos is below half an ulp of lse_i and a_i - 1 rounds to 0.
      const float pos = P.off ? P.posScale * P.cosv[r] * P.invTau : diag[ty * 4 + i];
      const float x = st[i].m + logf(st[i].s) - pos;  // -inf when there is no negative (N = 1)
      const double xd = x;
      const double sp = xd > 0.0 ? xd + log1p(exp(-xd)) : log1p(exp(xd));
      const float negShare = 1.0f / (1.0f + expf(-x));  // 1 - a_i = 1 - P_ii
      P.lse[r] = pos + static_cast<float>(sp);
      loss += sp;
      if (P.off)
        coef[ty * 4 + i] = -negShare * P.posScale * P.invTau * P.invN * P.weight;
      else
        P.tgt[r] = -negShare;
    }
  }
  // Lanes 0 and 16 of each warp hold losses; reduce in the warp, one part per warp.
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) loss += __shfl_xor_sync(0xffffffffu, loss, o);
  if (threadIdx.x % 32 == 0) P.lossParts[blockIdx.x * (kThreads / 32) + threadIdx.x / 32] = loss;
  if (P.off && (P.out1 != nullptr || P.out2 != nullptr)) {
    __syncthreads();  // coef[] is complete
    positive_grads(P, r0, coef);
  }
}

// The three kinds of gradient block: simcse rows (own = z1, lse of the own row), simcse columns
// (own = z2 or z3, lse of the other side's row), offDropout (own = other = z0, both lse).

struct GradJob {
  const float* own;  // own vectors (rows of the accumulator)
  const float* ownRinv;
  float* acc;           // [ownN, d] accumulator (may equal out)
  float* out;           // [ownN, d] gradient destination
  const float* other0;  // other side, part 0 (holds the targets when target0)
  const float* otherRinv0;
  const float* other1;  // other side, part 1 (simcse z3 columns; null when absent)
  const float* otherRinv1;
  bool target0;     // the diagonal of part 0 is the target (positive) logit
  int64_t a0;       // first own vector of this block
  int64_t ownN;     // own vectors (simcse's z3: m; else n)
  int64_t otherN0;  // vectors of other part 0 (n)
  int64_t otherN1;  // vectors of other part 1 (simcse's z3 columns: m; else 0). Two scalars, not an array: a
                    // runtime index into a struct array puts the whole job in local memory (a 256-byte stack frame)
};

// W = N * dL/dS for logit S of own vector r and other vector c (both indices inside their part).
// (The simcse target's W = P_ii - 1 comes from P.tgt, not from here.)
template <bool kOff, bool kColSide>
__device__ __forceinline__ float grad_weight(float s, float lseOwn, float lseOther) {
  if (kOff) return expf(s - lseOwn) + expf(s - lseOther);  // K_ij and K_ji terms (j != i)
  return expf(s - (kColSide ? lseOther : lseOwn));
}

// Shared memory of a gradient block, declared once per kernel (a __shared__ inside the templated
// device function would be allocated once per instantiation).
struct GradSmem {
  __align__(16) float As[kK][kPad];
  __align__(16) float Bs[kK][kPad];
  __align__(16) float Ws[kTile][kPad];  // Ws[c][r] = W_rc * rinv_c
  __align__(16) float Zs[kTile][kPad];  // other side's raw z, one 64-wide D chunk
  float cRow[kTile];                    // sum_c W_rc S_rc
};

template <bool kOff, bool kColSide>
__device__ __forceinline__ void grad_block(const NceParams& P, const GradJob& J, GradSmem& sm) {
  Smem As = sm.As, Bs = sm.Bs, Ws = sm.Ws, Zs = sm.Zs;
  float* cRow = sm.cRow;
  const int tx = tid_x(), ty = tid_y();
  const int64_t n = J.ownN, d = P.d;
  float ra[4], lseOwn[4], cPart[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = J.a0 + ty * 4 + i;
    ra[i] = r < n ? J.ownRinv[r] : 0.0f;
    lseOwn[i] = (!kColSide && r < n) ? P.lse[r] : 0.0f;
    cPart[i] = 0.0f;
  }
  bool first = true;  // the first tile stores into the accumulator, later tiles add
  for (int part = 0; part < 2; ++part) {
    const float* B = part == 0 ? J.other0 : J.other1;
    const float* rinvB = part == 0 ? J.otherRinv0 : J.otherRinv1;
    const bool target = part == 0 && J.target0;
    if (B == nullptr) break;
    const int64_t m = part == 0 ? J.otherN0 : J.otherN1;
    for (int64_t c0 = 0; c0 < m; c0 += kTile) {
      float acc[4][4];
      dot_tile(J.own, J.a0, n, B, c0, m, d, As, Bs, acc);  // ends with __syncthreads: Ws/Zs are free
      float rb[4], lseOther[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t c = c0 + tx * 4 + j;
        rb[j] = c < m ? rinvB[c] : 0.0f;
        lseOther[j] = ((kOff || kColSide) && c < m) ? P.lse[c] : 0.0f;
      }
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t r = J.a0 + ty * 4 + i;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int64_t c = c0 + tx * 4 + j;
          const float s = acc[i][j] * (ra[i] * rb[j]) * P.invTau;  // same bits from either side
          const bool valid = r < n && c < m && !(kOff && r == c);
          const float w = !valid               ? 0.0f
                          : (target && r == c) ? P.tgt[r]
                                               : grad_weight<kOff, kColSide>(s, lseOwn[i], lseOther[j]);
          cPart[i] = fmaf(w, s, cPart[i]);
          Ws[tx * 4 + j][ty * 4 + i] = w * rb[j];
        }
      }
      // acc[r, :] (+)= sum_c Ws[c][r] * z_other[c, :], one 64-wide chunk of D at a time.
      for (int64_t d0 = 0; d0 < d; d0 += kTile) {
        load_mcontig<kTile>(Zs, B, c0, m, d, d0, d, Identity{});
        __syncthreads();  // Ws and Zs complete
        float g[4][4];
        zero(g);
        mma_tile<kTile>(Ws, Zs, g);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int64_t r = J.a0 + ty * 4 + i;
          if (r >= n) continue;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            const int64_t c = d0 + tx * 4 + j;
            if (c >= d) continue;
            float* dst = J.acc + r * d + c;  // only this thread ever touches this element
            *dst = first ? g[i][j] : *dst + g[i][j];
          }
        }
        __syncthreads();  // Zs (and, after the last chunk, Ws) may be overwritten
      }
      first = false;
    }
  }
  // cRow[r] = sum over the 16 lanes of the row's partial sums.
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float c = half_warp_sum(cPart[i]);
    if (tx == 0) cRow[ty * 4 + i] = c;
  }
  __syncthreads();  // cRow and every accumulator write of this block are visible block-wide
  // dz_r = rinv_r / N * (acc_r / tau - cRow_r * rinv_r * z_r), times weight, stored or added.
  const int64_t rows = min(static_cast<int64_t>(kTile), n - J.a0);
  const float scale = P.invN * P.weight;
  for (int64_t idx = threadIdx.x; idx < rows * d; idx += kThreads) {
    const int64_t lr = idx / d, r = J.a0 + lr, e = r * d + idx % d;
    const float rr = J.ownRinv[r];
    const float v = rr * scale * (J.acc[e] * P.invTau - cRow[lr] * rr * J.own[e]);
    J.out[e] = P.accumulate ? J.out[e] + v : v;
  }
}

__global__ void __launch_bounds__(kThreads, 2) infonce_grad_off_kernel(NceParams P) {
  if (P.hdr->flag != 0) return;
  __shared__ GradSmem sm;
  const int64_t a0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const GradJob J{P.zc, P.rinvc, P.accc, P.outc, P.zc, P.rinvc, nullptr, nullptr, false, a0, P.n, P.n, 0};
  grad_block<true, false>(P, J, sm);
}

// Blocks [0, T) own z1 rows, [T, 2T) z2 columns, [2T, 2T + Tm) z3 columns (T = row tiles of n, Tm of m).
__global__ void __launch_bounds__(kThreads, 2) infonce_grad_simcse_kernel(NceParams P) {
  if (P.hdr->flag != 0) return;
  __shared__ GradSmem sm;
  const int64_t tiles = (P.n + kTile - 1) / kTile;
  const int64_t blk = blockIdx.x, role = min(blk / tiles, static_cast<int64_t>(2));
  const int64_t a0 = (blk - role * tiles) * kTile;
  if (role == 0) {
    const GradJob J{P.z1, P.rinv1, P.acc1, P.out1, P.z2, P.rinv2, P.zc, P.rinvc, true, a0, P.n, P.n, P.m};
    if (J.out != nullptr) grad_block<false, false>(P, J, sm);
  } else {
    const bool z2side = role == 1;
    const GradJob J{z2side ? P.z2 : P.zc,
                    z2side ? P.rinv2 : P.rinvc,
                    z2side ? P.acc2 : P.accc,
                    z2side ? P.out2 : P.outc,
                    P.z1,
                    P.rinv1,
                    nullptr,
                    nullptr,
                    z2side,
                    a0,
                    z2side ? P.n : P.m,
                    P.n,
                    0};
    if (J.out != nullptr) grad_block<false, true>(P, J, sm);
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

// The workspace layout of one fused InfoNCE call, defined once: run_infonce carves it and
// offDropoutWorkspaceBytes measures it. The 16-byte DeviceHeader and the warps' loss parts (zeroed together),
// then rinv of each input, cos(z1_i, z2_i) and lse (N floats each), then an N x D accumulator per output that is
// accumulated into (none for offDropout's gz1, gz2, which are written directly); every sub-buffer is 256-byte aligned
// by Carver.
struct Scratch {
  DeviceHeader* hdr;
  double* lossParts;
  int64_t parts;
  float* rinv[3];
  float* cosv;
  float* lse;
  float* acc[3];  // accumulators for out1/out2/outc when accumulating (else null)
};

// m: rows of the third input.
Scratch carve(detail::Carver& cv, int64_t n, int64_t m, int64_t d, const bool needAcc[3]) {
  Scratch s{};
  s.hdr = cv.take<DeviceHeader>(1);
  s.parts = (n + kTile - 1) / kTile * (kThreads / 32);
  s.lossParts = cv.take<double>(static_cast<size_t>(s.parts));
  const int64_t rows[3] = {n, n, m};
  for (int k = 0; k < 3; ++k) s.rinv[k] = cv.take<float>(static_cast<size_t>(rows[k]));
  s.cosv = cv.take<float>(static_cast<size_t>(n));
  s.lse = cv.take<float>(static_cast<size_t>(n));
  for (int k = 0; k < 3; ++k) s.acc[k] = needAcc[k] ? cv.take<float>(static_cast<size_t>(rows[k] * d)) : nullptr;
  return s;
}

// Runs the three launches. zc is z3 (simcse, may be null; m rows) or z0 (offDropout; m = n); outc likewise.
LossResult run_infonce(bool off, const float* z1, const float* z2, const float* zc, int64_t n, int64_t m, int64_t d,
                       float temperature, float posScale, int codeC, float* out1, float* out2, float* outc,
                       bool accumulate, float weight, cudaStream_t stream) {
  require();
  if (n <= 0) return LossResult{};
  if (zc == nullptr) m = 0;
  float* outs[3] = {out1, out2, zc != nullptr ? outc : nullptr};
  bool needAcc[3];
  for (int k = 0; k < 3; ++k) needAcc[k] = accumulate && outs[k] != nullptr && !(off && k < 2);

  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);
  detail::Carver measure(nullptr);
  carve(measure, n, m, d, needAcc);
  detail::Carver cv(static_cast<char*>(ws.reserve(measure.used())));
  const Scratch s = carve(cv, n, m, d, needAcc);

  // The header and the loss parts (zero where launch 2 stops early on a non-finite input).
  const size_t zeroed =
      static_cast<size_t>(reinterpret_cast<char*>(s.lossParts + s.parts) - reinterpret_cast<char*>(s.hdr));
  SIMCSEPP_CUDA_CHECK(cudaMemsetAsync(s.hdr, 0, zeroed, stream));

  RowsParams R{};
  R.z[0] = z1;
  R.z[1] = z2;
  R.z[2] = zc;
  R.code[0] = kZ1;
  R.code[1] = kZ2;
  R.code[2] = codeC;
  for (int k = 0; k < 3; ++k) R.rinv[k] = s.rinv[k];
  R.count = zc != nullptr ? 3 : 2;
  R.cosv = s.cosv;
  R.n = n;
  R.d = d;
  R.m = m;
  R.flag = &s.hdr->flag;
  const int64_t rowBlocks = (std::max(n, m) + 7) / 8;  // 8 warps = 8 rows per block
  launch("infonce_rows_kernel", infonce_rows_kernel, static_cast<unsigned>(rowBlocks), 256, 0, stream, R);

  NceParams P{};
  P.n = n;
  P.d = d;
  P.m = m;
  P.invTau = 1.0f / temperature;
  P.posScale = posScale;
  P.invN = 1.0f / static_cast<float>(n);
  P.weight = weight;
  P.off = off;
  P.z1 = z1;
  P.z2 = z2;
  P.zc = zc;
  P.rinv1 = s.rinv[0];
  P.rinv2 = s.rinv[1];
  P.rinvc = s.rinv[2];
  P.cosv = s.cosv;
  P.lse = s.lse;
  P.tgt = off ? nullptr : s.cosv;
  P.hdr = s.hdr;
  P.lossParts = s.lossParts;
  P.out1 = outs[0];
  P.out2 = outs[1];
  P.outc = outs[2];
  float** accs[3] = {&P.acc1, &P.acc2, &P.accc};
  for (int k = 0; k < 3; ++k) *accs[k] = needAcc[k] ? s.acc[k] : outs[k];
  P.accumulate = accumulate;

  const int64_t tiles = (n + kTile - 1) / kTile;
  launch("infonce_lse_kernel", infonce_lse_kernel, static_cast<unsigned>(tiles), kThreads, 0, stream, P);
  detail::ordered_sum(s.lossParts, s.parts, &s.hdr->loss, stream);

  const bool anyGrad = off ? outs[2] != nullptr : (outs[0] || outs[1] || outs[2]);
  if (anyGrad) {
    if (off) {
      launch("infonce_grad_off_kernel", infonce_grad_off_kernel, static_cast<unsigned>(tiles), kThreads, 0, stream, P);
    } else {
      const int64_t blocks = 2 * tiles + (m + kTile - 1) / kTile;  // z1 rows, z2 columns, z3 columns
      launch("infonce_grad_simcse_kernel", infonce_grad_simcse_kernel, static_cast<unsigned>(blocks), kThreads, 0,
             stream, P);
    }
  }

  return detail::loss_result(s.hdr, static_cast<double>(n), static_cast<double>(weight), stream);
}

}  // namespace

LossResult simcse(const SimcseArgs& a, const LossGradOut& g) {
  return run_infonce(false, a.z1, a.z2, a.z3, a.n, a.m, a.d, a.temperature, 1.0f, kZ3, g.gz1, g.gz2, g.gz3,
                     g.accumulate, g.weight, detail::op_stream());
}

LossResult offDropout(const OffDropoutArgs& a, const LossGradOut& g) {
  return run_infonce(true, a.z1, a.z2, a.z0, a.n, a.n, a.d, a.temperature, a.posScale, kZ0, g.gz1, g.gz2, g.gz0,
                     g.accumulate, g.weight, detail::op_stream());
}

size_t offDropoutWorkspaceBytes(int64_t n, int64_t d) {
  if (n <= 0) return 0;                                  // run_infonce returns before touching the workspace
  const bool noAccumulators[3] = {false, false, false};  // the accumulate == false layout
  detail::Carver measure(nullptr);
  carve(measure, n, n, d, noAccumulators);
  return measure.used();
}

}  // namespace simcsepp::cuda
