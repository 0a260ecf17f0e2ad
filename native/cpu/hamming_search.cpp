// Hamming top-k search (hamming_search.h). A distance is the sum over 64-bit words of popcount(row ^ query), the
// bytes past the last whole word gathered into one more word: integers, so every kernel, thread count and split of
// the rows gives the same result. A row of 768 bits is 12 words: a query costs ~12 popcounts and 96 bytes of
// streamed memory per row, against 768 multiply-adds and 3 KB for float32 cosine.
//
// Kernels: avx512 (VPOPCNTDQ: 64 bytes XORed and counted per instruction, a tile of 4 rows x 4 queries sharing each
// loaded chunk, the last partial chunk by masked loads), popcnt (the scalar instruction, a pair at a time), generic
// (no popcount instruction). All count the same bits.
#include "hamming_search.h"

#include <cstdlib>
#include <cstring>

#include "top_k.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace simcsepp::cpu {

namespace {

inline __attribute__((always_inline)) uint64_t word(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

// The last n < 8 bytes, zero-padded (the padding XORs to 0 on both sides).
inline __attribute__((always_inline)) uint64_t tail_word(const uint8_t* p, int64_t n) {
  uint64_t w = 0;
  std::memcpy(&w, p, static_cast<size_t>(n));
  return w;
}

// s[r * nq + q] = -popcount(rows[r] ^ queries[q]) for r < m, q < nq.
inline __attribute__((always_inline)) void distances(float* s, const uint8_t* rows, int64_t m, const uint8_t* queries,
                                                     int64_t nq, int64_t bytes) {
  const int64_t whole = bytes / 8 * 8;
  for (int64_t r = 0; r < m; ++r) {
    const uint8_t* row = rows + r * bytes;
    for (int64_t q = 0; q < nq; ++q) {
      const uint8_t* query = queries + q * bytes;
      int64_t d = 0;
      for (int64_t j = 0; j < whole; j += 8) d += __builtin_popcountll(word(row + j) ^ word(query + j));
      if (whole < bytes)
        d += __builtin_popcountll(tail_word(row + whole, bytes - whole) ^ tail_word(query + whole, bytes - whole));
      s[r * nq + q] = -static_cast<float>(d);
    }
  }
}

using Distances = void (*)(float*, const uint8_t*, int64_t, const uint8_t*, int64_t, int64_t);

#if defined(__x86_64__) || defined(__i386__)
// The same code where __builtin_popcountll is the popcnt instruction (x86-64's baseline has none).
__attribute__((target("popcnt"))) void distances_popcnt(float* s, const uint8_t* rows, int64_t m,
                                                        const uint8_t* queries, int64_t nq, int64_t bytes) {
  distances(s, rows, m, queries, nq, bytes);
}
#endif
void distances_generic(float* s, const uint8_t* rows, int64_t m, const uint8_t* queries, int64_t nq, int64_t bytes) {
  distances(s, rows, m, queries, nq, bytes);
}

#if defined(__x86_64__) || defined(__i386__)
#define SIMCSEPP_AVX512_POPCNT __attribute__((target("avx512f,avx512bw,avx512vpopcntdq"), always_inline)) inline

// s[r * nq + q] = -distance for the R rows and C queries of one tile (rows and queries `bytes` apart; s's stride nq).
template <int R, int C>
SIMCSEPP_AVX512_POPCNT void tile_avx512(float* s, int64_t nq, const uint8_t* rows, const uint8_t* queries,
                                        int64_t bytes) {
  __m512i acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_si512();
  for (int64_t j = 0; j < bytes; j += 64) {
    // The last chunk's missing bytes load as 0 on both sides: they XOR to 0.
    const __mmask64 mask = bytes - j >= 64 ? ~__mmask64{0} : (__mmask64{1} << (bytes - j)) - 1;
    __m512i a[R], b[C];
    for (int r = 0; r < R; ++r) a[r] = _mm512_maskz_loadu_epi8(mask, rows + r * bytes + j);
    for (int c = 0; c < C; ++c) b[c] = _mm512_maskz_loadu_epi8(mask, queries + c * bytes + j);
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c)
        acc[r][c] = _mm512_add_epi64(acc[r][c], _mm512_popcnt_epi64(_mm512_xor_si512(a[r], b[c])));
  }
  // The lanes summed through memory (GCC 12's _mm512_reduce_add_epi64 warns of an uninitialised temporary).
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      alignas(64) uint64_t lanes[8];
      _mm512_store_si512(lanes, acc[r][c]);
      uint64_t d = 0;
      for (uint64_t x : lanes) d += x;
      s[r * nq + c] = -static_cast<float>(d);
    }
}

// Tiles of 4 rows x 4 queries, then the rows and queries left over one band at a time.
template <int R>
SIMCSEPP_AVX512_POPCNT void band_avx512(float* s, const uint8_t* rows, const uint8_t* queries, int64_t nq,
                                        int64_t bytes) {
  int64_t q = 0;
  for (; q + 4 <= nq; q += 4) tile_avx512<R, 4>(s + q, nq, rows, queries + q * bytes, bytes);
  for (; q < nq; ++q) tile_avx512<R, 1>(s + q, nq, rows, queries + q * bytes, bytes);
}

__attribute__((target("avx512f,avx512bw,avx512vpopcntdq"))) void distances_avx512(float* s, const uint8_t* rows,
                                                                                  int64_t m, const uint8_t* queries,
                                                                                  int64_t nq, int64_t bytes) {
  int64_t r = 0;
  for (; r + 4 <= m; r += 4) band_avx512<4>(s + r * nq, rows + r * bytes, queries, nq, bytes);
  for (; r < m; ++r) band_avx512<1>(s + r * nq, rows + r * bytes, queries, nq, bytes);
}
#undef SIMCSEPP_AVX512_POPCNT
#endif

struct Kernel {
  const char* name;
  Distances run;
};

const Kernel& kernel() {
  static const Kernel k = []() -> Kernel {
    // SIMCSEPP_SEARCH_KERNEL (the cosine search's variable): generic forces the portable code, avx2 the scalar popcnt.
    const char* forced = std::getenv("SIMCSEPP_SEARCH_KERNEL");
    if (forced != nullptr && std::strcmp(forced, "generic") == 0) return {"generic", distances_generic};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const bool scalar = forced != nullptr && std::strcmp(forced, "avx2") == 0;
    if (!scalar && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vpopcntdq"))
      return {"avx512", distances_avx512};
    if (__builtin_cpu_supports("popcnt")) return {"popcnt", distances_popcnt};
#endif
    return {"generic", distances_generic};
  }();
  return k;
}

}  // namespace

const char* hamming_kernel_name() { return kernel().name; }

void hamming_top_k(float* top_scores, int32_t* top_indices, const uint8_t* corpus, int64_t row_begin, int64_t row_end,
                   const uint8_t* queries, int64_t nq, int64_t bytes, int64_t k) {
  const Distances run = kernel().run;
  top_k::search(top_scores, top_indices, row_begin, row_end, nq, k,
                [&](float* s, int64_t r0, int64_t m, int64_t q0, int64_t g) {
                  run(s, corpus + r0 * bytes, m, queries + q0 * bytes, g, bytes);
                });
}

}  // namespace simcsepp::cpu
