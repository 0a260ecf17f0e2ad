// Top-k search by Hamming distance over bit-packed vectors (sentence-transformers' "ubinary"/"binary" embeddings:
// each dimension's sign as one bit, 8 to a byte): each corpus row XORed with every query, its set bits counted.
// The engine is the cosine search's (top_k.h): the score of a row is minus its distance (exact in a float up to
// 2^24 bits), so the best hit is the nearest, equal distances rank the lower row first, and a corpus may be
// searched in several calls, each merging into top_scores / top_indices ([nq, k], index -1: no hit).
#pragma once
#include <cstdint>

namespace simcsepp::cpu {

void hamming_top_k(float* top_scores, int32_t* top_indices,  // (nq, k): minus the distances, merged in place
                   const uint8_t* corpus,                    // (rows, bytes), of which row_begin..row_end
                   int64_t row_begin, int64_t row_end,
                   const uint8_t* queries,  // (nq, bytes)
                   int64_t nq, int64_t bytes, int64_t k);

// "avx512" (VPOPCNTDQ), "popcnt" (the scalar instruction) or "generic", the best this CPU has
// (SIMCSEPP_SEARCH_KERNEL=generic forces the portable one, =avx2 the scalar popcnt).
const char* hamming_kernel_name();

}  // namespace simcsepp::cpu
