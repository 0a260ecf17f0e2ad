// What gemm.cpp's packed driver needs of a micro-kernel (internal to the CPU GEMM): the operand views, the
// micro-kernel's signature and the descriptor that pairs it with its packing routines and cache blocking.
// gemm.cpp holds the fp32 kernels; gemm_bf16.cpp the AVX512_BF16 one, which packs the same panels as
// bfloat16 pairs.
#pragma once
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace simcsepp::cpu::gemm_detail {

struct MatA {  // op(A)(i, k)
  const float* p;
  int64_t ld;
  bool trans;
};
struct MatB {  // op(B)(k, j)
  const float* p;
  int64_t ld;
  bool trans;
};

// C[MR x NR] (row stride ldc) = alpha * sum_k a[k*MR + r] * b[k*NR + c] + beta * C, with beta == 0 meaning
// "do not read C". a is the packed A micro-panel, b the packed B one (64-byte aligned). A packed panel of
// depth kc takes at most kc * MR (kc * NR) floats.
using UkrFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta);

struct Kernel {
  const char* name;
  int mr, nr;
  int64_t mc, kc, nc;  // cache blocking (mc multiple of mr, nc multiple of nr)
  UkrFn ukr;
  // Packs op(A)[i0:i0+mc, k0:k0+kc] as ceil(mc/MR) panels, panel ir at dst + ir * kc.
  void (*pack_a)(const MatA&, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst);
  // Packs the nr-wide column panel j0 of op(B)[k0:k0+kc, :] (zero-padded to NR) at d.
  void (*pack_b_panel)(const MatB&, int64_t k0, int64_t kc, int64_t j0, int64_t nr, float* d);
  // Null, or called on a thread before it runs a block of micro-kernel calls (AMX: the tile configuration).
  void (*begin)();
  // Null, or packs `panels` full NR-wide panels from column j0 of a B stored [K, N] (not transposed), panel p at
  // d + p * NR * kc, as pack_b_panel would: row by row across the panels, so that each row of B is read once
  // front to back (pack_b_panel walks down kc rows ld floats apart for each panel).
  void (*pack_b_rows)(const MatB&, int64_t k0, int64_t kc, int64_t j0, int64_t panels, float* d);
  // Null, or pack_a for a transposed A (stored [K, M]) that also adds op(A)'s row sums of the block to
  // a_sums[0, mc), from the fp32 values before any rounding: each row's sum over the block in double, in k order,
  // then added to a_sums (as gemm.cpp's add_packed_row_sums does from fp32 panels). A kernel without it that is
  // given row sums to compute must pack A in fp32 (add_packed_row_sums reads its panels).
  void (*pack_a_sums)(const MatA&, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst, double* a_sums);
};

// The AVX512_BF16 kernel (gemm_bf16.cpp), or nullptr where the CPU or the compiler lacks it.
const Kernel* bf16_kernel();
// Whether this CPU issues VDPBF16PS at nearly the rate of VFMADD231PS, so that the AVX512_BF16 kernel outruns
// the fp32 one (measured once, on the first call; false without the kernel).
bool bf16_kernel_fast();
// The AMX kernel (gemm_bf16.cpp), or nullptr where the CPU, the compiler or the OS lacks it. Its products need
// K >= 16 (its panels are padded to 32 k).
const Kernel* amx_kernel();

#if defined(__x86_64__) || defined(__i386__)
// The MR x 32 AVX-512 tiles of the fp32 and the bf16 kernel start and end alike, so that both round alike.
// Zeroes the accumulators and prefetches the tile of C.
template <int MR>
__attribute__((target("avx512f"))) inline void tile_begin_avx512(__m512* acc0, __m512* acc1, const float* c,
                                                                 int64_t ldc) {
  for (int r = 0; r < MR; ++r) {
    acc0[r] = _mm512_setzero_ps();
    acc1[r] = _mm512_setzero_ps();
  }
  for (int r = 0; r < MR; ++r) {
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 31), _MM_HINT_T0);
  }
}

// C = alpha * acc + beta * C, the latter as one FMA (beta == 0: C is not read).
template <int MR>
__attribute__((target("avx512f"))) inline void tile_end_avx512(const __m512* acc0, const __m512* acc1, float* c,
                                                               int64_t ldc, float alpha, float beta) {
  const __m512 va = _mm512_set1_ps(alpha);
  const __m512 vb = _mm512_set1_ps(beta);
  for (int r = 0; r < MR; ++r) {
    float* cr = c + r * ldc;
    if (beta == 0.0f) {
      _mm512_storeu_ps(cr, _mm512_mul_ps(va, acc0[r]));
      _mm512_storeu_ps(cr + 16, _mm512_mul_ps(va, acc1[r]));
    } else {
      _mm512_storeu_ps(cr, _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr), _mm512_mul_ps(va, acc0[r])));
      _mm512_storeu_ps(cr + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(cr + 16), _mm512_mul_ps(va, acc1[r])));
    }
  }
}

// v[i] element j <- v[j] element i (16 x 16 32-bit words: floats, or bf16 pairs). (maskz forms: GCC 12 warns of
// an uninitialised operand in the unmasked ones.)
__attribute__((target("avx512f"))) inline void transpose_16x16(__m512i* v) {
  constexpr __mmask16 all = 0xffff;
  constexpr __mmask8 all8 = 0xff;
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {  // per 128-bit lane, rows i, i + 1 interleaved: 2 x 2 blocks
    t[i] = _mm512_maskz_unpacklo_epi32(all, v[i], v[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_epi32(all, v[i], v[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // per lane, the 4 x 4 block of rows i..i+3 transposed: v[i + c] is column c
    v[i] = _mm512_maskz_unpacklo_epi64(all8, t[i], t[i + 2]);
    v[i + 1] = _mm512_maskz_unpackhi_epi64(all8, t[i], t[i + 2]);
    v[i + 2] = _mm512_maskz_unpacklo_epi64(all8, t[i + 1], t[i + 3]);
    v[i + 3] = _mm512_maskz_unpackhi_epi64(all8, t[i + 1], t[i + 3]);
  }
  for (int i = 0; i < 16; i += 8)
    for (int h = 0; h < 4; ++h) {  // lanes 0, 2 and 1, 3 of the two groups of 4 rows
      t[i + h] = _mm512_maskz_shuffle_i32x4(all, v[i + h], v[i + 4 + h], 0x88);
      t[i + 4 + h] = _mm512_maskz_shuffle_i32x4(all, v[i + h], v[i + 4 + h], 0xdd);
    }
  for (int h = 0; h < 8; ++h) {  // lane l of every group: columns 4 l .. 4 l + 3
    v[h] = _mm512_maskz_shuffle_i32x4(all, t[h], t[8 + h], 0x88);
    v[8 + h] = _mm512_maskz_shuffle_i32x4(all, t[h], t[8 + h], 0xdd);
  }
}
#endif

}  // namespace simcsepp::cpu::gemm_detail
