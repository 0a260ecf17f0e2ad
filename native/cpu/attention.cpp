// CPU multi-head self-attention (ops/encoder.h holds the formulas, the probs layout and the dropout indexing).
//
// The products of one (sentence, head) pair are small (T x T x HS): the general sgemm's packing and threading
// cost more than their arithmetic there, so each pair runs on one thread (the pairs are the parallel
// dimension) through one register-blocked kernel,
//   product:  C[i, c] = alpha * sum_k A(i, k) B[k, c],
// A read as scalars at any two strides (a matrix or its transpose), B as vectors of W floats from rows readable
// to a multiple of W; a tile of R rows x 2W columns of C stays in registers over the whole k loop. Per pair:
//   forward   S = q k^T / sqrt(HS)  (B = k^T, packed)        ctx = Pd v
//   backward  dP = dctx v^T  (B = v^T, packed)   dv = Pd^T dctx   dq = dS k / sqrt(HS)   dk = dS^T q / sqrt(HS)
//             (without saved probs, S and P first, as the forward forms them: the same bits)
// The forward runs a pair's query rows in blocks (forward_rows): all T rows at once up to 1024 tokens, else blocks
// of the scores that fit kForwardBlockFloats, so that a long sequence (ModernBERT's 8192 tokens) holds megabytes of
// scores per thread instead of T x T. Every element is the same sum whatever the block, so the bits do not depend
// on it. A block computes only the keys its rows can reach (block_keys): with a relative bias at or below
// kUnreachable beyond some distance (ModernBERT's sliding window: -1e30), the others' probabilities are exactly 0,
// so their products only add zeros (the sums keep their bits: the range starts at a multiple of kPad, so the row
// sums keep their lanes). The backward runs whole pairs (it holds T x T blocks: P, dP, Pd).
// Between the products the pair's rows (T x T, in L1) get the relative-position bias (MPNet's, when given: the
// head's 2T - 1 values gathered into a vector, row i reading it from T - 1 - i on), the key mask, the softmax
// (exp in vector form), the dropout multipliers and dS = P ⊙ (dP - rowsum(dP ⊙ P)) in vector loops; the bias
// gradient adds each row's dS into the same vector at the same place (its diagonals, rows in order).
//
// bf16 (attention_takes_bf16: ops/encoder.h): the products' operands are rounded to bfloat16 first, into the
// pair's scratch (copies of q, k, v and dctx, read in place instead where they are stored in bf16 already; k^T and
// v^T, Pd and dS in place; P copied when no dropout made a Pd), the sums as at fp32.
//
// Bits: each C element is summed over k in order, with fused multiply-adds in the AVX-512 (W = 16) and AVX2 (W = 8)
// kernels and separate multiplies and adds in the portable one (W = 4: the x86-64 baseline has no FMA), and the
// row sums are taken in double in 8 lanes whatever W is. So the AVX-512 and AVX2 kernels give the same bits, and
// the portable one differs from them by rounding. They are picked once at run time;
// SIMCSEPP_ATTENTION_KERNEL=avx512|avx2|generic forces one (tests compare them).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "bf16_arrays.h"
#include "column_sums.h"
#include "common/bf16.h"
#include "exp_nonpositive.h"
#include "ops.h"
#include "parallel.h"
#include "scratch.h"
#include "uniforms.h"

namespace simcsepp::cpu {

namespace {

// The vector helpers are inlined into each instruction set's entry point, so their calling convention never
// applies: GCC's notes that it differs between instruction sets (-Wpsabi) are beside the point.
#define SIMCSEPP_LANES inline __attribute__((always_inline))
#pragma GCC diagnostic ignored "-Wpsabi"

constexpr int64_t kPad = 16;  // rows of keys (and of head columns) are padded to a multiple of the widest W

int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// ---------------------------------------------------------------------------------------------
// Vectors of W floats (GCC vector extensions: one zmm, one ymm or one xmm).

template <int W>
struct Lanes {
  typedef float F __attribute__((vector_size(4 * W)));
  typedef int32_t I __attribute__((vector_size(4 * W)));
};
typedef float V4f __attribute__((vector_size(16)));
typedef double V4d __attribute__((vector_size(32)));

template <class V>
SIMCSEPP_LANES V load(const void* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class V>
SIMCSEPP_LANES void store(float* p, const V& v) {
  std::memcpy(p, &v, sizeof v);
}

// x in every lane.
template <int W>
SIMCSEPP_LANES typename Lanes<W>::F splat(float x) {
  const typename Lanes<W>::F zero = {};
  return zero + x;
}

// The first n floats of v (all of them when n >= W) to p.
template <int W>
SIMCSEPP_LANES void store_first(float* p, const typename Lanes<W>::F& v, int64_t n) {
  if (n >= W) {
    store(p, v);
  } else if (n > 0) {
    float t[W];
    store(t, v);
    std::memcpy(p, t, static_cast<size_t>(n) * sizeof(float));
  }
}

// Sums in double of x[0, n) (n a multiple of 8), lane j % 8 holding element j, the lanes added in a fixed order.
// The 8 lanes are two vectors of 4 doubles: one 64-byte vector would be an AVX-512 register, but GCC's AVX2 code
// kept it in memory, storing and reloading the sums at every step.
SIMCSEPP_LANES double sum8(const float* x, int64_t n) {
  V4d lo = {}, hi = {};
  for (int64_t j = 0; j < n; j += 8) {
    lo += __builtin_convertvector(load<V4f>(x + j), V4d);
    hi += __builtin_convertvector(load<V4f>(x + j + 4), V4d);
  }
  return ((lo[0] + hi[0]) + (lo[1] + hi[1])) + ((lo[2] + hi[2]) + (lo[3] + hi[3]));
}

// sum_j x[j] * y[j] in double, as sum8.
SIMCSEPP_LANES double dot8(const float* x, const float* y, int64_t n) {
  V4d lo = {}, hi = {};
  for (int64_t j = 0; j < n; j += 8) {
    lo += __builtin_convertvector(load<V4f>(x + j), V4d) * __builtin_convertvector(load<V4f>(y + j), V4d);
    hi += __builtin_convertvector(load<V4f>(x + j + 4), V4d) * __builtin_convertvector(load<V4f>(y + j + 4), V4d);
  }
  return ((lo[0] + hi[0]) + (lo[1] + hi[1])) + ((lo[2] + hi[2]) + (lo[3] + hi[3]));
}

// ---------------------------------------------------------------------------------------------
// The product kernel.

struct Product {
  int64_t M, N, K;
  const float* A;  // A(i, k) = A[i * ars + k * acs]
  int64_t ars, acs;
  const float* B;  // B[k, c] = B[k * ldb + c], each row readable to N rounded up to W
  int64_t ldb;
  float alpha;
  float* C;  // C[i, c] = C[i * ldc + c], c < N written
  int64_t ldc;
};

#if defined(__x86_64__) || defined(__i386__)
// product_tile for the AVX-512 (W = 16) and AVX2 (W = 8) kernels, with fused multiply-adds: one rounding per k
// where the portable kernel rounds the product and the sum apart. Functions of their own, called once per tile
// (a few cycles against the tile's 256-1024 FMAs), because the file is compiled for the x86-64 baseline: the FMA
// intrinsics can only be inlined into code compiled for their instruction set, and the templates take theirs from
// the entry point they are inlined into. Measured with mini's shapes on one thread: the forward went from 4.1 to
// 3.3 ms per layer, the backward from 6.1 to 5.0.
template <int R, int NV>
__attribute__((target("avx512f"), noinline)) void fused_tile_avx512(const Product& p, int64_t i0, int64_t c0) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  const float* a = p.A + i0 * p.ars;
  const float* b = p.B + c0;
  for (int64_t k = 0; k < p.K; ++k) {
    __m512 bk[NV];
    for (int v = 0; v < NV; ++v) bk[v] = _mm512_loadu_ps(b + k * p.ldb + v * 16);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 ar = _mm512_set1_ps(a[r * p.ars + k * p.acs]);  // embedded in the FMA as a broadcast load
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(bk[v], ar, acc[r][v]);
    }
  }
  const __m512 alpha = _mm512_set1_ps(p.alpha);
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) {
      const int64_t n = p.N - c0 - v * 16;
      float* c = p.C + (i0 + r) * p.ldc + c0 + v * 16;
      if (n >= 16)
        _mm512_storeu_ps(c, _mm512_mul_ps(acc[r][v], alpha));
      else if (n > 0)
        _mm512_mask_storeu_ps(c, static_cast<__mmask16>((1u << n) - 1), _mm512_mul_ps(acc[r][v], alpha));
    }
}

// The AVX2 tile keeps its 12 accumulators in registers: the loops over them are unrolled whole and Product's
// fields copied into locals, and the last columns go out through a masked store rather than a copy from an array
// (with the loops rolled, GCC kept the accumulators in memory, storing every one at every k: 18 us per (sentence,
// head) pair of 32 tokens, 64 per head, on the AMD EPYC VM).
template <int R, int NV>
__attribute__((target("avx2,fma"), noinline)) void fused_tile_avx2(const Product& p, int64_t i0, int64_t c0) {
  const int64_t K = p.K, ars = p.ars, acs = p.acs, ldb = p.ldb, ldc = p.ldc;
  __m256 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_setzero_ps();
  const float* a = p.A + i0 * ars;
  const float* b = p.B + c0;
  for (int64_t k = 0; k < K; ++k) {
    __m256 bk[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bk[v] = _mm256_loadu_ps(b + k * ldb + v * 8);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 ar = _mm256_broadcast_ss(a + r * ars + k * acs);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm256_fmadd_ps(bk[v], ar, acc[r][v]);
    }
  }
  const __m256 alpha = _mm256_set1_ps(p.alpha);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const int64_t n = p.N - c0 - v * 8;
      float* c = p.C + (i0 + r) * ldc + c0 + v * 8;
      const __m256 x = _mm256_mul_ps(acc[r][v], alpha);
      if (n >= 8)
        _mm256_storeu_ps(c, x);
      else if (n > 0)
        _mm256_maskstore_ps(c, _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), lane), x);
    }
}
#endif

// Rows [i0, i0 + R) x columns [c0, c0 + NV W) of C (those below N written).
template <int W, int R, int NV>
SIMCSEPP_LANES void product_tile(const Product& p, int64_t i0, int64_t c0) {
#if defined(__x86_64__) || defined(__i386__)
  if constexpr (W == 16) return fused_tile_avx512<R, NV>(p, i0, c0);
  if constexpr (W == 8) return fused_tile_avx2<R, NV>(p, i0, c0);
#endif
  using F = typename Lanes<W>::F;
  F acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = F{};
  const float* a = p.A + i0 * p.ars;
  const float* b = p.B + c0;
  for (int64_t k = 0; k < p.K; ++k) {
    F bk[NV];
    for (int v = 0; v < NV; ++v) bk[v] = load<F>(b + k * p.ldb + v * W);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const float ar = a[r * p.ars + k * p.acs];  // vector * scalar: a broadcast from memory (AVX-512: embedded)
      for (int v = 0; v < NV; ++v) acc[r][v] += bk[v] * ar;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v)
      store_first<W>(p.C + (i0 + r) * p.ldc + c0 + v * W, acc[r][v] * p.alpha, p.N - c0 - v * W);
}

template <int W, int R>
SIMCSEPP_LANES void product_rows(const Product& p, int64_t i0) {
  int64_t c = 0;
  for (; c + W < p.N; c += 2 * W) product_tile<W, R, 2>(p, i0, c);
  if (c < p.N) product_tile<W, R, 1>(p, i0, c);
}

// The last rem < R rows as one tile of rem rows (each B vector loaded once for all of them, where rows one at a time
// loaded it rem times: T = 29 leaves 5 rows after four tiles of 6).
template <int W, int R>
SIMCSEPP_LANES void product_last_rows(const Product& p, int64_t i0, int64_t rem) {
  if constexpr (R > 1) {
    if (rem == R - 1) return product_rows<W, R - 1>(p, i0);
    return product_last_rows<W, R - 1>(p, i0, rem);
  }
}

// Tiles of 8 rows with zmm (16 accumulators of the 32 registers), 6 with ymm (12 of 16, as gemm.cpp's AVX2
// kernel), 4 with xmm (8 of 16, as its portable one); the rows left over as one shorter tile. Each element of C is
// the same sum whichever tile computes it.
template <int W>
SIMCSEPP_LANES void product(const Product& p) {
  constexpr int R = W == 16 ? 8 : W == 8 ? 6 : 4;
  int64_t i = 0;
  for (; i + R <= p.M; i += R) product_rows<W, R>(p, i);
  if (i < p.M) product_last_rows<W, R>(p, i, p.M - i);
}

// ---------------------------------------------------------------------------------------------
// Row passes over one pair's T x Tp block.

struct PairRows {
  int64_t T, Tp;         // keys (and the pair's rows); the block's row stride (T rounded up to kPad)
  const int32_t* keyOk;  // Tp entries: -1 for a real key, 0 for a masked or padding one
  const float* U;        // the block's dropout uniforms (its row i at U + i * T, readable to i * T + Tp), or null
  float p, dropScale;    // dropout probability and 1/(1-p)
  float scale;           // 1/sqrt(HS)
  // The head's relative-position bias by diagonal d = j - i + T - 1 (readable to T - 1 + Tp), or null; and where
  // the backward adds dS by diagonal (same layout), or null.
  const float* rel = nullptr;
  float* dRel = nullptr;
  // The block of query rows the row passes see: rows [row0, row0 + n) of the pair (the backward: all of them), and
  // the keys they compute, [k0, k1) (multiples of kPad; the backward: all, [0, Tp)). The other keys' P is 0.
  int64_t row0 = 0, n = 0, k0 = 0, k1 = 0;
};

// S[i, j] += rel[j - (row0 + i) + T - 1] for the block's rows i (padding columns too: the mask drops them).
template <int W>
SIMCSEPP_LANES void add_relative_bias(const PairRows& r, float* S) {
  using F = typename Lanes<W>::F;
  for (int64_t i = 0; i < r.n; ++i)
    for (int64_t j = r.k0; j < r.k1; j += W)
      store(S + i * r.Tp + j, load<F>(S + i * r.Tp + j) + load<F>(r.rel + j - (r.row0 + i) + r.T - 1));
}

// The dropout multiplier of each lane: 1/(1-p) if u >= p, else 0 (cpu::dropout's rule).
template <int W>
SIMCSEPP_LANES typename Lanes<W>::F dropout_factor(const PairRows& r, const float* u) {
  using F = typename Lanes<W>::F;
  return load<F>(u) >= r.p ? splat<W>(r.dropScale) : F{};
}

// The block's scores S (scaled, padding columns 0; keys [k0, k1)) -> P in place and in the pair's probs ([T, T],
// its rows row0 on, 0 beyond the keys; may be null), then (with U) Pd = P ⊙ D in place.
template <int W>
SIMCSEPP_LANES void softmax_rows(const PairRows& r, float* S, float* pairProbs) {
  using F = typename Lanes<W>::F;
  using I = typename Lanes<W>::I;
  const F negInf = splat<W>(-INFINITY);
  float* probs = pairProbs ? pairProbs + r.row0 * r.T : nullptr;
  const int64_t k0 = r.k0, k1 = r.k1, kEnd = std::min(k1, r.T);
  for (int64_t i = 0; i < r.n; ++i) {
    float* s = S + i * r.Tp;
    float* pi = probs ? probs + i * r.T : nullptr;
    if (pi) {
      std::fill(pi, pi + k0, 0.0f);
      std::fill(pi + kEnd, pi + r.T, 0.0f);
    }
    F m = negInf;
    for (int64_t j = k0; j < k1; j += W) {
      const F x = load<I>(r.keyOk + j) != 0 ? load<F>(s + j) : negInf;
      m = m > x ? m : x;
    }
    float mx = -INFINITY;
    for (int l = 0; l < W; ++l) mx = std::max(mx, m[l]);
    if (mx == -INFINITY) {  // no real key: P = 0
      std::fill(s + k0, s + k1, 0.0f);
      if (pi) std::fill(pi + k0, pi + kEnd, 0.0f);
      continue;
    }
    for (int64_t j = k0; j < k1; j += W) {
      const F x = load<F>(s + j) - mx;
      store(s + j, load<I>(r.keyOk + j) != 0 ? exp_nonpositive_lanes<F, I>(x) : F{});
    }
    const float inv = static_cast<float>(1.0 / sum8(s + k0, k1 - k0));
    for (int64_t j = k0; j < k1; j += W) store(s + j, load<F>(s + j) * inv);
    if (pi) std::memcpy(pi + k0, s + k0, static_cast<size_t>(kEnd - k0) * sizeof(float));
    if (r.U)
      for (int64_t j = k0; j < k1; j += W) store(s + j, load<F>(s + j) * dropout_factor<W>(r, r.U + i * r.T + j));
  }
}

// dP (= dctx v^T) -> dS / sqrt(HS) in place: dP ⊙ D (with U), dS = P ⊙ (dP - rowsum(dP ⊙ P)), masked keys 0.
// With U also Pd = P ⊙ D; with dRel, dS (unscaled) added by diagonal.
template <int W>
SIMCSEPP_LANES void softmax_backward_rows(const PairRows& r, float* dP, const float* P, float* Pd) {
  using F = typename Lanes<W>::F;
  using I = typename Lanes<W>::I;
  for (int64_t i = 0; i < r.T; ++i) {
    float* g = dP + i * r.Tp;
    const float* p = P + i * r.Tp;
    if (r.U)
      for (int64_t j = 0; j < r.Tp; j += W) {
        const F f = dropout_factor<W>(r, r.U + i * r.T + j);
        store(Pd + i * r.Tp + j, load<F>(p + j) * f);
        store(g + j, load<F>(g + j) * f);
      }
    const float dot = static_cast<float>(dot8(g, p, r.Tp));
    for (int64_t j = 0; j < r.Tp; j += W) {
      const F x = load<I>(r.keyOk + j) != 0 ? load<F>(p + j) * (load<F>(g + j) - dot) : F{};
      if (r.dRel) store(r.dRel + j - i + r.T - 1, load<F>(r.dRel + j - i + r.T - 1) + x);
      store(g + j, x * r.scale);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One (sentence, head) pair.

struct AttnShape {
  int64_t B, T, NH, HS;
  int64_t ld;  // row stride of q, k, v, dq, dk, dv (H, or 3H when packed)
  int64_t H() const { return NH * HS; }
};

struct AttnDropout {
  float p;
  uint64_t seed, offset;
  const uint8_t* keepRows;
  RowIndex rowIndex;  // where the sentences sit in the whole batch (ops/encoder.h)
  // Whether sentence b gets dropout at all.
  bool active(int64_t b) const { return p > 0.0f && !(keepRows && keepRows[b] == 0); }
};

// A thread's scratch for one pair, carved from one grow-only buffer.
class PairScratch {
 public:
  float* take(int64_t n) {
    float* p = buf_.data() + used_;
    used_ += n;
    return p;
  }
  // Starts a pair needing at most n floats.
  void reset(int64_t n) {
    if (buf_.size() < static_cast<size_t>(n)) buf_.resize(static_cast<size_t>(n));
    used_ = 0;
  }
  std::vector<int32_t> keyOk;
  std::vector<int64_t> realBefore;  // T + 1 entries: how many real keys precede each index (the forward, narrow)

 private:
  std::vector<float> buf_;
  int64_t used_ = 0;
};

// The pair's geometry and the row passes' parameters.
struct Pair {
  int64_t T, Tp, HS, HSp;
  int64_t in;   // head h of sentence b in q, k, v (and dq, dk, dv)
  int64_t out;  // ... in ctx and dctx
  PairRows rows;
  int64_t blockRows;  // query rows per forward block (forward_rows; the backward: T)
  uint64_t uniforms;  // the index of the pair's first dropout uniform (with dropout)
  // The forward's reachable diagonals [dlo, dhi] of the relative bias (narrow: fewer than all 2T - 1), and
  // realBefore (in the scratch): the real keys before each key index.
  bool narrow = false;
  int64_t dlo = 0, dhi = 0;
};

// Query rows per forward block: all T while T x Tp scores fit kForwardBlockFloats (a sentence of 1024 tokens),
// else the most rows that fit, at least kPad. SIMCSEPP_ATTENTION_ROW_BLOCK=n (read once) sets n rows instead: the
// tests compare blockings, whose bits must not differ.
// With a narrow reach of `reach` diagonals, blocks of about that many rows (at least 4 kPad), whose keys are then
// about twice the reach.
constexpr int64_t kForwardBlockFloats = 1024 * 1024 + 1024 * kPad;
int64_t forward_rows(int64_t T, int64_t Tp, int64_t reach) {
  static const int64_t forced = [] {
    const char* v = std::getenv("SIMCSEPP_ATTENTION_ROW_BLOCK");
    return v ? std::max<int64_t>(1, std::atoll(v)) : 0;
  }();
  if (forced > 0) return std::min(forced, T);
  int64_t rows = T * Tp <= kForwardBlockFloats ? T : std::max(kPad, kForwardBlockFloats / Tp / kPad * kPad);
  if (reach < 2 * T - 1) rows = std::min(rows, std::max(4 * kPad, round_up(reach, kPad)));
  return std::min(rows, T);
}

// Scores at or below this (a relative bias's "never": ModernBERT's -1e30 beyond its window) give P = 0 exactly
// beside any real score.
constexpr float kUnreachable = -1e29f;

// The keys the block's rows [row0, row0 + n) can reach, [k0, k1) in multiples of kPad: within the reachable
// diagonals of one of its rows. Every key when one of its rows reaches no real key (its softmax then spreads over
// unreachable ones, as the whole row's does).
void block_keys(const Pair& pr, const PairScratch& w, PairRows& rows) {
  rows.k0 = 0;
  rows.k1 = pr.Tp;
  if (!pr.narrow) return;
  const int64_t T = pr.T, off = T - 1;
  const auto lo = [&](int64_t i) { return std::max<int64_t>(0, i + pr.dlo - off); };
  const auto hi = [&](int64_t i) { return std::min<int64_t>(T, i + pr.dhi - off + 1); };  // exclusive
  for (int64_t i = rows.row0; i < rows.row0 + rows.n; ++i)
    if (lo(i) >= hi(i) || w.realBefore[hi(i)] == w.realBefore[lo(i)]) return;
  rows.k0 = lo(rows.row0) / kPad * kPad;
  rows.k1 = std::min(pr.Tp, round_up(hi(rows.row0 + rows.n - 1), kPad));
}

// relBias, dRelBias: the op's (null when absent); the pair's vectors of them are carved from the scratch too.
// forward: the scratch of the forward's row blocks (the block's uniforms are then drawn by the forward, block
// by block: pr.rows.U is null here); else the backward's, with the whole pair's uniforms.
Pair make_pair(const AttnShape& s, const AttnDropout& d, const int32_t* mask, const float* relBias, bool dRelBias,
               int64_t b, int64_t h, PairScratch& w, bool forward, bool bf16) {
  const int64_t T = s.T, Tp = round_up(T, kPad);
  w.keyOk.assign(static_cast<size_t>(Tp), 0);
  for (int64_t j = 0; j < T; ++j) w.keyOk[j] = mask[b * T + j] != 0 ? -1 : 0;
  const bool drop = d.active(b);
  const float dropScale = drop && d.p < 1.0f ? 1.0f / (1.0f - d.p) : 0.0f;
  PairRows rows{T, Tp, w.keyOk.data(), nullptr, d.p, dropScale, 1.0f / std::sqrt(static_cast<float>(s.HS))};
  rows.n = T;
  rows.k1 = Tp;
  const int64_t HSp = round_up(s.HS, kPad);
  const int64_t diagonals = T - 1 + Tp;  // what rows 0 .. T-1 read of a diagonal vector, padding columns included
  // The forward's reachable diagonals of the bias (all of them without one).
  int64_t dlo = 0, dhi = 2 * T - 2;
  if (forward && relBias) {
    while (dlo < dhi && relBias[dlo * s.NH + h] <= kUnreachable) ++dlo;
    while (dhi > dlo && relBias[dhi * s.NH + h] <= kUnreachable) --dhi;
  }
  const bool narrow = dhi - dlo + 1 < 2 * T - 1;
  if (narrow) {
    w.realBefore.assign(static_cast<size_t>(T + 1), 0);
    for (int64_t j = 0; j < T; ++j) w.realBefore[j + 1] = w.realBefore[j] + (w.keyOk[j] != 0 ? 1 : 0);
  }
  const int64_t rb = forward ? forward_rows(T, Tp, dhi - dlo + 1) : T;
  // The forward: a block of scores and its uniforms, k^T, a padded copy of v. The backward: four T x Tp blocks,
  // the uniforms, three padded head copies, two transposed heads (k^T when P is formed again, then v^T).
  const int64_t floats = forward ? rb * Tp + (drop ? rb * T + Tp : 0) + T * HSp + s.HS * Tp
                                 : 4 * T * Tp + (drop ? T * T + Tp : 0) + 3 * T * HSp + 2 * s.HS * Tp;
  // bf16: rounded copies of q and v (forward), of dctx, q and k and of P (backward).
  const int64_t rounded = !bf16 ? 0 : forward ? 2 * T * HSp : 3 * T * HSp + T * Tp;
  w.reset(floats + rounded + (relBias ? diagonals : 0) + (dRelBias ? diagonals : 0));
  if (relBias) {
    float* rel = w.take(diagonals);
    for (int64_t dg = 0; dg < 2 * T - 1; ++dg) rel[dg] = relBias[dg * s.NH + h];
    std::fill(rel + 2 * T - 1, rel + diagonals, 0.0f);  // read by padding columns only
    rows.rel = rel;
  }
  if (dRelBias) {
    rows.dRel = w.take(diagonals);
    std::fill(rows.dRel, rows.dRel + diagonals, 0.0f);
  }
  if (drop && !forward) {
    float* U = w.take(T * T + Tp);
    const int64_t TT = T * T;
    bulk_dropout_uniforms(d.seed, d.offset, static_cast<uint64_t>(d.rowIndex.at(b) * s.NH * TT + h * TT), TT, U);
    std::fill(U + TT, U + TT + Tp, 0.0f);  // read by the last row's padding lanes (whose P is 0)
    rows.U = U;
  }
  const uint64_t uniforms = drop ? static_cast<uint64_t>(d.rowIndex.at(b) * s.NH * T * T + h * T * T) : 0;
  return Pair{T,        Tp,     s.HS, HSp, b * T * s.ld + h * s.HS, b * T * s.H() + h * s.HS, rows, rb,
              uniforms, narrow, dlo,  dhi};
}

// The lane indices of transpose_block's stages, stage t swapping s = W >> (t + 1): lo[t][l] and hi[t][l] are lane l
// of rows r and r + s (bit s of r clear) after the swap. Built at compile time: computed in the stages' loop, they
// cost as many instructions as the shuffles (~4% of a forward pass).
template <int W>
struct TransposeLanes {
  alignas(64) int32_t lo[5][W] = {}, hi[5][W] = {};
  constexpr TransposeLanes() {
    for (int t = 0, s = W / 2; s >= 1; ++t, s /= 2)
      for (int l = 0; l < W; ++l) {
        lo[t][l] = (l & s) ? W + l - s : l;
        hi[t][l] = (l & s) ? W + l : l + s;
      }
  }
};
template <int W>
constexpr TransposeLanes<W> kTransposeLanes{};

// Transposes the W x W block held as W row vectors, in place: log2(W) stages, each swapping the off-diagonal
// s x s blocks of every 2s x 2s block with two-source shuffles (AVX-512: 64 vpermt2ps for 256 floats).
template <int W>
SIMCSEPP_LANES void transpose_block(typename Lanes<W>::F* rows) {
  using F = typename Lanes<W>::F;
  using I = typename Lanes<W>::I;
#pragma GCC unroll 4
  for (int t = 0, s = W / 2; s >= 1; ++t, s /= 2) {
    const I lo = load<I>(kTransposeLanes<W>.lo[t]), hi = load<I>(kTransposeLanes<W>.hi[t]);
#pragma GCC unroll 16
    for (int r = 0; r < W; ++r) {
      if (r & s) continue;
      const F a = rows[r], b = rows[r + s];
      rows[r] = __builtin_shuffle(a, b, lo);
      rows[r + s] = __builtin_shuffle(a, b, hi);
    }
  }
}

// x^T for x's first T rows (row stride ld) of HS columns: [HS, Tp], the padding keys 0. W x W blocks through
// transpose_block, the columns past the last whole block one float at a time.
template <int W>
SIMCSEPP_LANES float* transposed(const float* x, int64_t ld, const Pair& pr, PairScratch& w) {
  using F = typename Lanes<W>::F;
  float* t = w.take(pr.HS * pr.Tp);
  const int64_t whole = pr.HS - pr.HS % W;
  for (int64_t j0 = 0; j0 < pr.Tp; j0 += W)
    for (int64_t d0 = 0; d0 < whole; d0 += W) {
      F rows[W];
      for (int r = 0; r < W; ++r) rows[r] = j0 + r < pr.T ? load<F>(x + (j0 + r) * ld + d0) : F{};
      transpose_block<W>(rows);
      for (int r = 0; r < W; ++r) store(t + (d0 + r) * pr.Tp + j0, rows[r]);
    }
  for (int64_t d = whole; d < pr.HS; ++d) {
    for (int64_t j = 0; j < pr.T; ++j) t[d * pr.Tp + j] = x[j * ld + d];
    std::fill(t + d * pr.Tp + pr.T, t + (d + 1) * pr.Tp, 0.0f);
  }
  return t;
}

// A head's T rows as the product's B: in place when its rows can be read in whole vectors of W, else a copy padded to
// HSp columns. *ldOut gets the row stride.
const float* vector_rows(const float* x, int64_t ld, int64_t W, const Pair& pr, PairScratch& w, int64_t* ldOut) {
  if (pr.HS % W == 0) {
    *ldOut = ld;
    return x;
  }
  float* c = w.take(pr.T * pr.HSp);
  for (int64_t j = 0; j < pr.T; ++j) {
    std::copy(x + j * ld, x + j * ld + pr.HS, c + j * pr.HSp);
    std::fill(c + j * pr.HSp + pr.HS, c + (j + 1) * pr.HSp, 0.0f);
  }
  *ldOut = pr.HSp;
  return c;
}

// round_bf16 (common/bf16.h) as a select rather than a branch, so that the loops below vectorise inside each
// instruction set's pair functions (they are inlined there): the same bits. As scalar loops compiled for the
// baseline they took about a third of a bf16 pair's time.
SIMCSEPP_LANES float round_bf16_select(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t r = (x + 0x7fffu + ((x >> 16) & 1u)) & 0xffff0000u;
  const uint32_t y = (x & 0x7f800000u) == 0x7f800000u ? x : r;  // Inf and NaN unchanged
  std::memcpy(&f, &y, 4);
  return f;
}

// x[0, n) rounded to bfloat16 in place.
SIMCSEPP_LANES void round_in_place(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = round_bf16_select(x[i]);
}

// A head's T rows (row stride ld) rounded to bfloat16, as a copy padded to HSp columns (row stride HSp): a
// product's A or B at bf16.
SIMCSEPP_LANES float* rounded_rows(const float* x, int64_t ld, const Pair& pr, PairScratch& w) {
  float* c = w.take(pr.T * pr.HSp);
  for (int64_t j = 0; j < pr.T; ++j) {
    for (int64_t d = 0; d < pr.HS; ++d) c[j * pr.HSp + d] = round_bf16_select(x[j * ld + d]);
    std::fill(c + j * pr.HSp + pr.HS, c + (j + 1) * pr.HSp, 0.0f);
  }
  return c;
}

// The inputs every pair reads.
struct Attn {
  const float *q, *k, *v;
  const int32_t* mask;
  AttnShape s;
  AttnDropout d;
  const float* relBias;  // [2T - 1, NH] or null
  float* dRelBias;       // [B, 2T - 1, NH] or null (backward)
  bool bf16 = false;     // the products' operands rounded to bfloat16 (attention_takes_bf16)
  // With bf16: q, k, v and dctx hold bfloat16 values already (bf16Storage), so the pairs read them in place rather
  // than through rounded copies (rounding them again gives the same values).
  bool inputsRounded = false;
};

template <int W>
SIMCSEPP_LANES void forward_pair(const Attn& a, float* ctx, float* probs, int64_t b, int64_t h) {
  thread_local PairScratch w;
  const Pair pr = make_pair(a.s, a.d, a.mask, a.relBias, false, b, h, w, true, a.bf16);
  const int64_t T = pr.T, Tp = pr.Tp, ld = a.s.ld, H = a.s.H(), rb = pr.blockRows;
  float* kt = transposed<W>(a.k + pr.in, ld, pr, w);
  int64_t ldv = pr.HSp, ldq = ld;
  const float* vr = nullptr;
  const float* qr = a.q + pr.in;
  if (a.bf16 && !a.inputsRounded) {
    round_in_place(kt, pr.HS * Tp);
    vr = rounded_rows(a.v + pr.in, ld, pr, w);
    qr = rounded_rows(a.q + pr.in, ld, pr, w);
    ldq = pr.HSp;
  } else {
    vr = vector_rows(a.v + pr.in, ld, W, pr, w, &ldv);
  }
  float* S = w.take(rb * Tp);
  float* U = a.d.active(b) ? w.take(rb * T + Tp) : nullptr;
  for (int64_t i0 = 0; i0 < T; i0 += rb) {
    PairRows rows = pr.rows;
    rows.row0 = i0;
    rows.n = std::min(rb, T - i0);
    if (U) {
      bulk_dropout_uniforms(a.d.seed, a.d.offset, pr.uniforms + static_cast<uint64_t>(i0 * T), rows.n * T, U);
      std::fill(U + rows.n * T, U + rows.n * T + Tp, 0.0f);  // read by the last row's padding lanes (whose P is 0)
      rows.U = U;
    }
    block_keys(pr, w, rows);
    const int64_t k0 = rows.k0, keys = rows.k1 - k0;
    product<W>({rows.n, keys, pr.HS, qr + i0 * ldq, ldq, 1, kt + k0, Tp, rows.scale, S + k0, Tp});
    if (rows.rel) add_relative_bias<W>(rows, S);
    softmax_rows<W>(rows, S, probs);  // S now holds Pd
    if (a.bf16)
      for (int64_t i = 0; i < rows.n; ++i) round_in_place(S + i * Tp + k0, keys);
    product<W>(
        {rows.n, pr.HS, std::min(rows.k1, T) - k0, S + k0, Tp, 1, vr + k0 * ldv, ldv, 1.0f, ctx + pr.out + i0 * H, H});
  }
}

template <int W>
SIMCSEPP_LANES void backward_pair(const Attn& a, float* dq, float* dk, float* dv, const float* dctx, const float* probs,
                                  int64_t b, int64_t h) {
  thread_local PairScratch w;
  const Pair pr = make_pair(a.s, a.d, a.mask, a.relBias, a.dRelBias != nullptr, b, h, w, false, a.bf16);
  const int64_t T = pr.T, Tp = pr.Tp, ld = a.s.ld, H = a.s.H();
  // bf16: q rounded (for dk, and for S when P is formed again).
  const bool roundCopies = a.bf16 && !a.inputsRounded;
  const float* qb = roundCopies ? rounded_rows(a.q + pr.in, ld, pr, w) : a.q + pr.in;
  const int64_t ldqb = roundCopies ? pr.HSp : ld;
  // P with rows padded to Tp: the saved probs themselves when T is already a multiple of kPad; without them
  // (probs null) formed again as the forward forms it (the same product and softmax: the same bits).
  const float* P = probs;
  if (probs == nullptr) {
    float* kt = transposed<W>(a.k + pr.in, ld, pr, w);
    if (roundCopies) round_in_place(kt, pr.HS * Tp);
    float* S = w.take(T * Tp);
    product<W>({T, Tp, pr.HS, qb, ldqb, 1, kt, Tp, pr.rows.scale, S, Tp});
    if (pr.rows.rel) add_relative_bias<W>(pr.rows, S);
    PairRows plain = pr.rows;
    plain.U = nullptr;  // P before dropout
    softmax_rows<W>(plain, S, nullptr);
    P = S;
  } else if (Tp != T) {
    float* padded = w.take(T * Tp);
    for (int64_t i = 0; i < T; ++i) {
      std::copy(probs + i * T, probs + (i + 1) * T, padded + i * Tp);
      std::fill(padded + i * Tp + T, padded + (i + 1) * Tp, 0.0f);
    }
    P = padded;
  }
  float* dropped = pr.rows.U ? w.take(T * Tp) : nullptr;  // Pd, written by softmax_backward_rows
  const float* Pd = dropped ? dropped : P;
  float* vt = transposed<W>(a.v + pr.in, ld, pr, w);
  float* dS = w.take(T * Tp);
  int64_t ldg, ldk, ldq;
  const float *g = nullptr, *kr = nullptr, *qr = nullptr;
  if (roundCopies) {
    round_in_place(vt, pr.HS * Tp);
    g = rounded_rows(dctx + pr.out, H, pr, w);
    kr = rounded_rows(a.k + pr.in, ld, pr, w);
    qr = qb;
    ldg = ldk = ldq = pr.HSp;
    product<W>({T, Tp, pr.HS, g, ldg, 1, vt, Tp, 1.0f, dS, Tp});  // dP
  } else {
    product<W>({T, Tp, pr.HS, dctx + pr.out, H, 1, vt, Tp, 1.0f, dS, Tp});  // dP
  }
  softmax_backward_rows<W>(pr.rows, dS, P, dropped);
  if (pr.rows.dRel) {
    float* out = a.dRelBias + b * (2 * T - 1) * a.s.NH + h;
    for (int64_t dg = 0; dg < 2 * T - 1; ++dg) out[dg * a.s.NH] = pr.rows.dRel[dg];
  }
  if (a.bf16) {
    round_in_place(dS, T * Tp);
    if (dropped != nullptr) {
      round_in_place(dropped, T * Tp);
    } else {  // Pd is P itself: a rounded copy (P may be the caller's probs)
      float* copy = w.take(T * Tp);
      for (int64_t i = 0; i < T * Tp; ++i) copy[i] = round_bf16_select(P[i]);
      Pd = copy;
    }
  }
  if (!roundCopies) {
    g = vector_rows(dctx + pr.out, H, W, pr, w, &ldg);
    kr = vector_rows(a.k + pr.in, ld, W, pr, w, &ldk);
    qr = vector_rows(a.q + pr.in, ld, W, pr, w, &ldq);
  }
  product<W>({T, pr.HS, T, Pd, 1, Tp, g, ldg, 1.0f, dv + pr.in, ld});   // dv = Pd^T dctx
  product<W>({T, pr.HS, T, dS, Tp, 1, kr, ldk, 1.0f, dq + pr.in, ld});  // dq = dS k (dS carries 1/sqrt(HS))
  product<W>({T, pr.HS, T, dS, 1, Tp, qr, ldq, 1.0f, dk + pr.in, ld});  // dk = dS^T q
}

// ---------------------------------------------------------------------------------------------
// Each instruction set's pair functions (everything above inlined into them), picked once.

struct Kernels {
  const char* name;
  void (*forward)(const Attn&, float* ctx, float* probs, int64_t b, int64_t h);
  void (*backward)(const Attn&, float* dq, float* dk, float* dv, const float* dctx, const float* probs, int64_t b,
                   int64_t h);
};

// The arguments of the pair functions, as a macro so that each instruction set's pair is a line.
#define SIMCSEPP_FORWARD_ARGS const Attn &a, float *ctx, float *probs, int64_t b, int64_t h
#define SIMCSEPP_BACKWARD_ARGS \
  const Attn &a, float *dq, float *dk, float *dv, const float *dctx, const float *probs, int64_t b, int64_t h

void forward_generic(SIMCSEPP_FORWARD_ARGS) { forward_pair<4>(a, ctx, probs, b, h); }
void backward_generic(SIMCSEPP_BACKWARD_ARGS) { backward_pair<4>(a, dq, dk, dv, dctx, probs, b, h); }
const Kernels kGeneric = {"generic", forward_generic, backward_generic};

#if defined(__x86_64__) || defined(__i386__)
#define SIMCSEPP_ATTENTION_X86 1
__attribute__((target("avx2,fma"))) void forward_avx2(SIMCSEPP_FORWARD_ARGS) { forward_pair<8>(a, ctx, probs, b, h); }
__attribute__((target("avx2,fma"))) void backward_avx2(SIMCSEPP_BACKWARD_ARGS) {
  backward_pair<8>(a, dq, dk, dv, dctx, probs, b, h);
}
const Kernels kAvx2 = {"avx2", forward_avx2, backward_avx2};

__attribute__((target("avx512f"))) void forward_avx512(SIMCSEPP_FORWARD_ARGS) { forward_pair<16>(a, ctx, probs, b, h); }
__attribute__((target("avx512f"))) void backward_avx512(SIMCSEPP_BACKWARD_ARGS) {
  backward_pair<16>(a, dq, dk, dv, dctx, probs, b, h);
}
const Kernels kAvx512 = {"avx512", forward_avx512, backward_avx512};
#else
#define SIMCSEPP_ATTENTION_X86 0
#endif

const Kernels* kernels_by_name(const char* name) {
  if (name == nullptr) return nullptr;
  if (std::strcmp(name, "generic") == 0) return &kGeneric;
#if SIMCSEPP_ATTENTION_X86
  __builtin_cpu_init();
  if (std::strcmp(name, "avx2") == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &kAvx2;
  if (std::strcmp(name, "avx512") == 0 && __builtin_cpu_supports("avx512f")) return &kAvx512;
#endif
  return nullptr;
}

const Kernels& kernels() {
  static const Kernels* k = [] {
    if (const Kernels* forced = kernels_by_name(std::getenv("SIMCSEPP_ATTENTION_KERNEL"))) return forced;
    for (const char* name : {"avx512", "avx2"})
      if (const Kernels* found = kernels_by_name(name)) return found;
    return &kGeneric;
  }();
  return *k;
}

}  // namespace

const char* attention_kernel_name() { return kernels().name; }

namespace {

// The scratch of the entry points (scratch.h), by slot: bf16 storage as floats (exact), or ctx before it is stored.
struct StorageTag {};
constexpr int kQkvSlot = 0, kCtxSlot = 1;

// The n bf16 values stored at x16, as floats in the slot's buffer.
float* unpacked(const float* x16, int64_t n, int slot) {
  float* x = thread_scratch<StorageTag, float>(slot, n);
  bf16_to_floats(x, x16, n);
  return x;
}

}  // namespace

// bf16Storage (ops/encoder.h): q | k | v and dctx are read as floats from their bf16 values (the products round them to
// the same values), ctx is computed into scratch and stored rounded.
void attention_forward(float* ctx, float* probs, const float* q, const float* k, const float* v, const int32_t* mask,
                       const float* relBias, int64_t B, int64_t T, int64_t NH, int64_t HS, int64_t ld, float p,
                       uint64_t seed, uint64_t offset, const uint8_t* keepRows, const RowIndex& rowIndex,
                       Precision precision, bool bf16Storage) {
  const int64_t H = NH * HS;
  float* ctx16 = nullptr;
  if (bf16Storage) {
    q = unpacked(q, B * T * ld, kQkvSlot);
    k = q + H;
    v = q + 2 * H;
    ctx16 = ctx;
    ctx = thread_scratch<StorageTag, float>(kCtxSlot, B * T * H);
  }
  Attn a{q, k, v, mask, {B, T, NH, HS, ld}, {p, seed, offset, keepRows, rowIndex}, relBias, nullptr};
  a.bf16 = attention_takes_bf16(precision, T, HS);
  a.inputsRounded = a.bf16 && bf16Storage;
  const Kernels& K = kernels();
  parallel_for(B * NH, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) K.forward(a, ctx, probs ? probs + i * T * T : nullptr, i / NH, i % NH);
  });
  if (ctx16 != nullptr) floats_to_bf16(ctx16, ctx, B * T * H);
}

void attention_backward(float* dq, float* dk, float* dv, float* dRelBias, const float* dctx, const float* q,
                        const float* k, const float* v, const float* probs, const int32_t* mask, const float* relBias,
                        int64_t B, int64_t T, int64_t NH, int64_t HS, int64_t ld, float p, uint64_t seed,
                        uint64_t offset, const uint8_t* keepRows, const RowIndex& rowIndex, Precision precision,
                        float* dqkvColumnSums, bool bf16Storage) {
  if (bf16Storage) {
    const int64_t H = NH * HS;
    q = unpacked(q, B * T * ld, kQkvSlot);
    k = q + H;
    v = q + 2 * H;
    dctx = unpacked(dctx, B * T * H, kCtxSlot);
  }
  Attn a{q, k, v, mask, {B, T, NH, HS, ld}, {p, seed, offset, keepRows, rowIndex}, relBias, dRelBias};
  a.bf16 = attention_takes_bf16(precision, T, HS);
  a.inputsRounded = a.bf16 && bf16Storage;
  const Kernels& K = kernels();
  parallel_for(B * NH, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      K.backward(a, dq, dk, dv, dctx, probs ? probs + i * T * T : nullptr, i / NH, i % NH);
  });
  if (dqkvColumnSums != nullptr) column_sums_add(dqkvColumnSums, dq, B * T, ld);  // a pass of its own
}

}  // namespace simcsepp::cpu
