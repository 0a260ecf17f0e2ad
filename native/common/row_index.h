// Where the rows (sentences) of one call sit in the whole batch whose dropout masks they draw. A row's
// masks are indexed by its place in that batch, so a call over part of the batch (a micro-batch, a
// data-parallel rank's rows) reproduces exactly what the whole batch would have drawn for those rows.
//
// Row r of the call is row skip + r of a sequence of rows made of runs of `block` consecutive rows of the
// whole batch, the runs `stride` rows apart, the first starting at row `first`:
//   at(r) = first + q * stride + m,  (q, m) = divmod(skip + r, block)     (block > 0)
//   at(r) = first + skip + r                                              (block == 0: one run)
// A rank of a data-parallel step holds sentences [s0, s0 + m) of each of V views of n sentences, stacked
// view by view: first = s0, block = m, stride = n; a micro-batch starting at the rank's row l0 adds skip = l0.
#pragma once
#include <cstdint>

#include "common/philox.h"  // SIMCSEPP_HD

namespace simcsepp {

struct RowIndex {
  int64_t first = 0, block = 0, stride = 0, skip = 0;

  SIMCSEPP_HD int64_t at(int64_t r) const {
    if (block == 0) return first + skip + r;
    const int64_t i = skip + r;
    return first + (i / block) * stride + i % block;
  }
  // The number of rows from r0 to the end of r0's run (block == 0: unbounded, INT64_MAX).
  SIMCSEPP_HD int64_t run_left(int64_t r0) const { return block == 0 ? INT64_MAX : block - (skip + r0) % block; }
};

}  // namespace simcsepp
