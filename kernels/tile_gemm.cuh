// The fp32 SIMT tile-GEMM toolkit of the CUDA backend: the building blocks of every matrix product in
// kernels/ (infonce.cu, dcl.cu) and a general row-major SGEMM kernel built from them (the op set's sgemm
// and linear layer in gemm.cu, attention's batched products in attention.cu, the unfused baseline). No
// tensor cores, no TF32: the results must match the CPU backend to ~1e-5 relative.
//
// Formula: a block computes one output tile  acc[m][n] = sum_k A[k][m] * B[k][n]  of C = op(A) op(B),
// m, n < kTile, from operands staged in shared memory in reduction-major layout S[k][m].
// Tiling: a block of kThreads = 256 threads computes a kTile x kTile = 64 x 64 output tile; thread
// (ty, tx) = (tid / 16, tid % 16) owns the 4 x 4 sub-tile rows ty*4 + i, columns tx*4 + j. Operands are
// staged kK = 16 reduction steps at a time with row stride kPad = 68 floats, so the micro-kernel reads
// one float4 of A and one of B per k step (16 FMAs per 2 LDS.128) and 68 keeps every row 16-byte
// aligned. Out-of-range elements are staged as 0, so partial tiles need no special case in the
// micro-kernel; the callers mask their outputs.
//
//   load_kcontig / load_mcontig  stage a [kK][kTile] operand slice (reduction or output index contiguous
//                                in global memory), applying an element-wise transform on the way
//   mma_tile                     acc += A^T B over the staged slices (4x4 register micro-kernel)
//   dot_tile                     acc = row dots of two row-major [n, d] matrices (the logit tiles)
//   sgemm_kernel                 C = alpha op(A) op(B) + bias + beta C, one 64 x 64 tile of C per block,
//                                optionally batched (blockIdx.z) over two-level strided operands
//   sgemm                        host launcher of sgemm_kernel on a stream
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

#include "launch.cuh"

namespace simcsepp::cuda::tile {

constexpr int kTile = 64;
constexpr int kK = 16;  // reduction chunk of the staged operands
constexpr int kThreads = 256;
constexpr int kPad = kTile + 4;

using Smem = float (*)[kPad];
using CSmem = const float (*)[kPad];

__device__ __forceinline__ int tid_x() { return static_cast<int>(threadIdx.x) % 16; }
__device__ __forceinline__ int tid_y() { return static_cast<int>(threadIdx.x) / 16; }

struct Identity {
  __device__ __forceinline__ float operator()(float v, int /*m*/, int64_t /*k*/) const { return v; }
};

// Stages S[kk][m] = f(src[(m0 + m) * ld + k0 + kk], m, k0 + kk) for kk < kK, m < kTile: the reduction
// index is contiguous in memory (rows of a row-major [rows, ld] matrix). 16 consecutive threads read
// 16 consecutive floats of one row.
template <class F>
__device__ __forceinline__ void load_kcontig(Smem S, const float* src, int64_t m0, int64_t mEnd, int64_t ld, int64_t k0,
                                             int64_t kEnd, F f) {
#pragma unroll
  for (int s = 0; s < kTile * kK / kThreads; ++s) {
    const int idx = static_cast<int>(threadIdx.x) + s * kThreads;
    const int m = idx / kK, kk = idx % kK;
    const int64_t gm = m0 + m, gk = k0 + kk;
    float v = 0.0f;
    if (gm < mEnd && gk < kEnd) v = f(src[gm * ld + gk], m, gk);
    S[kk][m] = v;
  }
}

// Stages S[kk][m] = f(src[(k0 + kk) * ld + m0 + m], m, k0 + kk) for kk < KR, m < kTile: the output
// index m is contiguous in memory. 64 consecutive threads read 64 consecutive floats.
template <int KR, class F>
__device__ __forceinline__ void load_mcontig(Smem S, const float* src, int64_t k0, int64_t kEnd, int64_t ld, int64_t m0,
                                             int64_t mEnd, F f) {
#pragma unroll
  for (int s = 0; s < kTile * KR / kThreads; ++s) {
    const int idx = static_cast<int>(threadIdx.x) + s * kThreads;
    const int kk = idx / kTile, m = idx % kTile;
    const int64_t gm = m0 + m, gk = k0 + kk;
    float v = 0.0f;
    if (gm < mEnd && gk < kEnd) v = f(src[gk * ld + gm], m, gk);
    S[kk][m] = v;
  }
}

// acc[i][j] += sum_{kk < KR} A[kk][ty*4 + i] * B[kk][tx*4 + j].
template <int KR>
__device__ __forceinline__ void mma_tile(CSmem A, CSmem B, float acc[4][4]) {
  const int tx = tid_x(), ty = tid_y();
#pragma unroll 4
  for (int kk = 0; kk < KR; ++kk) {
    const float4 a = *reinterpret_cast<const float4*>(&A[kk][ty * 4]);
    const float4 b = *reinterpret_cast<const float4*>(&B[kk][tx * 4]);
    const float av[4] = {a.x, a.y, a.z, a.w};
    const float bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}

__device__ __forceinline__ void zero(float acc[4][4]) {
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
}

// acc[i][j] = dot(A[a0 + ty*4 + i, :], B[b0 + tx*4 + j, :]) for row-major [n, d] A and B (rows past
// aEnd / bEnd read as zero). The reduction over d runs in chunks of kK in increasing order, so the
// same pair of rows gives the same bits whichever operand is A.
// Synchronisation: starts by overwriting As/Bs (callers must have finished reading them) and ends with
// a __syncthreads, so callers may overwrite As/Bs or other shared buffers right after it returns.
__device__ __forceinline__ void dot_tile(const float* A, int64_t a0, int64_t aEnd, const float* B, int64_t b0,
                                         int64_t bEnd, int64_t d, Smem As, Smem Bs, float acc[4][4]) {
  zero(acc);
  for (int64_t k0 = 0; k0 < d; k0 += kK) {
    load_kcontig(As, A, a0, aEnd, d, k0, d, Identity{});
    load_kcontig(Bs, B, b0, bEnd, d, k0, d, Identity{});
    __syncthreads();
    mma_tile<kK>(As, Bs, acc);
    __syncthreads();
  }
}

// Sum / max over the 16 lanes (tx = 0..15) that share a ty: they form one half of a warp.
__device__ __forceinline__ float half_warp_sum(float v) {
#pragma unroll
  for (int o = 8; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The operands of batch z of a batched product start at A + off(z, a), B + off(z, b), C + off(z, c) with
// off(z, s) = (z / inner) * s.outer + (z % inner) * s.inner: two levels, so the head slices of [B, T, NH*HS]
// activations (outer = T*H, inner = HS, z = b*NH + h) and the [B, NH, T, T] probabilities (outer = NH*T*T,
// inner = T*T) index the same way. The default is one product (count = 1).
struct BatchStride {
  int64_t outer = 0, inner = 0;
};
struct Batch {
  int64_t count = 1, inner = 1;
  BatchStride a, b, c;
};

__device__ __forceinline__ int64_t batch_offset(int64_t z, int64_t inner, BatchStride s) {
  return (z / inner) * s.outer + (z % inner) * s.inner;
}

// C = alpha * op(A) op(B) + bias + beta * C with op(A) [M, K], op(B) [K, N], C [M, N], all row-major;
// bias (one float per column of C) may be null. transA: A is stored [K, M] (lda >= M); else [M, K]
// (lda >= K). transB: B is stored [N, K]; else [K, N]. Grid: (ceil(M / kTile), ceil(N / kTile), batches)
// blocks of kThreads; block z computes batch z0 + blockIdx.z. beta == 0 never reads C.
template <bool kTransA, bool kTransB>
__global__ void __launch_bounds__(kThreads, 2)
    sgemm_kernel(int64_t M, int64_t N, int64_t K, float alpha, const float* __restrict__ A, int64_t lda,
                 const float* __restrict__ B, int64_t ldb, float beta, float* __restrict__ C, int64_t ldc,
                 const float* __restrict__ bias, Batch batch, int64_t z0) {
  __shared__ __align__(16) float As[kK][kPad];
  __shared__ __align__(16) float Bs[kK][kPad];
  const int64_t z = z0 + blockIdx.z;
  A += batch_offset(z, batch.inner, batch.a);
  B += batch_offset(z, batch.inner, batch.b);
  C += batch_offset(z, batch.inner, batch.c);
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kTile;
  float acc[4][4];
  zero(acc);
  for (int64_t k0 = 0; k0 < K; k0 += kK) {
    if (kTransA)
      load_mcontig<kK>(As, A, k0, K, lda, m0, M, Identity{});
    else
      load_kcontig(As, A, m0, M, lda, k0, K, Identity{});
    if (kTransB)
      load_kcontig(Bs, B, n0, N, ldb, k0, K, Identity{});
    else
      load_mcontig<kK>(Bs, B, k0, K, ldb, n0, N, Identity{});
    __syncthreads();
    mma_tile<kK>(As, Bs, acc);
    __syncthreads();
  }
  const int tx = tid_x(), ty = tid_y();
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = m0 + ty * 4 + i;
    if (r >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t c = n0 + tx * 4 + j;
      if (c >= N) continue;
      float* dst = C + r * ldc + c;
      float v = alpha * acc[i][j];
      if (bias != nullptr) v += bias[c];
      *dst = beta == 0.0f ? v : fmaf(beta, *dst, v);
    }
  }
}

// Launches sgemm_kernel on `stream` (arguments as sgemm_kernel; `what` names the product in errors), one
// launch per 65,535 batches (the grid's z limit). M, N or the batch count 0 launches nothing.
template <bool kTransA, bool kTransB>
void sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
           float beta, float* C, int64_t ldc, const char* what, cudaStream_t stream, const float* bias = nullptr,
           const Batch& batch = Batch{}) {
  if (M <= 0 || N <= 0 || batch.count <= 0) return;
  const int64_t gx = (M + kTile - 1) / kTile, gy = (N + kTile - 1) / kTile;
  if (gy > 65535)
    throw CudaError(std::string("launch of ") + what + ": " + std::to_string(N) +
                    " output columns exceed the grid limit");
  constexpr int64_t kMaxZ = 65535;
  for (int64_t z0 = 0; z0 < batch.count; z0 += kMaxZ) {
    const int64_t gz = std::min(kMaxZ, batch.count - z0);
    if (kernel_profile::is_open()) kernel_profile::next_launch_flops(2.0 * static_cast<double>(M) * N * K * gz);
    launch(what, sgemm_kernel<kTransA, kTransB>,
           dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy), static_cast<unsigned>(gz)), kThreads, 0, stream,
           M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, batch, z0);
  }
}

}  // namespace simcsepp::cuda::tile
