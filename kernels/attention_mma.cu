// Attention on the tensor cores for short sentences (T <= 64, HS <= 64; up to 128: attention_mma_long.cu), at
// Precision::kBf16: one block of 4 warps per head z = b*NH + h holds the head's q, k, v (and dctx) as bfloat16
// in shared memory and runs every product as WMMA m16n16k16 tiles (bf16 x bf16 -> fp32 sums), the score rows
// (softmax, mask, Philox dropout, relative bias) in fp32 between them. Operands and roundings are ops/encoder.h's
// bf16 contract, which the CPU backend computes too (native/cpu/attention.cpp); the sums' order is the tensor
// cores'. Rows and columns are padded to multiples of 16 with zeros (Tp = ceil(T/16) 16, Hp likewise).
//
//   forward   xs = bf16(q_h), ys = bf16(k_h)               staged from the fp32 rows, zeros in the padding
//             (kT = 32 from bf16 rows: vs = v_h too)       (the loads of all of them in flight at once)
//             S = xs ys^T * scale   -> fs (fp32)           (Tp/16)^2 tiles over the warps, Hp/16 k-steps each
//             P = softmax(S) -> probs; xs = bf16(D ⊙ P)    one segment of 8 (T <= 32) or 16 lanes per row
//             ys = bf16(v_h) (or vs, staged above)         (in the same phase: k is no longer read)
//             ctx = xs ys -> fs -> ctx (+ bf16 copy)       Tp/16 x Hp/16 tiles, Tp/16 k-steps
//   backward  (no probs, T <= 32: xs = bf16(q_h), ys = bf16(k_h) and zs = bf16(dctx_h) staged together, S -> fs,
//             P = softmax(S) -> ps, as the forward does: the same bits, and B NH T^2 floats neither written by the
//             forward nor read here)
//             ys = bf16(v_h), zs = bf16(dctx_h)            (together; dctx already staged when P was formed)
//             dPd = zs ys^T -> fs
//             fs = dS (fp32, in place), xs = bf16(D ⊙ P)   the rows (softmax_backward_row, P from probs or ps)
//             dRel (MPNet's bias): thread d sums fs along diagonal d, rows in order (as the CPU)
//             ys = bf16(dS * scale)
//             dv = xs^T zs -> fs -> dv                     (xs read column-major: Pd^T)
//             xs = bf16(k_h), zs = bf16(q_h)               (together)
//             dq = ys xs -> fs -> dq;  dk = ys^T zs -> fs -> dk
// Shared memory (static, kT = 32 or 64 rows): bf16 arrays [kT][72] (rows 144 bytes: 16-byte multiples as WMMA
// wants, 4 banks apart so that 8 rows' 16-byte pieces hit all 32 banks) and one fp32 [kT][68]: 18 KB (kT = 32; 22 KB
// with v's own array) or 36 KB forward, 23 / 45 KB backward (31 KB forming P: kT = 32 only). A tile's pointer is
// 32-byte aligned (16 rows x 144 or 272 bytes).
// The blocks are bound by global memory's latency: each staging issues all of a thread's loads of the arrays staged
// together before it stores any (stage2, stage3), where that costs no registers a thread (checked with ptxas -v:
// 64 forward at kT = 32, 72 forming P); from 64 fp32 rows the arrays are staged one at a time. q, k, v and dctx are
// fp32 rows, rounded as they are staged, or bf16 values (bf16Storage: the packed q | k | v and dctx kept in bf16 by the
// model, staged as they are: the same values, half the bytes read), TS in the kernels. The products read shared memory
// only; global memory is read once (coalesced: consecutive threads, consecutive columns; 16-byte loads and stores when
// the head's columns come in aligned fours: Head::vec) and written once.
#include <cstdint>
#include <type_traits>

#include "attention_mma.cuh"
#include "attention_mma_tiles.cuh"
#include "cuda_check.cuh"
#include "launch.cuh"

namespace simcsepp::cuda {

namespace {

using namespace mma;

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
  __nv_bfloat16 ys[kT][kLd];  // k, then v (kT = 64)
  float fs[kT][kFLd];         // S, then ctx
};
// At kT = 32 from bf16 rows v has an array of its own, staged with q and k (kEarlyV below).
template <int kT>
struct ForwardSmemEarlyV : ForwardSmem<kT> {
  __nv_bfloat16 vs[kT][kLd];
};
// Whether the forward stages v with q and k, so that the block waits for global memory once instead of twice (the
// kernels are bound by its latency, not its bandwidth): at kT = 32 from bf16 rows (training's q | k | v), where v's
// array (4.5 KB, 22 KB in all) and the loads in flight leave the blocks an SM holds as they were (bounded by 64
// registers a thread); at kT = 64 it would cost a block an SM (45 KB), from fp32 rows 8 registers a thread (72).
template <int kT, class TS>
constexpr bool kEarlyV = kT == 32 && std::is_same_v<TS, __nv_bfloat16>;
// Whether q's and k's loads are issued together (stage2): but from 64 fp32 rows, where the thread's 16 quads in flight
// would take 95 registers a thread instead of 80 (a block less an SM).
template <int kT, class TS>
constexpr bool kPairQK = kT == 32 || std::is_same_v<TS, __nv_bfloat16>;
template <int kT>
struct BackwardSmem {
  __nv_bfloat16 xs[kT][kLd];  // Pd, then k
  __nv_bfloat16 ys[kT][kLd];  // v, then bf16(dS * scale)
  __nv_bfloat16 zs[kT][kLd];  // dctx, then q
  float fs[kT][kFLd];         // dPd, dS, then each gradient
};
// The backward that forms P itself (no probs; kT = 32 only: 31 KB, under the 48 KB of static shared memory): q and k
// first in xs and ys, S in fs, P in ps.
template <int kT>
struct BackwardFormingSmem : BackwardSmem<kT> {
  float ps[kT][kFLd];
};

// Lanes per score row: a segment of 8 lanes (up to 9 Philox groups) for T <= 32, 16 above.
template <int kT>
constexpr int kRowLanes = kT <= 32 ? 8 : 16;

template <int kT, class TS>
__global__ void __launch_bounds__(kThreads)
    attn_mma_forward_kernel(float* __restrict__ ctx, __nv_bfloat16* __restrict__ ctx16, float* __restrict__ probs,
                            const TS* __restrict__ q, const TS* __restrict__ k, const TS* __restrict__ v, Head h,
                            AttnRows A) {
  __shared__ __align__(32) std::conditional_t<kEarlyV<kT, TS>, ForwardSmemEarlyV<kT>, ForwardSmem<kT>> sm;
  auto& xs = sm.xs;
  auto& ys = sm.ys;
  auto& fs = sm.fs;
  const int64_t z = blockIdx.x, b = z / h.NH, col = (z % h.NH) * h.HS;
  const int64_t in0 = b * h.T * h.ld + col, out0 = b * h.T * h.H + col;
  const bool mix = ctx != nullptr || ctx16 != nullptr;  // ctx = Pd v wanted (else P only)
  // v's array: its own, staged now (kEarlyV), or ys once S is formed.
  __nv_bfloat16(*vs)[kLd] = ys;
  if constexpr (kEarlyV<kT, TS>) vs = sm.vs;
  if constexpr (kEarlyV<kT, TS>) {
    // q's, k's and v's loads all issued before any is stored (stage3): one wait.
    if (mix)
      stage3<kT>(xs, q + in0, h.ld, ys, k + in0, h.ld, sm.vs, v + in0, h.ld, h.T, h.HS, h.vec);
    else
      stage2<kT>(xs, q + in0, h.ld, ys, k + in0, h.ld, h.T, h.HS, h.vec);
  } else if constexpr (kPairQK<kT, TS>) {
    stage2<kT>(xs, q + in0, h.ld, ys, k + in0, h.ld, h.T, h.HS, h.vec);
  } else {
    stage<kT>(xs, q + in0, h.ld, h.T, h.HS, h.vec);
    stage<kT>(ys, k + in0, h.ld, h.T, h.HS, h.vec);
  }
  __syncthreads();
  product<FragA, FragBT>(
      fs, h.tT, h.tT, h.tH, h.scale, [&](int m, int kk) { return &xs[m * 16][kk * 16]; },
      [&](int kk, int n) { return &ys[n * 16][kk * 16]; });  // B = k^T: k's rows read column-major
  __syncthreads();
  if (!kEarlyV<kT, TS> && mix) stage<kT>(ys, v + in0, h.ld, h.T, h.HS, h.vec);
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
      [&](int kk, int n) { return &vs[kk * 16][n * 16]; });
  __syncthreads();
  write_rows(at(ctx, out0), at(ctx16, out0), h.H, fs, h);
}

// kForm: probs is null and P is formed here first, as the forward forms it (the same staging, product and score rows:
// the same bits), into shared memory.
template <int kT, class TS, bool kForm>
__global__ void __launch_bounds__(kThreads)
    attn_mma_backward_kernel(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv,
                             __nv_bfloat16* __restrict__ dqkv16, const TS* __restrict__ dctx, const TS* __restrict__ q,
                             const TS* __restrict__ k, const TS* __restrict__ v, const float* __restrict__ probs,
                             Head h, AttnRows A, double* __restrict__ colSums) {
  static_assert(!kForm || kT == 32, "P formed in the block at kT = 32 only (shared memory)");
  __shared__ __align__(32) std::conditional_t<kForm, BackwardFormingSmem<kT>, BackwardSmem<kT>> sm;
  auto& xs = sm.xs;
  auto& ys = sm.ys;
  auto& zs = sm.zs;
  auto& fs = sm.fs;
  const int64_t z = blockIdx.x, b = z / h.NH, col = (z % h.NH) * h.HS;
  const int64_t in0 = b * h.T * h.ld + col, out0 = b * h.T * h.H + col;
  double* sums = at(colSums, b * h.ld + col);  // this sentence's row of sums (ld = 3H: packed), q's block
  constexpr int kLanes = kRowLanes<kT>, kRowsPerWarp = 32 / kLanes;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  // Score row i's P: formed below (kForm), or the forward's.
  const auto P = [&](int i) -> const float* {
    if constexpr (kForm)
      return sm.ps[i];
    else
      return probs + (z * h.T + i) * h.T;
  };
  if constexpr (kForm) {
    // dctx into zs too (free until the products after P): q's, k's and dctx's loads in flight at once.
    stage3<kT>(xs, q + in0, h.ld, ys, k + in0, h.ld, zs, dctx + out0, h.H, h.T, h.HS, h.vec);
    __syncthreads();
    product<FragA, FragBT>(
        fs, h.tT, h.tT, h.tH, h.scale, [&](int m, int kk) { return &xs[m * 16][kk * 16]; },
        [&](int kk, int n) { return &ys[n * 16][kk * 16]; });  // S = q k^T * scale, as the forward
    __syncthreads();
    for (int r0 = warp * kRowsPerWarp; r0 < h.T; r0 += kWarps * kRowsPerWarp) {
      const int r = r0 + lane / kLanes;
      const bool active = r < h.T;
      const int i = active ? r : r0;
      softmax_row<kLanes, float>(A, z * h.T + i, lane % kLanes, fs[i], sm.ps[i], nullptr, active);
    }
    __syncthreads();  // ys is staged again below
    stage<kT>(ys, v + in0, h.ld, h.T, h.HS, h.vec);
  } else if constexpr (kPairQK<kT, TS>) {
    stage2<kT>(ys, v + in0, h.ld, zs, dctx + out0, h.H, h.T, h.HS, h.vec);
  } else {
    stage<kT>(ys, v + in0, h.ld, h.T, h.HS, h.vec);
    stage<kT>(zs, dctx + out0, h.H, h.T, h.HS, h.vec);
  }
  __syncthreads();
  product<FragA, FragBT>(
      fs, h.tT, h.tT, h.tH, 1.0f, [&](int m, int kk) { return &zs[m * 16][kk * 16]; },
      [&](int kk, int n) { return &ys[n * 16][kk * 16]; });  // dPd = dctx v^T
  __syncthreads();
  for (int r0 = warp * kRowsPerWarp; r0 < h.T; r0 += kWarps * kRowsPerWarp) {
    const int r = r0 + lane / kLanes;
    const bool active = r < h.T;
    const int i = active ? r : r0;
    softmax_backward_row<kLanes>(A, z * h.T + i, lane % kLanes, fs[i], P(i), xs[i], active);
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
  sum_columns(at(sums, 2 * h.H), fs, h.T, h);
  if constexpr (kPairQK<kT, TS>) {
    stage2<kT>(xs, k + in0, h.ld, zs, q + in0, h.ld, h.T, h.HS, h.vec);
  } else {
    stage<kT>(xs, k + in0, h.ld, h.T, h.HS, h.vec);
    stage<kT>(zs, q + in0, h.ld, h.T, h.HS, h.vec);
  }
  __syncthreads();
  product<FragA, FragB>(
      fs, h.tT, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &ys[m * 16][kk * 16]; },
      [&](int kk, int n) { return &xs[kk * 16][n * 16]; });  // dq = dS k (dS carries the scale)
  __syncthreads();
  write_rows(at(dq, in0), at(dqkv16, in0), h.ld, fs, h);
  sum_columns(sums, fs, h.T, h);
  __syncthreads();
  product<FragAT, FragB>(
      fs, h.tT, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &ys[kk * 16][m * 16]; },
      [&](int kk, int n) { return &zs[kk * 16][n * 16]; });  // dk = dS^T q
  __syncthreads();
  write_rows(at(dk, in0), at(dqkv16, h.H + in0), h.ld, fs, h);
  sum_columns(at(sums, h.H), fs, h.T, h);
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
  if constexpr (kT == 32) {
    if (probs == nullptr) {
      launch("attn_mma_backward_kernel<32> (P formed in the block)", attn_mma_backward_kernel<kT, TS, true>, blocks,
             kThreads, 0, stream, dq, dk, dv, dqkv16, dctx.as<TS>(), q.as<TS>(), k.as<TS>(), v.as<TS>(), probs, h, rows,
             colSums);
      return;
    }
  }
  if (probs == nullptr) throw CudaError("attention_mma_backward: probs is null for T > 32");
  launch(kT == 32 ? "attn_mma_backward_kernel<32>" : "attn_mma_backward_kernel<64>",
         attn_mma_backward_kernel<kT, TS, false>, blocks, kThreads, 0, stream, dq, dk, dv, dqkv16, dctx.as<TS>(),
         q.as<TS>(), k.as<TS>(), v.as<TS>(), probs, h, rows, colSums);
}

}  // namespace

void attention_mma_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, MmaIn q, MmaIn k, MmaIn v,
                           const AttnSizes& s, const AttnRows& rows, cudaStream_t stream) {
  if (s.T > kMmaWholeMaxT) return attention_mma_long_forward(ctx, ctx16, probs, q, k, v, s, rows, stream);
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
                            double* colSums, float* scratch, cudaStream_t stream) {
  if (s.T > kMmaWholeMaxT)
    return attention_mma_long_backward(dq, dk, dv, dqkv16, dctx, q, k, v, probs, s, rows, write32, colSums, scratch,
                                       stream);
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
