// The tensor-core GEMM of the CUDA backend's bf16 path: operands in global memory, either bf16 already (the
// linear layers' bf16 copies, bf16_copy.cuh) or fp32 rounded to bfloat16 (round to nearest even) as they are
// staged, multiplied on the tensor cores through the WMMA API (so the host emulator runs it too), and
// accumulated in fp32. Both operand types give the same bits: the rounding is the same, only where it happens
// differs.
//
// Formula: C = alpha op(A) op(B) + bias + beta C (bias per column, optional), row-major, with the same operand
// conventions as tile::sgemm (kernels/tile_gemm.cuh): op(A) [M, K], op(B) [K, N], transA: A stored [K, M], transB: B
// stored [N, K]; beta == 0 never reads C. Rounding each input to bf16 (8 significant bits) makes the result differ from
// fp32 by ~2^-8 relative per product; the sum itself is fp32.
// Operand types TA, TB: float or __nv_bfloat16, each independently. C: float, or __nv_bfloat16 (beta 0 only: the
// fp32 result rounded to nearest even as it is stored, __float2bfloat16, what cuBLASLt's bf16 output gives).
// Tiling: a block of 128 threads (4 warps) computes a 64 x 64 tile of C; warp w owns the 32 x 32 quarter
// (w / 2, w % 2) as 2 x 2 wmma m16n16k16 accumulators. K advances 32 at a time: the block stages op(A)
// [64 x 32] and op(B) [32 x 64] as bf16 in shared memory (rows padded by 8 elements, 16 bytes, as WMMA
// requires ldm to be a multiple of 8), out-of-range elements staged as 0; then two k16 steps of mma.
// The accumulators go through shared memory (fp32, stride 68) for the masked epilogue.
#pragma once
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>
#include <string>

#include "launch.cuh"

namespace simcsepp::cuda::bf16gemm {

constexpr int kTile = 64;
constexpr int kK = 32;
constexpr int kThreads = 128;
constexpr int kPadA = kK + 8;     // As row stride (bf16 elements)
constexpr int kPadB = kTile + 8;  // Bs row stride
constexpr int kPadC = kTile + 4;  // Cs row stride (floats)

struct Smem {
  __nv_bfloat16 As[kTile][kPadA];  // op(A) tile, [m][k]
  __nv_bfloat16 Bs[kK][kPadB];     // op(B) tile, [k][n]
  float Cs[kTile][kPadC];          // accumulators for the epilogue
};

// An operand element as bf16: fp32 rounded to nearest even, bf16 as it is.
__device__ __forceinline__ __nv_bfloat16 as_bf16(float v) { return __float2bfloat16(v); }
__device__ __forceinline__ __nv_bfloat16 as_bf16(__nv_bfloat16 v) { return v; }

// An element of C: read for beta != 0 (fp32 C only), stored rounded when C is bf16.
__device__ __forceinline__ float c_value(const float* p) { return *p; }
__device__ __forceinline__ float c_value(const __nv_bfloat16* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void c_store(float* p, float v) { *p = v; }
__device__ __forceinline__ void c_store(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }

template <bool kTransA, bool kTransB, class TA, class TB, class TC>
__global__ void __launch_bounds__(kThreads)
    gemm_bf16_kernel(int64_t M, int64_t N, int64_t K, float alpha, const TA* __restrict__ A, int64_t lda,
                     const TB* __restrict__ B, int64_t ldb, float beta, TC* __restrict__ C, int64_t ldc,
                     const float* __restrict__ bias) {
  using namespace nvcuda;
  __shared__ __align__(32) Smem sm;
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32;
  const int wm = warp / 2, wn = warp % 2;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTile, n0 = static_cast<int64_t>(blockIdx.y) * kTile;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
  for (int64_t k0 = 0; k0 < K; k0 += kK) {
    // Stage op(A)[m0 + i, k0 + k] and op(B)[k0 + k, n0 + j]: 2048 elements each, 16 per thread.
    for (int e = tid; e < kTile * kK; e += kThreads) {
      const int i = e / kK, k = e % kK;
      const int64_t gm = m0 + i, gk = k0 + k;
      __nv_bfloat16 v = __float2bfloat16(0.0f);
      if (gm < M && gk < K) v = as_bf16(kTransA ? A[gk * lda + gm] : A[gm * lda + gk]);
      sm.As[i][k] = v;
    }
    for (int e = tid; e < kK * kTile; e += kThreads) {
      const int k = e / kTile, j = e % kTile;
      const int64_t gk = k0 + k, gn = n0 + j;
      __nv_bfloat16 v = __float2bfloat16(0.0f);
      if (gk < K && gn < N) v = as_bf16(kTransB ? B[gn * ldb + gk] : B[gk * ldb + gn]);
      sm.Bs[k][j] = v;
    }
    __syncthreads();
    for (int kk = 0; kk < kK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> b[2];
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(a[i], &sm.As[wm * 32 + i * 16][kk], kPadA);
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(b[j], &sm.Bs[kk][wn * 32 + j * 16], kPadB);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();  // As/Bs are read before the next stage overwrites them
  }
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      wmma::store_matrix_sync(&sm.Cs[wm * 32 + i * 16][wn * 32 + j * 16], acc[i][j], kPadC, wmma::mem_row_major);
  __syncthreads();
  for (int e = tid; e < kTile * kTile; e += kThreads) {
    const int i = e / kTile, j = e % kTile;
    const int64_t r = m0 + i, c = n0 + j;
    if (r >= M || c >= N) continue;
    TC* dst = C + r * ldc + c;
    const float v = alpha * sm.Cs[i][j] + (bias != nullptr ? bias[c] : 0.0f);
    c_store(dst, beta == 0.0f ? v : fmaf(beta, c_value(dst), v));
  }
}

// Launches gemm_bf16_kernel on `stream` (arguments as tile::sgemm; `what` names the product in errors;
// `bias`, when given, is added per column of C in the epilogue). TA, TB: float or __nv_bfloat16; TC too (a bf16 C
// takes beta 0 only).
template <bool kTransA, bool kTransB, class TA, class TB, class TC>
void gemm(int64_t M, int64_t N, int64_t K, float alpha, const TA* A, int64_t lda, const TB* B, int64_t ldb, float beta,
          TC* C, int64_t ldc, const char* what, cudaStream_t stream, const float* bias = nullptr) {
  if (sizeof(TC) != sizeof(float) && beta != 0.0f)
    throw CudaError(std::string("launch of ") + what + ": a bf16 output takes beta 0 (it is not read)");
  const int64_t gx = (M + kTile - 1) / kTile, gy = (N + kTile - 1) / kTile;
  if (gy > 65535)
    throw CudaError(std::string("launch of ") + what + ": " + std::to_string(N) +
                    " output columns exceed the grid limit");
  if (kernel_profile::is_open()) kernel_profile::next_launch_flops(2.0 * static_cast<double>(M) * N * K);
  launch(what, gemm_bf16_kernel<kTransA, kTransB, TA, TB, TC>,
         dim3(static_cast<unsigned>(gx), static_cast<unsigned>(gy)), kThreads, 0, stream, M, N, K, alpha, A, lda, B,
         ldb, beta, C, ldc, bias);
}

}  // namespace simcsepp::cuda::bf16gemm
