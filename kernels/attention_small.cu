// Fused attention for short sequences (T <= 128, HS <= 128), the shapes of sentence encoders (the benchmark
// is BERT-base at T = 32): each (b, h) head's scores, softmax, dropout and products stay in shared memory
// instead of going through global memory between tile SGEMMs whose 64 x 64 tiles a 32 x 32 score block
// would fill to a quarter (attention.cu's tiled path, which takes the other shapes). Head z = b*NH + h reads
// q_h, k_h, v_h at columns [h*HS, +HS) of the [B, T, ld] rows and ctx_h/dctx_h of the [B, T, H] rows;
// scale = 1/sqrt(HS); P, D and the row rules are attention_rows.cuh's (cpu::attention's, bit for bit).
//
//   forward   one block per (z, tile of 16 query rows):
//             S = q_i k^T * scale        keys staged 16 rows at a time, S rows [16][T] in shared memory
//             probs_i = P = softmax(S)   one warp per row (softmax_row); Pd = D ⊙ P over S, in place
//                                        (probs may be null: then P is only formed in S, in place)
//             ctx_i = Pd v               values staged 16 rows at a time
//   backward  one block per z, looping over tiles of 16 query rows i (q_i and dctx_i in shared memory):
//             dPd = dctx_i v^T           values staged 16 rows at a time
//             dS, Pd                     one warp per row (softmax_backward_row: regenerates D from Philox)
//             dq_i = dS k * scale        keys staged 16 rows at a time
//             dk += dS^T q_i * scale,  dv += Pd^T dctx_i
//                                        each thread owns the same (key, column) elements in every tile, so
//                                        it accumulates them in dk, dv themselves: no atomics, no workspace.
//             dRel (with a relative-position bias): thread t sums dS along the diagonal j - i + T - 1 = t, the
//                                        tiles' rows in order, in a register; written once at the end.
// The relative-position bias itself is added to the scores by softmax_row (attention_rows.cuh).
// 256 threads (8 warps); a product's 16 x 16 (score) or 16 x HS (output) tile is spread over them, each
// reduction a plain loop in float in a fixed order (so a run repeats bit for bit). A thread owns the output
// columns 4 (t % 16) + 64 m + e (e < 4) and, when HS is a multiple of 4, reads its 4 columns, and the dot
// products 4 elements at a time, with one 16-byte shared load (the fp32 loops are bound by shared loads: at
// HS = 64, 2 of them per FMA at a score and 1.25 at an output become 0.75 wavefronts each); the sums are the
// same, in the same order, either way. With a bf16 handoff (bf16_handoff.cuh) the forward also writes
// bf16(ctx), the backward bf16 of the packed dq | dk | dv (dk, dv at their last tile), for the bf16 products
// that read them next. Shared memory (static, under the 48 KB of a block without opt-in): 3 (forward) or 5
// (backward) arrays of 16 x 132 floats, rows 16-byte aligned and 4 banks apart (a quarter warp's 16-byte
// loads of 8 consecutive rows hit all 32 banks once).
#include "attention_small.cuh"
#include "launch.cuh"

namespace simcsepp::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 16;                         // query rows per tile = keys per staged chunk
constexpr int kMaxT = 128, kMaxHS = 128;          // the shapes the shared arrays hold
constexpr int kVec = 4;                           // columns a thread owns side by side (one 16-byte shared load)
constexpr int kGroups = kMaxHS / (kTile * kVec);  // its groups of kVec columns, 64 apart
constexpr int kPad = kMaxHS + kVec;               // row length of a shared [rows][HS] array (16-byte rows)
constexpr int kSPad = kMaxT + kVec;               // row length of a shared [rows][T] array
static_assert(kTile * kTile == kThreads, "a 16 x 16 score tile has one element per thread");
static_assert(kPad % 32 == kVec && kSPad % 32 == kVec,
              "rows 4 banks apart: the 16-byte loads of 8 consecutive rows (a quarter warp) hit 32 banks");

// One head's geometry, formed on the host.
struct Head {
  int T, NH, HS;
  int64_t ld, H;  // row strides of q, k, v (and dq, dk, dv) and of ctx, dctx
  float scale;    // 1/sqrt(HS)
};

// dst[r][c] = src[r * ld + c] for r < rows, c < cols, by the whole block (consecutive threads, consecutive c).
template <int W>
__device__ __forceinline__ void stage_rows(float (*dst)[W], const float* src, int64_t ld, int rows, int cols) {
  for (int idx = static_cast<int>(threadIdx.x); idx < rows * cols; idx += kThreads)
    dst[idx / cols][idx % cols] = src[static_cast<int64_t>(idx / cols) * ld + idx % cols];
}

// row[col .. col + 3] of a shared row whose length n is past col: one 16-byte load when kAligned (n a multiple
// of 4, so all four are in the row), else four loads, 0 past n.
template <bool kAligned>
__device__ __forceinline__ float4 load4(const float* row, int col, int n) {
  if (kAligned) return *reinterpret_cast<const float4*>(row + col);
  return make_float4(row[col], col + 1 < n ? row[col + 1] : 0.0f, col + 2 < n ? row[col + 2] : 0.0f,
                     col + 3 < n ? row[col + 3] : 0.0f);
}

// acc[e] += x * y.e: one output column each.
__device__ __forceinline__ void axpy4(float (&acc)[kVec], float x, float4 y) {
  acc[0] += x * y.x;
  acc[1] += x * y.y;
  acc[2] += x * y.z;
  acc[3] += x * y.w;
}

// a . b over d = 0 .. n-1 in order (one float accumulator: the sum is the same bits whichever loads feed it),
// four at a time from 16-byte loads when kAligned.
template <bool kAligned>
__device__ __forceinline__ float dot(const float* a, const float* b, int n) {
  float acc = 0.0f;
  int d = 0;
  if (kAligned)
    for (; d < n; d += kVec) {
      const float4 x = *reinterpret_cast<const float4*>(a + d), y = *reinterpret_cast<const float4*>(b + d);
      acc += x.x * y.x;
      acc += x.y * y.y;
      acc += x.z * y.z;
      acc += x.w * y.w;
    }
  for (; d < n; ++d) acc += a[d] * b[d];
  return acc;
}

// out[i][j0 + j] = alpha * (a_i . kv_j) for the tile's rows i < rows and the chunk's keys j < keys (thread
// t owns i = t / 16, j = t % 16), the keys' rows kv_j being src's rows j0 .. j0 + keys staged into kv.
template <bool kAligned>
__device__ __forceinline__ void score_tile(float (*out)[kSPad], const float (*a)[kPad], float (*kv)[kPad],
                                           const float* src, const Head& h, int rows, float alpha) {
  const int i = static_cast<int>(threadIdx.x) / kTile, j = static_cast<int>(threadIdx.x) % kTile;
  for (int j0 = 0; j0 < h.T; j0 += kTile) {
    const int keys = h.T - j0 < kTile ? h.T - j0 : kTile;
    __syncthreads();  // the previous chunk's (or phase's) readers of kv are done
    stage_rows(kv, src + static_cast<int64_t>(j0) * h.ld, h.ld, keys, h.HS);
    __syncthreads();
    if (i < rows && j < keys) out[i][j0 + j] = dot<kAligned>(a[i], kv[j], h.HS) * alpha;
  }
  __syncthreads();
}

// out_i = alpha * sum_j w[i][j] src_j for the tile's rows i < rows (thread t owns i = t / 16 and the
// columns 4 (t % 16) + 64 m + e < HS, e < 4), src's rows staged 16 at a time into kv; out's row i at
// out + i * ldOut, and its bf16 copy at the same place of out16 when out16 is not null (a bf16 handoff,
// bf16_handoff.cuh).
template <bool kAligned>
__device__ __forceinline__ void mix_tile(float* out, __nv_bfloat16* out16, int64_t ldOut, const float (*w)[kSPad],
                                         float (*kv)[kPad], const float* src, const Head& h, int rows, float alpha) {
  const int i = static_cast<int>(threadIdx.x) / kTile, c = kVec * (static_cast<int>(threadIdx.x) % kTile);
  float acc[kGroups][kVec] = {};
  for (int j0 = 0; j0 < h.T; j0 += kTile) {
    const int keys = h.T - j0 < kTile ? h.T - j0 : kTile;
    __syncthreads();
    stage_rows(kv, src + static_cast<int64_t>(j0) * h.ld, h.ld, keys, h.HS);
    __syncthreads();
    if (i < rows)
      for (int j = 0; j < keys; ++j) {
        const float x = w[i][j0 + j];
#pragma unroll
        for (int m = 0; m < kGroups; ++m)
          if (c + kTile * kVec * m < h.HS) axpy4(acc[m], x, load4<kAligned>(kv[j], c + kTile * kVec * m, h.HS));
      }
  }
  if (i < rows)
#pragma unroll
    for (int m = 0; m < kGroups; ++m)
#pragma unroll
      for (int e = 0; e < kVec; ++e)
        if (c + kTile * kVec * m + e < h.HS) {
          const int64_t at = static_cast<int64_t>(i) * ldOut + c + kTile * kVec * m + e;
          const float value = acc[m][e] * alpha;
          out[at] = value;
          if (out16 != nullptr) out16[at] = __float2bfloat16(value);
        }
}

template <bool kAligned>
__global__ void __launch_bounds__(kThreads)
    attn_small_forward_kernel(float* __restrict__ ctx, __nv_bfloat16* __restrict__ ctx16, float* __restrict__ probs,
                              const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                              Head h, AttnRows A) {
  __shared__ __align__(16) float qs[kTile][kPad];   // the tile's query rows
  __shared__ __align__(16) float kv[kTile][kPad];   // a chunk of key, then value rows
  __shared__ __align__(16) float sp[kTile][kSPad];  // S, then Pd, of the tile's rows
  const int tiles = (h.T + kTile - 1) / kTile;
  const int64_t z = blockIdx.x / tiles;
  const int i0 = static_cast<int>(blockIdx.x % tiles) * kTile;
  const int rows = h.T - i0 < kTile ? h.T - i0 : kTile;
  const int64_t b = z / h.NH, col = (z % h.NH) * h.HS;
  const int64_t in0 = b * h.T * h.ld + col;  // element (b, 0, h*HS) of q, k, v

  stage_rows(qs, q + in0 + i0 * h.ld, h.ld, rows, h.HS);
  score_tile<kAligned>(sp, qs, kv, k + in0, h, rows, h.scale);
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  for (int r = warp; r < rows; r += kWarps) {
    const int64_t row = z * h.T + i0 + r;
    softmax_row(A, row, lane, sp[r], probs != nullptr ? probs + row * h.T : sp[r], sp[r]);
  }
  const int64_t out0 = b * h.T * h.H + col + i0 * h.H;
  mix_tile<kAligned>(ctx + out0, ctx16 != nullptr ? ctx16 + out0 : nullptr, h.H, sp, kv, v + in0, h, rows, 1.0f);
}

template <bool kAligned>
__global__ void __launch_bounds__(kThreads)
    attn_small_backward_kernel(float* __restrict__ dq, float* __restrict__ dk, float* __restrict__ dv,
                               __nv_bfloat16* __restrict__ dqkv16, const float* __restrict__ dctx,
                               const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                               const float* __restrict__ probs, Head h, AttnRows A) {
  __shared__ __align__(16) float qs[kTile][kPad];   // the tile's query rows
  __shared__ __align__(16) float gs[kTile][kPad];   // the tile's dctx rows
  __shared__ __align__(16) float kv[kTile][kPad];   // a chunk of value, then key rows
  __shared__ __align__(16) float ds[kTile][kSPad];  // dPd, then dS, of the tile's rows
  __shared__ __align__(16) float pd[kTile][kSPad];  // Pd of the tile's rows
  const int64_t z = blockIdx.x;
  const int64_t b = z / h.NH, col = (z % h.NH) * h.HS;
  const int64_t in0 = b * h.T * h.ld + col, out0 = b * h.T * h.H + col;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int kj = static_cast<int>(threadIdx.x) / kTile, c = kVec * (static_cast<int>(threadIdx.x) % kTile);
  // With A.dRel: thread t sums dS along diagonal d = t (j - i + T - 1 = d; 2T - 1 <= 255 of them), rows in order.
  const int diag = static_cast<int>(threadIdx.x);
  float relSum = 0.0f;

  for (int i0 = 0; i0 < h.T; i0 += kTile) {
    const int rows = h.T - i0 < kTile ? h.T - i0 : kTile;
    __syncthreads();  // the previous tile's readers of qs, gs, ds, pd are done
    stage_rows(qs, q + in0 + i0 * h.ld, h.ld, rows, h.HS);
    stage_rows(gs, dctx + out0 + i0 * h.H, h.H, rows, h.HS);
    score_tile<kAligned>(ds, gs, kv, v + in0, h, rows, 1.0f);
    for (int r = warp; r < rows; r += kWarps) {
      const int64_t row = z * h.T + i0 + r;
      softmax_backward_row(A, row, lane, ds[r], probs + row * h.T, pd[r]);
    }
    // dqkv16 (packed q | k | v gradients only): the bf16 copy of dq's, dk's, dv's rows at the same offsets.
    mix_tile<kAligned>(dq + in0 + i0 * h.ld, dqkv16 != nullptr ? dqkv16 + in0 + i0 * h.ld : nullptr, h.ld, ds, kv,
                       k + in0, h, rows, h.scale);  // starts with a barrier
    const bool last = i0 + kTile >= h.T;            // dk, dv hold their final values after this tile
    // dk_j += scale * sum_i dS[i][j] q_i, dv_j += sum_i Pd[i][j] dctx_i: thread t owns keys j = t / 16 + 16 n
    // and columns 4 (t % 16) + 64 m + e in every tile (the first tile stores, the others add).
    for (int j = kj; j < h.T; j += kTile) {
      float ak[kGroups][kVec] = {}, av[kGroups][kVec] = {};
      for (int i = 0; i < rows; ++i) {
        const float s = ds[i][j], w = pd[i][j];
#pragma unroll
        for (int m = 0; m < kGroups; ++m)
          if (c + kTile * kVec * m < h.HS) {
            axpy4(ak[m], s, load4<kAligned>(qs[i], c + kTile * kVec * m, h.HS));
            axpy4(av[m], w, load4<kAligned>(gs[i], c + kTile * kVec * m, h.HS));
          }
      }
      const int64_t at = in0 + j * h.ld;
#pragma unroll
      for (int m = 0; m < kGroups; ++m)
#pragma unroll
        for (int x = 0; x < kVec; ++x)
          if (c + kTile * kVec * m + x < h.HS) {
            const int64_t e = at + c + kTile * kVec * m + x;
            const float gk = (i0 == 0 ? 0.0f : dk[e]) + ak[m][x] * h.scale;
            const float gv = (i0 == 0 ? 0.0f : dv[e]) + av[m][x];
            dk[e] = gk;
            dv[e] = gv;
            if (last && dqkv16 != nullptr) {
              dqkv16[h.H + e] = __float2bfloat16(gk);
              dqkv16[2 * h.H + e] = __float2bfloat16(gv);
            }
          }
    }
    if (A.dRel != nullptr && diag < 2 * h.T - 1)  // ds is read-only since mix_tile's first barrier
      for (int i = 0; i < rows; ++i) {
        const int j = i0 + i + diag - (h.T - 1);
        if (j >= 0 && j < h.T) relSum += ds[i][j];
      }
  }
  if (A.dRel != nullptr && diag < 2 * h.T - 1) A.dRel[(b * (2 * h.T - 1) + diag) * h.NH + z % h.NH] = relSum;
}

Head head_of(const AttnSizes& s) {
  return Head{static_cast<int>(s.T), static_cast<int>(s.NH), static_cast<int>(s.HS), s.ld, s.H(), s.scale()};
}

}  // namespace

bool attention_small_fits(const AttnSizes& s) { return s.T <= kMaxT && s.HS <= kMaxHS; }

void attention_small_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, const float* q, const float* k,
                             const float* v, const AttnSizes& s, const AttnRows& rows, cudaStream_t stream) {
  const dim3 blocks(static_cast<unsigned>(s.B * s.NH * ((s.T + kTile - 1) / kTile)));
  if (s.HS % kVec == 0)
    launch("attn_small_forward_kernel", attn_small_forward_kernel<true>, blocks, kThreads, 0, stream, ctx, ctx16, probs,
           q, k, v, head_of(s), rows);
  else
    launch("attn_small_forward_kernel", attn_small_forward_kernel<false>, blocks, kThreads, 0, stream, ctx, ctx16,
           probs, q, k, v, head_of(s), rows);
}

void attention_small_backward(float* dq, float* dk, float* dv, __nv_bfloat16* dqkv16, const float* dctx, const float* q,
                              const float* k, const float* v, const float* probs, const AttnSizes& s,
                              const AttnRows& rows, cudaStream_t stream) {
  const dim3 blocks(static_cast<unsigned>(s.B * s.NH));
  if (s.HS % kVec == 0)
    launch("attn_small_backward_kernel", attn_small_backward_kernel<true>, blocks, kThreads, 0, stream, dq, dk, dv,
           dqkv16, dctx, q, k, v, probs, head_of(s), rows);
  else
    launch("attn_small_backward_kernel", attn_small_backward_kernel<false>, blocks, kThreads, 0, stream, dq, dk, dv,
           dqkv16, dctx, q, k, v, probs, head_of(s), rows);
}

}  // namespace simcsepp::cuda
