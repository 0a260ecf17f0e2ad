// Fused top-k search (search.h): the corpus is read once, a tile of rows at a time, each tile dotted
// with every query while it sits in L1, so a search costs one stream of the corpus from memory instead
// of a GEMM's shape-unfriendly blocks and a score matrix copied to JavaScript.
//
// Every dot product sums its terms in 16 lanes (lane l holds the terms j ≡ l mod 16, in order of j),
// then adds the lanes in one fixed tree: with -ffp-contract=off that is the same arithmetic whether the
// 16 lanes are one AVX-512 register, two AVX2 registers or four SSE registers, and whichever thread or
// tile computes it, so the result depends on neither the instruction set nor the thread count.
#include "search.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "top_k.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace simcsepp::cpu {

namespace {

// The helpers taking and returning vectors are always inlined, so the ABI GCC warns about never applies.
#pragma GCC diagnostic ignored "-Wpsabi"
constexpr int64_t kLanes = 16;
typedef float v16 __attribute__((vector_size(64)));

inline __attribute__((always_inline)) v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// The last n < 16 elements, zero-padded: the padding adds +0 to lanes n..15.
inline __attribute__((always_inline)) v16 load_tail(const float* p, int64_t n) {
  v16 v = {};
  std::memcpy(&v, p, static_cast<size_t>(n) * sizeof(float));
  return v;
}

inline __attribute__((always_inline)) float reduce(const v16& s) {
  float t[8];
  for (int l = 0; l < 8; ++l) t[l] = s[l] + s[l + 8];
  for (int l = 0; l < 4; ++l) t[l] = t[l] + t[l + 4];
  for (int l = 0; l < 2; ++l) t[l] = t[l] + t[l + 2];
  return t[0] + t[1];
}

// out[r * stride + c] = rows[r] · queries[c] for r < R, c < C (rows and queries `dim` floats apart).
template <int R, int C>
inline __attribute__((always_inline)) void dot_tile(float* out, int64_t stride, const float* rows, const float* queries,
                                                    int64_t dim) {
  v16 acc[R][C] = {};
  int64_t j = 0;
  for (; j + kLanes <= dim; j += kLanes) {
    v16 a[R];
    for (int r = 0; r < R; ++r) a[r] = load(rows + r * dim + j);
    for (int c = 0; c < C; ++c) {
      const v16 b = load(queries + c * dim + j);
      for (int r = 0; r < R; ++r) acc[r][c] += a[r] * b;
    }
  }
  if (j < dim) {
    v16 a[R];
    for (int r = 0; r < R; ++r) a[r] = load_tail(rows + r * dim + j, dim - j);
    for (int c = 0; c < C; ++c) {
      const v16 b = load_tail(queries + c * dim + j, dim - j);
      for (int r = 0; r < R; ++r) acc[r][c] += a[r] * b;
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out[r * stride + c] = reduce(acc[r][c]);
}

#if defined(__x86_64__) || defined(__i386__)
// acc[r][c] += a[r] * b[c] over 16 lanes as two ymm (a[r], b[c]: 16 floats each), multiplies and adds apart.
template <int R, int C>
__attribute__((target("avx2"), always_inline)) inline void add_products_avx2(__m256 (&acc)[R][C][2],
                                                                             const float* const (&a)[R],
                                                                             const float* const (&b)[C]) {
#pragma GCC unroll 8
  for (int c = 0; c < C; ++c) {
    const __m256 b0 = _mm256_loadu_ps(b[c]), b1 = _mm256_loadu_ps(b[c] + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      acc[r][c][0] = _mm256_add_ps(acc[r][c][0], _mm256_mul_ps(_mm256_loadu_ps(a[r]), b0));
      acc[r][c][1] = _mm256_add_ps(acc[r][c][1], _mm256_mul_ps(_mm256_loadu_ps(a[r] + 8), b1));
    }
  }
}

// dot_tile for AVX2 with intrinsics, lanes 0-7 and 8-15 in two ymm, multiplies and adds apart as above (the same
// bits): its R·C·2 accumulators stay in registers, where GCC's AVX2 code for v16 kept them in memory.
template <int R, int C>
__attribute__((target("avx2"), noinline)) void dot_tile_avx2(float* out, int64_t stride, const float* rows,
                                                             const float* queries, int64_t dim) {
  __m256 acc[R][C][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) acc[r][c][0] = acc[r][c][1] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + kLanes <= dim; j += kLanes) {
    const float *a[R], *b[C];
    for (int r = 0; r < R; ++r) a[r] = rows + r * dim + j;
    for (int c = 0; c < C; ++c) b[c] = queries + c * dim + j;
    add_products_avx2<R, C>(acc, a, b);
  }
  if (j < dim) {  // the last dim - j < 16 elements, zero-padded
    float ta[R][kLanes] = {}, tb[C][kLanes] = {};
    const float *a[R], *b[C];
    for (int r = 0; r < R; ++r) {
      std::memcpy(ta[r], rows + r * dim + j, static_cast<size_t>(dim - j) * sizeof(float));
      a[r] = ta[r];
    }
    for (int c = 0; c < C; ++c) {
      std::memcpy(tb[c], queries + c * dim + j, static_cast<size_t>(dim - j) * sizeof(float));
      b[c] = tb[c];
    }
    add_products_avx2<R, C>(acc, a, b);
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      alignas(32) float l[kLanes];
      _mm256_store_ps(l, acc[r][c][0]);
      _mm256_store_ps(l + 8, acc[r][c][1]);
      out[r * stride + c] = reduce(load(l));
    }
}
#endif

// The tiles as types, for score_rows: dot_tile in GCC vectors (inlined into each instruction set's entry point), or
// dot_tile_avx2.
struct VectorTile {
  template <int R, int C>
  static inline __attribute__((always_inline)) void run(float* out, int64_t stride, const float* rows,
                                                        const float* queries, int64_t dim) {
    dot_tile<R, C>(out, stride, rows, queries, dim);
  }
};
#if defined(__x86_64__) || defined(__i386__)
struct Avx2Tile {
  template <int R, int C>
  static void run(float* out, int64_t stride, const float* rows, const float* queries, int64_t dim) {
    dot_tile_avx2<R, C>(out, stride, rows, queries, dim);
  }
};
#endif

// One band of R rows against every query: tiles of R x Q, then R x 1 for the queries left over.
template <class Tile, int R, int Q>
inline __attribute__((always_inline)) void score_band(float* out, const float* rows, const float* queries, int64_t nq,
                                                      int64_t dim) {
  int64_t c = 0;
  for (; c + Q <= nq; c += Q) Tile::template run<R, Q>(out + c, nq, rows, queries + c * dim, dim);
  for (; c < nq; ++c) Tile::template run<R, 1>(out + c, nq, rows, queries + c * dim, dim);
}

// scores[r * nq + c] = rows[r] · queries[c] for r < n, c < nq, in tiles of R rows x Q queries: each query vector
// loaded once serves R rows, each row vector Q queries; the rows left over one band at a time.
template <class Tile, int R, int Q>
inline __attribute__((always_inline)) void score_rows(float* scores, const float* rows, int64_t n, const float* queries,
                                                      int64_t nq, int64_t dim) {
  int64_t r = 0;
  for (; r + R <= n; r += R) score_band<Tile, R, Q>(scores + r * nq, rows + r * dim, queries, nq, dim);
  for (; r < n; ++r) score_band<Tile, 1, Q>(scores + r * nq, rows + r * dim, queries, nq, dim);
}

// Each instruction set's kernel and tile (rows x queries):
//   avx512  4 x 4: 16 accumulators of one zmm, half of the 32. Measured on the AVX-512 machine (100,000 x 768,
//           2 threads): 4x4 took 32.6 ms for 16 queries and 84 ms for 64; 4x2 36.8 and 104; 8x2 32.9 and 90.
//   avx2    3 x 2 (dot_tile_avx2): 12 accumulators of the 16 ymm. On the 2-vCPU AMD EPYC VM (50,000 x 768, 16
//           queries): 24-25 ms, against ~125 ms for dot_tile's v16 (4 x 4) there; 2x2, 2x3, 1x4, 4x1 and 4x2 took
//           21-36 ms.
//   generic 4 x 4 in v16, as before the kernels were split (as fast there as the thinner tiles tried).
// The tile only groups the dot products: each is the same 16-lane sum, so every kernel gives the same bits.
using ScoreRows = void (*)(float*, const float*, int64_t, const float*, int64_t, int64_t);
#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f"))) void score_rows_avx512(float* s, const float* rows, int64_t n, const float* queries,
                                                          int64_t nq, int64_t dim) {
  score_rows<VectorTile, 4, 4>(s, rows, n, queries, nq, dim);
}
void score_rows_avx2(float* s, const float* rows, int64_t n, const float* queries, int64_t nq, int64_t dim) {
  score_rows<Avx2Tile, 3, 2>(s, rows, n, queries, nq, dim);
}
#endif
void score_rows_generic(float* s, const float* rows, int64_t n, const float* queries, int64_t nq, int64_t dim) {
  score_rows<VectorTile, 4, 4>(s, rows, n, queries, nq, dim);
}

struct SearchKernel {
  const char* name;
  ScoreRows score;
};

const SearchKernel* search_kernel_by_name(const char* name) {
  static const SearchKernel generic{"generic", score_rows_generic};
  if (name == nullptr) return nullptr;
  if (std::strcmp(name, "generic") == 0) return &generic;
#if defined(__x86_64__) || defined(__i386__)
  static const SearchKernel avx2{"avx2", score_rows_avx2}, avx512{"avx512", score_rows_avx512};
  __builtin_cpu_init();
  if (std::strcmp(name, "avx2") == 0 && __builtin_cpu_supports("avx2")) return &avx2;
  if (std::strcmp(name, "avx512") == 0 && __builtin_cpu_supports("avx512f")) return &avx512;
#endif
  return nullptr;
}

// The widest this CPU has, or SIMCSEPP_SEARCH_KERNEL=avx512|avx2|generic where the CPU has it (read once).
const SearchKernel& search_kernel() {
  static const SearchKernel* k = [] {
    if (const SearchKernel* forced = search_kernel_by_name(std::getenv("SIMCSEPP_SEARCH_KERNEL"))) return forced;
    for (const char* name : {"avx512", "avx2"})
      if (const SearchKernel* found = search_kernel_by_name(name)) return found;
    return search_kernel_by_name("generic");
  }();
  return *k;
}

}  // namespace

const char* search_kernel_name() { return search_kernel().name; }

void search_top_k(float* top_scores, int32_t* top_indices, const float* corpus, int64_t row_begin, int64_t row_end,
                  const float* queries, int64_t nq, int64_t dim, int64_t k) {
  const ScoreRows score = search_kernel().score;
  top_k::search(top_scores, top_indices, row_begin, row_end, nq, k,
                [&](float* s, int64_t r0, int64_t m, int64_t q0, int64_t g) {
                  score(s, corpus + r0 * dim, m, queries + q0 * dim, g, dim);
                });
}

}  // namespace simcsepp::cpu
