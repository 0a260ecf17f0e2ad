// The score rows of attention (attention.cu, attention_small.cu): the masked softmax with cpu::attention's
// Philox dropout, forward and backward, each computed by one warp per score row (z, i), z = b*NH + h.
// D is the dropout mask of the probs viewed as [B, NH*T*T]: element e = z*T*T + i*T + j is kept (times
// 1/(1-p)) iff dropout_uniform(seed, offset, e) >= p, and sentences with keepRows[b] == 0 are not dropped:
// cpu::attention's rule, bit for bit. Lane l owns the Philox groups l, l + 32, ... of the row, a group being
// the (up to 4) elements of the row with the same e / 4, which one philox4x32_10 call (counter e / 4, word
// e % 4) decides. Each lane reads and writes only its own elements in every pass, so the in-place updates
// (and the aliased pointers the row functions accept) need no barrier; the row max, the exp-sum and the
// backward's row dot (both in double, as the CPU) are warp reductions. No limit on T (the lanes loop).
// A row may also take a segment of kLanes lanes (8 or 16: short rows, several per warp; attention_mma.cu): lane
// l of the segment then owns the groups l, l + kLanes, ..., and the reductions stay in the segment (xor
// shuffles below kLanes). With kLanes = 32 the sums are the warp's, in the same order. Every lane of the warp
// takes part in the reductions; a segment whose row is not `active` (past the last row) reads and writes
// nothing. Pd may be written as float or as bfloat16 (rounded to nearest even: the operand of a bf16 product).
#pragma once
#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>

#include "common/philox.h"
#include "common/row_index.h"
#include "graph_capture.cuh"

namespace simcsepp::cuda {

// The sizes of one attention call: q, k, v (and dq, dk, dv) are [B, T, ld] with head h at columns
// [h*HS, +HS) (ld = H, or 3H when they are the column blocks of one packed projection); ctx, dctx [B, T, H].
struct AttnSizes {
  int64_t B, T, NH, HS;
  int64_t ld;
  int64_t H() const { return NH * HS; }
  float scale() const { return 1.0f / std::sqrt(static_cast<float>(HS)); }  // as cpu::attention
};

// The score rows and their dropout (device pointers).
struct AttnRows {
  int64_t rows, T, NH;          // rows = B*NH*T
  const int32_t* mask;          // [B*T], 0 = padded key
  float p, scale;               // scale = 1/(1-p) (0 when p >= 1)
  uint64_t seed, offset;        // Philox key and stream offset
  const uint8_t* keepRows;      // [B] (may be null): 0 = sentence not dropped
  RowIndex rowIndex;            // where the sentences sit in the whole batch (a micro-batch's or a rank's)
  const uint64_t* offsetDelta;  // added to offset inside a step graph (graph_capture.cuh), else null
  const float* rel;             // [2T - 1, NH] relative-position bias added to the scores (MPNet's), or null
  float* dRel;                  // [B, 2T - 1, NH] its per-sentence gradient (backward), or null
};

// Where score row `row` = (b NH + h) T + i sits: sentence b, head h, query i. Formed once per row, with two
// 64-bit divisions (each a branch to 32-bit division when the numbers fit, else a called subroutine).
struct ScoreRow {
  int64_t b, h, i;
};
__device__ __forceinline__ ScoreRow score_row(const AttnRows& A, int64_t row) {
  const int64_t z = row / A.T, b = z / A.NH;
  return ScoreRow{b, z - b * A.NH, row - z * A.T};
}

// The relative-position biases of score row r: key j's, rel[(j - i + T - 1) NH + h], is element j NH of the
// pointer returned.
__device__ __forceinline__ const float* relative_bias_row(const AttnRows& A, const ScoreRow& r) {
  return A.rel + (A.T - 1 - r.i) * A.NH + r.h;
}

// Whether the sentence b gets dropout (exactly cpu::attention's rule).
__device__ __forceinline__ bool sentence_drops(const AttnRows& A, int64_t b) {
  return A.p > 0.0f && !(A.keepRows != nullptr && A.keepRows[b] == 0);
}

// The Philox index of score row `row`'s first element: sentence b's place in the whole batch, then the
// row's place among that sentence's NH*T*T probs.
__device__ __forceinline__ int64_t row_philox_index(const AttnRows& A, int64_t row, int64_t b) {
  return A.rowIndex.at(b) * A.NH * A.T * A.T + (row - b * A.NH * A.T) * A.T;
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

// Calls f(g, j0, j1) for each Philox group g this lane (of a segment of kLanes) owns in the row of flat indices
// [e0, e0 + T): the row's elements j0 <= j < j1 are the group's.
template <int kLanes = 32, class F>
__device__ __forceinline__ void for_own_groups(int64_t e0, int64_t T, int lane, F f) {
  const int64_t first = e0 >> 2, last = (e0 + T - 1) >> 2;
  for (int64_t g = first + lane; g <= last; g += kLanes) {
    const int64_t lo = g * 4 > e0 ? g * 4 : e0;
    const int64_t hi = g * 4 + 4 < e0 + T ? g * 4 + 4 : e0 + T;
    f(g, lo - e0, hi - e0);
  }
}

// Reductions over a segment of kLanes lanes (all 32 lanes call them; each segment gets its own result).
template <int kLanes>
__device__ __forceinline__ float segment_max(float v) {
#pragma unroll
  for (int o = kLanes / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
template <int kLanes>
__device__ __forceinline__ double segment_sum(double v) {
#pragma unroll
  for (int o = kLanes / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Pd's element as a product reads it.
__device__ __forceinline__ void put(float* p, float v) { *p = v; }
__device__ __forceinline__ void put(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }

// One warp (or segment of kLanes lanes, lane < kLanes), score row `row` (< A.rows): P = softmax of the scores s
// (plus the relative-position bias, when A.rel) over the real keys (a row with no real key: zeros) into out; pd
// (may be null) receives D ⊙ P. s, out and pd (as float) may be the same row.
template <int kLanes = 32, class PdT = float>
__device__ __forceinline__ void softmax_row(const AttnRows& A, int64_t row, int lane, const float* s, float* out,
                                            PdT* pd, bool active = true) {
  const ScoreRow place = score_row(A, row);
  const int64_t T = A.T, b = place.b;
  const int64_t eg = row_philox_index(A, row, b);
  const int32_t* keyMask = A.mask + b * T;
  // Each lane reads its own elements: the biased score once per pass, the same float sum each time.
  const float* rel = A.rel != nullptr ? relative_bias_row(A, place) : nullptr;
  const auto score = [&](int64_t j) { return rel != nullptr ? s[j] + rel[j * A.NH] : s[j]; };

  const int64_t n = active ? T : 0;  // an inactive segment only takes part in the reductions
  float mx = -INFINITY;
  for_own_groups<kLanes>(eg, n, lane, [&](int64_t, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j)
      if (keyMask[j] != 0) mx = fmaxf(mx, score(j));
  });
  mx = segment_max<kLanes>(mx);
  const bool none = mx == -INFINITY;  // no real key
  double sum = 0.0;
  if (!none) {
    for_own_groups<kLanes>(eg, n, lane, [&](int64_t, int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j)
        if (keyMask[j] != 0) sum += static_cast<double>(expf(score(j) - mx));
    });
  }
  sum = segment_sum<kLanes>(sum);
  const float inv = none ? 0.0f : static_cast<float>(1.0 / sum);
  const bool drop = pd != nullptr && sentence_drops(A, b);
  for_own_groups<kLanes>(eg, n, lane, [&](int64_t g, int64_t j0, int64_t j1) {
    Philox4 r{};
    if (drop) r = philox_group(A, g);
    for (int64_t j = j0; j < j1; ++j) {
      const float v = none || keyMask[j] == 0 ? 0.0f : expf(score(j) - mx) * inv;
      out[j] = v;
      if (pd != nullptr) put(pd + j, drop ? v * drop_factor(A, r, eg + j) : v);
    }
  });
}

// One warp (or segment of kLanes lanes), score row `row`: g (holding dPd = dctx v^T) becomes
// dS = P ⊙ (D ⊙ dPd - rowsum(D ⊙ dPd ⊙ P)) (0 at masked keys), in place; pd (may be null) receives D ⊙ P.
template <int kLanes = 32, class PdT = float>
__device__ __forceinline__ void softmax_backward_row(const AttnRows& A, int64_t row, int lane, float* g, const float* P,
                                                     PdT* pd, bool active = true) {
  const int64_t T = A.T, b = score_row(A, row).b;
  const int64_t eg = row_philox_index(A, row, b);
  const int32_t* keyMask = A.mask + b * T;
  const bool drop = sentence_drops(A, b);

  const int64_t n = active ? T : 0;
  double dot = 0.0;
  for_own_groups<kLanes>(eg, n, lane, [&](int64_t grp, int64_t j0, int64_t j1) {
    Philox4 r{};
    if (drop) r = philox_group(A, grp);
    for (int64_t j = j0; j < j1; ++j) {
      const float p = P[j];
      float x = g[j];
      if (drop) {
        const float f = drop_factor(A, r, eg + j);
        x *= f;
        if (pd != nullptr) put(pd + j, p * f);
      } else if (pd != nullptr) {
        put(pd + j, p);
      }
      g[j] = x;
      dot += static_cast<double>(x) * p;
    }
  });
  const float dotf = static_cast<float>(segment_sum<kLanes>(dot));
  for_own_groups<kLanes>(eg, n, lane, [&](int64_t, int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) g[j] = keyMask[j] != 0 ? P[j] * (g[j] - dotf) : 0.0f;
  });
}

}  // namespace simcsepp::cuda
