// The AVX512_BF16 micro-kernel of the CPU GEMM's bf16 products (sgemm_bf16 in gemm.h): operands rounded to
// bfloat16 while they are packed, products summed in fp32 by VDPBF16PS, two k per instruction.
//
// It computes the same bits as the emulated path (round the operands, then the fp32 FMA kernels): the
// product of two bfloat16 values is exact in fp32, and VDPBF16PS adds the two products of a pair one after
// the other with a rounding each (Intel SDM: the odd element's product first, then the even one's), so
// packing k into the odd (high) half and k + 1 into the even (low) half of each 32-bit pair adds the
// products in k order, as an FMA per k does. The driver's K blocks, tile edges and epilogue are the fp32
// ones. One exception: VDPBF16PS treats subnormal inputs and results as zero (below 1.2e-38).
//
// Opt-in (SIMCSEPP_GEMM_BF16=avx512bf16, gemm.h): on Sapphire Rapids it runs at half the fp32 kernel's rate.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "gemm_kernel.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && (__GNUC__ >= 10 || defined(__clang__))
#define SIMCSEPP_HAVE_BF16_KERNEL 1
#include <immintrin.h>
#else
#define SIMCSEPP_HAVE_BF16_KERNEL 0
#endif

namespace simcsepp::cpu::gemm_detail {

#if SIMCSEPP_HAVE_BF16_KERNEL

namespace {

#define SIMCSEPP_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512bf16")))

// Rounding by VCVTNE2PS2BF16: to nearest even as common/bf16.h, NaN stays NaN; subnormal inputs become zero,
// as VDPBF16PS would take them.
//
// The 16 pair words of x[0, n) (n <= 32 is used; zero past n), for pairs whose two k are adjacent in memory (a
// row of A, a column of op(B) = a row of B^T): k in the high half of a word, k + 1 in the low half.
SIMCSEPP_BF16_TARGET __m512i pair_words_along(const float* x, int64_t n) {
  const __mmask16 m0 = n >= 16 ? 0xffff : n > 0 ? static_cast<__mmask16>((1u << n) - 1) : 0;
  const __mmask16 m1 = n >= 32 ? 0xffff : n > 16 ? static_cast<__mmask16>((1u << (n - 16)) - 1) : 0;
  // bf16 words in memory order (k in the low half of each pair), then k moved to the high half.
  const __m512i b = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + 16), _mm512_maskz_loadu_ps(m0, x));
  // (maskz forms: GCC 12's unmasked shifts warn of an uninitialised operand)
  return _mm512_or_si512(_mm512_maskz_slli_epi32(0xffff, b, 16), _mm512_maskz_srli_epi32(0xffff, b, 16));
}

// The pairs along n <= 16 rows x_r = x + r * ld of kc floats each: word (pair q, row r) to d[q * stride + r] for
// q < store_pairs (pairs past kc are zero) and r < width <= 16 (rows past n are zero). Per 16 pairs, 16 rows
// converted and transposed (transpose_16x16), then a store per pair: one pass over each row, front to back.
// Writing the words one at a time, stride apart, had taken 30% of the AVX512_BF16 products' time (mini, perf).
SIMCSEPP_BF16_TARGET void pairs_along_rows(const float* x, int64_t ld, int64_t n, int64_t kc, int64_t store_pairs,
                                           uint32_t* d, int64_t stride, int64_t width) {
  const __mmask16 mw = width >= 16 ? 0xffff : static_cast<__mmask16>((1u << width) - 1);
  for (int64_t q0 = 0; q0 < store_pairs; q0 += 16) {
    __m512i v[16];
    for (int64_t r = 0; r < 16; ++r)
      v[r] = r < n ? pair_words_along(x + r * ld + 2 * q0, kc - 2 * q0) : _mm512_setzero_si512();
    transpose_16x16(v);
    const int64_t nq = std::min<int64_t>(16, store_pairs - q0);
    for (int64_t q = 0; q < nq; ++q) _mm512_mask_storeu_epi32(d + (q0 + q) * stride, mw, v[q]);
  }
}

// Pairs whose two k are rows apart (a row of A^T, a row of B): words j = (x0[j], x1[j]) for j < n, zero up to
// `width` (<= 16), stored at d[0, width). x1 null: the k past kc, zero.
// The words of pairs_across, in a vector.
SIMCSEPP_BF16_TARGET __m512i pair_words_across(const float* x0, const float* x1, int64_t n) {
  const __mmask16 m = n >= 16 ? 0xffff : n > 0 ? static_cast<__mmask16>((1u << n) - 1) : 0;
  const __m512 v0 = _mm512_maskz_loadu_ps(m, x0);
  const __m512 v1 = x1 ? _mm512_maskz_loadu_ps(m, x1) : _mm512_setzero_ps();
  // cvtne2ps gives the 16-bit words [x1[0..15], x0[0..15]]; interleave them as (x1[j], x0[j]) pairs.
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                       5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(v0, v1));
}

SIMCSEPP_BF16_TARGET void pairs_across(const float* x0, const float* x1, int64_t n, int64_t width, uint32_t* d) {
  const __mmask16 mw = width >= 16 ? 0xffff : static_cast<__mmask16>((1u << width) - 1);
  _mm512_mask_storeu_epi32(d, mw, pair_words_across(x0, x1, n));
}

// sums[c] += x0[c], then += x1[c] (x1 may be null) for c < n <= 16, in double: a pair's two k of op(A)'s rows.
__attribute__((target("avx512f,avx512vl"))) void add_pair_sums(double* sums, const float* x0, const float* x1,
                                                               int64_t n) {
  const __mmask8 lo = static_cast<__mmask8>(n >= 8 ? 0xff : (1u << n) - 1);
  const __mmask8 hi = static_cast<__mmask8>(n >= 16 ? 0xff : n > 8 ? (1u << (n - 8)) - 1 : 0);
  __m512d s0 = _mm512_maskz_loadu_pd(lo, sums), s1 = _mm512_maskz_loadu_pd(hi, sums + 8);
  s0 = _mm512_add_pd(s0, _mm512_maskz_cvtps_pd(0xff, _mm256_maskz_loadu_ps(lo, x0)));
  s1 = _mm512_add_pd(s1, _mm512_maskz_cvtps_pd(0xff, _mm256_maskz_loadu_ps(hi, x0 + 8)));
  if (x1 != nullptr) {
    s0 = _mm512_add_pd(s0, _mm512_maskz_cvtps_pd(0xff, _mm256_maskz_loadu_ps(lo, x1)));
    s1 = _mm512_add_pd(s1, _mm512_maskz_cvtps_pd(0xff, _mm256_maskz_loadu_ps(hi, x1 + 8)));
  }
  _mm512_mask_storeu_pd(sums, lo, s0);
  _mm512_mask_storeu_pd(sums + 8, hi, s1);
}

// op(A)[i0:i0+mc, k0:k0+kc] as ceil(mc/MR) panels, panel ir at dst + ir * kc (as in the fp32 layout, of which it
// fills half): per k pair, MR words. Rows past mc and the k past kc are zero. a_sums (transposed A only; or null):
// the block's row sums of op(A) added there, from the fp32 values (Kernel::pack_a_sums).
template <int MR>
SIMCSEPP_BF16_TARGET void pack_a_bf16_impl(const MatA& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst,
                                           double* a_sums) {
  static_assert(MR <= 16, "one vector of rows per pair");
  const int64_t pairs = (kc + 1) / 2;
  if (!A.trans) {  // stored [M, K]: each row is contiguous in k
    for (int64_t ir = 0; ir < mc; ir += MR)
      pairs_along_rows(A.p + (i0 + ir) * A.ld + k0, A.ld, std::min<int64_t>(MR, mc - ir), kc, pairs,
                       reinterpret_cast<uint32_t*>(dst + ir * kc), MR, MR);
    return;
  }
  // stored [K, M]: row k holds pair member k of every panel's MR values. The two rows of a pair are taken across
  // all the panels before the next pair, so that each row of A is read once, front to back, and the rows kAhead
  // pairs below are prefetched meanwhile: the hardware found each new row late, and the loads had waited on
  // memory (the weight gradients' packing, mini's bf16 step: 3x copy_panels_avx512's time in the fp32 step).
  constexpr int64_t kAhead = 4;                 // pairs
  thread_local std::vector<double> block_sums;  // each row's sum over the block, in k order
  if (a_sums != nullptr) block_sums.assign(static_cast<size_t>(mc), 0.0);
  const float* s = A.p + k0 * A.ld + i0;
  for (int64_t p = 0; p < pairs; ++p) {
    const float* x0 = s + 2 * p * A.ld;
    const float* x1 = 2 * p + 1 < kc ? x0 + A.ld : nullptr;
    if (2 * (p + kAhead) + 1 < kc)
      for (int64_t c = 0; c < mc; c += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(x0 + 2 * kAhead * A.ld + c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(x0 + (2 * kAhead + 1) * A.ld + c), _MM_HINT_T0);
      }
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const int64_t mr = std::min<int64_t>(MR, mc - ir);
      pairs_across(x0 + ir, x1 ? x1 + ir : nullptr, mr, MR, reinterpret_cast<uint32_t*>(dst + ir * kc) + p * MR);
      if (a_sums != nullptr) add_pair_sums(block_sums.data() + ir, x0 + ir, x1 ? x1 + ir : nullptr, mr);
    }
  }
  if (a_sums != nullptr)
    for (int64_t i = 0; i < mc; ++i) a_sums[i] += block_sums[static_cast<size_t>(i)];
}

template <int MR>
SIMCSEPP_BF16_TARGET void pack_a_bf16(const MatA& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
  pack_a_bf16_impl<MR>(A, i0, mc, k0, kc, dst, nullptr);
}

template <int MR>
SIMCSEPP_BF16_TARGET void pack_a_sums_bf16(const MatA& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst,
                                           double* a_sums) {
  pack_a_bf16_impl<MR>(A, i0, mc, k0, kc, dst, a_sums);
}

// The nr-wide column panel j0 of op(B)[k0:k0+kc, :]: per k pair, NR words (zero past nr and kc).
template <int NR>
SIMCSEPP_BF16_TARGET void pack_b_panel_bf16(const MatB& B, int64_t k0, int64_t kc, int64_t j0, int64_t nr, float* dst) {
  const int64_t pairs = (kc + 1) / 2;
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  if (!B.trans) {  // stored [K, N]: row k holds the panel's columns for pair member k, 16 at a time
    const float* s = B.p + k0 * B.ld + j0;
    for (int64_t p = 0; p < pairs; ++p)
      for (int64_t c = 0; c < NR; c += 16) {
        const int64_t n = std::max<int64_t>(0, std::min<int64_t>(16, nr - c));
        pairs_across(s + 2 * p * B.ld + c, 2 * p + 1 < kc ? s + (2 * p + 1) * B.ld + c : nullptr, n, 16,
                     d + p * NR + c);
      }
  } else {  // stored [N, K]: column j of op(B) is row j of B, contiguous in k
    for (int64_t c = 0; c < NR; c += 16)
      pairs_along_rows(B.p + (j0 + c) * B.ld + k0, B.ld, std::clamp<int64_t>(nr - c, 0, 16), kc, pairs, d + c, NR, 16);
  }
}

// pack_b_panel_bf16's layout for `panels` full panels from column j0 of a B stored [K, N] (Kernel::pack_b_rows):
// panel q at dst + q * NR * kc, the pairs of rows taken across all the panels before the next pair, so that each
// row of B is read once, front to back, prefetched a few pairs ahead.
template <int NR>
SIMCSEPP_BF16_TARGET void pack_b_rows_bf16(const MatB& B, int64_t k0, int64_t kc, int64_t j0, int64_t panels,
                                           float* dst) {
  constexpr int64_t kAhead = 4;  // pairs
  const int64_t pairs = (kc + 1) / 2, width = panels * NR, panel_words = NR * kc;
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  const float* s = B.p + k0 * B.ld + j0;
  for (int64_t p = 0; p < pairs; ++p) {
    const float* r0 = s + 2 * p * B.ld;
    const float* r1 = 2 * p + 1 < kc ? r0 + B.ld : nullptr;
    if (p + kAhead < pairs)
      for (int64_t c = 0; c < width; c += 16) {
        _mm_prefetch(reinterpret_cast<const char*>(r0 + 2 * kAhead * B.ld + c), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(r0 + (2 * kAhead + 1) * B.ld + c), _MM_HINT_T0);
      }
    for (int64_t q = 0; q < panels; ++q)
      for (int64_t c = 0; c < NR; c += 16)
        pairs_across(r0 + q * NR + c, r1 ? r1 + q * NR + c : nullptr, 16, 16, d + q * panel_words + p * NR + c);
  }
}

// 14 x 32: 28 zmm accumulators; per k pair 2 B loads, 14 pair broadcasts and 28 VDPBF16PS.
__attribute__((target("avx512f,avx512bf16"))) void ukr_avx512bf16_14x32(int64_t kc, const float* __restrict a,
                                                                        const float* __restrict b, float* __restrict c,
                                                                        int64_t ldc, float alpha, float beta) {
  constexpr int MR = 14;
  const uint32_t* ap = reinterpret_cast<const uint32_t*>(a);
  const uint32_t* bp = reinterpret_cast<const uint32_t*>(b);
  __m512 acc0[MR], acc1[MR];
  tile_begin_avx512<MR>(acc0, acc1, c, ldc);
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t p = 0; p < pairs; ++p) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(bp);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(bp + 16);
    _mm_prefetch(reinterpret_cast<const char*>(ap + 8 * MR), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int r = 0; r < MR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_epi32(static_cast<int>(ap[r]));
      acc0[r] = _mm512_dpbf16_ps(acc0[r], av, b0);
      acc1[r] = _mm512_dpbf16_ps(acc1[r], av, b1);
    }
    ap += MR;
    bp += 32;
  }
  tile_end_avx512<MR>(acc0, acc1, c, ldc, alpha, beta);
}

// The fp32 AVX-512 kernel's blocking (gemm.cpp): the same K blocks are what makes the sums the same.
// clang-format off
const Kernel kAvx512Bf16 = {"avx512bf16", 14, 32, 280, 384, 2048, &ukr_avx512bf16_14x32, &pack_a_bf16<14>,
                            &pack_b_panel_bf16<32>, nullptr, &pack_b_rows_bf16<32>,
                            &pack_a_sums_bf16<14>};
// clang-format on

// ---------------------------------------------------------------------------------------------
// AMX (Sapphire Rapids and later): 32 x 32 of C as 2 x 2 tiles of 16 x 16 fp32 (tmm0-3), each k block of 16
// pairs (32 k) as two A tiles (rows 0-15, 16-31: tmm4, 5) and two B tiles (columns 0-15, 16-31: tmm6, 7),
// four TDPBF16PS per block. The pairs are packed as for VDPBF16PS (k in the high half, k + 1 in the low one)
// and the driver's K blocks are the fp32 ones, but TDPBF16PS does not round like a sequence of FMAs: its sums
// differ from the rounded copies' in the last bits (measured: test/gemm-bf16.test.ts).
//
// Packed A panel (32 rows): per block of 16 pairs, the rows 0-15 then 16-31, each row its 16 pair words
// (a tile: 16 rows of 64 bytes). Packed B panel: pack_b_panel_bf16<32>'s layout (per pair, 32 column words),
// which is already two tiles per block (16 rows of 64 bytes, 128 bytes apart). Both are zero-padded to whole
// blocks, which fits the driver's buffers (kc x 32 floats per panel) when kc >= 16: amx_kernel() asks K >= 16.

#if defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#define SIMCSEPP_HAVE_AMX_KERNEL 1
#define SIMCSEPP_AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

constexpr int64_t kAmxPairs = 16;  // pairs per k block (a tile row: 16 words of 4 bytes)

int64_t padded_pairs(int64_t kc) { return ((kc + 1) / 2 + kAmxPairs - 1) / kAmxPairs * kAmxPairs; }

// op(A)[i0:i0+mc, k0:k0+kc] as ceil(mc/32) panels, panel ir at dst + ir * kc. a_sums (transposed A only; or
// null): the block's row sums of op(A) added there (Kernel::pack_a_sums).
SIMCSEPP_AMX_TARGET void pack_a_amx_impl(const MatA& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst,
                                         double* a_sums) {
  constexpr int64_t MR = 32;
  const int64_t pairs = (kc + 1) / 2, padded = padded_pairs(kc);
  // Word (row r, pair q) of the panel at d.
  const auto at = [&](uint32_t* d, int64_t r, int64_t q) {
    return d + (q / kAmxPairs) * (kAmxPairs * MR) + (r / 16) * (16 * kAmxPairs) + (r % 16) * kAmxPairs + q % kAmxPairs;
  };
  if (!A.trans) {  // stored [M, K]: each row's pairs are along it, one tile row (32 k) per vector store
    // Each row of A is read alone, front to back, so the hardware prefetchers find each new row late: the rows
    // kAhead below are prefetched while this one is converted (mini's bf16 step, --profile, three pairs: 435-447 ->
    // 426-432 CPU ms).
    constexpr int64_t kAhead = 4;
    for (int64_t ir = 0; ir < mc; ir += MR) {
      uint32_t* d = reinterpret_cast<uint32_t*>(dst + ir * kc);
      const int64_t mr = std::min<int64_t>(MR, mc - ir);
      for (int64_t r = 0; r < MR; ++r) {
        if (ir + r + kAhead < mc) {
          const float* next = A.p + (i0 + ir + r + kAhead) * A.ld + k0;
          for (int64_t k = 0; k < kc; k += 16) _mm_prefetch(reinterpret_cast<const char*>(next + k), _MM_HINT_T0);
        }
        for (int64_t q = 0; q < padded; q += kAmxPairs) {
          _mm512_storeu_si512(at(d, r, q), r < mr
                                               ? pair_words_along(A.p + (i0 + ir + r) * A.ld + k0 + 2 * q, kc - 2 * q)
                                               : _mm512_setzero_si512());
        }
      }
    }
    return;
  }
  // stored [K, M]: pairs across two rows of A give a pair's words for 16 rows of op(A); 16 pairs of them,
  // transposed, are the 16 rows of a tile. The 32 rows of A of a block of 16 pairs are taken across all the
  // panels before the next block, so that each row of A is read once, front to back (panel by panel, down all
  // kc rows ld floats apart, the packing took half the AMX kernel's time in mini's bf16 step).
  const float* s = A.p + k0 * A.ld + i0;
  // The block's sums of op(A)'s rows (the columns of A), each in k order: a pair's first member, then its second.
  thread_local std::vector<double> block_sums;
  if (a_sums != nullptr) block_sums.assign(static_cast<size_t>(mc + 16), 0.0);
  for (int64_t q0 = 0; q0 < padded; q0 += kAmxPairs)
    for (int64_t ir = 0; ir < mc; ir += MR) {
      uint32_t* d = reinterpret_cast<uint32_t*>(dst + ir * kc);
      const int64_t mr = std::min<int64_t>(MR, mc - ir);
      for (int64_t r0 = 0; r0 < MR; r0 += 16) {
        __m512i v[16];
        const int64_t n = std::max<int64_t>(0, std::min<int64_t>(16, mr - r0));
        for (int64_t j = 0; j < 16; ++j) {
          const int64_t q = q0 + j;
          const float* x0 = s + 2 * q * A.ld + ir + r0;
          const float* x1 = 2 * q + 1 < kc ? x0 + A.ld : nullptr;
          v[j] = q < pairs ? pair_words_across(x0, x1, n) : _mm512_setzero_si512();
          if (a_sums != nullptr && q < pairs && n > 0) add_pair_sums(block_sums.data() + ir + r0, x0, x1, n);
        }
        transpose_16x16(v);
        for (int64_t r = 0; r < 16; ++r) _mm512_storeu_si512(at(d, r0 + r, q0), v[r]);
      }
    }
  if (a_sums != nullptr)
    for (int64_t i = 0; i < mc; ++i) a_sums[i] += block_sums[static_cast<size_t>(i)];
}

SIMCSEPP_AMX_TARGET void pack_a_amx(const MatA& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
  pack_a_amx_impl(A, i0, mc, k0, kc, dst, nullptr);
}

SIMCSEPP_AMX_TARGET void pack_a_sums_amx(const MatA& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst,
                                         double* a_sums) {
  pack_a_amx_impl(A, i0, mc, k0, kc, dst, a_sums);
}

// The nr-wide column panel j0 of op(B)[k0:k0+kc, :] in pack_b_panel_bf16<32>'s layout (per pair, 32 column
// words), zero-padded to whole blocks of pairs.
SIMCSEPP_AMX_TARGET void pack_b_panel_amx(const MatB& B, int64_t k0, int64_t kc, int64_t j0, int64_t nr, float* dst) {
  constexpr int64_t NR = 32;
  const int64_t pairs = (kc + 1) / 2, padded = padded_pairs(kc);
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  if (!B.trans) {  // stored [K, N]: pairs across two rows of B, one vector per 16 columns already
    pack_b_panel_bf16<NR>(B, k0, kc, j0, nr, dst);
    std::memset(d + pairs * NR, 0, static_cast<size_t>((padded - pairs) * NR) * sizeof(uint32_t));
    return;
  }
  // stored [N, K]: column c of op(B) is row c of B, its pairs along it.
  for (int64_t c0 = 0; c0 < NR; c0 += 16)
    pairs_along_rows(B.p + (j0 + c0) * B.ld + k0, B.ld, std::clamp<int64_t>(nr - c0, 0, 16), kc, padded, d + c0, NR,
                     16);
}

// The tile shapes (palette 1): tmm0-7 all 16 rows of 64 bytes.
struct TileConfig {
  uint8_t palette_id = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

// Called by the driver before each block of micro-kernel calls on a thread: loads the tile configuration
// (per thread, and again per block so that other code on the thread may use the tiles in between).
SIMCSEPP_AMX_TARGET void begin_amx() {
  static const TileConfig config;
  _tile_loadconfig(&config);
}

SIMCSEPP_AMX_TARGET void ukr_amx_32x32(int64_t kc, const float* __restrict a, const float* __restrict b,
                                       float* __restrict c, int64_t ldc, float alpha, float beta) {
  const uint32_t* ap = reinterpret_cast<const uint32_t*>(a);
  const uint32_t* bp = reinterpret_cast<const uint32_t*>(b);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  const int64_t blocks = padded_pairs(kc) / kAmxPairs;
  for (int64_t kb = 0; kb < blocks; ++kb) {
    const uint32_t* at = ap + kb * kAmxPairs * 32;
    const uint32_t* bt = bp + kb * kAmxPairs * 32;
    _tile_loadd(4, at, 64);
    _tile_loadd(5, at + 16 * kAmxPairs, 64);
    _tile_loadd(6, bt, 128);
    _tile_loadd(7, bt + 16, 128);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  alignas(64) float t[32 * 32];
  _tile_stored(0, t, 128);
  _tile_stored(1, t + 16, 128);
  _tile_stored(2, t + 16 * 32, 128);
  _tile_stored(3, t + 16 * 32 + 16, 128);
  // C = alpha * t + beta * C, as tile_end_avx512 (beta == 0: C not read).
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int r = 0; r < 32; ++r) {
    float* cr = c + r * ldc;
    for (int h = 0; h < 32; h += 16) {
      const __m512 x = _mm512_mul_ps(va, _mm512_load_ps(t + r * 32 + h));
      _mm512_storeu_ps(cr + h, beta == 0.0f ? x : _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr + h), x));
    }
  }
}

// pack_b_rows_bf16, each panel zero-padded to whole blocks of pairs (pack_b_panel_amx's layout).
SIMCSEPP_AMX_TARGET void pack_b_rows_amx(const MatB& B, int64_t k0, int64_t kc, int64_t j0, int64_t panels,
                                         float* dst) {
  constexpr int64_t NR = 32;
  const int64_t pairs = (kc + 1) / 2, padded = padded_pairs(kc);
  pack_b_rows_bf16<NR>(B, k0, kc, j0, panels, dst);
  for (int64_t q = 0; q < panels; ++q)
    std::memset(reinterpret_cast<uint32_t*>(dst + q * NR * kc) + pairs * NR, 0,
                static_cast<size_t>((padded - pairs) * NR) * sizeof(uint32_t));
}

// Blocking as the fp32 AVX-512 kernel's, with MC a multiple of 32.
// clang-format off
const Kernel kAmx = {"amx", 32, 32, 288, 384, 2048, &ukr_amx_32x32, &pack_a_amx, &pack_b_panel_amx, &begin_amx,
                     &pack_b_rows_amx, &pack_a_sums_amx};
// clang-format on

// Linux hands out AMX's tile state only to a process that asks for it (arch_prctl, kernel 5.16 and later).
bool amx_usable() {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512bf16")) return false;
  unsigned eax, ebx, ecx, edx;
  __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(7), "c"(0));
  const bool amx_bf16 = (edx >> 22) & 1, amx_tile = (edx >> 24) & 1;
  if (!amx_bf16 || !amx_tile) return false;
#if defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
#else
#define SIMCSEPP_HAVE_AMX_KERNEL 0
#endif

}  // namespace

const Kernel* bf16_kernel() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") ? &kAvx512Bf16 : nullptr;
}

namespace {

// Seconds for `rounds` x 12 independent VFMADD231PS (dot = false) or VDPBF16PS (dot = true) on zmm registers.
template <bool dot>
SIMCSEPP_BF16_TARGET double issue_time(int64_t rounds) {
  __m512 acc[12];
  for (int j = 0; j < 12; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  __m512 x = _mm512_set1_ps(1.0f);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < rounds; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j)
      acc[j] = dot ? _mm512_dpbf16_ps(acc[j], (__m512bh)x, (__m512bh)x) : _mm512_fmadd_ps(x, x, acc[j]);
    __asm__ volatile("" : "+v"(x));  // one operand the compiler cannot see through, so the loop stays
  }
  const auto t1 = std::chrono::steady_clock::now();
  __m512 sum = acc[0];
  for (int j = 1; j < 12; ++j) sum = _mm512_add_ps(sum, acc[j]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  volatile float keep = lanes[0];  // (_mm512_reduce_add_ps: GCC 12 warns of an uninitialised operand)
  (void)keep;
  return std::chrono::duration<double>(t1 - t0).count();
}

}  // namespace

// The instruction rates differ by CPU, not by feature flag: on Sapphire Rapids VDPBF16PS issues at a quarter of
// VFMADD231PS's rate (1.6 against 6.4 G instructions/s per core), on AMD's Zen 5 at the same rate (6.0 against
// 6.2), where its two k per instruction double the fp32 kernel's multiply-adds. So it is measured: the best of 5
// alternating timings of 12 independent chains of each (about 100 us in all; a preempted timing only lengthens,
// and the best discards it).
bool bf16_kernel_fast() {
  static const bool fast = [] {
    if (bf16_kernel() == nullptr) return false;
    constexpr int64_t kRounds = 2000;
    double fma = 1e9, dot = 1e9;
    for (int r = 0; r < 5; ++r) {
      fma = std::min(fma, issue_time<false>(kRounds));
      dot = std::min(dot, issue_time<true>(kRounds));
    }
    return dot < 1.25 * fma;
  }();
  return fast;
}

const Kernel* amx_kernel() {
#if SIMCSEPP_HAVE_AMX_KERNEL
  static const bool usable = amx_usable();
  return usable ? &kAmx : nullptr;
#else
  return nullptr;
#endif
}

#else

const Kernel* bf16_kernel() { return nullptr; }
bool bf16_kernel_fast() { return false; }
const Kernel* amx_kernel() { return nullptr; }

#endif

}  // namespace simcsepp::cpu::gemm_detail
