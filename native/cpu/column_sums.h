// Column reductions over many rows (bias and LayerNorm parameter gradients: sums over all B*T rows of a
// [R, C] matrix), row-blocked so that they stream memory at its speed.
//
// A column-parallel split (each thread owning a few columns of every row) reads a short piece of each row
// with the row's stride between pieces: a new page per row and nothing for the prefetcher to follow.
// Here the rows are cut into blocks of kSumBlockRows; each block is summed over all its columns, one row
// after the other (contiguous, vectorised), into its own slice of double partial sums; then the slices are
// added in block order. The blocks are fixed by R alone, never by the thread count, and every column's sum
// is ((block 0 + block 1) + block 2) + ..., each block's sum taken in row order: the same bits on any
// number of threads.
#pragma once
#include <algorithm>
#include <cstdint>

#include "parallel.h"

namespace simcsepp::cpu {

// Rows per block. A block's partial sums (C doubles, 8 KB at C = 1024) stay in L1 while its rows stream
// past; writing them costs 2 / kSumBlockRows of the rows' traffic, and the step's 6144 rows still make 48
// blocks to share between threads.
constexpr int64_t kSumBlockRows = 128;

// The calling thread's grow-only buffer of at least n doubles (the partial sums of one reduction).
double* column_sums_scratch(int64_t n);

// sums[0, width) += sums[b * width + c] for b = 1 .. blocks - 1, in order of b; columns in parallel.
void add_block_sums(double* sums, int64_t blocks, int64_t width);

// acc[c] += sum over rows r < rows of x[r * C + c], in row order (c < C).
void add_rows(double* acc, const float* x, int64_t rows, int64_t C);

// out[c] += sum over rows r < R of x[r * C + c]: the double sums over fixed row blocks (below), rounded to float.
void column_sums_add(float* out, const float* x, int64_t R, int64_t C);

// The sums of `width` double accumulators over rows [0, R): add_block(r0, r1, acc) adds rows [r0, r1)
// into acc (width doubles, zeroed) for each block, the blocks in parallel. Returns the totals, which live
// in the calling thread's scratch until its next reduction.
template <class AddBlock>
const double* blocked_column_sums(int64_t R, int64_t width, AddBlock&& add_block) {
  const int64_t blocks = std::max<int64_t>(1, (R + kSumBlockRows - 1) / kSumBlockRows);
  double* sums = column_sums_scratch(blocks * width);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      double* acc = sums + b * width;
      std::fill(acc, acc + width, 0.0);
      add_block(b * kSumBlockRows, std::min(R, (b + 1) * kSumBlockRows), acc);
    }
  });
  add_block_sums(sums, blocks, width);
  return sums;
}

}  // namespace simcsepp::cpu
