// Fused top-k search over a corpus of vectors: one pass over corpus rows [row_begin, row_end), each
// row dotted with every query, the k best (score, row) pairs of each query kept as the pass goes.
// Ranking: a higher score first; equal scores: the lower row first. NaN scores rank below everything.
//
// top_scores / top_indices ([nq, k], row-major) hold each query's best k so far, best first, a slot
// without a hit holding index -1: the rows' candidates are merged into them, so a corpus can be searched
// in several calls (lib/embed/search.ts yields to the event loop between them). The result does not
// depend on the thread count or the instruction set: every dot product sums its terms in one fixed order.
#pragma once
#include <cstdint>

namespace simcsepp::cpu {

void search_top_k(float* top_scores, int32_t* top_indices,  // (nq, k), merged in place
                  const float* corpus,                      // (rows, dim), of which row_begin..row_end
                  int64_t row_begin, int64_t row_end,
                  const float* queries,  // (nq, dim)
                  int64_t nq, int64_t dim, int64_t k);

// The instruction set of the dot products: "avx512", "avx2" or "generic" (SIMCSEPP_SEARCH_KERNEL forces one the CPU
// has).
const char* search_kernel_name();

}  // namespace simcsepp::cpu
