// A cross-block total in a fixed order. Kernels whose blocks each produce part of a sum (a loss over row
// tiles, a column statistic over row chunks) write their parts to an array, and ordered_sum adds them in
// index order. atomicAdd would add them in whatever order the blocks finish, so the last bits of the
// total, and everything computed from it, would change from run to run on a GPU (the emulator shows that
// with CUEMU_BLOCK_ORDER, test/block-order.test.ts).
#pragma once
#include <cstdint>

#include "cuda_check.cuh"

namespace simcsepp::cuda::detail {

// *out = parts[0] + parts[1] + ... + parts[count - 1], always in the same order (one block of 256 threads:
// thread t adds parts t, t + 256, ... in turn, then the 256 sums are added in a fixed tree). Launched on
// `stream`; count may be 0 (*out = 0).
void ordered_sum(const double* parts, int64_t count, double* out, cudaStream_t stream);

}  // namespace simcsepp::cuda::detail
