// What the tensor-core attention kernels share (attention_mma.cu: T <= 64, one block per head holding it whole;
// attention_mma_long.cu: 64 < T <= 128, query rows in chunks): the head's geometry, staging fp32 or bf16 rows into
// bf16 shared arrays, WMMA products over shared arrays, and writing fp32 output tiles back (with bf16 copies).
// A block has 4 warps (kThreads); bf16 rows are kLd = 72 elements (144 bytes: a 16-byte multiple, as WMMA wants,
// 4 banks apart so that 8 rows' 16-byte pieces hit all 32 banks), fp32 rows kFLd = 68; the long kernels' rows of
// 128 keys add the same padding (kLongLd = 136, kLongFLd = 132).
#pragma once
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>
#include <initializer_list>

#include "attention_mma.cuh"
#include "cuda_check.cuh"

namespace simcsepp::cuda::mma {

using namespace nvcuda;

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxHS = 64;        // head columns the arrays hold
constexpr int kLd = kMaxHS + 8;   // bf16 row length (also holds kT <= 64 keys)
constexpr int kFLd = kMaxHS + 4;  // fp32 row length (scores of kT <= 64 keys, or an output tile row)
static_assert(kLd * 2 % 16 == 0 && kFLd * 4 % 16 == 0, "WMMA wants 16-byte multiples as row strides");

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
using FragAT = wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major>;
using FragBT = wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// One head's geometry, formed on the host.
struct Head {
  int T, NH, HS;
  int64_t ld, H;  // row strides of q, k, v (and dq, dk, dv) and of ctx, dctx
  float scale;    // 1/sqrt(HS)
  int tT, tH;     // 16-row tiles of the keys (queries) and 16-column tiles of the head: Tp / 16, Hp / 16
  bool vec;       // 4 columns at a time: HS, ld and H multiples of 4, the fp32 arrays 16-byte aligned, bf16 8-byte
};

// The loops below run over whole [rows][kMaxHS] or [kT][kT] blocks, whose widths are powers of 2 known at compile
// time (a shift and a mask per element, where the actual sizes would cost an integer division), and skip or zero
// what lies outside the shape.

// Four consecutive source values: float4 from fp32 rows, 8 bytes from bf16 rows (bf16Storage: the values as stored).
template <class TS>
struct Quad;
template <>
struct Quad<float> {
  using Raw = float4;
  static __device__ __forceinline__ Raw zero() { return make_float4(0.0f, 0.0f, 0.0f, 0.0f); }
  static __device__ __forceinline__ void put(__nv_bfloat16* d, const Raw& x) {
    d[0] = __float2bfloat16(x.x);
    d[1] = __float2bfloat16(x.y);
    d[2] = __float2bfloat16(x.z);
    d[3] = __float2bfloat16(x.w);
  }
};
template <>
struct Quad<__nv_bfloat16> {
  using Raw = unsigned long long;
  static __device__ __forceinline__ Raw zero() { return 0; }
  static __device__ __forceinline__ void put(__nv_bfloat16* d, Raw x) {
    for (int e = 0; e < 4; ++e) d[e] = __ushort_as_bfloat16(static_cast<unsigned short>(x >> (16 * e) & 0xffffu));
  }
};

__device__ __forceinline__ __nv_bfloat16 to_bf16(float x) { return __float2bfloat16(x); }
__device__ __forceinline__ __nv_bfloat16 to_bf16(__nv_bfloat16 x) { return x; }

// A thread's share of a vec staging: kPer quads of a [kRows][kMaxHS] block, thread t taking quads t, t + kThreads, ...
template <int kRows>
constexpr int kQuadsPerThread = kRows*(kMaxHS / 4) / kThreads;

// Issues the thread's loads of src's quads (zeros outside rows x cols) into x, converting nothing.
template <int kRows, class TS>
__device__ __forceinline__ void load_quads(typename Quad<TS>::Raw (&x)[kQuadsPerThread<kRows>], const TS* src,
                                           int64_t ld, int rows, int cols) {
  using Q = Quad<TS>;
  constexpr int kQuadsPerRow = kMaxHS / 4;
  static_assert(kRows * kQuadsPerRow % kThreads == 0, "whole quads per thread");
#pragma unroll
  for (int u = 0; u < kQuadsPerThread<kRows>; ++u) {
    const int idx = static_cast<int>(threadIdx.x) + u * kThreads, r = idx / kQuadsPerRow, c = idx % kQuadsPerRow * 4;
    x[u] = r < rows && c < cols ? *reinterpret_cast<const typename Q::Raw*>(src + static_cast<int64_t>(r) * ld + c)
                                : Q::zero();
  }
}

// Stores the quads load_quads read into dst, rounded to bf16.
template <int kRows, class TS, int kDLd>
__device__ __forceinline__ void put_quads(__nv_bfloat16 (*dst)[kDLd],
                                          const typename Quad<TS>::Raw (&x)[kQuadsPerThread<kRows>]) {
  constexpr int kQuadsPerRow = kMaxHS / 4;
#pragma unroll
  for (int u = 0; u < kQuadsPerThread<kRows>; ++u) {
    const int idx = static_cast<int>(threadIdx.x) + u * kThreads, r = idx / kQuadsPerRow, c = idx % kQuadsPerRow * 4;
    Quad<TS>::put(&dst[r][c], x[u]);
  }
}

// dst[r][c] = bf16(src[r * ld + c]) for r < rows, c < cols, 0 elsewhere in [kRows][kMaxHS]: the whole block. src is
// fp32 (rounded here) or bf16 (bf16Storage: the same values, as they are). dst's rows are kDLd long.
// With vec, 16-byte (bf16: 8-byte) loads, all of a thread's issued before the first is converted: the block's loads
// are then in flight together instead of one load per thread at a time (global memory's latency, not its bandwidth,
// bounded the kernels). The same roundings either way.
template <int kRows, class TS, int kDLd>
__device__ __forceinline__ void stage(__nv_bfloat16 (*dst)[kDLd], const TS* src, int64_t ld, int rows, int cols,
                                      bool vec) {
  if (vec) {
    typename Quad<TS>::Raw x[kQuadsPerThread<kRows>];
    load_quads<kRows>(x, src, ld, rows, cols);
    put_quads<kRows, TS>(dst, x);
    return;
  }
  for (int idx = static_cast<int>(threadIdx.x); idx < kRows * kMaxHS; idx += kThreads) {
    const int r = idx / kMaxHS, c = idx % kMaxHS;
    dst[r][c] = r < rows && c < cols ? to_bf16(src[static_cast<int64_t>(r) * ld + c]) : __float2bfloat16(0.0f);
  }
}

// stage() of two or three blocks of one head's rows (rows x cols each; source i's rows ldi apart): with vec all their
// loads are issued before any is stored, so the thread waits for global memory once.
template <int kRows, class TS, int kDLd>
__device__ __forceinline__ void stage2(__nv_bfloat16 (*d1)[kDLd], const TS* s1, int64_t ld1, __nv_bfloat16 (*d2)[kDLd],
                                       const TS* s2, int64_t ld2, int rows, int cols, bool vec) {
  if (!vec) {
    stage<kRows>(d1, s1, ld1, rows, cols, false);
    stage<kRows>(d2, s2, ld2, rows, cols, false);
    return;
  }
  typename Quad<TS>::Raw x1[kQuadsPerThread<kRows>], x2[kQuadsPerThread<kRows>];
  load_quads<kRows>(x1, s1, ld1, rows, cols);
  load_quads<kRows>(x2, s2, ld2, rows, cols);
  put_quads<kRows, TS>(d1, x1);
  put_quads<kRows, TS>(d2, x2);
}
template <int kRows, class TS, int kDLd>
__device__ __forceinline__ void stage3(__nv_bfloat16 (*d1)[kDLd], const TS* s1, int64_t ld1, __nv_bfloat16 (*d2)[kDLd],
                                       const TS* s2, int64_t ld2, __nv_bfloat16 (*d3)[kDLd], const TS* s3, int64_t ld3,
                                       int rows, int cols, bool vec) {
  if (!vec) {
    stage2<kRows>(d1, s1, ld1, d2, s2, ld2, rows, cols, false);
    stage<kRows>(d3, s3, ld3, rows, cols, false);
    return;
  }
  typename Quad<TS>::Raw x1[kQuadsPerThread<kRows>], x2[kQuadsPerThread<kRows>], x3[kQuadsPerThread<kRows>];
  load_quads<kRows>(x1, s1, ld1, rows, cols);
  load_quads<kRows>(x2, s2, ld2, rows, cols);
  load_quads<kRows>(x3, s3, ld3, rows, cols);
  put_quads<kRows, TS>(d1, x1);
  put_quads<kRows, TS>(d2, x2);
  put_quads<kRows, TS>(d3, x3);
}

// Out tiles (m, n) of the product A B (m < mTiles, n < nTiles, K = 16 kSteps), scaled by alpha, into c (rows ldc
// floats apart); the warps take the tiles in turn. A's tile (m, k) and B's tile (k, n) come from the pointer
// functions a(m, k) and b(k, n), each with its layout's fragment, rows lda and ldb elements apart.
template <class FA, class FB, class PA, class PB>
__device__ __forceinline__ void product(float* c, unsigned ldc, int mTiles, int nTiles, int kSteps, float alpha, PA a,
                                        unsigned lda, PB b, unsigned ldb) {
  const int warp = static_cast<int>(threadIdx.x) / 32;
  for (int t = warp; t < mTiles * nTiles; t += kWarps) {
    const int m = t / nTiles, n = t % nTiles;
    FragC acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int kk = 0; kk < kSteps; ++kk) {
      FA fa;
      FB fb;
      wmma::load_matrix_sync(fa, a(m, kk), lda);
      wmma::load_matrix_sync(fb, b(kk, n), ldb);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    if (alpha != 1.0f)
      for (int e = 0; e < acc.num_elements; ++e) acc.x[e] *= alpha;
    wmma::store_matrix_sync(c + static_cast<int64_t>(m) * 16 * ldc + n * 16, acc, ldc, wmma::mem_row_major);
  }
}

// The same over arrays of kLd-element bf16 rows into [..][kFLd] fp32 rows (attention_mma.cu's).
template <class FA, class FB, class PA, class PB>
__device__ __forceinline__ void product(float (*fs)[kFLd], int mTiles, int nTiles, int kSteps, float alpha, PA a,
                                        PB b) {
  product<FA, FB>(&fs[0][0], kFLd, mTiles, nTiles, kSteps, alpha, a, kLd, b, kLd);
}

// out[r * ld + c] = fs[r][c] for r < rows, c < HS (out may be null: the bf16 copy alone), and its bf16 copy at
// out16 + the same offset, when not null; with h.vec 4 columns a store.
template <int kCLd>
__device__ __forceinline__ void write_rows(float* out, __nv_bfloat16* out16, int64_t ld, const float (*fs)[kCLd],
                                           int rows, const Head& h) {
  if (h.vec) {
    constexpr int kQuadsPerRow = kMaxHS / 4;
    for (int idx = static_cast<int>(threadIdx.x); idx < rows * kQuadsPerRow; idx += kThreads) {
      const int r = idx / kQuadsPerRow, c = idx % kQuadsPerRow * 4;
      if (c >= h.HS) continue;
      const int64_t at = static_cast<int64_t>(r) * ld + c;
      const float4 x = *reinterpret_cast<const float4*>(&fs[r][c]);
      if (out != nullptr) *reinterpret_cast<float4*>(out + at) = x;
      if (out16 != nullptr) {
        const auto bits = [](float f) { return static_cast<uint64_t>(__bfloat16_as_ushort(__float2bfloat16(f))); };
        *reinterpret_cast<uint64_t*>(out16 + at) = bits(x.x) | bits(x.y) << 16 | bits(x.z) << 32 | bits(x.w) << 48;
      }
    }
    return;
  }
  for (int idx = static_cast<int>(threadIdx.x); idx < rows * kMaxHS; idx += kThreads) {
    const int r = idx / kMaxHS, c = idx % kMaxHS;
    if (c >= h.HS) continue;
    const int64_t at = static_cast<int64_t>(r) * ld + c;
    if (out != nullptr) out[at] = fs[r][c];
    if (out16 != nullptr) out16[at] = __float2bfloat16(fs[r][c]);
  }
}

// The head's T rows.
template <int kCLd>
__device__ __forceinline__ void write_rows(float* out, __nv_bfloat16* out16, int64_t ld, const float (*fs)[kCLd],
                                           const Head& h) {
  write_rows(out, out16, ld, fs, h.T, h);
}

// sums[c] = the sum over rows r < rows of fs[r][c] in row order, in double (c < HS), when sums is not null: this
// sentence's share of a q/k/v bias gradient column (attention.cu adds the sentences' in a fixed order).
template <int kCLd>
__device__ __forceinline__ void sum_columns(double* sums, const float (*fs)[kCLd], int rows, const Head& h) {
  if (sums == nullptr) return;
  for (int c = static_cast<int>(threadIdx.x); c < h.HS; c += kThreads) {
    double s = 0.0;
    for (int r = 0; r < rows; ++r) s += fs[r][c];
    sums[c] = s;
  }
}

// p + offset, or null for null p.
template <class T>
__device__ __forceinline__ T* at(T* p, int64_t offset) {
  return p != nullptr ? p + offset : nullptr;
}

// Whether every fp32 array is 16-byte aligned, every bf16 one 8-byte aligned (null ones are).
inline bool aligned(std::initializer_list<const float*> fp32, std::initializer_list<const void*> bf16) {
  for (const float* p : fp32)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  for (const void* p : bf16)
    if (reinterpret_cast<uintptr_t>(p) % 8 != 0) return false;
  return true;
}

// The inputs' alignment: fp32 ones with the fp32 arrays, bf16 ones with the bf16 arrays.
inline bool aligned(std::initializer_list<const float*> fp32, std::initializer_list<const void*> bf16,
                    std::initializer_list<MmaIn> in) {
  for (const MmaIn& x : in)
    if (reinterpret_cast<uintptr_t>(x.p) % (x.bf16 ? 8 : 16) != 0) return false;
  return aligned(fp32, bf16);
}

// vec: the arrays' alignment (aligned()); the sizes' is checked here.
inline Head head_of(const AttnSizes& s, bool alignedArrays) {
  const int tT = static_cast<int>((s.T + 15) / 16), tH = static_cast<int>((s.HS + 15) / 16);
  const bool vec = alignedArrays && s.HS % 4 == 0 && s.ld % 4 == 0 && s.H() % 4 == 0;
  return Head{
      static_cast<int>(s.T), static_cast<int>(s.NH), static_cast<int>(s.HS), s.ld, s.H(), s.scale(), tT, tH, vec};
}

// The inputs' type: all fp32 or all bf16.
inline bool all_bf16(std::initializer_list<MmaIn> in) {
  const bool bf16 = in.begin()->bf16;
  for (const MmaIn& x : in)
    if (x.bf16 != bf16) throw CudaError("attention (tensor cores): inputs of mixed types");
  return bf16;
}

}  // namespace simcsepp::cuda::mma
