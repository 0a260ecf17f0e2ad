// Row-blocked column reductions (column_sums.h): the scratch, the in-order combination of the blocks,
// and the plain column sum of a block of rows.
#include "column_sums.h"

#include <vector>

#include "clones.h"

namespace simcsepp::cpu {

namespace {

// Columns per chunk when the blocks' sums are combined: the combination reads blocks * width doubles,
// a small fraction of the rows, so a few chunks are enough.
constexpr int64_t kCombineGrain = 256;

// The loops below are cloned per instruction set (AVX-512, AVX2, baseline) and picked at load time. The
// arithmetic is the same in every clone: float to double is exact and each double addition is in order.
SIMCSEPP_CLONES void add_slices(double* __restrict__ sums, const double* __restrict__ slice, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c) sums[c] += slice[c];
}

}  // namespace

double* column_sums_scratch(int64_t n) {
  // Grown once to the largest reduction of the run, never freed: no allocation in a training step after
  // its first.
  thread_local std::vector<double> buf;
  if (buf.size() < static_cast<size_t>(n)) buf.resize(static_cast<size_t>(n));
  return buf.data();
}

void add_block_sums(double* sums, int64_t blocks, int64_t width) {
  if (blocks <= 1) return;
  parallel_for(width, kCombineGrain, [&](int64_t c0, int64_t c1) {
    for (int64_t b = 1; b < blocks; ++b) add_slices(sums, sums + b * width, c0, c1);
  });
}

SIMCSEPP_CLONES void add_rows(double* __restrict__ acc, const float* __restrict__ x, int64_t rows, int64_t C) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * C;
    for (int64_t c = 0; c < C; ++c) acc[c] += static_cast<double>(row[c]);
  }
}

void column_sums_add(float* out, const float* x, int64_t R, int64_t C) {
  const double* s =
      blocked_column_sums(R, C, [&](int64_t r0, int64_t r1, double* acc) { add_rows(acc, x + r0 * C, r1 - r0, C); });
  for (int64_t c = 0; c < C; ++c) out[c] += static_cast<float>(s[c]);
}

}  // namespace simcsepp::cpu
