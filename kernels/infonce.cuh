// fp32 SIMT tile primitives shared by infonce.cu and dcl.cu (no tensor cores, no TF32: the results
// must match the CPU backend to ~1e-5 relative).
//
// A block of kThreads = 256 threads computes a kTile x kTile = 64 x 64 output tile; thread
// (ty, tx) = (tid / 16, tid % 16) owns the 4 x 4 sub-tile rows ty*4 + i, columns tx*4 + j. Operands are
// staged in shared memory as S[k][m] (reduction index major) with row stride kPad = 68 floats, so the
// micro-kernel reads one float4 of A and one of B per k step (16 FMAs per 2 LDS.128) and 68 keeps every
// row 16-byte aligned. Out-of-range elements are staged as 0, so partial tiles need no special case in
// the micro-kernel; the callers mask their outputs.
#pragma once
#include <cstdint>

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
__device__ __forceinline__ void load_kcontig(Smem S, const float* src, int64_t m0, int64_t mEnd, int64_t ld,
                                             int64_t k0, int64_t kEnd, F f) {
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
__device__ __forceinline__ void load_mcontig(Smem S, const float* src, int64_t k0, int64_t kEnd, int64_t ld,
                                             int64_t m0, int64_t mEnd, F f) {
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

}  // namespace simcsepp::cuda::tile
