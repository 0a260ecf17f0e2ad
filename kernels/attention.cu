// Multi-head self-attention on CUDA (ops/encoder.h, AttentionForwardFn / AttentionBackwardFn), tiled path:
// batched tile SGEMMs (tile_gemm.cuh: a 256-thread block computes one 64 x 64 output tile, 4 x 4 per thread, the
// reduction staged 16 at a time; blockIdx.z = z = b*NH + h selects the head slice [b, :, h*HS, +HS) of
// ctx [B, T, H] and of q, k, v [B, T, ld] (ld = H, or 3H when they are the column blocks of one packed
// projection: then q, k, v point at columns 0, H, 2H of the same rows), and the [T, T] block z of
// probs [B, NH, T, T]) around one row kernel each way.
//
//   forward   1. S = q_h k_h^T / sqrt(HS)            sgemm_kernel<false, true>, into probs (probs null, as
//                                                    in inference: into a workspace)
//             2. attn_softmax_kernel                 probs = P = masked softmax(S), in place;
//                                                    Pd = D ⊙ P into a workspace (only when p > 0)
//             3. ctx_h = Pd v_h                      sgemm_kernel<false, false>
//   backward  0. without probs: S and P formed again as in the forward (steps 1 and 2, into a workspace)
//             1. dPd = dctx_h v_h^T                  sgemm_kernel<false, true>, into workspace W
//             2. attn_softmax_backward_kernel        regenerates D: dP = D ⊙ dPd,
//                                                    dS = P ⊙ (dP - rowsum(dP ⊙ P)) (masked keys 0), in place in W;
//                                                    Pd = D ⊙ P into a second workspace (only when p > 0)
//             3. dv_h = Pd^T dctx_h                  sgemm_kernel<true, false>
//             4. dq_h = dS k_h / sqrt(HS)            sgemm_kernel<false, false>
//             5. dk_h = dS^T q_h / sqrt(HS)          sgemm_kernel<true, false>
//             6. with dRelBias: attn_relative_grad_kernel, one thread per (sentence, head, diagonal d): the sum of
//                dS over the rows i (ascending) at j = i + d - (T - 1), as cpu::attention adds them
// The relative-position bias (MPNet's, when given) is added to the scores by the softmax rows.
// D, the dropout mask, and the row kernels (one warp per score row, 8 rows per block) are attention_rows.cuh's.
// No limit on T. The kernels run over the batch a chunk of sentences at a time (chunk_sentences: each
// workspace buffer holds one chunk's NH*T*T floats per sentence, at most 64 MiB unless one sentence needs more).
// Shapes with T <= 128 and HS <= 128 take the fused kernels of attention_small.cu instead (one kernel each
// way, no workspace), unless SIMCSEPP_ATTENTION=tiled or a backward gets no probs (its P is then the tiled
// forward's, which differs from the fused one's by rounding). At Precision::kBf16 the shapes attention_takes_bf16
// admits (T <= 128, HS <= 64) take the tensor-core kernels (attention_mma.cu; attention_mma_long.cu above 64
// tokens), whatever SIMCSEPP_ATTENTION says (the fp32 paths do not round as the bf16 contract says); a backward without
// probs then forms P again with the mma forward, a chunk of sentences at a time, into the workspace. The fused and mma
// kernels write a bf16 handoff of ctx (and of the packed dq | dk | dv) when one was requested (bf16_handoff.cuh); the
// tiled path declines it (its products then round ctx and dqkv themselves). bf16Storage (ops/encoder.h; the mma shapes
// only): the packed q | k | v and ctx (dctx) are bf16 values, which the mma kernels stage as they are, ctx written in
// bf16 alone.
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>

#include "attention_mma.cuh"
#include "attention_rows.cuh"
#include "attention_small.cuh"
#include "bf16_handoff.cuh"
#include "column_sums.cuh"
#include "cuda_check.cuh"
#include "host_args.cuh"
#include "launch.cuh"
#include "tile_gemm.cuh"

namespace simcsepp::cuda {

namespace {

constexpr int kRowThreads = 256;  // 8 warps: 8 score rows per block
constexpr int kRowsPerBlock = kRowThreads / 32;

// probs (holding S) becomes P = masked softmax(S), in place; pd (may be null) receives D ⊙ P.
__global__ void __launch_bounds__(kRowThreads)
    attn_softmax_kernel(float* __restrict__ probs, float* __restrict__ pd, AttnRows A) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (row >= A.rows) return;  // whole warps leave together (row is uniform per warp)
  const int64_t e0 = row * A.T;
  softmax_row(A, row, static_cast<int>(threadIdx.x) % 32, probs + e0, probs + e0, pd != nullptr ? pd + e0 : nullptr);
}

// dp (holding dPd = dctx v^T) becomes dS, in place; pd (may be null) receives D ⊙ P.
__global__ void __launch_bounds__(kRowThreads)
    attn_softmax_backward_kernel(float* __restrict__ dp, float* __restrict__ pd, const float* __restrict__ probs,
                                 AttnRows A) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  if (row >= A.rows) return;
  const int64_t e0 = row * A.T;
  softmax_backward_row(A, row, static_cast<int>(threadIdx.x) % 32, dp + e0, probs + e0,
                       pd != nullptr ? pd + e0 : nullptr);
}

constexpr int kRelThreads = 256;

// dRel[(b (2T - 1) + d) NH + h] = sum over i ascending of dS[(b NH + h) T + i][i + d - (T - 1)] for the chunk's
// sentences b (dS and dRel at the chunk's first): one thread per (b, h, d).
__global__ void __launch_bounds__(kRelThreads)
    attn_relative_grad_kernel(float* __restrict__ dRel, const float* __restrict__ dS, int64_t n, int64_t T,
                              int64_t NH) {
  const int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n) return;
  const int64_t D = 2 * T - 1, h = t % NH, d = t / NH % D, b = t / NH / D;
  const float* rows = dS + (b * NH + h) * T * T;
  float acc = 0.0f;
  for (int64_t i = d < T - 1 ? T - 1 - d : 0; i < T && i + d - (T - 1) < T; ++i) acc += rows[i * T + i + d - (T - 1)];
  dRel[t] = acc;
}

// The shapes of one attention call and the batch layouts of its products.
struct AttnShape : AttnSizes {
  int64_t blockFloats() const { return NH * T * T; }  // one sentence's probs
  // Head slice z = b*NH + h of ctx/dctx [B, T, H], of q/k/v [B, T, ld], and block z of the [B, NH, T, T] probs.
  tile::BatchStride head() const { return {T * H(), HS}; }
  tile::BatchStride input() const { return {T * ld, HS}; }
  tile::BatchStride block() const { return {NH * T * T, T * T}; }
};

// The tiled path's sentences per pass (a chunk): as many as keep each workspace buffer within kChunkBytes, at
// least one. The passes cost a few more launches (a chunk of BERT-base at T = 512 is 5 sentences: 60 heads,
// 3,840 blocks per product); the workspace then stays small whatever the batch, so that no memory outside
// the activation arena grows with it. SIMCSEPP_ATTENTION_CHUNK=n (sentences) sets it, read at every call
// (tests cross chunk boundaries with small shapes).
constexpr int64_t kChunkBytes = int64_t{64} << 20;

int64_t chunk_sentences(const AttnShape& s) {
  const char* env = std::getenv("SIMCSEPP_ATTENTION_CHUNK");
  int64_t n = std::max<int64_t>(1, kChunkBytes / 4 / std::max<int64_t>(1, s.blockFloats()));
  if (env != nullptr && *env != '\0') {
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (*end != '\0' || v < 1)
      throw CudaError(std::string("SIMCSEPP_ATTENTION_CHUNK must be a positive whole number of sentences, not '") +
                      env + "'");
    n = v;
  }
  return std::min(n, s.B);
}

// Sentences [b0, b0 + n) of a call.
struct Chunk {
  int64_t b0, n;
};

// What both directions set up, held for the whole op: the device copies of mask and keepRows (HostArgs),
// then the workspace with `buffers` buffers of one chunk's probs (chunk sentences x NH*T*T floats). Every op
// takes the two locks in this order.
class AttnCall {
 public:
  // sumDoubles: doubles reserved after the buffers (sums(): the backward's column sums of the packed gradient).
  AttnCall(const AttnShape& shape, const int32_t* mask, const float* relBias, float* dRelBias, float p, uint64_t seed,
           uint64_t offset, const uint8_t* keepRows, const RowIndex& rowIndex, int buffers, int64_t chunk,
           int64_t sumDoubles = 0)
      : s(shape), args_(detail::op_stream()), lock_(detail::workspace().mu) {
    rows.rel = relBias;
    rows.dRel = dRelBias;
    rows.rows = s.B * s.NH * s.T;
    rows.T = s.T;
    rows.NH = s.NH;
    rows.mask = args_.to_device(mask, s.B * s.T, detail::kSlotMask);
    rows.p = p;
    rows.scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    rows.seed = seed;
    rows.offset = offset;
    rows.offsetDelta = detail::offset_delta();
    rows.rowIndex = rowIndex;
    rows.keepRows = p > 0.0f ? args_.to_device(keepRows, s.B, detail::kSlotKeepRows) : nullptr;
    stride_ = (chunk * s.blockFloats() + 63) / 64 * 64;  // keeps every buffer 256-byte aligned
    const size_t floats = static_cast<size_t>(buffers) * static_cast<size_t>(stride_);
    if (floats + static_cast<size_t>(sumDoubles) > 0)
      base_ = static_cast<float*>(
          detail::workspace().reserve(floats * sizeof(float) + static_cast<size_t>(sumDoubles) * sizeof(double)));
    if (sumDoubles > 0) sums_ = reinterpret_cast<double*>(base_ + floats);
  }
  float* buffer(int i) const { return base_ + i * stride_; }
  double* sums() const { return sums_; }
  // The score rows of chunk c: its sentences' mask and keepRows, and their places in the whole batch.
  AttnRows rows_of(Chunk c) const {
    AttnRows r = rows;
    r.rows = c.n * s.NH * s.T;
    r.mask += c.b0 * s.T;
    if (r.keepRows != nullptr) r.keepRows += c.b0;
    r.rowIndex.skip += c.b0;
    if (r.dRel != nullptr) r.dRel += c.b0 * (2 * s.T - 1) * s.NH;
    return r;
  }
  dim3 row_grid(Chunk c) const {
    return dim3(static_cast<unsigned>((c.n * s.NH * s.T + kRowsPerBlock - 1) / kRowsPerBlock));
  }
  // The batched products' layouts (A, B, C strides) over chunk c's heads: scores = head slices x head
  // slices -> probs blocks (q k^T from the inputs, dctx v^T); mix = probs blocks x head slices -> head
  // slices (P v -> ctx, P^T dctx -> dv, dS k -> dq, dS^T q -> dk).
  tile::Batch scores(Chunk c, tile::BatchStride a) const {
    return tile::Batch{c.n * s.NH, s.NH, a, s.input(), s.block()};
  }
  tile::Batch mix(Chunk c, tile::BatchStride b, tile::BatchStride out) const {
    return tile::Batch{c.n * s.NH, s.NH, s.block(), b, out};
  }
  // Offsets of chunk c's first sentence in q/k/v (and dq/dk/dv), in ctx/dctx, in probs.
  int64_t input_at(Chunk c) const { return c.b0 * s.T * s.ld; }
  int64_t head_at(Chunk c) const { return c.b0 * s.T * s.H(); }
  int64_t block_at(Chunk c) const { return c.b0 * s.blockFloats(); }

  const AttnShape s;
  AttnRows rows{};

 private:
  detail::HostArgs args_;
  std::lock_guard<std::mutex> lock_;
  int64_t stride_ = 0;
  float* base_ = nullptr;
  double* sums_ = nullptr;
};

// Calls f(chunk) for the call's sentences, `chunk` at a time.
template <class F>
void for_chunks(const AttnShape& s, int64_t chunk, F f) {
  for (int64_t b0 = 0; b0 < s.B; b0 += chunk) f(Chunk{b0, std::min(chunk, s.B - b0)});
}

// Whether a call takes the fused kernels of attention_small.cu: SIMCSEPP_ATTENTION=fused (the default) or
// tiled, read at every call (a captured step graph keeps the choice made while it was captured); shapes the
// fused kernels do not hold (T or HS over 128) take the tiled path whatever it says.
bool use_fused(const AttnSizes& s) {
  const char* mode = std::getenv("SIMCSEPP_ATTENTION");
  const std::string m = mode != nullptr ? mode : "";
  if (!m.empty() && m != "fused" && m != "tiled")
    throw CudaError("SIMCSEPP_ATTENTION must be 'fused' or 'tiled', not '" + m + "'");
  return m != "tiled" && attention_small_fits(s);
}

}  // namespace

namespace {

// The mma kernels' inputs: fp32 q, k, v, or with bf16Storage the packed bf16 values at q (k, v at H and 2H of them).
struct MmaQkv {
  MmaIn q, k, v;
};
MmaQkv mma_qkv(const float* q, const float* k, const float* v, int64_t H, bool bf16Storage) {
  if (!bf16Storage) return {{q, false}, {k, false}, {v, false}};
  const MmaIn base{q, true};
  return {base, base + H, base + 2 * H};
}

// bf16Storage only where the mma kernels run (the binding admits it there only).
void require_mma(bool bf16Storage, Precision precision, const AttnSizes& s) {
  if (bf16Storage && !(attention_takes_bf16(precision, s.T, s.HS) && s.ld == 3 * s.H()))
    throw CudaError(
        "attention: bf16 storage needs the packed q | k | v at a shape whose attention takes bf16 operands");
}

}  // namespace

void attention_forward(float* ctx, float* probs, const float* q, const float* k, const float* v, const int32_t* mask,
                       const float* relBias, int64_t B, int64_t T, int64_t NH, int64_t HS, int64_t ld, float p,
                       uint64_t seed, uint64_t offset, const uint8_t* keepRows, const RowIndex& rowIndex,
                       Precision precision, bool bf16Storage) {
  require();
  if (B * NH * T <= 0) return;
  const AttnShape s{{B, T, NH, HS, ld}};
  const bool fused = use_fused(s);  // also checks SIMCSEPP_ATTENTION, which the mma path does not read
  require_mma(bf16Storage, precision, s);
  if (attention_takes_bf16(precision, T, HS)) {
    const AttnCall call(s, mask, relBias, nullptr, p, seed, offset, keepRows, rowIndex, 0, 0);
    const cudaStream_t stream = detail::op_stream();
    const MmaQkv in = mma_qkv(q, k, v, s.H(), bf16Storage);
    // bf16Storage: ctx is its bf16 storage, written alone (no handoff: the product reads the storage).
    __nv_bfloat16* ctx16 =
        bf16Storage ? reinterpret_cast<__nv_bfloat16*>(ctx) : bf16handoff::claim(ctx, B * T * NH * HS);
    if (bf16Storage) bf16handoff::decline();
    attention_mma_forward(bf16Storage ? nullptr : ctx, ctx16, probs, in.q, in.k, in.v, s, call.rows, stream);
    detail::end_op(stream);
    return;
  }
  // Tiled: S and P in probs, or without probs in a workspace buffer; Pd = D ⊙ P in another when p > 0.
  const int buffers = fused ? 0 : (probs == nullptr ? 1 : 0) + (p > 0.0f ? 1 : 0);
  const int64_t chunk = fused ? 0 : chunk_sentences(s);
  const AttnCall call(s, mask, relBias, nullptr, p, seed, offset, keepRows, rowIndex, buffers, chunk);
  const cudaStream_t stream = detail::op_stream();
  if (fused) {
    attention_small_forward(ctx, bf16handoff::claim(ctx, B * T * NH * HS), probs, q, k, v, s, call.rows, stream);
    detail::end_op(stream);
    return;
  }
  bf16handoff::decline();
  float* const own = probs == nullptr ? call.buffer(0) : nullptr;                // S, then P (no probs)
  float* const pd = p > 0.0f ? call.buffer(probs == nullptr ? 1 : 0) : nullptr;  // Pd (else ctx reads P itself)
  for_chunks(s, chunk, [&](Chunk c) {
    // The chunk's block of probs, or the workspace (whose blocks start at the chunk's first sentence).
    float* P = own != nullptr ? own : probs + call.block_at(c);
    const int64_t in = call.input_at(c);
    tile::sgemm<false, true>(T, T, HS, s.scale(), q + in, ld, k + in, ld, 0.0f, P, T,
                             "sgemm_kernel (attention S = q k^T)", stream, nullptr, call.scores(c, s.input()));
    launch("attn_softmax_kernel", attn_softmax_kernel, call.row_grid(c), kRowThreads, 0, stream, P, pd,
           call.rows_of(c));
    tile::sgemm<false, false>(T, HS, T, 1.0f, pd != nullptr ? pd : P, T, v + in, ld, 0.0f, ctx + call.head_at(c), s.H(),
                              "sgemm_kernel (attention ctx = Pd v)", stream, nullptr, call.mix(c, s.input(), s.head()));
  });
  detail::end_op(stream);
}

namespace {

constexpr int kSumsAhead = 32;  // partial sums the finishing thread keeps in flight (column_sums.cuh)

// The terms of the column sums over the sentences' sums (column_sums.cuh's chunks): row b of [B, C] doubles.
struct SentenceSums {
  const double* sums;
  int64_t C;
  __device__ void operator()(double& s, int64_t b, int64_t c) const { s += sums[b * C + c]; }
};

// The backward at bf16 on the mma kernels (attention_takes_bf16); without probs, P formed again: for T <= 32 by the
// backward kernel itself, in each block; longer, by the mma forward (ctx null: no product) into the workspace, a
// chunk of sentences at a time (so too for T > 64, whose kernels need a scratch: attention_mma_long.cu). dqkvColumnSums
// (the gradient packed): each block sums its sentence's rows of its head's columns (in double, rows in order) into a
// [B, 3H] row of the workspace; column_sums.cuh's chunked sums then add the sentences' (chunks of 128 sentences, 8
// lanes each, in a fixed order) into dqkvColumnSums. With bf16Next 'only' and the copy made, the fp32 gradient is not
// written.
void attention_mma_backward_call(float* dq, float* dk, float* dv, float* dRelBias, const float* dctx, const float* q,
                                 const float* k, const float* v, const float* probs, const int32_t* mask,
                                 const float* relBias, const AttnShape& s, float p, uint64_t seed, uint64_t offset,
                                 const uint8_t* keepRows, const RowIndex& rowIndex, float* dqkvColumnSums,
                                 bool bf16Storage) {
  const int64_t H = s.H();
  const bool packed = s.ld == 3 * H && dk == dq + H && dv == dq + 2 * H;  // one [B, T, 3H] gradient
  bool copyOnly = false;                                                  // bf16Next 'only'
  __nv_bfloat16* dqkv16 =
      packed ? bf16handoff::claim(dq, s.B * s.T * s.ld, &copyOnly) : (bf16handoff::decline(), nullptr);
  const bool write32 = !copyOnly;
  // Buffers of a chunk of sentences: P formed again (without probs); the long kernels' scratch (T > 64: a chunk's
  // B NH T^2 floats, attention_mma_scratch_floats, one buffer's worth).
  const bool scratch = attention_mma_scratch_floats(s) > 0;
  const int own = probs != nullptr || s.T <= kMmaFormsProbsMaxT ? 0 : 1, buffers = own + (scratch ? 1 : 0);
  const int64_t chunk = buffers == 0 ? s.B : chunk_sentences(s);
  const bool sums = dqkvColumnSums != nullptr && packed;  // the binding allows sums only for the packed gradient
  const int64_t sentenceSums = sums ? s.B * s.ld : 0, chunkSums = sums ? colsum::chunks(s.B) * s.ld : 0;
  const AttnCall call(s, mask, relBias, dRelBias, p, seed, offset, keepRows, rowIndex, buffers, chunk,
                      sentenceSums + chunkSums);
  double* const perSentence = call.sums();
  const cudaStream_t stream = detail::op_stream();
  const MmaQkv x = mma_qkv(q, k, v, H, bf16Storage);
  const MmaIn g{dctx, bf16Storage};
  if (buffers == 0) {
    attention_mma_backward(dq, dk, dv, dqkv16, g, x.q, x.k, x.v, probs, s, call.rows, write32, perSentence, nullptr,
                           stream);
  } else {
    for_chunks(s, chunk, [&](Chunk c) {
      AttnShape part = s;
      part.B = c.n;
      const AttnRows rows = call.rows_of(c);
      const int64_t in = call.input_at(c), head = call.head_at(c);
      if (own != 0)
        attention_mma_forward(nullptr, nullptr, call.buffer(0), x.q + in, x.k + in, x.v + in, part, rows, stream);
      const float* P = own != 0 ? call.buffer(0) : probs + call.block_at(c);
      attention_mma_backward(dq + in, dk + in, dv + in, dqkv16 != nullptr ? dqkv16 + in : nullptr, g + head, x.q + in,
                             x.k + in, x.v + in, P, part, rows, write32, sums ? perSentence + c.b0 * s.ld : nullptr,
                             scratch ? call.buffer(own) : nullptr, stream);
    });
  }
  if (sums)
    colsum::launch_sums<kSumsAhead>("column_sum_chunks (q/k/v bias, over sentences)", "column_sum_finish (q/k/v bias)",
                                    perSentence + sentenceSums, SentenceSums{perSentence, s.ld},
                                    colsum::AddTo{dqkvColumnSums}, s.B, s.ld, stream);
  detail::end_op(stream);
}

// attention_backward on the fused or tiled fp32 kernels.
void attention_fp32_backward(float* dq, float* dk, float* dv, float* dRelBias, const float* dctx, const float* q,
                             const float* k, const float* v, const float* probs, const int32_t* mask,
                             const float* relBias, const AttnShape& s, float p, uint64_t seed, uint64_t offset,
                             const uint8_t* keepRows, const RowIndex& rowIndex) {
  const int64_t B = s.B, T = s.T, NH = s.NH, HS = s.HS, ld = s.ld;
  const bool fusedPath = use_fused(s);
  const bool fused = fusedPath && probs != nullptr;  // the fused kernel has no room to form P again
  const int64_t chunk = fused ? 0 : chunk_sentences(s);
  // Tiled: dPd then dS; Pd = D ⊙ P when p > 0; P formed again when probs is null.
  const int buffers = fused ? 0 : 1 + (p > 0.0f ? 1 : 0) + (probs == nullptr ? 1 : 0);
  const AttnCall call(s, mask, relBias, dRelBias, p, seed, offset, keepRows, rowIndex, buffers, chunk);
  const cudaStream_t stream = detail::op_stream();
  if (fused) {
    const int64_t H = NH * HS;
    const bool packed = ld == 3 * H && dk == dq + H && dv == dq + 2 * H;  // one [B, T, 3H] gradient
    __nv_bfloat16* dqkv16 = packed ? bf16handoff::claim(dq, B * T * ld) : (bf16handoff::decline(), nullptr);
    attention_small_backward(dq, dk, dv, dqkv16, dctx, q, k, v, probs, s, call.rows, stream);
    detail::end_op(stream);
    return;
  }
  bf16handoff::decline();
  float* const dS = call.buffer(0);                                          // dPd, then dS
  float* const pd = p > 0.0f ? call.buffer(1) : nullptr;                     // Pd = D ⊙ P (else dv reads P itself)
  float* const own = probs == nullptr ? call.buffer(buffers - 1) : nullptr;  // P formed again
  const int64_t H = s.H();
  const float scale = s.scale();
  for_chunks(s, chunk, [&](Chunk c) {
    const int64_t in = call.input_at(c);
    if (own != nullptr) {  // the forward's S and softmax, with its bits (the same kernels and layouts)
      tile::sgemm<false, true>(T, T, HS, scale, q + in, ld, k + in, ld, 0.0f, own, T,
                               "sgemm_kernel (attention S = q k^T, formed again)", stream, nullptr,
                               call.scores(c, s.input()));
      launch("attn_softmax_kernel", attn_softmax_kernel, call.row_grid(c), kRowThreads, 0, stream, own, nullptr,
             call.rows_of(c));
    }
    const float* P = own != nullptr ? own : probs + call.block_at(c);
    const float* g = dctx + call.head_at(c);
    tile::sgemm<false, true>(T, T, HS, 1.0f, g, H, v + in, ld, 0.0f, dS, T, "sgemm_kernel (attention dPd = dctx v^T)",
                             stream, nullptr, call.scores(c, s.head()));
    launch("attn_softmax_backward_kernel", attn_softmax_backward_kernel, call.row_grid(c), kRowThreads, 0, stream, dS,
           pd, P, call.rows_of(c));
    if (dRelBias != nullptr) {
      const int64_t n = c.n * NH * (2 * T - 1);
      launch("attn_relative_grad_kernel", attn_relative_grad_kernel,
             dim3(static_cast<unsigned>((n + kRelThreads - 1) / kRelThreads)), kRelThreads, 0, stream,
             call.rows_of(c).dRel, dS, n, T, NH);
    }
    tile::sgemm<true, false>(T, HS, T, 1.0f, pd != nullptr ? pd : P, T, g, H, 0.0f, dv + in, ld,
                             "sgemm_kernel (attention dv = Pd^T dctx)", stream, nullptr,
                             call.mix(c, s.head(), s.input()));
    tile::sgemm<false, false>(T, HS, T, scale, dS, T, k + in, ld, 0.0f, dq + in, ld,
                              "sgemm_kernel (attention dq = dS k)", stream, nullptr, call.mix(c, s.input(), s.input()));
    tile::sgemm<true, false>(T, HS, T, scale, dS, T, q + in, ld, 0.0f, dk + in, ld,
                             "sgemm_kernel (attention dk = dS^T q)", stream, nullptr,
                             call.mix(c, s.input(), s.input()));
  });
  detail::end_op(stream);
}

}  // namespace

void attention_backward(float* dq, float* dk, float* dv, float* dRelBias, const float* dctx, const float* q,
                        const float* k, const float* v, const float* probs, const int32_t* mask, const float* relBias,
                        int64_t B, int64_t T, int64_t NH, int64_t HS, int64_t ld, float p, uint64_t seed,
                        uint64_t offset, const uint8_t* keepRows, const RowIndex& rowIndex, Precision precision,
                        float* dqkvColumnSums, bool bf16Storage) {
  require();
  if (B * NH * T <= 0) return;
  const AttnShape s{{B, T, NH, HS, ld}};
  use_fused(s);  // checks SIMCSEPP_ATTENTION, which the mma path does not read
  require_mma(bf16Storage, precision, s);
  if (attention_takes_bf16(precision, T, HS))
    return attention_mma_backward_call(dq, dk, dv, dRelBias, dctx, q, k, v, probs, mask, relBias, s, p, seed, offset,
                                       keepRows, rowIndex, dqkvColumnSums, bf16Storage);
  attention_fp32_backward(dq, dk, dv, dRelBias, dctx, q, k, v, probs, mask, relBias, s, p, seed, offset, keepRows,
                          rowIndex);
  if (dqkvColumnSums != nullptr) {  // a pass over the packed gradient (the fp32 kernels' blocks are not per sentence)
    colsum::add_column_sums(dqkvColumnSums, dq, B * T, ld, detail::op_stream());
    detail::end_op(detail::op_stream());
  }
}

}  // namespace simcsepp::cuda
