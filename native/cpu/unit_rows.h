// Rows scaled to unit L2 norm in place: a search corpus's preparation (lib/embed/search.ts, VectorIndex.from).
#pragma once
#include <cstdint>

namespace simcsepp::cpu {

// Each of the `rows` rows of x ([rows, dim], row-major) times 1 / its L2 norm, with the arithmetic of
// lib/embed/search.ts's unitRows in JavaScript (which still normalises the queries): the squares summed in
// double in order of the elements (each square exact in double), inv = 1 / sqrt(sum) in double, each element
// times inv rounded once to float; a zero row stays zero. A corpus normalised here and a query normalised there
// are the same vectors bit for bit. Returns -1, or the flat index of the first element that is not finite
// (then some rows may be scaled and others not).
int64_t unit_rows(float* x, int64_t rows, int64_t dim);

}  // namespace simcsepp::cpu
