// Attention on the tensor cores for sentences of 64 < T <= 128 tokens (HS <= 64), at Precision::kBf16: the same
// operands, roundings and score rows as attention_mma.cu (ops/encoder.h's bf16 contract, which the CPU backend
// computes too), with the queries taken 64 rows at a time, so that every block fits the 99 KB of shared memory
// the smallest GPUs we run on (compute capability 8.6, 8.9) let a block opt into (dynamic shared memory,
// dynamic_smem.cuh). A block of 4 warps per head z = b*NH + h; a score row of 128 keys takes a whole warp
// (at most one Philox group per lane). Keys are padded to Tp = 16 ceil(T/16) with zeros, like the chunk's rows.
//
//   forward   ks = bf16(k_h), vs = bf16(v_h)                    staged once
//             per chunk of 64 query rows:
//               qs = bf16(q_chunk);  S = qs ks^T * scale -> fs  (<= 4 x 8 tiles, Hp/16 k-steps)
//               P = softmax(S) -> probs; ps = bf16(D ⊙ P)
//               ctx_chunk = ps vs -> fs -> ctx (+ bf16 copy)
//             shared: ks, vs [128][72], qs [64][72] bf16; ps [64][136] bf16; fs [64][132] fp32: 97,280 bytes
//   backward, two kernels (dk and dv sum over every query; a block holding all 128 rows of dS, Pd and the
//   operands would need ~156 KB):
//     rows    vs = bf16(v_h), ks = bf16(k_h)                    staged once
//             per chunk: gs = bf16(dctx_chunk);  dPd = gs vs^T -> fs
//               fs = dS (in place, softmax_backward_row); bf16(D ⊙ P) -> scratch Pd (global)
//               dRel: thread d adds dS along diagonals d and d + 128, rows in order across the chunks
//               ds = bf16(dS * scale) -> shared and scratch dS (global)
//               dq_chunk = ds ks -> fs -> dq;  dq's column sums, rows in order across the chunks
//             shared: vs, ks [128][72], gs [64][72], ds [64][136] bf16; fs [64][132] fp32: 97,280 bytes
//     keys    xs = scratch Pd [128][136], ys = bf16(dctx_h):  dv = xs^T ys -> fs -> dv
//             xs = scratch dS, ys = bf16(q_h):               dk = xs^T ys -> fs -> dk
//             shared: xs [128][136], ys [128][72] bf16; fs [128][68] fp32: 88,064 bytes
// The scratch holds B NH T^2 bfloat16 of Pd and as many of dS (B NH T^2 floats in all): the same rounded values the
// one-kernel backward keeps in shared memory, so the results are those attention_mma.cu's structure would give.
#include <cstdint>
#include <utility>

#include "attention_mma.cuh"
#include "attention_mma_tiles.cuh"
#include "cuda_check.cuh"
#include "dynamic_smem.cuh"
#include "launch.cuh"

namespace simcsepp::cuda {

namespace {

using namespace mma;

constexpr int kLongT = 128;           // keys the arrays hold
constexpr int kChunk = 64;            // query rows per pass
constexpr int kLongLd = kLongT + 8;   // bf16 rows of 128 keys (272 bytes: 16-byte multiple, 4 banks apart)
constexpr int kLongFLd = kLongT + 4;  // fp32 rows of 128 scores
static_assert(kLongLd * 2 % 16 == 0 && kLongFLd * 4 % 16 == 0, "WMMA wants 16-byte multiples as row strides");

// Every array's size is a multiple of 32 bytes, so each starts 32-byte aligned (WMMA's tiles).
struct ForwardSmem {
  __nv_bfloat16 ks[kLongT][kLd];
  __nv_bfloat16 vs[kLongT][kLd];
  __nv_bfloat16 qs[kChunk][kLd];
  __nv_bfloat16 ps[kChunk][kLongLd];
  float fs[kChunk][kLongFLd];  // S, then ctx
};
struct RowsSmem {
  __nv_bfloat16 vs[kLongT][kLd];
  __nv_bfloat16 ks[kLongT][kLd];
  __nv_bfloat16 gs[kChunk][kLd];
  __nv_bfloat16 ds[kChunk][kLongLd];
  float fs[kChunk][kLongFLd];  // dPd, dS, then dq
};
struct KeysSmem {
  __nv_bfloat16 xs[kLongT][kLongLd];  // Pd, then bf16(dS * scale)
  __nv_bfloat16 ys[kLongT][kLd];      // dctx, then q
  float fs[kLongT][kFLd];             // dv, then dk
};
constexpr size_t kMaxBlockSmem = 99 * 1024;  // compute capability 8.6 and 8.9 (the emulator's limit too)
static_assert(sizeof(ForwardSmem) <= kMaxBlockSmem && sizeof(RowsSmem) <= kMaxBlockSmem &&
                  sizeof(KeysSmem) <= kMaxBlockSmem,
              "every block fits the smallest opt-in shared memory");

// Rows [q0, q0 + rows) of a chunk: rows, and its 16-row tiles.
struct ChunkRows {
  int q0, rows, tiles;
};
__device__ __forceinline__ ChunkRows chunk_rows(int q0, int T) {
  const int rows = T - q0 < kChunk ? T - q0 : kChunk;
  return ChunkRows{q0, rows, (rows + 15) / 16};
}

// A head's T rows (ld apart) into [kLongT][kLd], in one pass: all of a thread's loads in flight together. Its staging
// registers (16 quads a thread) cost no occupancy: shared memory bounds these kernels to 2 blocks an SM at most.
template <class TS>
__device__ __forceinline__ void stage_keys(__nv_bfloat16 (*dst)[kLd], const TS* src, int64_t ld, const Head& h) {
  stage<kLongT>(dst, src, ld, h.T, h.HS, h.vec);
}

template <class TS>
__global__ void __launch_bounds__(kThreads)
    attn_mma_long_forward_kernel(float* __restrict__ ctx, __nv_bfloat16* __restrict__ ctx16, float* __restrict__ probs,
                                 const TS* __restrict__ q, const TS* __restrict__ k, const TS* __restrict__ v, Head h,
                                 AttnRows A) {
  ForwardSmem& sm = *dynamic_smem<ForwardSmem>();
  const int64_t z = blockIdx.x, b = z / h.NH, col = (z % h.NH) * h.HS;
  const int64_t in0 = b * h.T * h.ld + col, out0 = b * h.T * h.H + col;
  const bool mix = ctx != nullptr || ctx16 != nullptr;  // ctx = Pd v wanted (else P only)
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  stage_keys(sm.ks, k + in0, h.ld, h);
  if (mix) stage_keys(sm.vs, v + in0, h.ld, h);
  for (int q0 = 0; q0 < h.T; q0 += kChunk) {
    const ChunkRows c = chunk_rows(q0, h.T);
    stage<kChunk>(sm.qs, q + in0 + q0 * h.ld, h.ld, c.rows, h.HS, h.vec);
    __syncthreads();
    product<FragA, FragBT>(
        &sm.fs[0][0], kLongFLd, c.tiles, h.tT, h.tH, h.scale, [&](int m, int kk) { return &sm.qs[m * 16][kk * 16]; },
        kLd, [&](int kk, int n) { return &sm.ks[n * 16][kk * 16]; }, kLd);  // B = k^T: k's rows read column-major
    __syncthreads();
    for (int r = warp; r < c.rows; r += kWarps) {
      const int64_t row = z * h.T + q0 + r;
      softmax_row<32>(A, row, lane, sm.fs[r], probs != nullptr ? probs + row * h.T : sm.fs[r], sm.ps[r]);
    }
    if (mix) {
      for (int idx = static_cast<int>(threadIdx.x); idx < kChunk * kLongT; idx += kThreads) {
        const int r = idx / kLongT, j = idx % kLongT;
        if (r >= c.rows || j >= h.T) sm.ps[r][j] = __float2bfloat16(0.0f);  // the product's padding
      }
      __syncthreads();
      product<FragA, FragB>(
          &sm.fs[0][0], kLongFLd, c.tiles, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &sm.ps[m * 16][kk * 16]; },
          kLongLd, [&](int kk, int n) { return &sm.vs[kk * 16][n * 16]; }, kLd);
      __syncthreads();
      write_rows(at(ctx, out0 + q0 * h.H), at(ctx16, out0 + q0 * h.H), h.H, sm.fs, c.rows, h);
    }
    __syncthreads();  // the next chunk overwrites qs and fs
  }
}

template <class TS>
__global__ void __launch_bounds__(kThreads)
    attn_mma_long_rows_kernel(float* __restrict__ dq, __nv_bfloat16* __restrict__ dqkv16,
                              __nv_bfloat16* __restrict__ pdOut, __nv_bfloat16* __restrict__ dsOut,
                              const TS* __restrict__ dctx, const TS* __restrict__ k, const TS* __restrict__ v,
                              const float* __restrict__ probs, Head h, AttnRows A, double* __restrict__ colSums) {
  RowsSmem& sm = *dynamic_smem<RowsSmem>();
  const int64_t z = blockIdx.x, b = z / h.NH, col = (z % h.NH) * h.HS;
  const int64_t in0 = b * h.T * h.ld + col, out0 = b * h.T * h.H + col;
  const int64_t square = static_cast<int64_t>(h.T) * h.T;
  __nv_bfloat16* const pdHead = pdOut + z * square;
  __nv_bfloat16* const dsHead = dsOut + z * square;
  const int t = static_cast<int>(threadIdx.x), warp = t / 32, lane = t % 32;
  const int diagonals = 2 * h.T - 1;  // <= 255: thread t owns diagonals t and t + 128
  float rel[2] = {0.0f, 0.0f};
  double colSum = 0.0;  // column t of dq (t < HS), rows in order
  stage_keys(sm.vs, v + in0, h.ld, h);
  stage_keys(sm.ks, k + in0, h.ld, h);
  for (int q0 = 0; q0 < h.T; q0 += kChunk) {
    const ChunkRows c = chunk_rows(q0, h.T);
    stage<kChunk>(sm.gs, dctx + out0 + q0 * h.H, h.H, c.rows, h.HS, h.vec);
    __syncthreads();
    product<FragA, FragBT>(
        &sm.fs[0][0], kLongFLd, c.tiles, h.tT, h.tH, 1.0f, [&](int m, int kk) { return &sm.gs[m * 16][kk * 16]; }, kLd,
        [&](int kk, int n) { return &sm.vs[n * 16][kk * 16]; }, kLd);  // dPd = dctx v^T
    __syncthreads();
    for (int r = warp; r < c.rows; r += kWarps) {
      const int64_t row = z * h.T + q0 + r;
      softmax_backward_row<32>(A, row, lane, sm.fs[r], probs + row * h.T, pdHead + static_cast<int64_t>(q0 + r) * h.T);
    }
    __syncthreads();
    if (A.dRel != nullptr)
      for (int u = 0; u < 2; ++u) {
        const int d = t + u * kThreads;
        if (d >= diagonals) continue;
        for (int r = 0; r < c.rows; ++r) {
          const int j = q0 + r + d - (h.T - 1);
          if (j >= 0 && j < h.T) rel[u] += sm.fs[r][j];
        }
      }
    for (int idx = t; idx < kChunk * kLongT; idx += kThreads) {
      const int r = idx / kLongT, j = idx % kLongT;
      const bool real = r < c.rows && j < h.T;
      const __nv_bfloat16 x = __float2bfloat16(real ? sm.fs[r][j] * h.scale : 0.0f);
      sm.ds[r][j] = x;
      if (real) dsHead[static_cast<int64_t>(q0 + r) * h.T + j] = x;
    }
    __syncthreads();
    product<FragA, FragB>(
        &sm.fs[0][0], kLongFLd, c.tiles, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &sm.ds[m * 16][kk * 16]; },
        kLongLd, [&](int kk, int n) { return &sm.ks[kk * 16][n * 16]; }, kLd);  // dq = dS k (dS carries the scale)
    __syncthreads();
    write_rows(at(dq, in0 + q0 * h.ld), at(dqkv16, in0 + q0 * h.ld), h.ld, sm.fs, c.rows, h);
    if (colSums != nullptr && t < h.HS)
      for (int r = 0; r < c.rows; ++r) colSum += sm.fs[r][t];
    __syncthreads();  // the next chunk overwrites gs, ds and fs
  }
  if (A.dRel != nullptr)
    for (int u = 0; u < 2; ++u) {
      const int d = t + u * kThreads;
      if (d < diagonals) A.dRel[(b * diagonals + d) * h.NH + z % h.NH] = rel[u];
    }
  if (colSums != nullptr && t < h.HS) colSums[b * h.ld + col + t] = colSum;  // q's block of the sentence's row
}

// dst[r][j] = src[r * T + j] for r, j < T, 0 elsewhere in [kLongT][kLongT]: a head's T x T bf16 scratch block. When
// T is a multiple of 8 (rows 16 bytes apart in a 256-byte aligned scratch) 8 values a load, 64 rows at a time with
// all of a thread's loads issued before its first store.
__device__ __forceinline__ void stage_square(__nv_bfloat16 (*dst)[kLongLd], const __nv_bfloat16* src, int T) {
  if (T % 8 == 0) {
    constexpr int kEightsPerRow = kLongT / 8, kPer = kChunk * kEightsPerRow / kThreads;
    for (int r0 = 0; r0 < kLongT; r0 += kChunk) {
      int4 x[kPer];
#pragma unroll
      for (int u = 0; u < kPer; ++u) {
        const int idx = static_cast<int>(threadIdx.x) + u * kThreads, r = r0 + idx / kEightsPerRow;
        const int j = idx % kEightsPerRow * 8;
        x[u] = r < T && j < T ? *reinterpret_cast<const int4*>(src + static_cast<int64_t>(r) * T + j)
                              : make_int4(0, 0, 0, 0);
      }
#pragma unroll
      for (int u = 0; u < kPer; ++u) {
        const int idx = static_cast<int>(threadIdx.x) + u * kThreads, r = r0 + idx / kEightsPerRow;
        __nv_bfloat16* d = &dst[r][idx % kEightsPerRow * 8];
        const auto word = [](int lo, int hi) {
          return static_cast<unsigned long long>(static_cast<unsigned>(hi)) << 32 | static_cast<unsigned>(lo);
        };
        Quad<__nv_bfloat16>::put(d, word(x[u].x, x[u].y));  // 4 values as stored, as stage() unpacks them
        Quad<__nv_bfloat16>::put(d + 4, word(x[u].z, x[u].w));
      }
    }
    return;
  }
  for (int idx = static_cast<int>(threadIdx.x); idx < kLongT * kLongT; idx += kThreads) {
    const int r = idx / kLongT, j = idx % kLongT;
    dst[r][j] = r < T && j < T ? src[static_cast<int64_t>(r) * T + j] : __float2bfloat16(0.0f);
  }
}

template <class TS>
__global__ void __launch_bounds__(kThreads)
    attn_mma_long_keys_kernel(float* __restrict__ dk, float* __restrict__ dv, __nv_bfloat16* __restrict__ dqkv16,
                              const __nv_bfloat16* __restrict__ pdIn, const __nv_bfloat16* __restrict__ dsIn,
                              const TS* __restrict__ dctx, const TS* __restrict__ q, Head h,
                              double* __restrict__ colSums) {
  KeysSmem& sm = *dynamic_smem<KeysSmem>();
  const int64_t z = blockIdx.x, b = z / h.NH, col = (z % h.NH) * h.HS;
  const int64_t in0 = b * h.T * h.ld + col, out0 = b * h.T * h.H + col;
  const int64_t square = static_cast<int64_t>(h.T) * h.T;
  double* sums = at(colSums, b * h.ld + col);  // this sentence's row of sums (ld = 3H: packed), q's block
  stage_square(sm.xs, pdIn + z * square, h.T);
  stage_keys(sm.ys, dctx + out0, h.H, h);  // dctx's rows are H apart, not ld
  __syncthreads();
  product<FragAT, FragB>(
      &sm.fs[0][0], kFLd, h.tT, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &sm.xs[kk * 16][m * 16]; }, kLongLd,
      [&](int kk, int n) { return &sm.ys[kk * 16][n * 16]; }, kLd);  // dv = Pd^T dctx: Pd read column-major
  __syncthreads();
  write_rows(at(dv, in0), at(dqkv16, 2 * h.H + in0), h.ld, sm.fs, h);
  sum_columns(at(sums, 2 * h.H), sm.fs, h.T, h);
  __syncthreads();
  stage_square(sm.xs, dsIn + z * square, h.T);
  stage_keys(sm.ys, q + in0, h.ld, h);
  __syncthreads();
  product<FragAT, FragB>(
      &sm.fs[0][0], kFLd, h.tT, h.tH, h.tT, 1.0f, [&](int m, int kk) { return &sm.xs[kk * 16][m * 16]; }, kLongLd,
      [&](int kk, int n) { return &sm.ys[kk * 16][n * 16]; }, kLd);  // dk = dS^T q
  __syncthreads();
  write_rows(at(dk, in0), at(dqkv16, h.H + in0), h.ld, sm.fs, h);
  sum_columns(at(sums, h.H), sm.fs, h.T, h);
}

// Launches `kernel` over the heads with `bytes` of dynamic shared memory (its limit raised at each launch: a host
// call of no cost that a captured graph does not repeat).
template <class Kernel, class... Args>
void launch_heads(const char* what, Kernel* kernel, size_t bytes, const AttnSizes& s, cudaStream_t stream,
                  Args&&... args) {
  allow_dynamic_smem(what, kernel, bytes);
  launch(what, kernel, dim3(static_cast<unsigned>(s.B * s.NH)), kThreads, bytes, stream, std::forward<Args>(args)...);
}

template <class TS>
void long_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, MmaIn q, MmaIn k, MmaIn v, const Head& h,
                  const AttnSizes& s, const AttnRows& rows, cudaStream_t stream) {
  launch_heads("attn_mma_long_forward_kernel", attn_mma_long_forward_kernel<TS>, sizeof(ForwardSmem), s, stream, ctx,
               ctx16, probs, q.as<TS>(), k.as<TS>(), v.as<TS>(), h, rows);
}

template <class TS>
void long_backward(float* dq, float* dk, float* dv, __nv_bfloat16* dqkv16, MmaIn dctx, MmaIn q, MmaIn k, MmaIn v,
                   const float* probs, const Head& h, const AttnSizes& s, const AttnRows& rows, double* colSums,
                   float* scratch, cudaStream_t stream) {
  auto* pd = reinterpret_cast<__nv_bfloat16*>(scratch);
  __nv_bfloat16* ds = pd + s.B * s.NH * s.T * s.T;
  launch_heads("attn_mma_long_rows_kernel", attn_mma_long_rows_kernel<TS>, sizeof(RowsSmem), s, stream, dq, dqkv16, pd,
               ds, dctx.as<TS>(), k.as<TS>(), v.as<TS>(), probs, h, rows, colSums);
  launch_heads("attn_mma_long_keys_kernel", attn_mma_long_keys_kernel<TS>, sizeof(KeysSmem), s, stream, dk, dv, dqkv16,
               static_cast<const __nv_bfloat16*>(pd), static_cast<const __nv_bfloat16*>(ds), dctx.as<TS>(), q.as<TS>(),
               h, colSums);
}

}  // namespace

void attention_mma_long_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, MmaIn q, MmaIn k, MmaIn v,
                                const AttnSizes& s, const AttnRows& rows, cudaStream_t stream) {
  const Head h = head_of(s, aligned({ctx}, {ctx16}, {q, k, v}));
  if (all_bf16({q, k, v}))
    long_forward<__nv_bfloat16>(ctx, ctx16, probs, q, k, v, h, s, rows, stream);
  else
    long_forward<float>(ctx, ctx16, probs, q, k, v, h, s, rows, stream);
}

void attention_mma_long_backward(float* dq, float* dk, float* dv, __nv_bfloat16* dqkv16, MmaIn dctx, MmaIn q, MmaIn k,
                                 MmaIn v, const float* probs, const AttnSizes& s, const AttnRows& rows, bool write32,
                                 double* colSums, float* scratch, cudaStream_t stream) {
  if (scratch == nullptr) throw CudaError("attention (tensor cores, T > 64): the backward needs its scratch");
  const Head h = head_of(s, aligned({dq, dk, dv}, {dqkv16}, {dctx, q, k, v}));
  float *gq = write32 ? dq : nullptr, *gk = write32 ? dk : nullptr, *gv = write32 ? dv : nullptr;
  if (all_bf16({dctx, q, k, v}))
    long_backward<__nv_bfloat16>(gq, gk, gv, dqkv16, dctx, q, k, v, probs, h, s, rows, colSums, scratch, stream);
  else
    long_backward<float>(gq, gk, gv, dqkv16, dctx, q, k, v, probs, h, s, rows, colSums, scratch, stream);
}

}  // namespace simcsepp::cuda
