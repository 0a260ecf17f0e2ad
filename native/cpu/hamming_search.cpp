// Hamming top-k search (hamming_search.h). A distance is the sum over 64-bit words of popcount(row ^ query), the
// bytes past the last whole word gathered into one more word: integers, so every kernel, thread count and split of
// the rows gives the same result. A row of 768 bits is 12 words: a query costs ~12 popcounts and 96 bytes of
// streamed memory per row, against 768 multiply-adds and 3 KB for float32 cosine.
#include "hamming_search.h"

#include <cstdlib>
#include <cstring>

#include "top_k.h"

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

struct Kernel {
  const char* name;
  Distances run;
};

const Kernel& kernel() {
  static const Kernel k = []() -> Kernel {
    const char* forced = std::getenv("SIMCSEPP_SEARCH_KERNEL");
    if (forced != nullptr && std::strcmp(forced, "generic") == 0) return {"generic", distances_generic};
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
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
