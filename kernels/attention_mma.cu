// Attention on the tensor cores for short sentences (T <= 64, HS <= 64: attention_takes_bf16), at
// Precision::kBf16: one block of 4 warps per head z = b*NH + h holds the head's q, k, v (and dctx) as bfloat16
// in shared memory and runs every product as WMMA m16n16k16 tiles (bf16 x bf16 -> fp32 sums), the score rows
// (softmax, mask, Philox dropout, relative bias) in fp32 between them. Operands and roundings are ops/encoder.h's
// bf16 contract, which the CPU backend computes too (native/cpu/attention.cpp); the sums' order is the tensor
// cores'. Rows and columns are padded to multiples of 16 with zeros (Tp = ceil(T/16) 16, Hp likewise).
//
//   forward   xs = bf16(q_h), ys = bf16(k_h)               staged from the fp32 rows, zeros in the padding
//             S = xs ys^T * scale   -> fs (fp32)           (Tp/16)^2 tiles over the warps, Hp/16 k-steps each
//             P = softmax(S) -> probs; xs = bf16(D ⊙ P)    one segment of 8 (T <= 32) or 16 lanes per row
//             ys = bf16(v_h)                               (in the same phase: k is no longer read)
//             ctx = xs ys -> fs -> ctx (+ bf16 copy)       Tp/16 x Hp/16 tiles, Tp/16 k-steps
//   backward  ys = bf16(v_h), zs = bf16(dctx_h)
//             dPd = zs ys^T -> fs
//             fs = dS (fp32, in place), xs = bf16(D ⊙ P)   the rows (softmax_backward_row, P from probs)
//             dRel (MPNet's bias): thread d sums fs along diagonal d, rows in order (as the CPU)
//             ys = bf16(dS * scale)
//             dv = xs^T zs -> fs -> dv                     (xs read column-major: Pd^T)
//             xs = bf16(k_h), zs = bf16(q_h)
//             dq = ys xs -> fs -> dq;  dk = ys^T zs -> fs -> dk
// Shared memory (static, kT = 32 or 64 rows): bf16 arrays [kT][72] (rows 144 bytes: 16-byte multiples as WMMA
// wants, 4 banks apart so that 8 rows' 16-byte pieces hit all 32 banks) and one fp32 [kT][68]: 18 KB (kT = 32)
// or 36 KB forward, 23 / 45 KB backward. A tile's pointer is 32-byte aligned (16 rows x 144 or 272 bytes).
// q, k, v and dctx are fp32 rows, rounded as they are staged, or bf16 values (bf16Storage: the packed q | k | v and
// dctx kept in bf16 by the model, staged as they are: the same values, half the bytes read), TS in the kernels.
// The products read shared memory only; global memory is read once (coalesced: consecutive threads,
// consecutive columns; 16-byte loads and stores when the head's columns come in aligned fours: Head::vec) and
// written once.
#include <mma.h>

#include <cstdint>
#include <initializer_list>

#include "attention_mma.cuh"
#include "cuda_check.cuh"
#include "launch.cuh"

namespace simcsepp::cuda {

namespace {

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

// The loops below run over whole [kT][kMaxHS] or [kT][kT] blocks, whose widths are powers of 2 known at compile
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

// dst[r][c] = bf16(src[r * ld + c]) for r < rows, c < cols, 0 elsewhere in [kT][kMaxHS]: the whole block. src is fp32
// (rounded here) or bf16 (bf16Storage: the same values, as they are).
// With h.vec, 16-byte (bf16: 8-byte) loads, all of a thread's issued before the first is converted: the block's loads
// are then in flight together instead of one load per thread at a time (global memory's latency, not its bandwidth,
// bounded the kernels). The same roundings either way.
template <int kT, class TS>
__device__ __forceinline__ void stage(__nv_bfloat16 (*dst)[kLd], const TS* src, int64_t ld, int rows, int cols,
                                      bool vec) {
  if (vec) {
    using Q = Quad<TS>;
    constexpr int kQuadsPerRow = kMaxHS / 4, kPer = kT * kQuadsPerRow / kThreads;
    static_assert(kT * kQuadsPerRow % kThreads == 0, "whole quads per thread");
    typename Q::Raw x[kPer];
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int idx = static_cast<int>(threadIdx.x) + u * kThreads, r = idx / kQuadsPerRow, c = idx % kQuadsPerRow * 4;
      x[u] = r < rows && c < cols ? *reinterpret_cast<const typename Q::Raw*>(src + static_cast<int64_t>(r) * ld + c)
                                  : Q::zero();
    }
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int idx = static_cast<int>(threadIdx.x) + u * kThreads, r = idx / kQuadsPerRow, c = idx % kQuadsPerRow * 4;
      Q::put(&dst[r][c], x[u]);
    }
    return;
  }
  for (int idx = static_cast<int>(threadIdx.x); idx < kT * kMaxHS; idx += kThreads) {
    const int r = idx / kMaxHS, c = idx % kMaxHS;
    dst[r][c] = r < rows && c < cols ? to_bf16(src[static_cast<int64_t>(r) * ld + c]) : __float2bfloat16(0.0f);
  }
}

// out tiles (m, n) of the product A B (m < mTiles, n < nTiles, K = 16 kSteps), scaled by alpha, into fs; the
// warps take the tiles in turn. A's tile (m, k) and B's tile (k, n) come from the pointer functions a(m, k) and
// b(k, n), each with its layout's fragment.
template <class FA, class FB, class PA, class PB>
__device__ __forceinline__ void product(float (*fs)[kFLd], int mTiles, int nTiles, int kSteps, float alpha, PA a,
                                        PB b) {
  const int warp = static_cast<int>(threadIdx.x) / 32;
  for (int t = warp; t < mTiles * nTiles; t += kWarps) {
    const int m = t / nTiles, n = t % nTiles;
    FragC acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int kk = 0; kk < kSteps; ++kk) {
      FA fa;
      FB fb;
      wmma::load_matrix_sync(fa, a(m, kk), kLd);
      wmma::load_matrix_sync(fb, b(kk, n), kLd);
      wmma::mma_sync(acc, fa, fb, acc);
    }
    if (alpha != 1.0f)
      for (int e = 0; e < acc.num_elements; ++e) acc.x[e] *= alpha;
    wmma::store_matrix_sync(&fs[m * 16][n * 16], acc, kFLd, wmma::mem_row_major);
  }
}

// out[r * ld + c] = fs[r][c] for r < T, c < HS (out may be null: the bf16 copy alone), and its bf16 copy at out16
// + the same offset, when not null; with h.vec 4 columns a store.
__device__ __forceinline__ void write_rows(float* out, __nv_bfloat16* out16, int64_t ld, const float (*fs)[kFLd],
                                           const Head& h) {
  if (h.vec) {
    constexpr int kQuadsPerRow = kMaxHS / 4;
    for (int idx = static_cast<int>(threadIdx.x); idx < h.T * kQuadsPerRow; idx += kThreads) {
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
  for (int idx = static_cast<int>(threadIdx.x); idx < h.T * kMaxHS; idx += kThreads) {
    const int r = idx / kMaxHS, c = idx % kMaxHS;
    if (c >= h.HS) continue;
    const int64_t at = static_cast<int64_t>(r) * ld + c;
    if (out != nullptr) out[at] = fs[r][c];
    if (out16 != nullptr) out16[at] = __float2bfloat16(fs[r][c]);
  }
}

// sums[c] = the sum over rows r < T of fs[r][c] in row order, in double (c < HS), when sums is not null: this
// sentence's share of a q/k/v bias gradient column (attention.cu adds the sentences' in a fixed order).
__device__ __forceinline__ void sum_columns(double* sums, const float (*fs)[kFLd], const Head& h) {
  if (sums == nullptr) return;
  for (int c = static_cast<int>(threadIdx.x); c < h.HS; c += kThreads) {
    double s = 0.0;
    for (int r = 0; r < h.T; ++r) s += fs[r][c];
    sums[c] = s;
  }
}

// p + offset, or null for null p.
template <class T>
__device__ __forceinline__ T* at(T* p, int64_t offset) {
  return p != nullptr ? p + offset : nullptr;
}

// Zeros in x's padding of a [kT][kT] block: rows or columns at T and beyond (the products read them).
template <int kT>
__device__ __forceinline__ void zero_padding(__nv_bfloat16 (*x)[kLd], const Head& h) {
  for (int idx = static_cast<int>(threadIdx.x); idx < kT * kT; idx += kThreads) {
    const int r = idx / kT, c = idx % kT;
    if (r >= h.T || c >= h.T) x[r][c] = __float2bfloat16(0.0f);
  }
}

// The kernels' shared arrays, in one struct each (a __shared__ array of bf16 itself would get a guard variable
// from the host compiler, which the emulator refuses as dynamic initialisation). Every array's size is a
// multiple of 32 bytes, so each starts 32-byte aligned.
template <int kT>
struct ForwardSmem {
  __nv_bfloat16 xs[kT][kLd];  // q, then Pd
  __nv_bfloat16 ys[kT][kLd];  // k, then v
  float fs[kT][kFLd];         // S, then ctx
};
template <int kT>
struct BackwardSmem {
  __nv_bfloat16 xs[kT][kLd];  // Pd, then k
  __nv_bfloat16 ys[kT][kLd];  // v, then bf16(dS * scale)
  __nv_bfloat16 zs[kT][kLd];  // dctx, then q
  float fs[kT][kFLd];         // dPd, dS, then each gradient
};

// Lanes per score row: a segment of 8 lanes (up to 9 Philox groups) for T <= 32, 16 above.
template <int kT>
constexpr int kRowLanes = kT <= 32 ? 8 : 16;

template <int kT, class TS>
__global__ void __launch_bounds__(kThreads)
    attn_mma_forward_kernel(float* __restrict__ ctx, __nv_bfloat16* __restrict__ ctx16, float* __restrict__ probs,
                            const TS* __restrict__ q, const TS* __restrict__ k, const TS* __restrict__ v, Head h,
                            AttnRows A) {
  __shared__ __align__(32) ForwardSmem<kT> sm;
  auto& xs = sm.xs;
  auto& ys = sm.ys;
  auto& fs = sm.fs;
  const int64_t z = blockIdx.x, b = z / h.NH, col = (z % h.NH) * h.HS;
  const int64_t in0 = b * h.T * h.ld + col, out0 = b * h.T * h.H + col;
  stage<kT>(xs, q + in0, h.ld, h.T, h.HS, h.vec);
  stage<kT>(ys, k + in0, h.ld, h.T, h.HS, h.vec);
  __syncthreads();
  product<FragA, FragBT>(
      fs, h.tT, h.tT, h.tH, h.scale, [&](int m, int kk) { return &xs[m * 16][kk * 16]; },
      [&](int kk, int n) { return &ys[n * 16][kk * 16]; });  // B = k^T: k's rows read column-major
  __syncthreads();
  const bool mix = ctx != nullptr || ctx16 != nullptr;  // ctx = Pd v wanted (else P only)
  if (mix) stage<kT>(ys, v + in0, h.ld, h.T, h.HS, h.vec);
  constexpr int kLanes = kRowLanes<kT>, kRowsPerWarp = 32 / kLanes;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  for (int r0 = warp * kRowsPerWarp; r0 < h.T; r0 += kWarps * kRowsPerWarp) {
    const int r = r0 + lane / kLanes;
    const bool active = r < h.T;
    const int i = active ? r : r0;  // an inactive segment's pointers stay in range (it reads nothing)
    const int64_t row = z * h.T + i;
    softmax_row<kLanes>(A, row, lane % kLanes, fs[i], probs != nullptr ? probs + row * h.T : fs[i], xs[i], active);
  }
  if (!mix) return;  // P only (a backward without probs forms it again)
  zero_padding<kT>(xs, h);
  __syncthreads();
  product<FragA, FragB>(
      fs, h.tT, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &xs[m * 16][kk * 16]; },
      [&](int kk, int n) { return &ys[kk * 16][n * 16]; });
  __syncthreads();
  write_rows(at(ctx, out0), at(ctx16, out0), h.H, fs, h);
}

template <int kT, class TS>
__global__ void __launch_bounds__(kThreads)
    attn_mma_backward_kernel(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv,
                             __nv_bfloat16* __restrict__ dqkv16, const TS* __restrict__ dctx, const TS* __restrict__ q,
                             const TS* __restrict__ k, const TS* __restrict__ v, const float* __restrict__ probs,
                             Head h, AttnRows A, double* __restrict__ colSums) {
  __shared__ __align__(32) BackwardSmem<kT> sm;
  auto& xs = sm.xs;
  auto& ys = sm.ys;
  auto& zs = sm.zs;
  auto& fs = sm.fs;
  const int64_t z = blockIdx.x, b = z / h.NH, col = (z % h.NH) * h.HS;
  const int64_t in0 = b * h.T * h.ld + col, out0 = b * h.T * h.H + col;
  double* sums = at(colSums, b * h.ld + col);  // this sentence's row of sums (ld = 3H: packed), q's block
  stage<kT>(ys, v + in0, h.ld, h.T, h.HS, h.vec);
  stage<kT>(zs, dctx + out0, h.H, h.T, h.HS, h.vec);
  __syncthreads();
  product<FragA, FragBT>(
      fs, h.tT, h.tT, h.tH, 1.0f, [&](int m, int kk) { return &zs[m * 16][kk * 16]; },
      [&](int kk, int n) { return &ys[n * 16][kk * 16]; });  // dPd = dctx v^T
  __syncthreads();
  constexpr int kLanes = kRowLanes<kT>, kRowsPerWarp = 32 / kLanes;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  for (int r0 = warp * kRowsPerWarp; r0 < h.T; r0 += kWarps * kRowsPerWarp) {
    const int r = r0 + lane / kLanes;
    const bool active = r < h.T;
    const int i = active ? r : r0;
    const int64_t row = z * h.T + i;
    softmax_backward_row<kLanes>(A, row, lane % kLanes, fs[i], probs + row * h.T, xs[i], active);
  }
  zero_padding<kT>(xs, h);
  __syncthreads();
  // dRel: thread d sums dS along diagonal d = j - i + T - 1, rows in order (2T - 1 <= 127 diagonals).
  const int d = static_cast<int>(threadIdx.x);
  if (A.dRel != nullptr && d < 2 * h.T - 1) {
    float sum = 0.0f;
    for (int i = 0; i < h.T; ++i) {
      const int j = i + d - (h.T - 1);
      if (j >= 0 && j < h.T) sum += fs[i][j];
    }
    A.dRel[(b * (2 * h.T - 1) + d) * h.NH + z % h.NH] = sum;
  }
  for (int idx = static_cast<int>(threadIdx.x); idx < kT * kT; idx += kThreads) {
    const int r = idx / kT, c = idx % kT;
    ys[r][c] = __float2bfloat16(r < h.T && c < h.T ? fs[r][c] * h.scale : 0.0f);
  }
  __syncthreads();
  product<FragAT, FragB>(
      fs, h.tT, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &xs[kk * 16][m * 16]; },
      [&](int kk, int n) { return &zs[kk * 16][n * 16]; });  // dv = Pd^T dctx: Pd read column-major
  __syncthreads();
  write_rows(at(dv, in0), at(dqkv16, 2 * h.H + in0), h.ld, fs, h);
  sum_columns(at(sums, 2 * h.H), fs, h);
  stage<kT>(xs, k + in0, h.ld, h.T, h.HS, h.vec);
  stage<kT>(zs, q + in0, h.ld, h.T, h.HS, h.vec);
  __syncthreads();
  product<FragA, FragB>(
      fs, h.tT, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &ys[m * 16][kk * 16]; },
      [&](int kk, int n) { return &xs[kk * 16][n * 16]; });  // dq = dS k (dS carries the scale)
  __syncthreads();
  write_rows(at(dq, in0), at(dqkv16, in0), h.ld, fs, h);
  sum_columns(sums, fs, h);
  __syncthreads();
  product<FragAT, FragB>(
      fs, h.tT, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &ys[kk * 16][m * 16]; },
      [&](int kk, int n) { return &zs[kk * 16][n * 16]; });  // dk = dS^T q
  __syncthreads();
  write_rows(at(dk, in0), at(dqkv16, h.H + in0), h.ld, fs, h);
  sum_columns(at(sums, h.H), fs, h);
}

// Whether every fp32 array is 16-byte aligned, every bf16 one 8-byte aligned (null ones are).
bool aligned(std::initializer_list<const float*> fp32, std::initializer_list<const void*> bf16) {
  for (const float* p : fp32)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  for (const void* p : bf16)
    if (reinterpret_cast<uintptr_t>(p) % 8 != 0) return false;
  return true;
}

// The inputs' alignment: fp32 ones with the fp32 arrays, bf16 ones with the bf16 arrays.
bool aligned(std::initializer_list<const float*> fp32, std::initializer_list<const void*> bf16,
             std::initializer_list<MmaIn> in) {
  for (const MmaIn& x : in)
    if (reinterpret_cast<uintptr_t>(x.p) % (x.bf16 ? 8 : 16) != 0) return false;
  return aligned(fp32, bf16);
}

// vec: the arrays' alignment (aligned()); the sizes' is checked here.
Head head_of(const AttnSizes& s, bool alignedArrays) {
  const int tT = static_cast<int>((s.T + 15) / 16), tH = static_cast<int>((s.HS + 15) / 16);
  const bool vec = alignedArrays && s.HS % 4 == 0 && s.ld % 4 == 0 && s.H() % 4 == 0;
  return Head{
      static_cast<int>(s.T), static_cast<int>(s.NH), static_cast<int>(s.HS), s.ld, s.H(), s.scale(), tT, tH, vec};
}

template <int kT, class TS>
void launch_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, MmaIn q, MmaIn k, MmaIn v, const Head& h,
                    const AttnSizes& s, const AttnRows& rows, cudaStream_t stream) {
  const dim3 blocks(static_cast<unsigned>(s.B * s.NH));
  launch(kT == 32 ? "attn_mma_forward_kernel<32>" : "attn_mma_forward_kernel<64>", attn_mma_forward_kernel<kT, TS>,
         blocks, kThreads, 0, stream, ctx, ctx16, probs, q.as<TS>(), k.as<TS>(), v.as<TS>(), h, rows);
}

template <int kT, class TS>
void launch_backward(float* dq, float* dk, float* dv, __nv_bfloat16* dqkv16, MmaIn dctx, MmaIn q, MmaIn k, MmaIn v,
                     const float* probs, const Head& h, const AttnSizes& s, const AttnRows& rows, double* colSums,
                     cudaStream_t stream) {
  const dim3 blocks(static_cast<unsigned>(s.B * s.NH));
  launch(kT == 32 ? "attn_mma_backward_kernel<32>" : "attn_mma_backward_kernel<64>", attn_mma_backward_kernel<kT, TS>,
         blocks, kThreads, 0, stream, dq, dk, dv, dqkv16, dctx.as<TS>(), q.as<TS>(), k.as<TS>(), v.as<TS>(), probs, h,
         rows, colSums);
}

// The inputs' type: all fp32 or all bf16.
bool all_bf16(std::initializer_list<MmaIn> in) {
  const bool bf16 = in.begin()->bf16;
  for (const MmaIn& x : in)
    if (x.bf16 != bf16) throw CudaError("attention (tensor cores): inputs of mixed types");
  return bf16;
}

}  // namespace

void attention_mma_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, MmaIn q, MmaIn k, MmaIn v,
                           const AttnSizes& s, const AttnRows& rows, cudaStream_t stream) {
  const Head h = head_of(s, aligned({ctx}, {ctx16}, {q, k, v}));
  const bool bf16 = all_bf16({q, k, v});
  if (s.T <= 32 && bf16)
    launch_forward<32, __nv_bfloat16>(ctx, ctx16, probs, q, k, v, h, s, rows, stream);
  else if (s.T <= 32)
    launch_forward<32, float>(ctx, ctx16, probs, q, k, v, h, s, rows, stream);
  else if (bf16)
    launch_forward<64, __nv_bfloat16>(ctx, ctx16, probs, q, k, v, h, s, rows, stream);
  else
    launch_forward<64, float>(ctx, ctx16, probs, q, k, v, h, s, rows, stream);
}

void attention_mma_backward(float* dq, float* dk, float* dv, __nv_bfloat16* dqkv16, MmaIn dctx, MmaIn q, MmaIn k,
                            MmaIn v, const float* probs, const AttnSizes& s, const AttnRows& rows, bool write32,
                            double* colSums, cudaStream_t stream) {
  const Head h = head_of(s, aligned({dq, dk, dv}, {dqkv16}, {dctx, q, k, v}));
  const bool bf16 = all_bf16({dctx, q, k, v});
  float *gq = write32 ? dq : nullptr, *gk = write32 ? dk : nullptr, *gv = write32 ? dv : nullptr;
  if (s.T <= 32 && bf16)
    launch_backward<32, __nv_bfloat16>(gq, gk, gv, dqkv16, dctx, q, k, v, probs, h, s, rows, colSums, stream);
  else if (s.T <= 32)
    launch_backward<32, float>(gq, gk, gv, dqkv16, dctx, q, k, v, probs, h, s, rows, colSums, stream);
  else if (bf16)
    launch_backward<64, __nv_bfloat16>(gq, gk, gv, dqkv16, dctx, q, k, v, probs, h, s, rows, colSums, stream);
  else
    launch_backward<64, float>(gq, gk, gv, dqkv16, dctx, q, k, v, probs, h, s, rows, colSums, stream);
}

}  // namespace simcsepp::cuda
