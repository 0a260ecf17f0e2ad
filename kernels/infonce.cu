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
// The launches (after one cudaMemsetAsync of the result header and the loss parts):
//   1. infonce_rows_kernel: one warp per row: rinv of each input, cos(z1_i, z2_i), NaN/Inf flag.
//   2. infonce_lse_kernel: block (x, y) owns 64 rows and split y of the column tiles (splits, below); each
//      tile's logits come from dot_tile (64x64 outputs, 16x16 threads x 4x4 registers, D reduced in chunks
//      of 16 through shared memory); each thread keeps an online (max, sum) per row, merged over the 16
//      lanes of a row, and the block writes its rows' partial states [split][row]. The states hold the
//      negatives only; simcse's target S_ii goes to a buffer of its own from the block whose tile has it.
//   3. infonce_lse_finish_kernel: one warp per row merges the row's partial states in split order, then
//      combines the positive (offDropout p_i, simcse S_ii) as softplus / sigmoid of lse(negatives) -
//      positive, so loss_i and a_i - 1 stay accurate when the positive dominates. Writes lse (N floats),
//      each block's loss sum over its 8 rows (a double per block, added in a fixed order by ordered_sum: the
//      same bits on every run, unlike atomics), simcse's P_ii - 1 (into the cosv buffer); offDropout's warp
//      also writes its row's positive-pair gradients dz1, dz2 (they need only a_i - 1).
//   4. the gradient kernels: block (x, y) owns 64 vectors of one input ("own" side) and loops over split y
//      of the 64-row tiles of the other side: recomputes the logit tile, forms W (64x64, scaled by rinv of
//      the other side) in shared memory, and multiplies it by the other side's raw z in 64-wide D chunks
//      (the same 4x4 register micro-kernel), adding into an [own rows, D] accumulator that only this block
//      touches (no atomics). simcse runs row blocks (own = z1) and column blocks (own = z2, z3; other = z1,
//      lse indexed by the other side) as two launches of infonce_grad_simcse_kernel, offDropout one of
//      infonce_grad_off_kernel. With one split the block then forms dz itself; the accumulator is the output
//      gradient when not accumulating, else an N x D workspace slice. With more, each split has its own
//      accumulator and row sums, and
//   5. infonce_grad_finish_kernel adds the splits' accumulators and row sums in split order and forms dz.
// Splits: the column (other-side) tiles are cut into `splits` contiguous runs, so that small batches still
// fill the GPU (N = 512 has 8 row tiles: 8 blocks without splits, 64 with). The count depends on the
// shapes only (split_count: about kSplitTargetBlocks blocks, at most kMaxSplits), never on the device, so
// the bits are the same on every GPU and every run; results merged in split order do not depend on which
// block finishes first either. SIMCSEPP_LOSS_SPLITS=off makes one run per row tile (the kernels before the
// runs; max_splits).
// Scratch beyond the outputs: 4N + M floats, 2 x splits x N floats of lse states, N/8 doubles (M = N for
// offDropout), plus N x D (M x D for gz3) per accumulated output when `accumulate` is set and there is one
// split, or splits x N x D (M x D for gz3) per output and splits x N floats of row sums when there are more.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

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
// Launches 2 to 5.

// How many runs the other side's tiles are cut into when `ownBlocks` blocks of 64 rows each loop over
// `otherTiles` tiles: about kSplitTargetBlocks blocks in all (two per SM of an H100 / H200), never more
// runs than tiles, nor more than kMaxSplits (each split of the gradient keeps an N x D accumulator).
constexpr int64_t kSplitTargetBlocks = 256;
constexpr int64_t kMaxSplits = 16;
int64_t split_count(int64_t ownBlocks, int64_t otherTiles, int64_t maxSplits) {
  const int64_t want = (kSplitTargetBlocks + ownBlocks - 1) / std::max<int64_t>(ownBlocks, 1);
  return std::max<int64_t>(1, std::min({otherTiles, want, maxSplits}));
}

// The most runs a call may use: kMaxSplits, or what SIMCSEPP_LOSS_SPLITS says (read at every call): 'off' runs
// each row tile's columns in one block, as before the runs (gpu-check's bench-variants times the step both ways);
// n, a positive whole number, allows at most n runs (tests).
int64_t max_splits() {
  const char* env = std::getenv("SIMCSEPP_LOSS_SPLITS");
  if (env == nullptr || *env == '\0') return kMaxSplits;
  if (std::strcmp(env, "off") == 0) return 1;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  if (*end != '\0' || v < 1)
    throw CudaError(std::string("SIMCSEPP_LOSS_SPLITS must be 'off' or a positive whole number of runs, not '") + env +
                    "'");
  return v;
}

// Split y of `tiles` tiles: [tiles * y / splits, tiles * (y + 1) / splits), never empty when splits <= tiles.
__device__ __forceinline__ int split_begin(int64_t tiles, int64_t y, int64_t splits) {
  return static_cast<int>(tiles * y / splits);
}

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
  double* lossParts;  // [ceil(n / 8)]: each finish block's loss sum (ordered_sum adds them)
  // The lse kernel's partial states, [lseSplits][n] each, and simcse's S_ii as the lse kernel computed it.
  int64_t lseSplits;
  float* partM;
  float* partS;
  float* diag;
  // Gradient destinations and accumulators (acc == out when not accumulating). With gradSplits > 1 the
  // accumulators are [gradSplits][rows][d] and cRows (sum_c W_rc S_rc) [gradSplits][rows] per output.
  float* out1;
  float* out2;
  float* outc;
  float* acc1;
  float* acc2;
  float* accc;
  float* cRow1;
  float* cRow2;
  float* cRowc;
  int64_t gradSplits;
  bool accumulate;
};

// Rows come from z1 (simcse) or z0 (offDropout); column part 0 is z2 / z0, part 1 is z3 (simcse only).
__device__ __forceinline__ const float* row_z(const NceParams& P) { return P.off ? P.zc : P.z1; }
__device__ __forceinline__ const float* row_rinv(const NceParams& P) { return P.off ? P.rinvc : P.rinv1; }
__device__ __forceinline__ const float* col_z(const NceParams& P, int part) {
  return P.off ? P.zc : (part == 0 ? P.z2 : P.zc);
}
__device__ __forceinline__ const float* col_rinv(const NceParams& P, int part) {
  return P.off ? P.rinvc : (part == 0 ? P.rinv2 : P.rinvc);
}
__device__ __forceinline__ int64_t col_count(const NceParams& P, int part) { return part == 0 ? P.n : P.m; }
__device__ __forceinline__ int64_t tiles_of(int64_t rows) { return (rows + kTile - 1) / kTile; }

__global__ void __launch_bounds__(kThreads, 2) infonce_lse_kernel(NceParams P) {
  if (P.hdr->flag != 0) return;  // non-finite input: the result is an error anyway
  __shared__ __align__(16) float As[kK][kPad];
  __shared__ __align__(16) float Bs[kK][kPad];
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
  // This block's run of the column tiles: part 0's tiles, then part 1's (simcse's z3; P.m = 0 without).
  const int64_t tiles0 = tiles_of(P.n), tiles = tiles0 + (P.off ? 0 : tiles_of(P.m));
  const int64_t t0 = split_begin(tiles, blockIdx.y, P.lseSplits), t1 = split_begin(tiles, blockIdx.y + 1, P.lseSplits);
  for (int64_t t = t0; t < t1; ++t) {
    const int part = t < tiles0 ? 0 : 1;
    const float* B = col_z(P, part);
    const float* rinvB = col_rinv(P, part);
    const int64_t cols = col_count(P, part);
    const int64_t c0 = (part == 0 ? t : t - tiles0) * kTile;
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
        // S_ii (kept in diag) at the end, so that P_ii - 1 and the loss do not cancel (see the finish).
        const bool valid = c < cols && !(part == 0 && c == r);
        v[j] = valid ? s : -INFINITY;
        if (!P.off && part == 0 && c == r && r < P.n) P.diag[r] = s;  // the one block whose tile has (r, r)
      }
      lse_add4(st[i], v);
    }
  }
  // Merge the 16 partial states of each row (lanes tx = 0..15 of a half warp), then write the row's state.
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int o = 8; o > 0; o >>= 1) {
      const float m2 = __shfl_xor_sync(0xffffffffu, st[i].m, o);
      const float s2 = __shfl_xor_sync(0xffffffffu, st[i].s, o);
      lse_merge(st[i], m2, s2);
    }
    const int64_t r = r0 + ty * 4 + i;
    if (tx == 0 && r < P.n) {
      P.partM[blockIdx.y * P.n + r] = st[i].m;
      P.partS[blockIdx.y * P.n + r] = st[i].s;
    }
  }
}

// One warp per row (8 rows a block): the row's lse states merged in split order, its loss and lse, and
// offDropout's positive-pair gradients of the row from coef = (a_i - 1) m / (N tau) * weight:
//   dz1 = coef rinv1 (rinv2 z2 - cos rinv1 z1),  dz2 = coef rinv2 (rinv1 z1 - cos rinv2 z2).
constexpr int kFinishRows = kThreads / 32;
__global__ void __launch_bounds__(kThreads) infonce_lse_finish_kernel(NceParams P) {
  if (P.hdr->flag != 0) return;
  __shared__ double rowLoss[kFinishRows];
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kFinishRows + warp;
  float coef = 0.0f;
  double loss = 0.0;
  if (lane == 0 && r < P.n) {
    Lse st{-INFINITY, 0.0f};
    for (int64_t y = 0; y < P.lseSplits; ++y) lse_merge(st, P.partM[y * P.n + r], P.partS[y * P.n + r]);
    // With x = lse(negatives) - pos: loss_i = lse_i - pos = softplus(x) and 1 - a_i = sigmoid(x). Forming
    // them from lse_i instead (float, ~20 + tiny) loses everything once the positive dominates (x << 0):
    // at x = -16, lse_i - pos is below half an ulp of lse_i and a_i - 1 rounds to 0.
    const float pos = P.off ? P.posScale * P.cosv[r] * P.invTau : P.diag[r];
    const float x = st.m + logf(st.s) - pos;  // -inf when there is no negative (N = 1)
    const double xd = x;
    const double sp = xd > 0.0 ? xd + log1p(exp(-xd)) : log1p(exp(xd));
    const float negShare = 1.0f / (1.0f + expf(-x));  // 1 - a_i = 1 - P_ii
    P.lse[r] = pos + static_cast<float>(sp);
    loss = sp;
    if (P.off)
      coef = -negShare * P.posScale * P.invTau * P.invN * P.weight;
    else
      P.tgt[r] = -negShare;
  }
  if (lane == 0) rowLoss[warp] = loss;
  __syncthreads();
  if (threadIdx.x == 0) {
    double sum = 0.0;
    for (int w = 0; w < kFinishRows; ++w) sum += rowLoss[w];
    P.lossParts[blockIdx.x] = sum;
  }
  if (!P.off || (P.out1 == nullptr && P.out2 == nullptr) || r >= P.n) return;  // r is uniform per warp
  coef = __shfl_sync(0xffffffffu, coef, 0);
  const float r1 = P.rinv1[r], r2 = P.rinv2[r], cs = P.cosv[r];
  for (int64_t c = lane; c < P.d; c += 32) {
    const int64_t e = r * P.d + c;
    const float x1 = P.z1[e], x2 = P.z2[e];
    const float g1 = coef * r1 * (r2 * x2 - cs * r1 * x1);
    const float g2 = coef * r2 * (r1 * x1 - cs * r2 * x2);
    if (P.out1) P.out1[e] = P.accumulate ? P.out1[e] + g1 : g1;
    if (P.out2) P.out2[e] = P.accumulate ? P.out2[e] + g2 : g2;
  }
}

// The three kinds of gradient block: simcse rows (own = z1, lse of the own row), simcse columns
// (own = z2 or z3, lse of the other side's row), offDropout (own = other = z0, both lse).

struct GradJob {
  const float* own;  // own vectors (rows of the accumulator)
  const float* ownRinv;
  float* acc;           // [ownN, d] accumulator (may equal out; with splits, this split's)
  float* out;           // [ownN, d] gradient destination (unused with splits: the finish kernel writes it)
  float* cRowOut;       // with splits: this split's [ownN] row sums; null: the block forms dz itself
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
  int t0, t1;       // this block's run of the other side's tiles (part 0's, then part 1's)
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
  // This thread's own rows are J.a0 + ty * 4 + i for i < myRows; its accumulator elements start at accT.
  const int myRows = static_cast<int>(min(static_cast<int64_t>(4), max(n - J.a0 - ty * 4, static_cast<int64_t>(0))));
  float* accT = J.acc + (J.a0 + ty * 4) * d + tx * 4;
  float ra[4], lseOwn[4], cPart[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = J.a0 + ty * 4 + i;
    ra[i] = i < myRows ? J.ownRinv[r] : 0.0f;
    lseOwn[i] = (!kColSide && i < myRows) ? P.lse[r] : 0.0f;
    cPart[i] = 0.0f;
  }
  bool first = true;  // the first tile stores into the accumulator, later tiles add
  for (int part = 0; part < 2; ++part) {
    // The part's tiles within this block's run [t0, t1) of part 0's tiles then part 1's, as columns.
    const int64_t base = part == 0 ? 0 : tiles_of(J.otherN0);
    const int64_t m = part == 0 ? J.otherN0 : J.otherN1;
    const int64_t cBegin = (max(static_cast<int64_t>(J.t0), base) - base) * kTile, cEnd = min((J.t1 - base) * kTile, m);
    if (cBegin >= cEnd) continue;
    const float* B = part == 0 ? J.other0 : J.other1;
    const float* rinvB = part == 0 ? J.otherRinv0 : J.otherRinv1;
    const bool target = part == 0 && J.target0;
    for (int64_t c0 = cBegin; c0 < cEnd; c0 += kTile) {
      float acc[4][4];
      dot_tile(J.own, J.a0, n, B, c0, m, d, As, Bs, acc);  // ends with __syncthreads: Ws/Zs are free
      float rb[4], lseOther[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t c = c0 + tx * 4 + j;
        rb[j] = c < m ? rinvB[c] : 0.0f;
        lseOther[j] = ((kOff || kColSide) && c < m) ? P.lse[c] : 0.0f;
      }
      const bool diagTile = J.a0 == c0;  // own and other vectors index alike: r == c only in this tile
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const bool onDiag = diagTile && ty * 4 + i == tx * 4 + j;
          const float s = acc[i][j] * (ra[i] * rb[j]) * P.invTau;  // same bits from either side
          const bool valid = i < myRows && c0 + tx * 4 + j < m && !(kOff && onDiag);
          const float w = !valid               ? 0.0f
                          : (target && onDiag) ? P.tgt[J.a0 + ty * 4 + i]
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
          if (i >= myRows) continue;
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            if (d0 + tx * 4 + j >= d) continue;
            float* dst = accT + i * d + d0 + j;  // only this thread ever touches this element
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
  const int64_t rows = min(static_cast<int64_t>(kTile), n - J.a0);
  if (J.cRowOut != nullptr) {  // split: infonce_grad_finish_kernel adds the splits and forms dz
    for (int64_t lr = threadIdx.x; lr < rows; lr += kThreads) J.cRowOut[J.a0 + lr] = cRow[lr];
    return;
  }
  // dz_r = rinv_r / N * (acc_r / tau - cRow_r * rinv_r * z_r), times weight, stored or added.
  const float scale = P.invN * P.weight;
  for (int64_t idx = threadIdx.x; idx < rows * d; idx += kThreads) {
    const int64_t lr = idx / d, r = J.a0 + lr, e = r * d + idx % d;
    const float rr = J.ownRinv[r];
    const float v = rr * scale * (J.acc[e] * P.invTau - cRow[lr] * rr * J.own[e]);
    J.out[e] = P.accumulate ? J.out[e] + v : v;
  }
}

// Split y's slices of an output's accumulator and row sums (the whole accumulator with one split).
__device__ __forceinline__ float* split_acc(const NceParams& P, float* acc, int64_t rows) {
  return P.gradSplits > 1 ? acc + static_cast<int64_t>(blockIdx.y) * rows * P.d : acc;
}
__device__ __forceinline__ float* split_crow(const NceParams& P, float* cRows, int64_t rows) {
  return P.gradSplits > 1 ? cRows + static_cast<int64_t>(blockIdx.y) * rows : nullptr;
}

__global__ void __launch_bounds__(kThreads, 2) infonce_grad_off_kernel(NceParams P) {
  if (P.hdr->flag != 0) return;
  __shared__ GradSmem sm;
  const int64_t a0 = static_cast<int64_t>(blockIdx.x) * kTile, tiles = tiles_of(P.n);
  const GradJob J{P.zc,
                  P.rinvc,
                  split_acc(P, P.accc, P.n),
                  P.outc,
                  split_crow(P, P.cRowc, P.n),
                  P.zc,
                  P.rinvc,
                  nullptr,
                  nullptr,
                  false,
                  a0,
                  P.n,
                  P.n,
                  0,
                  split_begin(tiles, blockIdx.y, P.gradSplits),
                  split_begin(tiles, blockIdx.y + 1, P.gradSplits)};
  grad_block<true, false>(P, J, sm);
}

// simcse's row blocks (kColSide false: x in [0, T) own z1 rows) and column blocks (x in [0, T) own z2
// columns, [T, T + Tm) z3 columns; T = row tiles of n, Tm of m), launched apart: one kernel holding both
// needs more than the 128 registers of two blocks per SM.
template <bool kColSide>
__global__ void __launch_bounds__(kThreads, 2) infonce_grad_simcse_kernel(NceParams P) {
  if (P.hdr->flag != 0) return;
  __shared__ GradSmem sm;
  const int64_t tiles = tiles_of(P.n);
  if (!kColSide) {
    const int64_t other = tiles + tiles_of(P.m);  // z2's tiles, then z3's
    const GradJob J{P.z1,
                    P.rinv1,
                    split_acc(P, P.acc1, P.n),
                    P.out1,
                    split_crow(P, P.cRow1, P.n),
                    P.z2,
                    P.rinv2,
                    P.zc,
                    P.rinvc,
                    true,
                    static_cast<int64_t>(blockIdx.x) * kTile,
                    P.n,
                    P.n,
                    P.m,
                    split_begin(other, blockIdx.y, P.gradSplits),
                    split_begin(other, blockIdx.y + 1, P.gradSplits)};
    grad_block<false, false>(P, J, sm);
  } else {
    const bool z2side = blockIdx.x < tiles;
    const int64_t own = z2side ? P.n : P.m;
    const GradJob J{z2side ? P.z2 : P.zc,
                    z2side ? P.rinv2 : P.rinvc,
                    split_acc(P, z2side ? P.acc2 : P.accc, own),
                    z2side ? P.out2 : P.outc,
                    split_crow(P, z2side ? P.cRow2 : P.cRowc, own),
                    P.z1,
                    P.rinv1,
                    nullptr,
                    nullptr,
                    z2side,
                    (blockIdx.x - (z2side ? 0 : tiles)) * kTile,
                    own,
                    P.n,
                    0,
                    split_begin(tiles, blockIdx.y, P.gradSplits),
                    split_begin(tiles, blockIdx.y + 1, P.gradSplits)};
    if (J.out != nullptr) grad_block<false, true>(P, J, sm);
  }
}

// With gradient splits, per output: acc_r = sum_y accY_r and cRow_r = sum_y cRowY_r in split order, then
//   dz_r = rinv_r / N * (acc_r / tau - cRow_r * rinv_r * z_r), times weight, stored or added.
struct GradFinishParams {
  const float* own;
  const float* ownRinv;
  const float* acc;   // [splits][rows][d]
  const float* cRow;  // [splits][rows]
  float* out;
  int64_t rows, d, splits;
  float invTau, scale;
  bool accumulate;
  const DeviceHeader* hdr;
};

__global__ void __launch_bounds__(256) infonce_grad_finish_kernel(GradFinishParams F) {
  if (F.hdr->flag != 0) return;
  const int64_t count = F.rows * F.d, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride) {
    const int64_t r = e / F.d;
    float acc = 0.0f, cRow = 0.0f;
    for (int64_t y = 0; y < F.splits; ++y) {
      acc += F.acc[y * count + e];
      cRow += F.cRow[y * F.rows + r];
    }
    const float rr = F.ownRinv[r];
    const float v = rr * F.scale * (acc * F.invTau - cRow * rr * F.own[e]);
    F.out[e] = F.accumulate ? F.out[e] + v : v;
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

// The split counts of one call (split_count): the lse kernel's over the column tiles of its row tiles,
// the gradient kernel's over the other side's tiles of its blocks (every kind of block has at least the
// n-side's T tiles).
struct Splits {
  int64_t lse, grad;
};
Splits splits_of(bool off, int64_t n, int64_t m) {
  const int64_t t = (n + kTile - 1) / kTile, tm = off ? 0 : (m + kTile - 1) / kTile, most = max_splits();
  return Splits{split_count(t, t + tm, most), split_count(off ? t : 2 * t + tm, t, most)};
}

// The workspace layout of one fused InfoNCE call, defined once: run_infonce carves it and
// offDropoutWorkspaceBytes measures it. The 16-byte DeviceHeader and the finish blocks' loss parts (zeroed
// together), then rinv of each input, cos(z1_i, z2_i), lse and simcse's diagonal (N floats each), the lse
// kernel's partial states, then per output either an N x D accumulator when it is accumulated into and there
// is one gradient split (none for offDropout's gz1, gz2, which are written directly), or each split's
// accumulator and row sums when there are more; every sub-buffer is 256-byte aligned by Carver.
struct Scratch {
  DeviceHeader* hdr;
  double* lossParts;
  int64_t parts;
  float* rinv[3];
  float* cosv;
  float* lse;
  float* diag;
  float* partM;
  float* partS;
  float* acc[3];   // accumulators for out1/out2/outc (else null)
  float* cRow[3];  // with gradient splits: row sums per split
};

// m: rows of the third input; hasOut: which gradients are computed.
Scratch carve(detail::Carver& cv, const Splits& sp, bool off, int64_t n, int64_t m, int64_t d, const bool hasOut[3],
              bool accumulate) {
  Scratch s{};
  s.hdr = cv.take<DeviceHeader>(1);
  s.parts = (n + kFinishRows - 1) / kFinishRows;
  s.lossParts = cv.take<double>(static_cast<size_t>(s.parts));
  const int64_t rows[3] = {n, n, m};
  for (int k = 0; k < 3; ++k) s.rinv[k] = cv.take<float>(static_cast<size_t>(rows[k]));
  s.cosv = cv.take<float>(static_cast<size_t>(n));
  s.lse = cv.take<float>(static_cast<size_t>(n));
  s.diag = cv.take<float>(static_cast<size_t>(n));
  s.partM = cv.take<float>(static_cast<size_t>(sp.lse * n));
  s.partS = cv.take<float>(static_cast<size_t>(sp.lse * n));
  for (int k = 0; k < 3; ++k) {
    const bool gradKernel = hasOut[k] && !(off && k < 2);  // offDropout's gz1, gz2 come from the lse finish
    if (!gradKernel) continue;
    if (sp.grad > 1) {
      s.acc[k] = cv.take<float>(static_cast<size_t>(sp.grad * rows[k] * d));
      s.cRow[k] = cv.take<float>(static_cast<size_t>(sp.grad * rows[k]));
    } else if (accumulate) {
      s.acc[k] = cv.take<float>(static_cast<size_t>(rows[k] * d));
    }
  }
  return s;
}

// Runs the launches. zc is z3 (simcse, may be null; m rows) or z0 (offDropout; m = n); outc likewise.
LossResult run_infonce(bool off, const float* z1, const float* z2, const float* zc, int64_t n, int64_t m, int64_t d,
                       float temperature, float posScale, int codeC, float* out1, float* out2, float* outc,
                       bool accumulate, float weight, cudaStream_t stream) {
  require();
  if (n <= 0) return LossResult{};
  if (zc == nullptr) m = 0;
  float* outs[3] = {out1, out2, zc != nullptr ? outc : nullptr};
  const bool hasOut[3] = {outs[0] != nullptr, outs[1] != nullptr, outs[2] != nullptr};
  const Splits sp = splits_of(off, n, m);

  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);
  detail::Carver measure(nullptr);
  carve(measure, sp, off, n, m, d, hasOut, accumulate);
  detail::Carver cv(static_cast<char*>(ws.reserve(measure.used())));
  const Scratch s = carve(cv, sp, off, n, m, d, hasOut, accumulate);

  // The header and the loss parts (zero where the lse finish stops early on a non-finite input).
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
  P.lseSplits = sp.lse;
  P.partM = s.partM;
  P.partS = s.partS;
  P.diag = s.diag;
  P.out1 = outs[0];
  P.out2 = outs[1];
  P.outc = outs[2];
  float** accs[3] = {&P.acc1, &P.acc2, &P.accc};
  float** cRows[3] = {&P.cRow1, &P.cRow2, &P.cRowc};
  for (int k = 0; k < 3; ++k) {
    *accs[k] = s.acc[k] != nullptr ? s.acc[k] : outs[k];
    *cRows[k] = s.cRow[k];
  }
  P.gradSplits = sp.grad;
  P.accumulate = accumulate;

  const int64_t tiles = (n + kTile - 1) / kTile;
  launch("infonce_lse_kernel", infonce_lse_kernel, dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(sp.lse)),
         kThreads, 0, stream, P);
  launch("infonce_lse_finish_kernel", infonce_lse_finish_kernel, static_cast<unsigned>(s.parts), kThreads, 0, stream,
         P);
  detail::ordered_sum(s.lossParts, s.parts, &s.hdr->loss, stream);

  const bool anyGrad = off ? hasOut[2] : (hasOut[0] || hasOut[1] || hasOut[2]);
  if (anyGrad) {
    const unsigned splits = static_cast<unsigned>(sp.grad);
    if (off) {
      launch("infonce_grad_off_kernel", infonce_grad_off_kernel, dim3(static_cast<unsigned>(tiles), splits), kThreads,
             0, stream, P);
    } else {
      if (hasOut[0])
        launch("infonce_grad_simcse_kernel<rows>", infonce_grad_simcse_kernel<false>,
               dim3(static_cast<unsigned>(tiles), splits), kThreads, 0, stream, P);
      if (hasOut[1] || hasOut[2]) {
        const unsigned columnBlocks = static_cast<unsigned>(tiles + (m + kTile - 1) / kTile);  // z2's, then z3's
        launch("infonce_grad_simcse_kernel<columns>", infonce_grad_simcse_kernel<true>, dim3(columnBlocks, splits),
               kThreads, 0, stream, P);
      }
    }
    // The splits' accumulators and row sums, added in split order, and dz of each output.
    const int64_t rows[3] = {n, n, m};
    const float* own[3] = {z1, z2, zc};
    for (int k = 0; k < 3 && sp.grad > 1; ++k) {
      if (s.cRow[k] == nullptr || rows[k] == 0) continue;
      const GradFinishParams F{own[k], s.rinv[k], s.acc[k], s.cRow[k],       outs[k],    rows[k],
                               d,      sp.grad,   P.invTau, P.invN * weight, accumulate, s.hdr};
      const int64_t finishBlocks = std::min<int64_t>((rows[k] * d + 255) / 256, 4096);
      launch("infonce_grad_finish_kernel", infonce_grad_finish_kernel, static_cast<unsigned>(finishBlocks), 256, 0,
             stream, F);
    }
  }

  return detail::loss_result(s.hdr, static_cast<double>(n), static_cast<double>(weight), stream);
}

size_t workspace_bytes(bool off, int64_t n, int64_t m, int64_t d, const bool hasOut[3], bool accumulate) {
  detail::Carver measure(nullptr);
  carve(measure, splits_of(off, n, m), off, n, m, d, hasOut, accumulate);
  return measure.used();
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
  if (n <= 0) return 0;                           // run_infonce returns before touching the workspace
  const bool allOutputs[3] = {true, true, true};  // the training step's call: every gradient, not accumulated
  return workspace_bytes(true, n, n, d, allOutputs, false);
}

}  // namespace simcsepp::cuda
