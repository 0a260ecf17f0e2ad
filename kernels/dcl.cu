// Dimension-wise contrastive loss (docs/method.md sections 3 and 5):
//   X = (z - mean) * rstd per column (biased variance over N, eps kBnEps; separate stats for z1, z2),
//   C = X1^T X2 / (N tauD)  (D x D),  R = rowsoftmax(C),  L = mean_d(lse_d - C_dd),  H = (R - I) / D,
//   g1 = dL/dX1 = X2 H^T / (N tauD),  g2 = dL/dX2 = X1 H / (N tauD),
//   dz = (g - mean_n(g) - X * mean_n(g * X)) * rstd   (BN backward, per column).
// The BN backward's column means need no pass over g:
//   mean_n(g1 * X1)[d] = sum_k H_dk C_dk / N   (row sums of H.C),
//   mean_n(g2 * X2)[k] = sum_d H_dk C_dk / N   (column sums of H.C),
//   mean_n(g1) = mean_n(X2) H^T / (N tauD) = 0 and likewise mean_n(g2) = 0, since BN output columns
//   have zero mean (up to float rounding of z - mean, ~1e-7 relative for well-conditioned columns).
// So the gradient GEMM can finish dz in its epilogue and no N x D scratch is needed.
//
// Every cross-block sum is added in a fixed order, never by atomics, so a run repeats bit for bit on a GPU
// (test/block-order.test.ts runs the blocks in other orders on the emulator). Launches (after one
// cudaMemsetAsync of the header):
//   1. dcl_stats_kernel: column sums and sums of squares in double of one chunk of rows (thread per
//      column, blocks over row chunks), each chunk's into its own slot; NaN/Inf flag.
//      dcl_stats_sum_kernel: the chunks' sums added in chunk order (thread per column).
//   2. dcl_corr_kernel: C tiles of 64 x 64 (16x16 threads x 4x4 registers, tile_gemm.cuh) reducing over
//      N in chunks of 16 rows, split-K over N across blockIdx.z, each split into its own D x D slice; X is
//      formed from z while staging the tiles.
//   3. dcl_softmax_kernel: one block per row d: C_d = the splits' rows added in split order (into slice
//      0), lse_d, the row's loss term, H_d (overwrites C_d), the row sum of H.C and the row of H.C;
//      also stores the float mean/rstd of column d for launch 4.
//      dcl_hc_cols_kernel: the column sums of H.C (thread per column, rows in order); ordered_sum: the loss.
//   4. dcl_grad_kernel: [N x D] = X_other (N x D) times H^T (for gz1) or H (for gz2), 64 x 64 tiles,
//      reduction over D in chunks of 16; epilogue applies the BN backward and weight/accumulate.
#include <algorithm>
#include <cmath>

#include "cuda_check.cuh"
#include "in_order_sum.cuh"
#include "launch.cuh"
#include "ordered_sum.cuh"
#include "tile_gemm.cuh"

namespace simcsepp::cuda {

namespace {

using namespace tile;
using detail::DeviceHeader;

struct DclParams {
  const float* z1;
  const float* z2;
  int64_t n, d;
  float invNTau;  // 1 / (N tauD)
  float invN, invD, weight;
  bool accumulate;
  float* gz1;
  float* gz2;
  DeviceHeader* hdr;
  double* statParts;  // [row chunk][input][sum, sumsq][d]: launch 1's
  int64_t chunks;     // row chunks of launch 1
  double* sums;       // [input][sum, sumsq][d]
  double* hcRow;      // sum_k H_dk C_dk   (for gz1)
  double* hcCol;      // sum_d H_dk C_dk   (for gz2)
  float* hc;          // d x d: H_dk C_dk, summed over d by dcl_hc_cols_kernel
  double* rowLoss;    // [d]: lse_d - C_dd
  float* mean;        // [input][d], written by launch 3
  float* rstd;        // [input][d], written by launch 3
  float* C;           // [splits][d x d]: each split's part after launch 2; slice 0 holds C, then H, after launch 3
  int64_t splits;
};

// mean and 1/sqrt(var + eps) of column `col` of input `in` from the double sums.
__device__ __forceinline__ void column_stats(const DclParams& P, int in, int64_t col, float& mean, float& rstd) {
  const double s = P.sums[(2 * in) * P.d + col], ss = P.sums[(2 * in + 1) * P.d + col];
  const double nn = static_cast<double>(P.n);
  const double mu = s / nn;
  const double var = fmax(ss / nn - mu * mu, 0.0);
  mean = static_cast<float>(mu);
  rstd = static_cast<float>(1.0 / sqrt(var + static_cast<double>(kBnEps)));
}

// ---------------------------------------------------------------------------------------------
// Launch 1.
__global__ void __launch_bounds__(256) dcl_stats_kernel(DclParams P, int64_t rowsPerBlock) {
  const int in = static_cast<int>(blockIdx.z);
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (col >= P.d) return;
  const float* z = in == 0 ? P.z1 : P.z2;
  const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rowsPerBlock;
  const int64_t r1 = min(P.n, r0 + rowsPerBlock);
  double s = 0.0, ss = 0.0;
  bool bad = false;
  for (int64_t r = r0; r < r1; ++r) {
    const float x = z[r * P.d + col];
    bad |= !(fabsf(x) <= kMaxLossInput);  // NaN, Inf or too large (as the CPU op)
    s += x;
    ss += static_cast<double>(x) * x;
  }
  double* part = P.statParts + static_cast<int64_t>(blockIdx.y) * 4 * P.d;
  part[(2 * in) * P.d + col] = s;
  part[(2 * in + 1) * P.d + col] = ss;
  if (bad) detail::flag_non_finite(&P.hdr->flag, in == 0 ? kZ1 : kZ2);
}

// The row chunks' statistics added in chunk order: sums[e] for e in [0, 4d).
__global__ void __launch_bounds__(256) dcl_stats_sum_kernel(DclParams P) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= 4 * P.d) return;
  double s = 0.0;
  for (int64_t c = 0; c < P.chunks; ++c) s += P.statParts[c * 4 * P.d + e];
  P.sums[e] = s;
}

// ---------------------------------------------------------------------------------------------
// Launch 2: C[d0.., k0..] += sum over this split's rows of X1[n, d] X2[n, k] / (N tauD).

struct BnSmem {  // X = (z - mean[m]) * rstd[m] for the 64 columns staged by one tile loader
  const float* mean;
  const float* rstd;
  __device__ __forceinline__ float operator()(float v, int m, int64_t /*k*/) const { return (v - mean[m]) * rstd[m]; }
};

__global__ void __launch_bounds__(kThreads, 2) dcl_corr_kernel(DclParams P, int64_t rowsPerSplit) {
  if (P.hdr->flag != 0) return;
  __shared__ __align__(16) float As[kK][kPad];
  __shared__ __align__(16) float Bs[kK][kPad];
  __shared__ float mean[2][kTile], rstd[2][kTile];
  const int64_t d0 = static_cast<int64_t>(blockIdx.x) * kTile;  // rows of C = columns of X1
  const int64_t k0 = static_cast<int64_t>(blockIdx.y) * kTile;  // columns of C = columns of X2
  if (threadIdx.x < 2 * kTile) {
    const int in = static_cast<int>(threadIdx.x) / kTile, m = static_cast<int>(threadIdx.x) % kTile;
    const int64_t col = (in == 0 ? d0 : k0) + m;
    float mu = 0.0f, rs = 0.0f;  // columns past d are staged as zeros anyway
    if (col < P.d) column_stats(P, in, col, mu, rs);
    mean[in][m] = mu;
    rstd[in][m] = rs;
  }
  __syncthreads();
  const int64_t n0 = static_cast<int64_t>(blockIdx.z) * rowsPerSplit;
  const int64_t n1 = min(P.n, n0 + rowsPerSplit);
  float acc[4][4];
  zero(acc);
  for (int64_t nb = n0; nb < n1; nb += kK) {
    load_mcontig<kK>(As, P.z1, nb, n1, P.d, d0, P.d, BnSmem{mean[0], rstd[0]});
    load_mcontig<kK>(Bs, P.z2, nb, n1, P.d, k0, P.d, BnSmem{mean[1], rstd[1]});
    __syncthreads();
    mma_tile<kK>(As, Bs, acc);
    __syncthreads();
  }
  const int tx = tid_x(), ty = tid_y();
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = d0 + ty * 4 + i;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t c = k0 + tx * 4 + j;
      if (r < P.d && c < P.d) P.C[static_cast<int64_t>(blockIdx.z) * P.d * P.d + r * P.d + c] = acc[i][j] * P.invNTau;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Launch 3.

// Block-wide reduction (256 threads); every thread gets the result. `op` is max or sum.
template <class Op>
__device__ __forceinline__ float block_reduce(float v, float* red, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  __syncthreads();  // red[] may still be read by a previous reduction
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = red[0];
  for (int w = 1; w < static_cast<int>(blockDim.x) / 32; ++w) v = op(v, red[w]);
  return v;
}

struct MaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};
struct SumOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};

__global__ void __launch_bounds__(256) dcl_softmax_kernel(DclParams P) {
  if (P.hdr->flag != 0) return;
  __shared__ float red[32];
  const int64_t row = blockIdx.x;
  float* c = P.C + row * P.d;
  if (threadIdx.x < 2) {  // float stats of column `row` for launch 4 (same values launch 2 used)
    const int in = static_cast<int>(threadIdx.x);
    column_stats(P, in, row, P.mean[in * P.d + row], P.rstd[in * P.d + row]);
  }
  // C_d: the splits' parts of row d added in split order (this block alone reads and writes row d).
  for (int64_t k = threadIdx.x; k < P.d; k += blockDim.x) {
    float v = c[k];
    for (int64_t z = 1; z < P.splits; ++z) v += c[z * P.d * P.d + k];
    c[k] = v;
  }
  __syncthreads();
  const float cdd = c[row];  // read before any thread overwrites the row with H
  float m = -INFINITY;
  for (int64_t k = threadIdx.x; k < P.d; k += blockDim.x) m = fmaxf(m, c[k]);
  m = block_reduce(m, red, MaxOp{});
  float s = 0.0f;
  for (int64_t k = threadIdx.x; k < P.d; k += blockDim.x) s += expf(c[k] - m);
  s = block_reduce(s, red, SumOp{});
  const float lse = m + logf(s);
  float hcSum = 0.0f;
  for (int64_t k = threadIdx.x; k < P.d; k += blockDim.x) {
    const float ck = c[k];
    const float h = (expf(ck - lse) - (k == row ? 1.0f : 0.0f)) * P.invD;
    c[k] = h;  // this thread is the only reader and writer of element k of this row
    hcSum = fmaf(h, ck, hcSum);
    P.hc[row * P.d + k] = h * ck;
  }
  hcSum = block_reduce(hcSum, red, SumOp{});
  if (threadIdx.x == 0) {
    P.hcRow[row] = hcSum;
    P.rowLoss[row] = static_cast<double>(lse) - static_cast<double>(cdd);
  }
}

// hcCol[k] = sum_d H_dk C_dk, the rows added in order (one thread per column k; the next 32 rows in flight:
// in_order_sum.cuh).
__global__ void __launch_bounds__(256) dcl_hc_cols_kernel(DclParams P) {
  if (P.hdr->flag != 0) return;
  const int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= P.d) return;
  double s = 0.0;
  detail::add_in_order<32>(
      s, P.d, [&](int64_t d) { return P.hc[d * P.d + k]; },
      [](double a, double x) { return a + x; });  // each float term widened exactly
  P.hcCol[k] = s;
}

// ---------------------------------------------------------------------------------------------
// Launch 4: gz_own[n, c] (+)= weight * (g[n, c] - X_own[n, c] * hc[c] / N) * rstd_own[c], with
// g = X_other H^T / (N tauD) (own = z1) or X_other H / (N tauD) (own = z2).

struct BnGlobal {  // X = (z - mean[k]) * rstd[k] with k the reduction (column) index
  const float* mean;
  const float* rstd;
  __device__ __forceinline__ float operator()(float v, int /*m*/, int64_t k) const { return (v - mean[k]) * rstd[k]; }
};

__global__ void __launch_bounds__(kThreads, 2) dcl_grad_kernel(DclParams P) {
  if (P.hdr->flag != 0) return;
  const int own = static_cast<int>(blockIdx.z), other = 1 - own;
  float* out = own == 0 ? P.gz1 : P.gz2;
  if (out == nullptr) return;
  __shared__ __align__(16) float As[kK][kPad];
  __shared__ __align__(16) float Bs[kK][kPad];
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t c0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const float* zOther = other == 0 ? P.z1 : P.z2;
  const BnGlobal bnOther{P.mean + other * P.d, P.rstd + other * P.d};
  float acc[4][4];
  zero(acc);
  for (int64_t k0 = 0; k0 < P.d; k0 += kK) {
    load_kcontig(As, zOther, n0, P.n, P.d, k0, P.d, bnOther);
    if (own == 0)  // B[k][c] = H[c][k]
      load_kcontig(Bs, P.C, c0, P.d, P.d, k0, P.d, Identity{});
    else  // B[k][c] = H[k][c]
      load_mcontig<kK>(Bs, P.C, k0, P.d, P.d, c0, P.d, Identity{});
    __syncthreads();
    mma_tile<kK>(As, Bs, acc);
    __syncthreads();
  }
  const float* zOwn = own == 0 ? P.z1 : P.z2;
  const float* meanOwn = P.mean + own * P.d;
  const float* rstdOwn = P.rstd + own * P.d;
  const double* hc = own == 0 ? P.hcRow : P.hcCol;
  const int tx = tid_x(), ty = tid_y();
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int64_t c = c0 + tx * 4 + j;
    if (c >= P.d) continue;
    const float mu = meanOwn[c], rs = rstdOwn[c];
    const float gx = static_cast<float>(hc[c]) * P.invN;  // mean_n(g * X) of this column
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t r = n0 + ty * 4 + i;
      if (r >= P.n) continue;
      const int64_t e = r * P.d + c;
      const float x = (zOwn[e] - mu) * rs;
      const float v = (acc[i][j] * P.invNTau - x * gx) * rs * P.weight;
      out[e] = P.accumulate ? out[e] + v : v;
    }
  }
}

// The four launches on `stream`; returns once the loss is on the host.
LossResult run_dcl(const DclArgs& a, const LossGradOut& g, cudaStream_t stream) {
  require();
  const int64_t n = a.n, d = a.d;
  if (n <= 0 || d <= 0) return LossResult{};

  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);
  // Launch 1: one thread per column, blocks over chunks of rows.
  const int64_t rowsPerBlock = std::max<int64_t>(256, (n + 65534) / 65535);
  const int64_t chunks = (n + rowsPerBlock - 1) / rowsPerBlock;
  // Launch 2: split N so that about 8 blocks per SM-ish are in flight even when D is small.
  const int64_t tiles = (d + kTile - 1) / kTile;
  const int64_t wantSplits = std::max<int64_t>(1, (1056 + tiles * tiles - 1) / (tiles * tiles));
  const int64_t maxSplits = std::min<int64_t>((n + 127) / 128, 65535);
  const int64_t splitsAsked = std::max<int64_t>(1, std::min(wantSplits, maxSplits));
  const int64_t rowsPerSplit = ((n + splitsAsked - 1) / splitsAsked + kK - 1) / kK * kK;
  const int64_t splits = (n + rowsPerSplit - 1) / rowsPerSplit;
  // Layout: the header alone is zeroed (every other buffer is written in full before it is read).
  auto layout = [&](detail::Carver& cv, DclParams& P) {
    P.hdr = cv.take<DeviceHeader>(1);
    P.statParts = cv.take<double>(static_cast<size_t>(chunks * 4 * d));
    P.sums = cv.take<double>(static_cast<size_t>(4 * d));
    P.hcRow = cv.take<double>(static_cast<size_t>(d));
    P.hcCol = cv.take<double>(static_cast<size_t>(d));
    P.rowLoss = cv.take<double>(static_cast<size_t>(d));
    P.hc = cv.take<float>(static_cast<size_t>(d * d));
    P.C = cv.take<float>(static_cast<size_t>(splits * d * d));
    P.mean = cv.take<float>(static_cast<size_t>(2 * d));
    P.rstd = cv.take<float>(static_cast<size_t>(2 * d));
  };
  DclParams P{};
  detail::Carver measure(nullptr);
  layout(measure, P);
  char* base = static_cast<char*>(ws.reserve(measure.used()));
  detail::Carver cv(base);
  layout(cv, P);
  P.chunks = chunks;
  P.splits = splits;
  P.z1 = a.z1;
  P.z2 = a.z2;
  P.n = n;
  P.d = d;
  P.invNTau = static_cast<float>(1.0 / (static_cast<double>(n) * static_cast<double>(a.temperature)));
  P.invN = 1.0f / static_cast<float>(n);
  P.invD = 1.0f / static_cast<float>(d);
  P.weight = g.weight;
  P.accumulate = g.accumulate;
  P.gz1 = g.gz1;
  P.gz2 = g.gz2;

  SIMCSEPP_CUDA_CHECK(cudaMemsetAsync(P.hdr, 0, sizeof(DeviceHeader), stream));

  const unsigned columnBlocks = static_cast<unsigned>((d + 255) / 256);
  {  // 1. statistics
    const dim3 grid(columnBlocks, static_cast<unsigned>(chunks), 2);
    launch("dcl_stats_kernel", dcl_stats_kernel, grid, 256, 0, stream, P, rowsPerBlock);
    launch("dcl_stats_sum_kernel", dcl_stats_sum_kernel, static_cast<unsigned>((4 * d + 255) / 256), 256, 0, stream, P);
  }
  {  // 2. C
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(tiles), static_cast<unsigned>(splits));
    launch("dcl_corr_kernel", dcl_corr_kernel, grid, kThreads, 0, stream, P, rowsPerSplit);
  }
  launch("dcl_softmax_kernel", dcl_softmax_kernel, static_cast<unsigned>(d), 256, 0, stream, P);  // 3.
  launch("dcl_hc_cols_kernel", dcl_hc_cols_kernel, columnBlocks, 256, 0, stream, P);
  detail::ordered_sum(P.rowLoss, d, &P.hdr->loss, stream);
  if (g.gz1 != nullptr || g.gz2 != nullptr) {  // 4.
    const dim3 grid(static_cast<unsigned>((n + kTile - 1) / kTile), static_cast<unsigned>((d + kTile - 1) / kTile), 2);
    launch("dcl_grad_kernel", dcl_grad_kernel, grid, kThreads, 0, stream, P);
  }

  return detail::loss_result(P.hdr, static_cast<double>(d), static_cast<double>(g.weight), stream);
}

}  // namespace

LossResult dcl(const DclArgs& a, const LossGradOut& g) { return run_dcl(a, g, detail::op_stream()); }

}  // namespace simcsepp::cuda
