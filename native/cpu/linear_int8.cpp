// The int8 linear layer (linear_int8.h): packing, the per-row quantization of the input, and the integer tile
// kernels (AVX-512 VNNI, AVX-VNNI, portable C++) with one shared fp32 epilogue.
//
// Tiling: the weight's panels of 64 outputs × all of K (a panel of bert-base's FFN output, K = 3072, is 192 KiB:
// it stays in L2 while a thread sweeps the rows), rows in blocks of 6. A tile is 6 rows × 64 outputs of int32
// sums: on AVX-512, 24 zmm accumulators, 4 zmm of weights and a broadcast of 4 input bytes per row and k group, 24
// VPDPBUSD (384 products) per 4 weight loads. Threads take contiguous runs of tiles, panel-major, so each keeps
// one panel in its L2. The epilogue (int32 to fp32, scales, bias, GELU) is the same code for every kernel.
#include "linear_int8.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "clones.h"
#include "gelu.h"
#include "parallel.h"
#include "scratch.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && (__GNUC__ >= 11 || defined(__clang__))
#define SIMCSEPP_HAVE_VNNI_KERNELS 1
#include <immintrin.h>
#else
#define SIMCSEPP_HAVE_VNNI_KERNELS 0
#endif
#if defined(__aarch64__) && defined(__linux__) && defined(__GNUC__) && (__GNUC__ >= 10 || defined(__clang__))
#define SIMCSEPP_HAVE_DOTPROD_KERNEL 1
#include <arm_neon.h>
#include <sys/auxv.h>
#else
#define SIMCSEPP_HAVE_DOTPROD_KERNEL 0
#endif

namespace simcsepp::cpu {

namespace {

constexpr uint32_t kMagic = 0x38544e49;  // "INT8"
constexpr int64_t kHeaderBytes = 64;
constexpr int64_t kPanel = 64;  // outputs per panel
constexpr int kRows = 6;        // rows per tile

struct Header {
  uint32_t magic;
  uint32_t version;
  int64_t oc, c;
};

struct Layout {
  int64_t oc, c, ocp, kq;  // outputs, inputs, outputs padded to the panel, groups of 4 k
  int64_t bytes() const { return kHeaderBytes + 8 * ocp + ocp * kq * 4; }
};

Layout layout(int64_t OC, int64_t C) { return {OC, C, (OC + kPanel - 1) / kPanel * kPanel, (C + 3) / 4}; }

struct Packed {
  Layout l;
  const float* scale;   // s_w [ocp]
  const int32_t* comp;  // 128 · Σ_k Wq [ocp]
  const int8_t* w;      // panels
};

Packed view(const void* p) {
  const auto* h = static_cast<const Header*>(p);
  const auto* b = static_cast<const uint8_t*>(p);
  const Layout l = layout(h->oc, h->c);
  return {l, reinterpret_cast<const float*>(b + kHeaderBytes),
          reinterpret_cast<const int32_t*>(b + kHeaderBytes + 4 * l.ocp),
          reinterpret_cast<const int8_t*>(b + kHeaderBytes + 8 * l.ocp)};
}

// rint(v · inv) clamped to [-127, 127]: a rounding error in inv can carry the row's largest value just past 127.
inline int32_t quantize(float v, float inv) {
  const float q = std::rint(v * inv);
  return static_cast<int32_t>(std::min(127.0f, std::max(-127.0f, q)));
}

// One row of the input: d[k] = xq[k] + 128 for k < n, its scale s_x = max |x| / 127; a zero row, or one holding a NaN
// or an infinity, gives d = 128 (xq = 0) and s_x = 0 or NaN, so that its outputs are the bias or NaN.
using QuantizeRowFn = float (*)(uint8_t* d, const float* x, int64_t n);

// The largest |x[k]|, k < n (NaN when x holds one).
float abs_max_generic(const float* x, int64_t n) {
  float m = 0.0f;
  for (int64_t k = 0; k < n; ++k) {
    const float a = std::fabs(x[k]);
    if (a != a) return NAN;
    m = a > m ? a : m;
  }
  return m;
}

// The row's scale and the inverse its values are multiplied by; false for a zero or non-finite row (d filled).
inline bool row_scale(float amax, uint8_t* d, int64_t n, float* s, float* inv) {
  if (amax > 0.0f && amax <= FLT_MAX) {
    *s = amax / 127.0f;
    *inv = 127.0f / amax;
    return true;
  }
  *s = amax == 0.0f ? 0.0f : NAN;
  std::memset(d, 128, static_cast<size_t>(n));
  return false;
}

float quantize_row_generic(uint8_t* d, const float* x, int64_t n) {
  float s, inv;
  if (row_scale(abs_max_generic(x, n), d, n, &s, &inv))
    for (int64_t k = 0; k < n; ++k) d[k] = static_cast<uint8_t>(quantize(x[k], inv) + 128);
  return s;
}

// acc[i * 64 + j], i < rows <= kRows, j < 64: Σ over the kq groups of the 4 products of row i's bytes (a + i · lda)
// with output j's bytes of the panel w. comp: the panel's correction terms, for a kernel that multiplies xq itself
// (signed by signed) and adds them to give the same sums.
using TileFn = void (*)(const uint8_t* a, int64_t lda, int rows, const int8_t* w, int64_t kq, const int32_t* comp,
                        int32_t* acc);

// The accumulators are named variables, not an array: GCC 12 kept an array of them in memory as well as in
// registers, storing each one back at every k group (a third of the rate).
#define SIMCSEPP_INT8_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

// f(std::integral_constant<int, rows>) for rows in [1, kRows]: a tile's row count as the kernels' template argument.
template <class F>
void with_rows(int rows, F&& f) {
  switch (rows) {
    case 6: return f(std::integral_constant<int, 6>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 2: return f(std::integral_constant<int, 2>{});
    default: return f(std::integral_constant<int, 1>{});
  }
}

// Written so that GCC vectorises the loop over the 64 outputs (4 products each, the bytes de-interleaved).
SIMCSEPP_CLONES_AVX2 void tile_generic(const uint8_t* a, int64_t lda, int rows, const int8_t* w, int64_t kq,
                                       const int32_t* /*comp*/, int32_t* acc) {
  for (int i = 0; i < rows; ++i) {
    int32_t s[kPanel] = {};
    const uint8_t* ai = a + i * lda;
    for (int64_t q = 0; q < kq; ++q) {
      const int8_t* wq = w + q * kPanel * 4;
      const int32_t a0 = ai[4 * q], a1 = ai[4 * q + 1], a2 = ai[4 * q + 2], a3 = ai[4 * q + 3];
      for (int j = 0; j < kPanel; ++j)
        s[j] += a0 * wq[4 * j] + a1 * wq[4 * j + 1] + a2 * wq[4 * j + 2] + a3 * wq[4 * j + 3];
    }
    std::memcpy(acc + i * kPanel, s, sizeof s);
  }
}

#if SIMCSEPP_HAVE_VNNI_KERNELS

inline int32_t load_u32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

#define SIMCSEPP_AVX512 __attribute__((target("avx512f,avx512bw")))
#define SIMCSEPP_AVX2 __attribute__((target("avx2")))

// quantize_row_generic's bits, 16 floats at a time: VRNDSCALEPS rounds to nearest even as rint does, the clamp and
// the conversion of an integral value are exact.
SIMCSEPP_AVX512 float quantize_row_avx512(uint8_t* d, const float* x, int64_t n) {
  __m512 m = _mm512_setzero_ps();
  __mmask16 nan = 0;
  for (int64_t k = 0; k < n; k += 16) {
    const __mmask16 mk = n - k >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - k)) - 1);
    const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(mk, x + k));
    nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    m = _mm512_maskz_max_ps(0xffff, m, v);
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, m);
  float amax = 0.0f;
  for (float l : lanes) amax = l > amax ? l : amax;
  float s, inv;
  if (!row_scale(nan ? NAN : amax, d, n, &s, &inv)) return s;
  const __m512 vi = _mm512_set1_ps(inv), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  const __m512i off = _mm512_set1_epi32(128);
  for (int64_t k = 0; k < n; k += 16) {
    const __mmask16 mk = n - k >= 16 ? 0xffff : static_cast<__mmask16>((1u << (n - k)) - 1);
    // (maskz forms throughout: GCC 12's unmasked ones warn of an uninitialised operand)
    __m512 q = _mm512_maskz_roundscale_ps(0xffff, _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + k), vi),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_maskz_min_ps(0xffff, hi, _mm512_maskz_max_ps(0xffff, lo, q));
    _mm512_mask_cvtepi32_storeu_epi8(d + k, mk, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(0xffff, q), off));
  }
  return s;
}

SIMCSEPP_AVX2 float quantize_row_avx2(uint8_t* d, const float* x, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  int nan = 0;
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    const __m256 v = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k));
    nan |= _mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    m = _mm256_max_ps(m, v);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float amax = abs_max_generic(x + k, n - k);
  for (float l : lanes) amax = l > amax ? l : amax;
  float s, inv;
  if (!row_scale(nan || amax != amax ? NAN : amax, d, n, &s, &inv)) return s;
  const __m256 vi = _mm256_set1_ps(inv), lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  const __m256i off = _mm256_set1_epi32(128);
  const __m256i bytes = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                                         -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  for (k = 0; k + 8 <= n; k += 8) {
    __m256 q =
        _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + k), vi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(hi, _mm256_max_ps(lo, q));
    const __m256i b = _mm256_shuffle_epi8(_mm256_add_epi32(_mm256_cvtps_epi32(q), off), bytes);
    const uint32_t w0 = static_cast<uint32_t>(_mm256_extract_epi32(b, 0)),
                   w1 = static_cast<uint32_t>(_mm256_extract_epi32(b, 4));
    std::memcpy(d + k, &w0, 4);
    std::memcpy(d + k + 4, &w1, 4);
  }
  for (; k < n; ++k) d[k] = static_cast<uint8_t>(quantize(x[k], inv) + 128);
  return s;
}

#define SIMCSEPP_VNNI512 __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define SIMCSEPP_VNNI256 __attribute__((target("avx2,avxvnni")))

template <int MR>
SIMCSEPP_VNNI512 void tile512_rows(const uint8_t* a, int64_t lda, const int8_t* w, int64_t kq, int32_t* acc) {
#define SIMCSEPP_DECLARE(i) \
  __m512i c##i##0 = _mm512_setzero_si512(), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0;
  SIMCSEPP_INT8_ROWS(SIMCSEPP_DECLARE)
#undef SIMCSEPP_DECLARE
  for (int64_t q = 0; q < kq; ++q) {
    const int8_t* wq = w + q * kPanel * 4;
    const __m512i b0 = _mm512_loadu_si512(wq), b1 = _mm512_loadu_si512(wq + 64), b2 = _mm512_loadu_si512(wq + 128),
                  b3 = _mm512_loadu_si512(wq + 192);
#define SIMCSEPP_STEP(i)                                                \
  if constexpr (MR > i) {                                               \
    const __m512i x = _mm512_set1_epi32(load_u32(a + i * lda + 4 * q)); \
    c##i##0 = _mm512_dpbusd_epi32(c##i##0, x, b0);                      \
    c##i##1 = _mm512_dpbusd_epi32(c##i##1, x, b1);                      \
    c##i##2 = _mm512_dpbusd_epi32(c##i##2, x, b2);                      \
    c##i##3 = _mm512_dpbusd_epi32(c##i##3, x, b3);                      \
  }
    SIMCSEPP_INT8_ROWS(SIMCSEPP_STEP)
#undef SIMCSEPP_STEP
  }
#define SIMCSEPP_STORE(i)                                \
  if constexpr (MR > i) {                                \
    _mm512_storeu_si512(acc + i * kPanel, c##i##0);      \
    _mm512_storeu_si512(acc + i * kPanel + 16, c##i##1); \
    _mm512_storeu_si512(acc + i * kPanel + 32, c##i##2); \
    _mm512_storeu_si512(acc + i * kPanel + 48, c##i##3); \
  }
  SIMCSEPP_INT8_ROWS(SIMCSEPP_STORE)
#undef SIMCSEPP_STORE
}

void tile_avx512vnni(const uint8_t* a, int64_t lda, int rows, const int8_t* w, int64_t kq, const int32_t* /*comp*/,
                     int32_t* acc) {
  with_rows(rows, [&](auto mr) { tile512_rows<decltype(mr)::value>(a, lda, w, kq, acc); });
}

// 16 ymm registers: a pass takes 16 of the panel's outputs (a quarter) for all the tile's rows, 12 accumulators, 2
// weight vectors and the broadcast: 12 VPDPBUSD per 2 weight loads and 6 broadcasts. (2 rows x 32 outputs, 8 per
// 4 + 2, ran at 0.76x its speed on Zen 5.)
template <int MR>
SIMCSEPP_VNNI256 void tile256_rows(const uint8_t* a, int64_t lda, const int8_t* w, int64_t kq, int32_t* acc) {
  for (int h = 0; h < 4; ++h) {
#define SIMCSEPP_DECLARE(i) __m256i c##i##0 = _mm256_setzero_si256(), c##i##1 = c##i##0;
    SIMCSEPP_INT8_ROWS(SIMCSEPP_DECLARE)
#undef SIMCSEPP_DECLARE
    for (int64_t q = 0; q < kq; ++q) {
      const int8_t* wq = w + q * kPanel * 4 + h * 64;
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq)),
                    b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + 32));
#define SIMCSEPP_STEP(i)                                                \
  if constexpr (MR > i) {                                               \
    const __m256i x = _mm256_set1_epi32(load_u32(a + i * lda + 4 * q)); \
    c##i##0 = _mm256_dpbusd_avx_epi32(c##i##0, x, b0);                  \
    c##i##1 = _mm256_dpbusd_avx_epi32(c##i##1, x, b1);                  \
  }
      SIMCSEPP_INT8_ROWS(SIMCSEPP_STEP)
#undef SIMCSEPP_STEP
    }
#define SIMCSEPP_STORE(i)                                                                    \
  if constexpr (MR > i) {                                                                    \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + i * kPanel + 16 * h), c##i##0);     \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + i * kPanel + 16 * h + 8), c##i##1); \
  }
    SIMCSEPP_INT8_ROWS(SIMCSEPP_STORE)
#undef SIMCSEPP_STORE
  }
}

void tile_avxvnni(const uint8_t* a, int64_t lda, int rows, const int8_t* w, int64_t kq, const int32_t* /*comp*/,
                  int32_t* acc) {
  with_rows(rows, [&](auto mr) { tile256_rows<decltype(mr)::value>(a, lda, w, kq, acc); });
}

#endif  // SIMCSEPP_HAVE_VNNI_KERNELS

#if SIMCSEPP_HAVE_DOTPROD_KERNEL

// aarch64's SDOT (Armv8.2 dot product: Neoverse N1, V1, V2 of Graviton and Grace, Apple M1 and later): four products
// of signed bytes per 32-bit lane, so the input's bytes go back to xq (xor 0x80) and the panel's correction terms are
// added to give the sums the other kernels give. A pass: 16 outputs (4 vectors) for all six rows, 24 of the 32
// vector registers as accumulators.
template <int MR>
__attribute__((target("arch=armv8.2-a+dotprod"))) void tile_dot_rows(const uint8_t* a, int64_t lda, const int8_t* w,
                                                                     int64_t kq, const int32_t* comp, int32_t* acc) {
  for (int h = 0; h < 4; ++h) {
#define SIMCSEPP_DECLARE(i) int32x4_t c##i##0 = vdupq_n_s32(0), c##i##1 = c##i##0, c##i##2 = c##i##0, c##i##3 = c##i##0;
    SIMCSEPP_INT8_ROWS(SIMCSEPP_DECLARE)
#undef SIMCSEPP_DECLARE
    for (int64_t q = 0; q < kq; ++q) {
      const int8_t* wq = w + q * kPanel * 4 + h * 64;
      const int8x16_t b0 = vld1q_s8(wq), b1 = vld1q_s8(wq + 16), b2 = vld1q_s8(wq + 32), b3 = vld1q_s8(wq + 48);
#define SIMCSEPP_STEP(i)                                                    \
  if constexpr (MR > i) {                                                   \
    uint32_t u;                                                             \
    std::memcpy(&u, a + i * lda + 4 * q, 4);                                \
    const int8x16_t x = vreinterpretq_s8_u32(vdupq_n_u32(u ^ 0x80808080u)); \
    c##i##0 = vdotq_s32(c##i##0, x, b0);                                    \
    c##i##1 = vdotq_s32(c##i##1, x, b1);                                    \
    c##i##2 = vdotq_s32(c##i##2, x, b2);                                    \
    c##i##3 = vdotq_s32(c##i##3, x, b3);                                    \
  }
      SIMCSEPP_INT8_ROWS(SIMCSEPP_STEP)
#undef SIMCSEPP_STEP
    }
    const int32_t* ch = comp + 16 * h;
    const int32x4_t k0 = vld1q_s32(ch), k1 = vld1q_s32(ch + 4), k2 = vld1q_s32(ch + 8), k3 = vld1q_s32(ch + 12);
#define SIMCSEPP_STORE(i)                      \
  if constexpr (MR > i) {                      \
    int32_t* d = acc + i * kPanel + 16 * h;    \
    vst1q_s32(d, vaddq_s32(c##i##0, k0));      \
    vst1q_s32(d + 4, vaddq_s32(c##i##1, k1));  \
    vst1q_s32(d + 8, vaddq_s32(c##i##2, k2));  \
    vst1q_s32(d + 12, vaddq_s32(c##i##3, k3)); \
  }
    SIMCSEPP_INT8_ROWS(SIMCSEPP_STORE)
#undef SIMCSEPP_STORE
  }
}

void tile_dotprod(const uint8_t* a, int64_t lda, int rows, const int8_t* w, int64_t kq, const int32_t* comp,
                  int32_t* acc) {
  with_rows(rows, [&](auto mr) { tile_dot_rows<decltype(mr)::value>(a, lda, w, kq, comp, acc); });
}

#endif  // SIMCSEPP_HAVE_DOTPROD_KERNEL

struct Kernel {
  const char* name;
  QuantizeRowFn quantize_row;
  TileFn tile;
};

const Kernel kGeneric{"generic", quantize_row_generic, tile_generic};
#if SIMCSEPP_HAVE_VNNI_KERNELS
const Kernel kAvx512Vnni{"avx512vnni", quantize_row_avx512, tile_avx512vnni};
const Kernel kAvxVnni{"avxvnni", quantize_row_avx2, tile_avxvnni};
#endif
#if SIMCSEPP_HAVE_DOTPROD_KERNEL
const Kernel kDotprod{"dotprod", quantize_row_generic, tile_dotprod};
#endif

const Kernel* runnable(const char* name) {
  if (std::strcmp(name, "generic") == 0) return &kGeneric;
#if SIMCSEPP_HAVE_VNNI_KERNELS
  if (std::strcmp(name, "avx512vnni") == 0 && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vnni"))
    return &kAvx512Vnni;
  if (std::strcmp(name, "avxvnni") == 0 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni"))
    return &kAvxVnni;
#endif
#if SIMCSEPP_HAVE_DOTPROD_KERNEL
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)  // linux/arch/arm64/include/uapi/asm/hwcap.h
#endif
  if (std::strcmp(name, "dotprod") == 0 && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0) return &kDotprod;
#endif
  return nullptr;
}

const Kernel* best() {
  for (const char* name : {"avx512vnni", "avxvnni", "dotprod"})
    if (const Kernel* k = runnable(name)) return k;
  return &kGeneric;
}

std::atomic<const Kernel*> g_kernel{nullptr};

const Kernel& kernel() {
  const Kernel* k = g_kernel.load(std::memory_order_acquire);
  if (k != nullptr) return *k;
  const char* env = std::getenv("SIMCSEPP_INT8_KERNEL");
  const Kernel* forced = env != nullptr ? runnable(env) : nullptr;
  k = forced != nullptr ? forced : best();
  g_kernel.store(k, std::memory_order_release);
  return *k;
}

struct QuantTag {};

}  // namespace

int64_t int8_packed_bytes(int64_t OC, int64_t C) { return layout(OC, C).bytes(); }

int64_t int8_pack_weight(void* dst, const float* weight, int64_t OC, int64_t C) {
  const Layout l = layout(OC, C);
  auto* b = static_cast<uint8_t*>(dst);
  std::memset(b, 0, static_cast<size_t>(l.bytes()));
  auto* scale = reinterpret_cast<float*>(b + kHeaderBytes);
  auto* comp = reinterpret_cast<int32_t*>(b + kHeaderBytes + 4 * l.ocp);
  auto* w = reinterpret_cast<int8_t*>(b + kHeaderBytes + 8 * l.ocp);
  const QuantizeRowFn quantize_row = kernel().quantize_row;  // the inputs' quantization: the same formula
  std::atomic<int64_t> bad{OC};                              // the first row holding a NaN or an infinity
  parallel_for(OC, 16, [&](int64_t o0, int64_t o1) {
    uint8_t* u = thread_scratch<QuantTag, uint8_t>(2, 4 * l.kq);
    for (int64_t o = o0; o < o1; ++o) {
      const float s = quantize_row(u, weight + o * C, C);
      if (s != s) {
        for (int64_t cur = bad.load(); o < cur && !bad.compare_exchange_weak(cur, o);) {
        }
        continue;
      }
      scale[o] = s;
      // xq + 128 back to xq (zero past C), summed, then moved 4 bytes at a time to its place in each k group.
      auto* q = reinterpret_cast<int8_t*>(u);
      int32_t sum = 0;
      for (int64_t k = 0; k < 4 * l.kq; ++k) {
        q[k] = static_cast<int8_t>(k < C ? static_cast<int32_t>(u[k]) - 128 : 0);
        sum += q[k];
      }
      int8_t* d = w + (o / kPanel) * l.kq * kPanel * 4 + (o % kPanel) * 4;
      for (int64_t g = 0; g < l.kq; ++g) std::memcpy(d + g * kPanel * 4, q + 4 * g, 4);
      comp[o] = 128 * sum;
    }
  });
  if (const int64_t o = bad.load(); o < OC) {
    std::memset(dst, 0, kHeaderBytes);  // no header: not a packed weight
    for (int64_t k = 0;; ++k)
      if (!std::isfinite(weight[o * C + k])) return o * C + k;
  }
  Header h{kMagic, 1, OC, C};
  std::memcpy(b, &h, sizeof h);
  return -1;
}

bool int8_packed_shape(const void* p, int64_t bytes, int64_t* OC, int64_t* C) {
  if (bytes < kHeaderBytes) return false;
  Header h;
  std::memcpy(&h, p, sizeof h);
  if (h.magic != kMagic || h.version != 1 || h.oc < 1 || h.c < 1 || h.oc > (int64_t{1} << 31) ||
      h.c > (int64_t{1} << 31) || layout(h.oc, h.c).bytes() > bytes)
    return false;
  *OC = h.oc;
  *C = h.c;
  return true;
}

void linear_int8_forward(float* out, const float* inp, const void* packed, const float* bias, int64_t R,
                         float* geluOut) {
  if (R <= 0) return;
  const Packed pk = view(packed);
  const int64_t OC = pk.l.oc, C = pk.l.c, lda = pk.l.kq * 4;
  // The rows' bytes xq + 128 (128 past C: any value would do, the weights there are 0) and scales s_x.
  uint8_t* xq = thread_scratch<QuantTag, uint8_t>(0, R * lda);
  float* sx = thread_scratch<QuantTag, float>(1, R);
  const Kernel& kern = kernel();
  parallel_for(R, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t* d = xq + r * lda;
      sx[r] = kern.quantize_row(d, inp + r * C, C);
      std::memset(d + C, 128, static_cast<size_t>(lda - C));
    }
  });
  const TileFn tile = kern.tile;
  const int64_t rowBlocks = (R + kRows - 1) / kRows, panels = pk.l.ocp / kPanel;
  parallel_for(panels * rowBlocks, 4, [&](int64_t t0, int64_t t1) {
    alignas(64) int32_t acc[kRows * kPanel];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p = t / rowBlocks, r0 = (t % rowBlocks) * kRows;
      const int rows = static_cast<int>(std::min<int64_t>(kRows, R - r0));
      tile(xq + r0 * lda, lda, rows, pk.w + p * pk.l.kq * kPanel * 4, pk.l.kq, pk.comp + p * kPanel, acc);
      const int64_t o0 = p * kPanel, n = std::min<int64_t>(kPanel, OC - o0);
      for (int i = 0; i < rows; ++i) {
        const int64_t r = r0 + i;
        float* y = out + r * OC + o0;
        const int32_t* s = acc + i * kPanel;
        for (int64_t j = 0; j < n; ++j) {
          const float v = static_cast<float>(s[j] - pk.comp[o0 + j]) * (sx[r] * pk.scale[o0 + j]);
          y[j] = bias != nullptr ? v + bias[o0 + j] : v;
        }
        if (geluOut != nullptr) gelu_forward_span(geluOut + r * OC + o0, y, n);
      }
    }
  });
}

const char* int8_kernel_name() { return kernel().name; }

bool int8_force_kernel(const char* name) {
  const Kernel* k = runnable(name);
  if (k == nullptr) return false;
  g_kernel.store(k, std::memory_order_release);
  return true;
}

}  // namespace simcsepp::cpu
