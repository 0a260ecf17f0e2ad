// Multi-head self-attention on CUDA (ops/encoder.h, AttentionForwardFn / AttentionBackwardFn): batched
// tile SGEMMs (tile_gemm.cuh: a 256-thread block computes one 64 x 64 output tile, 4 x 4 per thread, the
// reduction staged 16 at a time; blockIdx.z = z = b*NH + h selects the head slice [b, :, h*HS, +HS) of
// ctx [B, T, H] and of q, k, v [B, T, ld] (ld = H, or 3H when they are the column blocks of one packed
// projection: then q, k, v point at columns 0, H, 2H of the same rows), and the [T, T] block z of
// probs [B, NH, T, T]) around one row kernel each way.
//
//   forward   1. S = q_h k_h^T / sqrt(HS)            sgemm_kernel<false, true>, into probs
//             2. attn_softmax_kernel                 probs = P = masked softmax(S), in place;
//                                                    Pd = D ⊙ P into a workspace (only when p > 0)
//             3. ctx_h = Pd v_h                      sgemm_kernel<false, false>
//   backward  1. dPd = dctx_h v_h^T                  sgemm_kernel<false, true>, into workspace W
//             2. attn_softmax_backward_kernel        regenerates D: dP = D ⊙ dPd,
//                                                    dS = P ⊙ (dP - rowsum(dP ⊙ P)) (masked keys 0), in place in W;
//                                                    Pd = D ⊙ P into a second workspace (only when p > 0)
//             3. dv_h = Pd^T dctx_h                  sgemm_kernel<true, false>
//             4. dq_h = dS k_h / sqrt(HS)            sgemm_kernel<false, false>
//             5. dk_h = dS^T q_h / sqrt(HS)          sgemm_kernel<true, false>
// D is the dropout mask of the probs viewed as [B, NH*T*T]: element e = z*T*T + i*T + j is kept (times
// 1/(1-p)) iff dropout_uniform(seed, offset, e) >= p, and sentences with keepRows[b] == 0 are not dropped:
// cpu::attention's rule, bit for bit.
// Row kernels: one warp per score row (z, i) (its T elements start at flat index e0 = (z*T + i)*T), 8 rows
// per block. Lane l owns the Philox groups l, l + 32, ... of the row, a group being the (up to 4) elements
// of the row with the same e / 4, which one philox4x32_10 call (counter e / 4, word e % 4) decides. Each
// lane reads and writes only its own elements in every pass, so the in-place updates need no barrier; the
// row max, the exp-sum and the backward's row dot (both in double, as the CPU) are warp reductions.
// No limit on T (the lanes loop over a row); each workspace holds B*NH*T*T floats (the size of probs).
#include <cmath>
#include <mutex>

#include "common/philox.h"
#include "cuda_check.cuh"
#include "host_args.cuh"
#include "launch.cuh"
#include "tile_gemm.cuh"
#include "warp_reduce.cuh"

namespace simcsepp::cuda {

namespace {

constexpr int kRowThreads = 256;  // 8 warps: 8 score rows per block
constexpr int kRowsPerBlock = kRowThreads / 32;

// The score rows and their dropout (device pointers).
struct AttnRows {
  int64_t rows, T, NH;          // rows = B*NH*T
  const int32_t* mask;          // [B*T], 0 = padded key
  float p, scale;               // scale = 1/(1-p) (0 when p >= 1)
  uint64_t seed, offset;        // Philox key and stream offset
  const uint8_t* keepRows;      // [B] (may be null): 0 = sentence not dropped
  int64_t base;                 // Philox index of element 0: firstRow * NH * T * T (a micro-batch's offset)
  const uint64_t* offsetDelta;  // added to offset inside a step graph (graph_capture.cuh), else null
};

// Whether the sentence b gets dropout (exactly cpu::attention's rule).
__device__ __forceinline__ bool sentence_drops(const AttnRows& A, int64_t b) {
  return A.p > 0.0f && !(A.keepRows != nullptr && A.keepRows[b] == 0);
}

// The four uniforms' bits of Philox group g (elements 4g .. 4g + 3), as dropout_uniform draws them.
__device__ __forceinline__ Philox4 philox_group(const AttnRows& A, int64_t g) {
  const uint64_t offset = detail::dropout_offset(A.offset, A.offsetDelta);
  return philox4x32_10(static_cast<uint32_t>(g), static_cast<uint32_t>(static_cast<uint64_t>(g) >> 32),
                       static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                       static_cast<uint32_t>(A.seed), static_cast<uint32_t>(A.seed >> 32));
}

// The dropout multiplier (0 or scale) of flat element e, from its group's Philox bits (word e % 4, picked
// by selects so that r stays in registers).
__device__ __forceinline__ float drop_factor(const AttnRows& A, const Philox4& r, int64_t e) {
  const int w = static_cast<int>(e & 3);
  const uint32_t bits = w == 0 ? r.v[0] : w == 1 ? r.v[1] : w == 2 ? r.v[2] : r.v[3];
  return philox_to_unit(bits) >= A.p ? A.scale : 0.0f;
}

// Calls f(g, j0, j1) for each Philox group g this lane owns in the row of flat indices [e0, e0 + T): the
// row's elements j0 <= j < j1 are the group's.
template <class F>
__device__ __forceinline__ void for_own_groups(int64_t e0, int64_t T, int lane, F f) {
  const int64_t first = e0 >> 2, last = (e0 + T - 1) >> 2;
  for (int64_t g = first + lane; g <= last; g += 32) {
    const int64_t lo = g * 4 > e0 ? g * 4 : e0;
    const int64_t hi = g * 4 + 4 < e0 + T ? g * 4 + 4 : e0 + T;
    f(g, lo - e0, hi - e0);
  }
}

// probs (holding S) becomes P = softmax over the real keys, in place (a row with no real key: zeros);
// pd (may be null) receives D ⊙ P.
__global__ void __launch_bounds__(kRowThreads)
    attn_softmax_kernel(float* __restrict__ probs, float* __restrict__ pd, AttnRows A) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (row >= A.rows) return;  // whole warps leave together (row is uniform per warp)
  const int64_t T = A.T, b = row / T / A.NH, e0 = row * T;
  const int64_t eg = A.base + e0;  // the row's first Philox index (e0 locates it in memory)
  const int32_t* keyMask = A.mask + b * T;
  float* s = probs + e0;

  float mx = -INFINITY;
  for_own_groups(eg, T, lane, [&](int64_t, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j)
      if (keyMask[j] != 0) mx = fmaxf(mx, s[j]);
  });
  mx = warp_max(mx);
  const bool none = mx == -INFINITY;  // no real key
  double sum = 0.0;
  if (!none) {
    for_own_groups(eg, T, lane, [&](int64_t, int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j)
        if (keyMask[j] != 0) sum += static_cast<double>(expf(s[j] - mx));
    });
  }
  sum = warp_sum(sum);
  const float inv = none ? 0.0f : static_cast<float>(1.0 / sum);
  const bool drop = pd != nullptr && sentence_drops(A, b);
  for_own_groups(eg, T, lane, [&](int64_t g, int64_t j0, int64_t j1) {
    Philox4 r{};
    if (drop) r = philox_group(A, g);
    for (int64_t j = j0; j < j1; ++j) {
      const float v = none || keyMask[j] == 0 ? 0.0f : expf(s[j] - mx) * inv;
      s[j] = v;
      if (pd != nullptr) pd[e0 + j] = drop ? v * drop_factor(A, r, eg + j) : v;
    }
  });
}

// dp (holding dPd = dctx v^T) becomes dS = P ⊙ (D ⊙ dPd - rowsum(D ⊙ dPd ⊙ P)) (0 at masked keys), in
// place; pd (may be null) receives D ⊙ P.
__global__ void __launch_bounds__(kRowThreads)
    attn_softmax_backward_kernel(float* __restrict__ dp, float* __restrict__ pd, const float* __restrict__ probs,
                                 AttnRows A) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (row >= A.rows) return;
  const int64_t T = A.T, b = row / T / A.NH, e0 = row * T;
  const int64_t eg = A.base + e0;  // the row's first Philox index (e0 locates it in memory)
  const int32_t* keyMask = A.mask + b * T;
  const float* P = probs + e0;
  float* g = dp + e0;
  const bool drop = sentence_drops(A, b);

  double dot = 0.0;
  for_own_groups(eg, T, lane, [&](int64_t grp, int64_t j0, int64_t j1) {
    Philox4 r{};
    if (drop) r = philox_group(A, grp);
    for (int64_t j = j0; j < j1; ++j) {
      const float p = P[j];
      float x = g[j];
      if (drop) {
        const float f = drop_factor(A, r, eg + j);
        x *= f;
        if (pd != nullptr) pd[e0 + j] = p * f;
      } else if (pd != nullptr) {
        pd[e0 + j] = p;
      }
      g[j] = x;
      dot += static_cast<double>(x) * p;
    }
  });
  const float dotf = static_cast<float>(warp_sum(dot));
  for_own_groups(eg, T, lane, [&](int64_t, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) g[j] = keyMask[j] != 0 ? P[j] * (g[j] - dotf) : 0.0f;
  });
}

// The shapes of one attention call and the batch layouts of its products.
struct AttnShape {
  int64_t B, T, NH, HS;
  int64_t ld;  // row stride of q, k, v, dq, dk, dv (H, or 3H when packed)
  int64_t H() const { return NH * HS; }
  int64_t heads() const { return B * NH; }
  int64_t rows() const { return B * NH * T; }
  int64_t probsFloats() const { return B * NH * T * T; }
  // Head slice z = b*NH + h of ctx/dctx [B, T, H], of q/k/v [B, T, ld], and block z of the [B, NH, T, T] probs.
  tile::BatchStride head() const { return {T * H(), HS}; }
  tile::BatchStride input() const { return {T * ld, HS}; }
  tile::BatchStride block() const { return {NH * T * T, T * T}; }
  float scale() const { return 1.0f / std::sqrt(static_cast<float>(HS)); }  // as cpu::attention
};

// What both directions set up, held for the whole op: the device copies of mask and keepRows (HostArgs),
// then the workspace with `buffers` buffers of B*NH*T*T floats. Every op takes the two locks in this order.
class AttnCall {
 public:
  AttnCall(const AttnShape& shape, const int32_t* mask, float p, uint64_t seed, uint64_t offset,
           const uint8_t* keepRows, int64_t firstRow, int buffers)
      : s(shape), args_(detail::op_stream()), lock_(detail::workspace().mu) {
    rows.rows = s.rows();
    rows.T = s.T;
    rows.NH = s.NH;
    rows.mask = args_.to_device(mask, s.B * s.T, detail::kSlotMask);
    rows.p = p;
    rows.scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    rows.seed = seed;
    rows.offset = offset;
    rows.offsetDelta = detail::offset_delta();
    rows.base = firstRow * s.NH * s.T * s.T;
    rows.keepRows = p > 0.0f ? args_.to_device(keepRows, s.B, detail::kSlotKeepRows) : nullptr;
    stride_ = (s.probsFloats() + 63) / 64 * 64;  // keeps every buffer 256-byte aligned
    if (buffers > 0)
      base_ = static_cast<float*>(
          detail::workspace().reserve(static_cast<size_t>(buffers) * static_cast<size_t>(stride_) * sizeof(float)));
  }
  float* buffer(int i) const { return base_ + i * stride_; }
  dim3 row_grid() const { return dim3(static_cast<unsigned>((s.rows() + kRowsPerBlock - 1) / kRowsPerBlock)); }
  // The batched products' layouts (A, B, C strides): scores = head slices x head slices -> probs blocks
  // (q k^T from the inputs, dctx v^T); mix = probs blocks x head slices -> head slices (P v -> ctx,
  // P^T dctx -> dv, dS k -> dq, dS^T q -> dk).
  tile::Batch scores(tile::BatchStride a) const { return tile::Batch{s.heads(), s.NH, a, s.input(), s.block()}; }
  tile::Batch mix(tile::BatchStride b, tile::BatchStride c) const {
    return tile::Batch{s.heads(), s.NH, s.block(), b, c};
  }

  const AttnShape s;
  AttnRows rows{};

 private:
  detail::HostArgs args_;
  std::lock_guard<std::mutex> lock_;
  int64_t stride_ = 0;
  float* base_ = nullptr;
};

}  // namespace

void attention_forward(float* ctx, float* probs, const float* q, const float* k, const float* v, const int32_t* mask,
                       int64_t B, int64_t T, int64_t NH, int64_t HS, int64_t ld, float p, uint64_t seed,
                       uint64_t offset, const uint8_t* keepRows, int64_t firstRow) {
  require();
  if (B * NH * T <= 0) return;
  const AttnCall call({B, T, NH, HS, ld}, mask, p, seed, offset, keepRows, firstRow, p > 0.0f ? 1 : 0);
  float* pd = p > 0.0f ? call.buffer(0) : nullptr;  // Pd = D ⊙ P (else ctx reads P itself)
  const int64_t H = NH * HS;
  const AttnShape& s = call.s;
  tile::sgemm<false, true>(T, T, HS, s.scale(), q, ld, k, ld, 0.0f, probs, T, "sgemm_kernel (attention S = q k^T)",
                           detail::op_stream(), nullptr, call.scores(s.input()));
  launch("attn_softmax_kernel", attn_softmax_kernel, call.row_grid(), kRowThreads, 0, detail::op_stream(), probs, pd,
         call.rows);
  tile::sgemm<false, false>(T, HS, T, 1.0f, pd != nullptr ? pd : probs, T, v, ld, 0.0f, ctx, H,
                            "sgemm_kernel (attention ctx = Pd v)", detail::op_stream(), nullptr,
                            call.mix(s.input(), s.head()));
  detail::end_op(detail::op_stream());
}

void attention_backward(float* dq, float* dk, float* dv, const float* dctx, const float* q, const float* k,
                        const float* v, const float* probs, const int32_t* mask, int64_t B, int64_t T, int64_t NH,
                        int64_t HS, int64_t ld, float p, uint64_t seed, uint64_t offset, const uint8_t* keepRows,
                        int64_t firstRow) {
  require();
  if (B * NH * T <= 0) return;
  const AttnCall call({B, T, NH, HS, ld}, mask, p, seed, offset, keepRows, firstRow, p > 0.0f ? 2 : 1);
  float* dS = call.buffer(0);                       // dPd, then dS
  float* pd = p > 0.0f ? call.buffer(1) : nullptr;  // Pd = D ⊙ P (else dv reads P itself)
  const int64_t H = NH * HS;
  const AttnShape& s = call.s;
  const float scale = s.scale();
  const cudaStream_t stream = detail::op_stream();
  tile::sgemm<false, true>(T, T, HS, 1.0f, dctx, H, v, ld, 0.0f, dS, T, "sgemm_kernel (attention dPd = dctx v^T)",
                           stream, nullptr, call.scores(s.head()));
  launch("attn_softmax_backward_kernel", attn_softmax_backward_kernel, call.row_grid(), kRowThreads, 0, stream, dS, pd,
         probs, call.rows);
  tile::sgemm<true, false>(T, HS, T, 1.0f, pd != nullptr ? pd : probs, T, dctx, H, 0.0f, dv, ld,
                           "sgemm_kernel (attention dv = Pd^T dctx)", stream, nullptr, call.mix(s.head(), s.input()));
  tile::sgemm<false, false>(T, HS, T, scale, dS, T, k, ld, 0.0f, dq, ld, "sgemm_kernel (attention dq = dS k)", stream,
                            nullptr, call.mix(s.input(), s.input()));
  tile::sgemm<true, false>(T, HS, T, scale, dS, T, q, ld, 0.0f, dk, ld, "sgemm_kernel (attention dk = dS^T q)", stream,
                           nullptr, call.mix(s.input(), s.input()));
  detail::end_op(stream);
}

}  // namespace simcsepp::cuda
