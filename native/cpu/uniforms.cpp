// See uniforms.h. The groups wholly inside [first, first + count) go 16 at a time through philox_groups_avx512
// where the CPU has AVX-512F (8 at a time through philox_groups_avx2 where it has AVX2), the rest through
// philox_groups, a plain loop over group counters whose 32 x 32 -> 64-bit products the compiler vectorises; the partial
// groups at the two ends are drawn one index at a time.
#include "uniforms.h"

#include "clones.h"
#include "common/philox.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace simcsepp::cpu {

namespace {

// out[4g + k] = word k of Philox(counter = (block0 + g, offset), key = seed), as units, for g < groups.
SIMCSEPP_CLONES void philox_groups(uint64_t seed, uint64_t offset, uint64_t block0, int64_t groups, float* out) {
  const uint32_t o0 = static_cast<uint32_t>(offset), o1 = static_cast<uint32_t>(offset >> 32);
  const uint32_t s0 = static_cast<uint32_t>(seed), s1 = static_cast<uint32_t>(seed >> 32);
  for (int64_t g = 0; g < groups; ++g) {
    const uint64_t block = block0 + static_cast<uint64_t>(g);
    const Philox4 r = philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), o0, o1, s0, s1);
    for (int k = 0; k < 4; ++k) out[4 * g + k] = philox_to_unit(r.v[k]);
  }
}

#if defined(__x86_64__) || defined(__i386__)
#define SIMCSEPP_PHILOX_AVX512 1
// GCC 12 reports the unmasked AVX-512 intrinsics' internal undefined operand as "may be used uninitialized"
// (a false positive; gemm_bf16.cpp uses maskz forms instead, which would clutter every line here).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

// The 32 x 32 -> 64-bit products M * c of 16 lanes, split into high and low words: VPMULUDQ on the even lanes
// and on the odd ones shifted down, recombined by blends.
__attribute__((target("avx512f"))) inline __m512i mulhilo(__m512i M, __m512i c, __m512i* lo) {
  const __m512i even = _mm512_mul_epu32(c, M), odd = _mm512_mul_epu32(_mm512_srli_epi64(c, 32), M);
  *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

// philox_to_unit on 16 lanes: the top 24 bits (exact in a float) times 2^-24.
__attribute__((target("avx512f"))) inline __m512 units(__m512i x, __m512 unit) {
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(x, 8)), unit);
}

// The Philox words of 16 groups (c0..c3: word k of group j in lane j of ck) as units, stored group after group:
// a 4 x 16 transpose.
__attribute__((target("avx512f"))) inline void philox16_store(__m512i c0, __m512i c1, __m512i c2, __m512i c3,
                                                              float* o) {
  const __m512 unit = _mm512_set1_ps(1.0f / 16777216.0f);
  const __m512 f0 = units(c0, unit), f1 = units(c1, unit), f2 = units(c2, unit), f3 = units(c3, unit);
  // Word k of group j is fk[j]; out wants group after group. Per 128-bit lane L, v_i holds group 4 L + i.
  const __m512 t0 = _mm512_unpacklo_ps(f0, f1), t1 = _mm512_unpackhi_ps(f0, f1);
  const __m512 t2 = _mm512_unpacklo_ps(f2, f3), t3 = _mm512_unpackhi_ps(f2, f3);
  const __m512 v0 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  const __m512 v1 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t2)));
  const __m512 v2 = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
  const __m512 v3 = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t1), _mm512_castps_pd(t3)));
  // The 4 x 4 transpose of 128-bit lanes: groups 0-3, 4-7, 8-11, 12-15.
  const __m512 a = _mm512_shuffle_f32x4(v0, v1, 0x44), bb = _mm512_shuffle_f32x4(v2, v3, 0x44);
  const __m512 c = _mm512_shuffle_f32x4(v0, v1, 0xEE), d = _mm512_shuffle_f32x4(v2, v3, 0xEE);
  _mm512_storeu_ps(o, _mm512_shuffle_f32x4(a, bb, 0x88));
  _mm512_storeu_ps(o + 16, _mm512_shuffle_f32x4(a, bb, 0xDD));
  _mm512_storeu_ps(o + 32, _mm512_shuffle_f32x4(c, d, 0x88));
  _mm512_storeu_ps(o + 48, _mm512_shuffle_f32x4(c, d, 0xDD));
}

// philox_groups in AVX-512: 16 groups per vector, one counter word per vector, two vectors (32 groups) per
// iteration so that the two chains of ten dependent rounds overlap (one chain left the multipliers waiting on its
// latency: 0.53 -> 0.44 ns per uniform on Sapphire Rapids; three or four chains, 0.42). The compiler's own
// vectorisation of the loop above shuffles 64-bit lanes around every multiply and ran at a quarter of the one-chain
// speed. Same integer arithmetic, so the same bits.
//
// Groups [g, g + 16 kChains k) for the largest such k; returns where it stopped.
template <int kChains>
__attribute__((target("avx512f"))) int64_t philox_chains_avx512(uint64_t seed, uint64_t offset, uint64_t block0,
                                                                int64_t g, int64_t groups, float* out) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i kM0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i kM1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  const __m512i off0 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(offset)));
  const __m512i off1 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(offset >> 32)));
  for (; g + 16 * kChains <= groups; g += 16 * kChains) {
    __m512i c0[kChains], c1[kChains], c2[kChains], c3[kChains];
    for (int q = 0; q < kChains; ++q) {
      const uint64_t b = block0 + static_cast<uint64_t>(g + 16 * q);
      const __m512i blo = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(b)));
      const __m512i bhi = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(b >> 32)));
      c0[q] = _mm512_add_epi32(blo, lane);
      // The 64-bit block counter: a lane whose low word wrapped carries into the high word.
      c1[q] = _mm512_mask_add_epi32(bhi, _mm512_cmplt_epu32_mask(c0[q], blo), bhi, _mm512_set1_epi32(1));
      c2[q] = off0;
      c3[q] = off1;
    }
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      const __m512i key0 = _mm512_set1_epi32(static_cast<int>(k0)), key1 = _mm512_set1_epi32(static_cast<int>(k1));
      for (int q = 0; q < kChains; ++q) {
        __m512i lo0, lo1;
        const __m512i hi0 = mulhilo(kM0, c0[q], &lo0), hi1 = mulhilo(kM1, c2[q], &lo1);
        c0[q] = _mm512_xor_si512(_mm512_xor_si512(hi1, c1[q]), key0);
        c2[q] = _mm512_xor_si512(_mm512_xor_si512(hi0, c3[q]), key1);
        c1[q] = lo1;
        c3[q] = lo0;
      }
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    for (int q = 0; q < kChains; ++q) philox16_store(c0[q], c1[q], c2[q], c3[q], out + 4 * (g + 16 * q));
  }
  return g;
}

// The groups in whole 16s: two chains at a time, then one.
__attribute__((target("avx512f"))) int64_t philox_groups_avx512(uint64_t seed, uint64_t offset, uint64_t block0,
                                                                int64_t groups, float* out) {
  const int64_t g = philox_chains_avx512<2>(seed, offset, block0, 0, groups, out);
  return philox_chains_avx512<1>(seed, offset, block0, g, groups, out);
}

// The same in AVX2: 8 groups per vector, two chains (16 groups) per iteration. The compiler's vectorisation of
// philox_groups was all the AVX2 machines had: 2.7% of a `mini` training step on the 2-vCPU AMD EPYC VM.
__attribute__((target("avx2"))) inline __m256i mulhilo_avx2(__m256i M, __m256i c, __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(c, M), odd = _mm256_mul_epu32(_mm256_srli_epi64(c, 32), M);
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  return _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

// philox16_store for 8 groups: units, then a 4 x 8 transpose.
__attribute__((target("avx2"))) inline void philox8_store(__m256i c0, __m256i c1, __m256i c2, __m256i c3, float* o) {
  const __m256 unit = _mm256_set1_ps(1.0f / 16777216.0f);
  const auto units8 = [&](__m256i x) __attribute__((target("avx2"))) {
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(x, 8)), unit);
  };
  const __m256 f0 = units8(c0), f1 = units8(c1), f2 = units8(c2), f3 = units8(c3);
  // Per 128-bit lane L, v_i holds group 4 L + i.
  const __m256 t0 = _mm256_unpacklo_ps(f0, f1), t1 = _mm256_unpackhi_ps(f0, f1);
  const __m256 t2 = _mm256_unpacklo_ps(f2, f3), t3 = _mm256_unpackhi_ps(f2, f3);
  const __m256 v0 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  const __m256 v1 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t2)));
  const __m256 v2 = _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  const __m256 v3 = _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t1), _mm256_castps_pd(t3)));
  _mm256_storeu_ps(o, _mm256_permute2f128_ps(v0, v1, 0x20));
  _mm256_storeu_ps(o + 8, _mm256_permute2f128_ps(v2, v3, 0x20));
  _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(v0, v1, 0x31));
  _mm256_storeu_ps(o + 24, _mm256_permute2f128_ps(v2, v3, 0x31));
}

template <int kChains>
__attribute__((target("avx2"))) int64_t philox_chains_avx2(uint64_t seed, uint64_t offset, uint64_t block0, int64_t g,
                                                           int64_t groups, float* out) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i sign = _mm256_set1_epi32(static_cast<int>(0x80000000u));
  const __m256i kM0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i kM1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  const __m256i off0 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(offset)));
  const __m256i off1 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(offset >> 32)));
  for (; g + 8 * kChains <= groups; g += 8 * kChains) {
    __m256i c0[kChains], c1[kChains], c2[kChains], c3[kChains];
    for (int q = 0; q < kChains; ++q) {
      const uint64_t b = block0 + static_cast<uint64_t>(g + 8 * q);
      const __m256i blo = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(b)));
      const __m256i bhi = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(b >> 32)));
      c0[q] = _mm256_add_epi32(blo, lane);
      // The 64-bit block counter: a lane whose low word wrapped (c0 < blo, unsigned: compared with the sign bits
      // flipped) carries into the high word (the mask is -1 there).
      const __m256i wrapped = _mm256_cmpgt_epi32(_mm256_xor_si256(blo, sign), _mm256_xor_si256(c0[q], sign));
      c1[q] = _mm256_sub_epi32(bhi, wrapped);
      c2[q] = off0;
      c3[q] = off1;
    }
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      const __m256i key0 = _mm256_set1_epi32(static_cast<int>(k0)), key1 = _mm256_set1_epi32(static_cast<int>(k1));
      for (int q = 0; q < kChains; ++q) {
        __m256i lo0, lo1;
        const __m256i hi0 = mulhilo_avx2(kM0, c0[q], &lo0), hi1 = mulhilo_avx2(kM1, c2[q], &lo1);
        c0[q] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[q]), key0);
        c2[q] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[q]), key1);
        c1[q] = lo1;
        c3[q] = lo0;
      }
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    for (int q = 0; q < kChains; ++q) philox8_store(c0[q], c1[q], c2[q], c3[q], out + 4 * (g + 8 * q));
  }
  return g;
}

__attribute__((target("avx2"))) int64_t philox_groups_avx2(uint64_t seed, uint64_t offset, uint64_t block0,
                                                           int64_t groups, float* out) {
  const int64_t g = philox_chains_avx2<2>(seed, offset, block0, 0, groups, out);
  return philox_chains_avx2<1>(seed, offset, block0, g, groups, out);
}

bool has_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  return yes;
}

bool has_avx512() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return yes;
}
#pragma GCC diagnostic pop
#else
#define SIMCSEPP_PHILOX_AVX512 0
#endif

}  // namespace

void bulk_dropout_uniforms(uint64_t seed, uint64_t offset, uint64_t first, int64_t count, float* out) {
  int64_t i = 0;
  for (; i < count && ((first + static_cast<uint64_t>(i)) & 3) != 0; ++i)
    out[i] = dropout_uniform(seed, offset, first + static_cast<uint64_t>(i));
  const int64_t groups = (count - i) / 4;
  const uint64_t block0 = (first + static_cast<uint64_t>(i)) >> 2;
  int64_t done = 0;
#if SIMCSEPP_PHILOX_AVX512
  if (has_avx512())
    done = philox_groups_avx512(seed, offset, block0, groups, out + i);
  else if (has_avx2())
    done = philox_groups_avx2(seed, offset, block0, groups, out + i);
#endif
  philox_groups(seed, offset, block0 + static_cast<uint64_t>(done), groups - done, out + i + 4 * done);
  for (i += 4 * groups; i < count; ++i) out[i] = dropout_uniform(seed, offset, first + static_cast<uint64_t>(i));
}

}  // namespace simcsepp::cpu
