// Packed, cache-blocked, multi-threaded SGEMM (see gemm.h for the contract).
//
// Structure (BLIS / GotoBLAS):
//   for jc over N in steps of NC            B block   KC x NC  -> packed once, shared (L2)
//     for pc over K in steps of KC
//       pack op(B)[pc:pc+kc, jc:jc+nc] into NR-wide column panels        (parallel over panels)
//       for ic over M in steps of MC        A block   MC x KC  -> packed per thread
//         pack op(A)[ic:ic+mc, pc:pc+kc] into MR-tall row panels
//         for ir over the MR panels of the A block       A micro-panel MR x KC (L1)
//           for jr over the NR panels of the B block     B block KC x NC (L2)
//             micro-kernel: MR x NR tile of C += A micro-panel * B micro-panel
// Threads: C is cut into twice as many row (or column) rectangles as there are threads (as many as there are
// threads where those would be under 512 rows or columns, if they are 128 or more), and each rectangle runs the
// loops above on its own packing buffers (sgemm_packed): one parallel_for per call. When even those would be
// thin (the weight gradients' small M and N and long K), B is instead packed once per K block by all threads
// and the M blocks shared out (gemm_block shared by all threads). Both use the same K blocks, so the result
// does not depend on the thread count. Problems below ~64^3 multiply-adds skip packing entirely.
//
// Micro-kernels, picked once at run time:
//   avx512: 14 x 32 (28 zmm accumulators)   x86 with AVX-512F
//   avx2:    6 x 16 (12 ymm accumulators)   x86 with AVX2 + FMA
//   generic:  4 x 8  portable C++ (GCC vector extensions: SSE2 on x86-64, NEON on AArch64)
// The x86 kernels are compiled with target attributes, so the file builds with plain -O3 and the
// binary runs on any x86-64. SIMCSEPP_GEMM_KERNEL=avx512|avx2|generic overrides the choice.
//
// Blocking (Kernel table below): avx512 MC = 280, avx2 MC = 288, both KC = 384, generic MC = 192, KC = 256;
// NC = 1024 floats (2048 for the bf16 kernels, whose packed B takes half the bytes), so that the packed B
// block (1.5 MiB) stays in a 2 MiB L2 while the A micro-panel sits in L1 and the micro-kernel walks C
// along rows: on Sapphire Rapids (48 KiB L1d, 2 MiB L2) this order, with the micro-kernel prefetching its
// B panel 4 k ahead, beat the B-panel-outer order (C tiles 14 rows apart, column by column) by 6-11% at
// mini's products and 20% for the macro-kernel alone with C in memory. Per call, MC, NC and KC shrink to
// equal-size blocks so that no block is left with a sliver.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "clones.h"
#include "column_sums.h"
#include "common/bf16.h"
#include "dot.h"
#include "gelu.h"
#include "gemm_kernel.h"
#include "parallel.h"

#if defined(__x86_64__) || defined(__i386__)
#define SIMCSEPP_GEMM_X86 1
#include <immintrin.h>
#else
#define SIMCSEPP_GEMM_X86 0
#endif

namespace simcsepp::cpu {

namespace {

// ---------------------------------------------------------------------------------------------
// Thread-local, 64-byte aligned, grow-only scratch buffers.

struct Scratch {
  float* p = nullptr;
  size_t cap = 0;  // floats
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p); }
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      const size_t bytes = ((n * sizeof(float) + 4095) / 4096) * 4096;
      p = static_cast<float*>(std::aligned_alloc(4096, bytes));
      if (!p) std::abort();
      cap = bytes / sizeof(float);
    }
    return p;
  }
};

thread_local Scratch t_pack_a;  // MC x KC block of A (per thread)
thread_local Scratch t_pack_b;  // KC x NC block of B (per calling thread, shared with the pool)

// ---------------------------------------------------------------------------------------------
// Operand views.

using gemm_detail::Kernel;
#if SIMCSEPP_GEMM_X86
using gemm_detail::tile_begin_avx512;
using gemm_detail::tile_end_avx512;
using gemm_detail::transpose_16x16;
#endif
using gemm_detail::MatA;
using gemm_detail::MatB;

// An operand element as packed: as is, or (kRound) rounded to bfloat16 for sgemm_bf16, which so gets the
// bits of rounded copies without writing and reading them.
template <bool kRound>
inline float in(float x) {
  return kRound ? round_bf16(x) : x;
}

// out[0, n) = x[0, n) rounded to bfloat16, in a loop that vectorises (the packing loops that gather from
// several rows do not): the rounding pass of the rows that are gathered.
SIMCSEPP_CLONES void round_bf16_row(float* __restrict out, const float* __restrict x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = round_bf16(x[i]);
}

// d[k * MR + r] = rows[r][k] for r < MR, k < kc: MR rows of A into a k-major panel.
template <int MR>
void gather_rows(const float* const* rows, int64_t kc, float* __restrict d) {
  for (int64_t k = 0; k < kc; ++k)
    for (int r = 0; r < MR; ++r) d[k * MR + r] = rows[r][k];
}

#if SIMCSEPP_GEMM_X86
// gather_rows with AVX-512, 16 k at a time: the MR rows' 16-float pieces (zero rows up to 16) transposed, then
// 16 masked stores of MR floats. Measured on Sapphire Rapids: the scalar gather was 14% of a mini product's
// time at MR = 14.
template <int MR>
__attribute__((target("avx512f"))) void gather_rows_avx512(const float* const* rows, int64_t kc, float* __restrict d) {
  static_assert(MR <= 16, "one vector per k");
  constexpr __mmask16 keep = static_cast<__mmask16>((1u << MR) - 1);
  int64_t k = 0;
  for (; k + 16 <= kc; k += 16) {
    __m512i v[16];
    for (int r = 0; r < 16; ++r)
      v[r] = r < MR ? _mm512_castps_si512(_mm512_loadu_ps(rows[r] + k)) : _mm512_setzero_si512();
    transpose_16x16(v);
    for (int j = 0; j < 16; ++j) _mm512_mask_storeu_ps(d + (k + j) * MR, keep, _mm512_castsi512_ps(v[j]));
  }
  for (; k < kc; ++k)
    for (int r = 0; r < MR; ++r) d[k * MR + r] = rows[r][k];
}

// The 8 x 8 floats of v (8 rows) transposed in place: AVX2's in-lane unpacks and shuffles, then the halves swapped
// across lanes.
__attribute__((target("avx2"))) inline void transpose_8x8(__m256* v) {
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  const __m256 t4 = _mm256_unpacklo_ps(v[4], v[5]), t5 = _mm256_unpackhi_ps(v[4], v[5]);
  const __m256 t6 = _mm256_unpacklo_ps(v[6], v[7]), t7 = _mm256_unpackhi_ps(v[6], v[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  v[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  v[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  v[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  v[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  v[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  v[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  v[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  v[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// The full panels of a transposed A (stored [K, M]): panel p gets d[p * MR * kc + k * MR + r] = s[k * ld + p * MR + r]
// for p < panels, k < kc, r < MR, one masked load and store per panel and k. The loop over the panels is the inner
// one, so that each source row (a stride of ld floats from the last) is read once, front to back, and the
// hardware prefetchers follow it; with the rows software-prefetched a few k ahead. Walking one panel down all kc
// rows at a time (then the next panel down the same rows) left the loads waiting on memory: 23% of the time of
// mini's qkv weight gradient (768 x 256 x 6144) went to packing it.
template <int MR>
__attribute__((target("avx512f"))) void copy_panels_avx512(const float* s, int64_t ld, int64_t kc, int64_t panels,
                                                           float* __restrict d) {
  static_assert(MR <= 16, "one vector per k");
  constexpr __mmask16 keep = static_cast<__mmask16>((1u << MR) - 1);
  constexpr int64_t kAhead = 8;  // rows prefetched ahead
  const int64_t panel_floats = MR * kc, width = panels * MR;
  for (int64_t k = 0; k < kc; ++k) {
    const float* row = s + k * ld;
    if (k + kAhead < kc)
      for (int64_t c = 0; c < width; c += 16)
        _mm_prefetch(reinterpret_cast<const char*>(row + kAhead * ld + c), _MM_HINT_T0);
    float* dk = d + k * MR;
    for (int64_t p = 0; p < panels; ++p)
      _mm512_mask_storeu_ps(dk + p * panel_floats, keep, _mm512_maskz_loadu_ps(keep, row + p * MR));
  }
}

// copy_panels_avx512 for the AVX2 kernel (MR = 6): per k and panel, 4 + 2 floats loaded and stored. The weight
// gradients' transposed A went one float at a time: with the A stored [M, K] gather, 7% of a `mini` step on the
// 2-vCPU AMD EPYC VM.
__attribute__((target("avx2"))) void copy_panels_avx2_6(const float* s, int64_t ld, int64_t kc, int64_t panels,
                                                        float* __restrict d) {
  constexpr int64_t MR = 6, kAhead = 8;  // rows prefetched ahead
  const int64_t panel_floats = MR * kc, width = panels * MR;
  for (int64_t k = 0; k < kc; ++k) {
    const float* row = s + k * ld;
    if (k + kAhead < kc)
      for (int64_t c = 0; c < width; c += 16)
        _mm_prefetch(reinterpret_cast<const char*>(row + kAhead * ld + c), _MM_HINT_T0);
    float* dk = d + k * MR;
    for (int64_t p = 0; p < panels; ++p) {
      const float* x = row + p * MR;
      float* y = dk + p * panel_floats;
      _mm_storeu_ps(y, _mm_loadu_ps(x));
      _mm_storel_pi(reinterpret_cast<__m64*>(y + 4),
                    _mm_loadl_pi(_mm_setzero_ps(), reinterpret_cast<const __m64*>(x + 4)));
    }
  }
}
#endif

// Packs op(A)[i0:i0+mc, k0:k0+kc] as ceil(mc/MR) panels, each kc x MR (k-major), zero-padded. kAvx512: full
// panels through gather_rows_avx512 and copy_panels_avx512 (the CPU has AVX-512F: the kernel table says so);
// kAvx2 (MR = 6): a transposed A's full panels through copy_panels_avx2_6.
template <int MR, bool kRound = false, bool kAvx512 = false, bool kAvx2 = false>
void pack_a(const MatA& A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, float* dst) {
  int64_t ir = 0;
#if SIMCSEPP_GEMM_X86
  if constexpr (kAvx512 && !kRound) {
    if (A.trans) {  // the full panels row by row (copy_panels_avx512), the partial one below
      copy_panels_avx512<MR>(A.p + k0 * A.ld + i0, A.ld, kc, mc / MR, dst);
      ir = mc / MR * MR;
    }
  }
  if constexpr (kAvx2 && !kRound) {
    static_assert(MR == 6, "copy_panels_avx2_6");
    if (A.trans) {  // as above
      copy_panels_avx2_6(A.p + k0 * A.ld + i0, A.ld, kc, mc / MR, dst);
      ir = mc / MR * MR;
    }
  }
#endif
  for (; ir < mc; ir += MR) {
    const int64_t mr = std::min<int64_t>(MR, mc - ir);
    float* d = dst + ir * kc;
    if (A.trans) {  // stored [K, M]: MR consecutive floats per k
      const float* s = A.p + k0 * A.ld + i0 + ir;
      if (mr == MR) {
        for (int64_t k = 0; k < kc; ++k) {
          if (kRound)
            round_bf16_row(d + k * MR, s + k * A.ld, MR);
          else
            for (int r = 0; r < MR; ++r) d[k * MR + r] = s[k * A.ld + r];
        }
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          int r = 0;
          for (; r < mr; ++r) d[k * MR + r] = in<kRound>(s[k * A.ld + r]);
          for (; r < MR; ++r) d[k * MR + r] = 0.0f;
        }
      }
    } else {  // stored [M, K]: rows are contiguous in k
      const float* s = A.p + (i0 + ir) * A.ld + k0;
      if (mr == MR) {
        const float* rows[MR];
        for (int r = 0; r < MR; ++r) rows[r] = s + r * A.ld;
        if (kRound) {  // the rows rounded first, with vector instructions
          thread_local std::vector<float> rounded;
          if (rounded.size() < static_cast<size_t>(MR * kc)) rounded.resize(static_cast<size_t>(MR * kc));
          for (int r = 0; r < MR; ++r) {
            round_bf16_row(rounded.data() + r * kc, rows[r], kc);
            rows[r] = rounded.data() + r * kc;
          }
        }
#if SIMCSEPP_GEMM_X86
        if constexpr (kAvx512) {
          gather_rows_avx512<MR>(rows, kc, d);
          continue;
        }
#endif
        gather_rows<MR>(rows, kc, d);
      } else {
        for (int64_t k = 0; k < kc; ++k) {
          int r = 0;
          for (; r < mr; ++r) d[k * MR + r] = in<kRound>(s[r * A.ld + k]);
          for (; r < MR; ++r) d[k * MR + r] = 0.0f;
        }
      }
    }
  }
}

// Packs the NR-wide column panel j0:j0+nr of op(B)[k0:k0+kc, :] as kc x NR (k-major), zero-padded.
template <int NR, bool kRound = false>
void pack_b_panel(const MatB& B, int64_t k0, int64_t kc, int64_t j0, int64_t nr, float* d) {
  if (!B.trans) {  // stored [K, N]: NR consecutive floats per k
    const float* s = B.p + k0 * B.ld + j0;
    if (nr == NR) {
      for (int64_t k = 0; k < kc; ++k) {
        if (kRound)
          round_bf16_row(d + k * NR, s + k * B.ld, NR);
        else
          std::memcpy(d + k * NR, s + k * B.ld, NR * sizeof(float));
      }
    } else {
      for (int64_t k = 0; k < kc; ++k) {
        int64_t c = 0;
        for (; c < nr; ++c) d[k * NR + c] = in<kRound>(s[k * B.ld + c]);
        for (; c < NR; ++c) d[k * NR + c] = 0.0f;
      }
    }
  } else {  // stored [N, K]: column j of op(B) is row j of B, contiguous in k
    const float* s = B.p + j0 * B.ld + k0;
    constexpr int64_t KB = 64;  // k-blocking keeps the NR source streams and the panel in L1
    for (int64_t kb = 0; kb < kc; kb += KB) {
      const int64_t ke = std::min(kc, kb + KB);
      int64_t c = 0;
      for (; c < nr; ++c) {
        const float* sc = s + c * B.ld + kb;
        alignas(64) float rounded[KB];
        if (kRound) {  // the column's k block rounded first, with vector instructions
          round_bf16_row(rounded, sc, ke - kb);
          sc = rounded;
        }
        for (int64_t k = kb; k < ke; ++k) d[k * NR + c] = sc[k - kb];
      }
      for (; c < NR; ++c) {
        for (int64_t k = kb; k < ke; ++k) d[k * NR + c] = 0.0f;
      }
    }
  }
}

#if SIMCSEPP_GEMM_X86
// pack_b_panel for the AVX2 kernel (NR = 16): a full panel of a B stored [N, K] (the linear layers' forward
// products: op(B) = W^T) through 8 x 8 transposes, 8 k of 8 columns at a time, where pack_b_panel moves one float
// at a time (5.6% of encoding with `mini` on the 2-vCPU AMD EPYC VM); anything else as pack_b_panel.
__attribute__((target("avx2"))) void pack_b_panel_avx2(const MatB& B, int64_t k0, int64_t kc, int64_t j0, int64_t nr,
                                                       float* d) {
  constexpr int64_t NR = 16;
  if (!B.trans || nr != NR) return pack_b_panel<NR>(B, k0, kc, j0, nr, d);
  const float* s = B.p + j0 * B.ld + k0;
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8)
    for (int64_t c0 = 0; c0 < NR; c0 += 8) {
      __m256 v[8];
      for (int r = 0; r < 8; ++r) v[r] = _mm256_loadu_ps(s + (c0 + r) * B.ld + k);
      transpose_8x8(v);
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(d + (k + j) * NR + c0, v[j]);
    }
  for (; k < kc; ++k)
    for (int64_t c = 0; c < NR; ++c) d[k * NR + c] = s[c * B.ld + k];
}

// pack_b_panel for the AVX-512 kernel (NR = 32): a full panel of a B stored [N, K] (the linear layers' forward
// products, op(B) = W^T) through 16 x 16 transposes, 16 k of 16 columns at a time, where pack_b_panel moves one
// float at a time (7.9% of `simcsepp encode` with `mini` on the 2-vCPU AMD Zen 5 VM, against 61% in the
// micro-kernel: with 2 threads each packs all of B for its half of the rows). Anything else as pack_b_panel.
__attribute__((target("avx512f"))) void pack_b_panel_avx512(const MatB& B, int64_t k0, int64_t kc, int64_t j0,
                                                            int64_t nr, float* d) {
  constexpr int64_t NR = 32;
  if (!B.trans || nr != NR) return pack_b_panel<NR>(B, k0, kc, j0, nr, d);
  const float* s = B.p + j0 * B.ld + k0;
  int64_t k = 0;
  for (; k + 16 <= kc; k += 16)
    for (int64_t c0 = 0; c0 < NR; c0 += 16) {
      __m512i v[16];
      for (int r = 0; r < 16; ++r) {
        const float* row = s + (c0 + r) * B.ld + k;
        if (k + 48 <= kc) __builtin_prefetch(row + 32);  // two steps ahead: the 32 rows are 32 streams
        v[r] = _mm512_castps_si512(_mm512_loadu_ps(row));
      }
      transpose_16x16(v);
      for (int j = 0; j < 16; ++j) _mm512_storeu_ps(d + (k + j) * NR + c0, _mm512_castsi512_ps(v[j]));
    }
  for (; k < kc; ++k)
    for (int64_t c = 0; c < NR; ++c) d[k * NR + c] = s[c * B.ld + k];
}
#endif

// Packs `panels` full NR-wide panels of op(B)[k0:k0+kc, j0:] for a B stored [K, N], as pack_b_panel does one:
// row by row across the panels (Kernel::pack_b_rows), with the rows software-prefetched a few k ahead. For
// mini's MLP-down weight gradient (256 x 1024 x 6144), whose B rows are 4 KiB apart, packing panel by panel
// took 21% of the product's time.
template <int NR, bool kRound = false>
void pack_b_rows(const MatB& B, int64_t k0, int64_t kc, int64_t j0, int64_t panels, float* d) {
  constexpr int64_t kAhead = 8;
  const int64_t width = panels * NR, panel_floats = NR * kc;
  const float* s = B.p + k0 * B.ld + j0;
  for (int64_t k = 0; k < kc; ++k) {
    const float* row = s + k * B.ld;
    if (k + kAhead < kc)
      for (int64_t c = 0; c < width; c += 16) __builtin_prefetch(row + kAhead * B.ld + c);
    float* dk = d + k * NR;
    for (int64_t p = 0; p < panels; ++p) {
      if (kRound)
        round_bf16_row(dk + p * panel_floats, row + p * NR, NR);
      else
        std::memcpy(dk + p * panel_floats, row + p * NR, NR * sizeof(float));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Micro-kernels (gemm_kernel.h has their contract).

#if defined(__GNUC__)
// 4 x 8 with GCC/Clang vector extensions (SSE2 on baseline x86-64, NEON on AArch64): 8 vector
// accumulators, 2 B vectors and a broadcast fit the 16 registers of SSE2.
typedef float v4f __attribute__((vector_size(16)));

inline v4f load_v4(const float* p) {
  v4f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

void ukr_generic_4x8(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                     float alpha, float beta) {
  v4f c00 = {}, c01 = {}, c10 = {}, c11 = {}, c20 = {}, c21 = {}, c30 = {}, c31 = {};
  for (int64_t k = 0; k < kc; ++k) {
    const v4f b0 = load_v4(b), b1 = load_v4(b + 4);
    v4f av = v4f{} + a[0];
    c00 += av * b0;
    c01 += av * b1;
    av = v4f{} + a[1];
    c10 += av * b0;
    c11 += av * b1;
    av = v4f{} + a[2];
    c20 += av * b0;
    c21 += av * b1;
    av = v4f{} + a[3];
    c30 += av * b0;
    c31 += av * b1;
    a += 4;
    b += 8;
  }
  const v4f acc[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
  for (int r = 0; r < 4; ++r) {
    float* cr = c + r * ldc;
    for (int h = 0; h < 2; ++h) {
      v4f x = acc[r][h] * alpha;
      if (beta != 0.0f) x += load_v4(cr + 4 * h) * beta;
      std::memcpy(cr + 4 * h, &x, sizeof x);
    }
  }
}
#else
void ukr_generic_4x8(int64_t kc, const float* __restrict a, const float* __restrict b, float* __restrict c, int64_t ldc,
                     float alpha, float beta) {
  float acc[4][8] = {};
  for (int64_t k = 0; k < kc; ++k) {
    for (int r = 0; r < 4; ++r) {
      for (int j = 0; j < 8; ++j) acc[r][j] += a[r] * b[j];
    }
    a += 4;
    b += 8;
  }
  for (int r = 0; r < 4; ++r) {
    float* cr = c + r * ldc;
    for (int j = 0; j < 8; ++j) cr[j] = beta == 0.0f ? alpha * acc[r][j] : alpha * acc[r][j] + beta * cr[j];
  }
}
#endif

#if SIMCSEPP_GEMM_X86

__attribute__((target("avx2,fma"))) void ukr_avx2_6x16(int64_t kc, const float* __restrict a, const float* __restrict b,
                                                       float* __restrict c, int64_t ldc, float alpha, float beta) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int r = 0; r < 6; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
  for (int r = 0; r < 6; ++r) _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T0);

#define SIMCSEPP_AVX2_STEP(OFFA, OFFB)                \
  {                                                   \
    const __m256 b0 = _mm256_load_ps(b + (OFFB));     \
    const __m256 b1 = _mm256_load_ps(b + (OFFB) + 8); \
    __m256 av = _mm256_broadcast_ss(a + (OFFA) + 0);  \
    c00 = _mm256_fmadd_ps(av, b0, c00);               \
    c01 = _mm256_fmadd_ps(av, b1, c01);               \
    av = _mm256_broadcast_ss(a + (OFFA) + 1);         \
    c10 = _mm256_fmadd_ps(av, b0, c10);               \
    c11 = _mm256_fmadd_ps(av, b1, c11);               \
    av = _mm256_broadcast_ss(a + (OFFA) + 2);         \
    c20 = _mm256_fmadd_ps(av, b0, c20);               \
    c21 = _mm256_fmadd_ps(av, b1, c21);               \
    av = _mm256_broadcast_ss(a + (OFFA) + 3);         \
    c30 = _mm256_fmadd_ps(av, b0, c30);               \
    c31 = _mm256_fmadd_ps(av, b1, c31);               \
    av = _mm256_broadcast_ss(a + (OFFA) + 4);         \
    c40 = _mm256_fmadd_ps(av, b0, c40);               \
    c41 = _mm256_fmadd_ps(av, b1, c41);               \
    av = _mm256_broadcast_ss(a + (OFFA) + 5);         \
    c50 = _mm256_fmadd_ps(av, b0, c50);               \
    c51 = _mm256_fmadd_ps(av, b1, c51);               \
  }

  int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(a + 96), _MM_HINT_T0);
    SIMCSEPP_AVX2_STEP(0, 0)
    SIMCSEPP_AVX2_STEP(6, 16)
    SIMCSEPP_AVX2_STEP(12, 32)
    SIMCSEPP_AVX2_STEP(18, 48)
    a += 24;
    b += 64;
  }
  for (; k < kc; ++k) {
    SIMCSEPP_AVX2_STEP(0, 0)
    a += 6;
    b += 16;
  }
#undef SIMCSEPP_AVX2_STEP

  const __m256 va = _mm256_set1_ps(alpha);
  const __m256 vb = _mm256_set1_ps(beta);
  auto store = [&](float* cr, __m256 x0, __m256 x1) __attribute__((target("avx2,fma"))) {
    if (beta == 0.0f) {
      _mm256_storeu_ps(cr, _mm256_mul_ps(va, x0));
      _mm256_storeu_ps(cr + 8, _mm256_mul_ps(va, x1));
    } else {
      _mm256_storeu_ps(cr, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), _mm256_mul_ps(va, x0)));
      _mm256_storeu_ps(cr + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8), _mm256_mul_ps(va, x1)));
    }
  };
  store(c + 0 * ldc, c00, c01);
  store(c + 1 * ldc, c10, c11);
  store(c + 2 * ldc, c20, c21);
  store(c + 3 * ldc, c30, c31);
  store(c + 4 * ldc, c40, c41);
  store(c + 5 * ldc, c50, c51);
}

// 14 x 32 with AVX-512F: 28 zmm accumulators, 2 B loads and 14 broadcasts per k (31 of the 32 registers;
// measured 3-4% faster than 12 x 32 on Sapphire Rapids at BERT's shapes).
__attribute__((target("avx512f"))) void ukr_avx512_14x32(int64_t kc, const float* __restrict a,
                                                         const float* __restrict b, float* __restrict c, int64_t ldc,
                                                         float alpha, float beta) {
  constexpr int MR = 14;
  __m512 acc0[MR], acc1[MR];
  tile_begin_avx512<MR>(acc0, acc1, c, ldc);
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    _mm_prefetch(reinterpret_cast<const char*>(a + 8 * MR), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 4 * 32), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + 4 * 32 + 16), _MM_HINT_T0);
#pragma GCC unroll 14
    for (int r = 0; r < MR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
    }
    a += MR;
    b += 32;
  }
  tile_end_avx512<MR>(acc0, acc1, c, ldc, alpha, beta);
}

#endif  // SIMCSEPP_GEMM_X86

// ---------------------------------------------------------------------------------------------
// Kernel descriptors.

// clang-format off
//                            name       MR  NR   MC   KC    NC  micro-kernel       pack A                    pack B panel             begin    pack B rows            pack A with sums
const Kernel kGeneric      = {"generic",  4,  8, 192, 256, 1024, &ukr_generic_4x8,  &pack_a<4>,               &pack_b_panel<8>,        nullptr, &pack_b_rows<8>, nullptr};
// The same with the operands rounded to bfloat16 while packed (sgemm_bf16).
const Kernel kGenericRound = {"generic",  4,  8, 192, 256, 1024, &ukr_generic_4x8,  &pack_a<4, true>,         &pack_b_panel<8, true>,  nullptr, &pack_b_rows<8, true>, nullptr};
#if SIMCSEPP_GEMM_X86
const Kernel kAvx2         = {"avx2",     6, 16, 288, 384, 1024, &ukr_avx2_6x16,    &pack_a<6, false, false, true>, &pack_b_panel_avx2,      nullptr, &pack_b_rows<16>, nullptr};
const Kernel kAvx2Round    = {"avx2",     6, 16, 288, 384, 1024, &ukr_avx2_6x16,    &pack_a<6, true>,         &pack_b_panel<16, true>, nullptr, &pack_b_rows<16, true>, nullptr};
const Kernel kAvx512       = {"avx512",  14, 32, 280, 384, 1024, &ukr_avx512_14x32, &pack_a<14, false, true>, &pack_b_panel_avx512,    nullptr, &pack_b_rows<32>, nullptr};
const Kernel kAvx512Round  = {"avx512",  14, 32, 280, 384, 1024, &ukr_avx512_14x32, &pack_a<14, true, true>,  &pack_b_panel<32, true>, nullptr, &pack_b_rows<32, true>, nullptr};
#endif
// clang-format on

bool cpu_has(const char* name) {
  if (std::strcmp(name, "generic") == 0) return true;
#if SIMCSEPP_GEMM_X86
  __builtin_cpu_init();
  if (std::strcmp(name, "avx2") == 0) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (std::strcmp(name, "avx512") == 0) return __builtin_cpu_supports("avx512f");
#endif
  return false;
}

const Kernel* kernel_by_name(const char* name) {
  if (!name || !cpu_has(name)) return nullptr;
  if (std::strcmp(name, "generic") == 0) return &kGeneric;
#if SIMCSEPP_GEMM_X86
  if (std::strcmp(name, "avx2") == 0) return &kAvx2;
  if (std::strcmp(name, "avx512") == 0) return &kAvx512;
#endif
  return nullptr;
}

const Kernel* detect_kernel() {
  if (const Kernel* k = kernel_by_name(std::getenv("SIMCSEPP_GEMM_KERNEL"))) return k;
#if SIMCSEPP_GEMM_X86
  if (cpu_has("avx512")) return &kAvx512;
  if (cpu_has("avx2")) return &kAvx2;
#endif
  return &kGeneric;
}

std::atomic<const Kernel*> g_forced{nullptr};

const Kernel& kernel() {
  if (const Kernel* f = g_forced.load(std::memory_order_acquire)) return *f;
  static const Kernel* k = detect_kernel();
  return *k;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

// C[m x n] = beta * C (beta == 0 overwrites).
void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t ldc) {
  if (beta == 1.0f) return;
  for (int64_t i = 0; i < M; ++i) {
    float* c = C + i * ldc;
    if (beta == 0.0f) {
      std::fill(c, c + N, 0.0f);
    } else {
      for (int64_t j = 0; j < N; ++j) c[j] *= beta;
    }
  }
}

// Unpacked path for small problems: row by row, vectorisable inner loops.
void sgemm_small(const MatA& A, const MatB& B, int64_t M, int64_t N, int64_t K, float alpha, float beta, float* C,
                 int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    float* __restrict c = C + i * ldc;
    if (!B.trans) {
      scale_c(1, N, beta, c, ldc);
      for (int64_t k = 0; k < K; ++k) {
        const float aik = alpha * (A.trans ? A.p[k * A.ld + i] : A.p[i * A.ld + k]);
        const float* __restrict b = B.p + k * B.ld;
        for (int64_t j = 0; j < N; ++j) c[j] += aik * b[j];
      }
    } else {
      // Row i of op(A) gathered once (it is strided when A is transposed), then vectorised dots.
      thread_local std::vector<float> arowBuf;
      const float* arow = A.p + i * A.ld;
      if (A.trans) {
        arowBuf.resize(static_cast<size_t>(K));
        for (int64_t k = 0; k < K; ++k) arowBuf[k] = A.p[k * A.ld + i];
        arow = arowBuf.data();
      }
      for (int64_t j = 0; j < N; ++j) {
        const float s = dot(arow, B.p + j * B.ld, K);
        c[j] = beta == 0.0f ? alpha * s : alpha * s + beta * c[j];
      }
    }
  }
}

// Where a block of C sits in the whole C, for the epilogue's bias and side matrices; ep is null when there is
// no epilogue or when the block's K sum is not finished yet (only the last K block applies it).
struct EpilogueAt {
  const GemmEpilogue* ep;
  int64_t i0, j0;
  EpilogueAt at(int64_t di, int64_t dj) const { return {ep, i0 + di, j0 + dj}; }
};

// c[q] += bias[q] for q < n, cloned per instruction set: inlined in apply_epilogue's loop it got the baseline's
// SSE2 (0.7% of mini's step, every forward product adding its bias).
SIMCSEPP_CLONES void add_bias_span(float* __restrict c, const float* __restrict bias, int64_t n) {
  for (int64_t q = 0; q < n; ++q) c[q] += bias[q];
}

// c[q] = round_bf16(c[q]) for q < n (linear_backward's product at bf16, before GELU' multiplies it).
SIMCSEPP_CLONES void round_bf16_span(float* __restrict c, int64_t n) {
  for (int64_t q = 0; q < n; ++q) c[q] = round_bf16(c[q]);
}

// c[q] rounded to bf16 in place, its bits into out[q], for q < n (linear_forward's pre-activation kept in bf16).
SIMCSEPP_CLONES void round_bf16_span_to(uint16_t* __restrict out, float* __restrict c, int64_t n) {
  for (int64_t q = 0; q < n; ++q) {
    out[q] = bf16_bits(c[q]);
    c[q] = bf16_value(out[q]);
  }
}

// The epilogue on the finished mr x nr block at c (C[i, j] of the whole C).
void apply_epilogue(const GemmEpilogue& ep, float* c, int64_t ldc, int64_t i, int64_t j, int64_t mr, int64_t nr) {
  for (int64_t r = 0; r < mr; ++r) {
    float* cr = c + r * ldc;
    if (ep.bias) add_bias_span(cr, ep.bias + j, nr);
    if (ep.bf16_out) round_bf16_span_to(ep.bf16_out + (i + r) * ep.ld_bf16_out + j, cr, nr);
    if (ep.gelu_out) gelu_forward_span(ep.gelu_out + (i + r) * ep.ld_gelu_out + j, cr, nr);
    if (ep.gelu_grad_x && ep.round_before_gelu_grad) round_bf16_span(cr, nr);
    if (ep.gelu_grad_x) gelu_backward_span(cr, ep.gelu_grad_x + (i + r) * ep.ld_gelu_grad_x + j, cr, nr);
  }
}

// Runs the micro-kernel over the MR x NR tiles of a packed mc x kc A block and the B panels
// [jp0, jp1) of a packed kc x nc B block; C points at the block's top-left element, which is C[at.i0, at.j0]
// of the whole C. at.ep (the last K block only): the epilogue on each row panel (MR rows x nc) as soon as it
// is finished, while it is still in L2 (a whole mc x nc block of C does not fit there next to the packed B
// block): MR long rows, the spans the prefetchers follow.
void macro_kernel(const Kernel& kr, int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb, int64_t jp0,
                  int64_t jp1, float alpha, float beta, float* C, int64_t ldc, const EpilogueAt& at) {
  const int MR = kr.mr, NR = kr.nr;
  alignas(64) float tmp[32 * 32];  // largest MR x NR (AMX)
  // The backward epilogue's side matrix (GELU's input x, read for GELU'), prefetched tile by tile into L2 while the
  // row panel is computed: the epilogue otherwise waited on it (mini's 6144 x 1024 MLP-down input gradient with
  // GELU' 14.4-15.2 -> 12.3 ms). The forward's side matrix, GELU's output, is only written: prefetching it too (for
  // writing) cost more than it saved, most on AMX, whose tiles finish fast (mini's MLP up with GELU, CPU ms per
  // step: bf16 50 -> 34, fp32 98-104 -> 95-97).
  const float* side = nullptr;
  int64_t ld_side = 0;
  if (at.ep != nullptr && at.ep->gelu_grad_x != nullptr) {
    side = at.ep->gelu_grad_x + at.i0 * at.ep->ld_gelu_grad_x + at.j0;
    ld_side = at.ep->ld_gelu_grad_x;
  }
  for (int64_t i = 0; i < mc; i += MR) {
    const int64_t mr = std::min<int64_t>(MR, mc - i);
    const float* a = pa + i * kc;
    for (int64_t jp = jp0; jp < jp1; ++jp) {
      const int64_t j = jp * NR;
      const int64_t nr = std::min<int64_t>(NR, nc - j);
      const float* b = pb + j * kc;
      float* c = C + i * ldc + j;
      if (side != nullptr)
        for (int64_t r = 0; r < mr; ++r)
          for (int64_t q = 0; q < nr; q += 16) __builtin_prefetch(side + (i + r) * ld_side + j + q, 0, 2);
      if (mr == MR && nr == NR) {
        kr.ukr(kc, a, b, c, ldc, alpha, beta);
      } else {
        kr.ukr(kc, a, b, tmp, NR, 1.0f, 0.0f);
        for (int64_t r = 0; r < mr; ++r) {
          float* cr = c + r * ldc;
          const float* t = tmp + r * NR;
          if (beta == 0.0f) {
            for (int64_t q = 0; q < nr; ++q) cr[q] = alpha * t[q];
          } else {
            for (int64_t q = 0; q < nr; ++q) cr[q] = alpha * t[q] + beta * cr[q];
          }
        }
      }
    }
    if (at.ep) {
      const int64_t j0 = jp0 * NR, j1 = std::min(nc, jp1 * NR);
      apply_epilogue(*at.ep, C + i * ldc + j0, ldc, at.i0 + i, at.j0 + j0, mr, j1 - j0);
    }
  }
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// The rows [i0, i0 + m) of op(A) and the columns [j0, j0 + n) of op(B), as operands of their own.
MatA rows_of(const MatA& A, int64_t i0) { return {A.trans ? A.p + i0 : A.p + i0 * A.ld, A.ld, A.trans}; }
MatB cols_of(const MatB& B, int64_t j0) { return {B.trans ? B.p + j0 * B.ld : B.p + j0, B.ld, B.trans}; }

// The GotoBLAS loops (header comment) over C[M x N]. `ways` threads share it: they pack each B block
// together and then take its M blocks (as many as a multiple of `ways`); with ways = 1 the calling thread
// does it all (the parallel_for calls then run inline, as they do inside a rectangle's chunk). KC comes from
// the caller, so that every part of a partitioned product sums K in the same order.
// a_sums[i] += sum_k of packed rows [0, mc) of pa (ceil(mc/MR) panels of kc x MR), in double, each row in k order.
// MR known at compile time, so that the MR sums stay in vector registers.
template <int MR>
void add_packed_row_sums(const float* pa, int64_t mc, int64_t kc, double* a_sums) {
  for (int64_t ir = 0; ir < mc; ir += MR) {
    const float* d = pa + ir * kc;
    double s[MR] = {};
    for (int64_t k = 0; k < kc; ++k)
      for (int r = 0; r < MR; ++r) s[r] += static_cast<double>(d[k * MR + r]);
    const int64_t mr = std::min<int64_t>(MR, mc - ir);
    for (int64_t r = 0; r < mr; ++r) a_sums[ir + r] += s[r];
  }
}

void add_packed_row_sums(const float* pa, int64_t mc, int64_t kc, int64_t MR, double* a_sums) {
  switch (MR) {
    case 14: return add_packed_row_sums<14>(pa, mc, kc, a_sums);
    case 6: return add_packed_row_sums<6>(pa, mc, kc, a_sums);
    case 4: return add_packed_row_sums<4>(pa, mc, kc, a_sums);
    default: std::abort();  // the fp32 kernels' MR (kernel table above)
  }
}

void gemm_block(const Kernel& kr, const MatA& A, const MatB& B, int64_t M, int64_t N, int64_t K, int64_t KC,
                int64_t ways, float alpha, float beta, float* C, int64_t ldc, const EpilogueAt& at,
                double* a_sums = nullptr) {
  const int64_t MR = kr.mr, NR = kr.nr;
  // N blocks of (nearly) equal width, as the M blocks below.
  const int64_t nblocks = (N + kr.nc - 1) / kr.nc;
  const int64_t NC = round_up((N + nblocks - 1) / nblocks, NR);
  // M blocks of (nearly) equal height, so that the last one is not a sliver.
  int64_t mblocks = round_up((M + kr.mc - 1) / kr.mc, ways);
  const int64_t MC = std::max<int64_t>(MR, round_up((M + mblocks - 1) / mblocks, MR));
  mblocks = (M + MC - 1) / MC;
  float* pb = t_pack_b.get(static_cast<size_t>(KC) * NC);
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t npanels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      // Shared by `ways` threads: two chunks of panels each (a fixed 8 panels per chunk left a 256-wide B block,
      // mini's weight gradients, to one thread while the other waited).
      const int64_t pack_grain = ways == 1 ? npanels : std::max<int64_t>(1, npanels / (2 * ways));
      parallel_for(npanels, pack_grain, [&](int64_t p0, int64_t p1) {
        int64_t p = p0;
        if (kr.pack_b_rows != nullptr && !B.trans) {  // the full panels row by row
          const int64_t full = std::min(p1, nc / NR);
          if (full > p0) kr.pack_b_rows(B, pc, kc, jc + p0 * NR, full - p0, pb + p0 * NR * kc);
          p = std::max(p, full);
        }
        for (; p < p1; ++p) kr.pack_b_panel(B, pc, kc, jc + p * NR, std::min(NR, nc - p * NR), pb + p * NR * kc);
      });
      parallel_for(mblocks, ways == 1 ? mblocks : 1, [&](int64_t b0, int64_t b1) {
        if (kr.begin) kr.begin();
        float* pa = t_pack_a.get(static_cast<size_t>(MC) * kc);
        for (int64_t ic = b0 * MC; ic < std::min(M, b1 * MC); ic += MC) {
          const int64_t mc = std::min(MC, M - ic);
          // op(A)'s row sums from its first N block's packing (the others pack the same rows again): while packing
          // (a kernel that rounds A), or from the fp32 panels.
          if (a_sums != nullptr && jc == 0 && kr.pack_a_sums != nullptr) {
            kr.pack_a_sums(A, ic, mc, pc, kc, pa, a_sums + ic);
          } else {
            kr.pack_a(A, ic, mc, pc, kc, pa);
            if (a_sums != nullptr && jc == 0) add_packed_row_sums(pa, mc, kc, MR, a_sums + ic);
          }
          // The epilogue only once the block's K sum is complete.
          const EpilogueAt block_at{pc + kc == K ? at.ep : nullptr, at.i0 + ic, at.j0 + jc};
          macro_kernel(kr, mc, nc, kc, pa, pb, 0, npanels, alpha, pc == 0 ? beta : 1.0f, C + ic * ldc + jc, ldc,
                       block_at);
        }
      });
    }
  }
}

// Splits C into rectangles that the pool's threads take one at a time, each computed start to finish
// by gemm_block: one parallel_for per product (a product of many K blocks no longer waits for every
// thread at each block), and no thread waits on another's packing. A rectangle packs its own operands,
// so splitting the rows of C re-packs B once per rectangle and splitting the columns re-packs A: the
// split goes along the dimension whose other operand is the smaller. Twice as many rectangles as
// threads lets a thread that was held up (other processes) leave the rest to the others.
// a_sums (M doubles, or null): op(A)'s row sums are added there (the packed rows, see add_packed_row_sums).
void sgemm_packed(const Kernel& kr, const MatA& A, const MatB& B, int64_t M, int64_t N, int64_t K, float alpha,
                  float beta, float* C, int64_t ldc, const GemmEpilogue* ep, double* a_sums = nullptr) {
  const EpilogueAt at{ep, 0, 0};
  const int64_t MR = kr.mr, NR = kr.nr;
  // Equal-depth K blocks (a multiple of 8 where possible) avoid a thin last block.
  const int64_t kblocks = (K + kr.kc - 1) / kr.kc;
  const int64_t KC = std::min<int64_t>(kr.kc, round_up((K + kblocks - 1) / kblocks, 8));

  const int64_t mtiles = (M + MR - 1) / MR, ntiles = (N + NR - 1) / NR;
  const int64_t threads = num_threads();
  // At least ~2 MFLOP per rectangle: below that, waking a thread costs more than it saves.
  const int64_t work_parts = std::max<int64_t>(1, M * N * K / (int64_t{1} << 20));
  const int64_t parts = std::min<int64_t>(threads == 1 ? 1 : 2 * threads, work_parts);
  // Rows of C when B (K x N) is the cheaper operand to re-pack, or when the columns are too few.
  const bool by_rows = (N <= M && mtiles >= parts) || ntiles < parts;
  const int64_t tiles = by_rows ? mtiles : ntiles;
  // A rectangle re-packs the other operand: one packed float per 2 * extent multiply-adds. Below 512 rows
  // (columns) per rectangle that costs more than synchronising on one shared packing (measured, mini's
  // weight gradients: 256 x 256 x 6144 took twice the CPU time in 4 rectangles of 64 columns). So: twice as
  // many rectangles as threads where they are 512 wide or more; else one per thread where those are 128 wide
  // or more (against the shared packing below, which costs two fork-joins per K block, mini's weight
  // gradients at 2 threads, GFLOP per CPU-second: 1024 x 256 and 256 x 1024 97-100 -> 110-123 and
  // 92-93 -> 107-118; 768 x 256 and 256 x 256 104-108 -> 115-119 and 100-102 -> 107-124); else (small M and
  // N, long K) B is packed once per K block by all threads together.
  int64_t n_parts = std::min(parts, tiles);
  if (n_parts > 1 && (by_rows ? M : N) / n_parts < 512) n_parts = std::min({threads, parts, tiles});
  if (n_parts > 1 && (by_rows ? M : N) / n_parts < 128) {
    gemm_block(kr, A, B, M, N, K, KC, threads, alpha, beta, C, ldc, at, a_sums);
    return;
  }
  parallel_for(n_parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t t0 = p * tiles / n_parts, t1 = (p + 1) * tiles / n_parts;
      if (by_rows) {
        const int64_t i0 = t0 * MR, i1 = std::min(M, t1 * MR);
        gemm_block(kr, rows_of(A, i0), B, i1 - i0, N, K, KC, 1, alpha, beta, C + i0 * ldc, ldc, at.at(i0, 0),
                   a_sums != nullptr ? a_sums + i0 : nullptr);
      } else {
        const int64_t j0 = t0 * NR, j1 = std::min(N, t1 * NR);
        // Every column rectangle packs all of op(A): the first one sums it.
        gemm_block(kr, A, cols_of(B, j0), M, j1 - j0, K, KC, 1, alpha, beta, C + j0, ldc, at.at(0, j0),
                   j0 == 0 ? a_sums : nullptr);
      }
    }
  });
}

}  // namespace

const char* sgemm_kernel_name() { return kernel().name; }

namespace {

// The bf16 products' kernel, when not the fp32 one on rounded operands. By default AMX where the CPU and the OS
// allow it (sums as TDPBF16PS rounds them, see gemm_bf16.cpp; products with K < 16 keep the fp32 kernel), else
// the AVX512_BF16 kernel where VDPBF16PS issues at about the FMA's rate (AMD's Zen 5: 1.4-2.2x the fp32 products
// of mini's step per core; on Sapphire Rapids it retires a quarter as many instructions per cycle as VFMADD231PS,
// half the fp32 rate with two k per instruction). The AVX512_BF16 kernel computes the emulated path's bits (the
// rounded copies'): it needs the fp32 kernel to be an FMA one (the portable kernel multiplies and adds apart) with
// the same K blocks. SIMCSEPP_GEMM_BF16=avx512bf16 asks for it anyway, =packed keeps the fp32 kernel (operands
// rounded while packed).
const Kernel* bf16_fast_kernel(int64_t K) {
  static const Kernel* k = [] {
    const char* env = std::getenv("SIMCSEPP_GEMM_BF16");
    if (env && std::strcmp(env, "avx512bf16") == 0) return gemm_detail::bf16_kernel();
    if (env && *env) return static_cast<const Kernel*>(nullptr);  // packed, copies
    if (const Kernel* amx = gemm_detail::amx_kernel()) return amx;
    return gemm_detail::bf16_kernel_fast() ? gemm_detail::bf16_kernel() : nullptr;
  }();
  if (!k) return nullptr;
  if (k->mr == 32) return K >= 16 ? k : nullptr;  // AMX
  const Kernel& fp32 = kernel();
  return fp32.ukr != kGeneric.ukr && fp32.kc == k->kc ? k : nullptr;
}

// A compact copy of the rows x cols matrix x (leading dimension ld) with every element rounded to bfloat16.
const float* rounded_bf16(Scratch& buf, const float* x, int64_t rows, int64_t cols, int64_t ld) {
  float* r = buf.get(static_cast<size_t>(rows * cols));
  parallel_for(rows, std::max<int64_t>(1, (1 << 14) / cols), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = 0; j < cols; ++j) r[i * cols + j] = round_bf16(x[i * ld + j]);
  });
  return r;
}

thread_local Scratch t_round_a, t_round_b;  // the emulated bf16 path's rounded operands

}  // namespace

bool sgemm_force_kernel(const char* name) {
  const Kernel* k = kernel_by_name(name);
  if (!k) return false;
  g_forced.store(k, std::memory_order_release);
  return true;
}

namespace {

// The fp32 kernel in use, packing rounded operands.
const Kernel& rounding(const Kernel& k) {
#if SIMCSEPP_GEMM_X86
  if (&k == &kAvx512) return kAvx512Round;
  if (&k == &kAvx2) return kAvx2Round;
#else
  (void)k;  // the generic kernel is the only one
#endif
  return kGenericRound;
}

// SIMCSEPP_GEMM_BF16=copies: the rounded copies at every size (what the default computes, kept to test it).
bool bf16_copies_forced() {
  static const bool forced = [] {
    const char* env = std::getenv("SIMCSEPP_GEMM_BF16");
    return env && std::strcmp(env, "copies") == 0;
  }();
  return forced;
}

}  // namespace

const char* sgemm_bf16_kernel_name() {
  if (const Kernel* k = bf16_fast_kernel(int64_t{1} << 20)) return k->name;
  return bf16_copies_forced() ? "rounded copies" : "rounded while packed";
}

namespace {

bool has_epilogue(const GemmEpilogue& ep) { return ep.bias || ep.bf16_out || ep.gelu_out || ep.gelu_grad_x; }

// out[i] += sum_k op(A)[i, k] read from A (the paths that do not pack A in fp32): in double, over row blocks of K
// (column_sums.h's blocks) when A is stored [K, M], else row by row.
void add_row_sums_of_op_a(float* out, const float* A, int64_t lda, bool transA, int64_t M, int64_t K) {
  if (K <= 0) return;
  if (transA) {
    // add_rows: vectorised for the CPU (each column still summed in row order: the same bits).
    const double* s = blocked_column_sums(K, M, [&](int64_t k0, int64_t k1, double* acc) {
      for (int64_t k = k0; k < k1; ++k) add_rows(acc, A + k * lda, 1, M);
    });
    for (int64_t i = 0; i < M; ++i) out[i] += static_cast<float>(s[i]);
  } else {
    parallel_for(M, std::max<int64_t>(1, (1 << 14) / K), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        double s = 0.0;
        for (int64_t k = 0; k < K; ++k) s += static_cast<double>(A[i * lda + k]);
        out[i] += static_cast<float>(s);
      }
    });
  }
}

// The epilogue over the whole of C, after a product that did not go through the packed path.
void apply_epilogue_whole(const GemmEpilogue& ep, float* C, int64_t ldc, int64_t M, int64_t N) {
  if (!has_epilogue(ep)) return;
  parallel_for(M, std::max<int64_t>(1, (1 << 14) / N),
               [&](int64_t r0, int64_t r1) { apply_epilogue(ep, C + r0 * ldc, ldc, r0, 0, r1 - r0, N); });
}

}  // namespace

void sgemm_fused(bool bf16, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue& ep) {
  if (M <= 0 || N <= 0) return;
  const bool packed = M * N * K > int64_t{64} * 64 * 64;
  if (ep.a_row_sums != nullptr) {
    // A packed path that sums op(A) as it packs it: fp32 (from its panels), or bf16 on a kernel that sums the fp32
    // values while rounding them (AMX, for a transposed A: the weight gradients).
    const Kernel* summing = nullptr;
    if (packed && alpha != 0.0f) {
      if (!bf16) {
        summing = &kernel();
      } else if (transA && !bf16_copies_forced()) {
        const Kernel* fast = bf16_fast_kernel(K);
        if (fast != nullptr && fast->pack_a_sums != nullptr) summing = fast;
      }
    }
    if (summing != nullptr) {
      thread_local std::vector<double> sums;
      sums.assign(static_cast<size_t>(M), 0.0);
      GemmEpilogue rest = ep;
      rest.a_row_sums = nullptr;
      sgemm_packed(*summing, MatA{A, lda, transA}, MatB{B, ldb, transB}, M, N, K, alpha, beta, C, ldc,
                   has_epilogue(rest) ? &rest : nullptr, sums.data());
      for (int64_t i = 0; i < M; ++i) ep.a_row_sums[i] += static_cast<float>(sums[static_cast<size_t>(i)]);
      return;
    }
    add_row_sums_of_op_a(ep.a_row_sums, A, lda, transA, M, K);
    GemmEpilogue rest = ep;
    rest.a_row_sums = nullptr;
    sgemm_fused(bf16, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, rest);
    return;
  }
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    apply_epilogue_whole(ep, C, ldc, M, N);
    return;
  }
  const GemmEpilogue* epp = has_epilogue(ep) ? &ep : nullptr;
  if (!bf16 && packed) {
    sgemm_packed(kernel(), MatA{A, lda, transA}, MatB{B, ldb, transB}, M, N, K, alpha, beta, C, ldc, epp);
    return;
  }
  // bf16, packed products: the operands rounded as they are packed, by the bf16 kernel or the fp32 one.
  if (bf16 && packed && !bf16_copies_forced()) {
    const Kernel* fast = bf16_fast_kernel(K);
    sgemm_packed(fast ? *fast : rounding(kernel()), MatA{A, lda, transA}, MatB{B, ldb, transB}, M, N, K, alpha, beta, C,
                 ldc, epp);
    return;
  }
  // Small products (and bf16's rounded copies): sgemm's unpacked path, or the packed one on the copies.
  if (bf16) {
    const int64_t arows = transA ? K : M, acols = transA ? M : K;
    const int64_t brows = transB ? N : K, bcols = transB ? K : N;
    A = rounded_bf16(t_round_a, A, arows, acols, lda);
    B = rounded_bf16(t_round_b, B, brows, bcols, ldb);
    lda = acols;
    ldb = bcols;
  }
  if (packed) {
    sgemm_packed(kernel(), MatA{A, lda, transA}, MatB{B, ldb, transB}, M, N, K, alpha, beta, C, ldc, epp);
    return;
  }
  sgemm_small(MatA{A, lda, transA}, MatB{B, ldb, transB}, M, N, K, alpha, beta, C, ldc);
  apply_epilogue_whole(ep, C, ldc, M, N);
}

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  sgemm_fused(false, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, GemmEpilogue{});
}

void sgemm_bf16(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  sgemm_fused(true, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, GemmEpilogue{});
}

}  // namespace simcsepp::cpu
