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
#include <cstring>

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
// Pairs whose two k are adjacent in memory (a row of A, a column of op(B) = a row of B^T): the words of
// x[0, kc), zero past kc, written to d[q * stride] for pair q.
SIMCSEPP_BF16_TARGET void pairs_along(const float* x, int64_t kc, uint32_t* d, int64_t stride) {
  alignas(64) uint32_t w[16];
  for (int64_t k = 0; k < kc; k += 32) {
    const int64_t n = std::min<int64_t>(32, kc - k);
    const __mmask16 m0 = n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1);
    const __mmask16 m1 = n >= 32 ? 0xffff : n > 16 ? static_cast<__mmask16>((1u << (n - 16)) - 1) : 0;
    const __m512 lo = _mm512_maskz_loadu_ps(m0, x + k), hi = _mm512_maskz_loadu_ps(m1, x + k + 16);
    // bf16 words in memory order (k in the low half of each pair), then k moved to the high half.
    const __m512i b = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    // (maskz forms: GCC 12's unmasked shifts warn of an uninitialised operand)
    const __m512i v = _mm512_or_si512(_mm512_maskz_slli_epi32(0xffff, b, 16), _mm512_maskz_srli_epi32(0xffff, b, 16));
    _mm512_store_si512(w, v);
    for (int64_t q = 0; q < (n + 1) / 2; ++q) d[(k / 2 + q) * stride] = w[q];
  }
}

// Pairs whose two k are rows apart (a row of A^T, a row of B): words j = (x0[j], x1[j]) for j < n, zero up to
// `width` (<= 16), stored at d[0, width). x1 null: the k past kc, zero.
SIMCSEPP_BF16_TARGET void pairs_across(const float* x0, const float* x1, int64_t n, int64_t width, uint32_t* d) {
  const __mmask16 m = n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1);
  const __m512 v0 = _mm512_maskz_loadu_ps(m, x0);
  const __m512 v1 = x1 ? _mm512_maskz_loadu_ps(m, x1) : _mm512_setzero_ps();
  // cvtne2ps gives the 16-bit words [x1[0..15], x0[0..15]]; interleave them as (x1[j], x0[j]) pairs.
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21,
                                       5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i v = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(v0, v1));
  const __mmask16 mw = width >= 16 ? 0xffff : static_cast<__mmask16>((1u << width) - 1);
  _mm512_mask_storeu_epi32(d, mw, v);
}

// op(A)[i0:i0+mc, k0:k0+kc] as ceil(mc/MR) panels, panel ir at dst + ir * kc (as in the fp32 layout, of which it
// fills half): per k pair, MR words. Rows past mc and the k past kc are zero.
template <int MR>
SIMCSEPP_BF16_TARGET void pack_a_bf16(const MatA& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
  static_assert(MR <= 16, "one vector of rows per pair");
  const int64_t pairs = (kc + 1) / 2;
  for (int64_t ir = 0; ir < mc; ir += MR) {
    uint32_t* d = reinterpret_cast<uint32_t*>(dst + ir * kc);
    const int64_t mr = std::min<int64_t>(MR, mc - ir);
    if (A.trans) {  // stored [K, M]: row k holds the MR values of pair member k
      const float* s = A.p + k0 * A.ld + i0 + ir;
      for (int64_t p = 0; p < pairs; ++p)
        pairs_across(s + 2 * p * A.ld, 2 * p + 1 < kc ? s + (2 * p + 1) * A.ld : nullptr, mr, MR, d + p * MR);
    } else {  // stored [M, K]: each row is contiguous in k
      for (int64_t r = 0; r < MR; ++r) {
        if (r < mr)
          pairs_along(A.p + (i0 + ir + r) * A.ld + k0, kc, d + r, MR);
        else
          for (int64_t p = 0; p < pairs; ++p) d[p * MR + r] = 0u;
      }
    }
  }
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
    for (int64_t c = 0; c < NR; ++c) {
      if (c < nr)
        pairs_along(B.p + (j0 + c) * B.ld + k0, kc, d + c, NR);
      else
        for (int64_t p = 0; p < pairs; ++p) d[p * NR + c] = 0u;
    }
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
const Kernel kAvx512Bf16 = {"avx512bf16",          14, 32, 280, 384, 4096, &ukr_avx512bf16_14x32, &pack_a_bf16<14>,
                            &pack_b_panel_bf16<32>};

}  // namespace

const Kernel* bf16_kernel() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512bf16") ? &kAvx512Bf16 : nullptr;
}

#else

const Kernel* bf16_kernel() { return nullptr; }

#endif

}  // namespace simcsepp::cpu::gemm_detail
