// Launch-shape helpers shared by the row-wise and element-wise kernel files (elementwise.cu,
// embedding.cu, layernorm.cu, pooling.cu, optim.cu), the end of an op entry point, and the
// element-wise map (one grid-stride loop applying a functor to every index).
#pragma once
#include <algorithm>
#include <cstdint>

#include "cuda_check.cuh"
#include "launch.cuh"

namespace simcsepp::cuda::detail {

// Blocks of `threads` threads for `work` items, one item per thread, capped at `cap` blocks (the
// kernels that take this many blocks loop grid-stride over the rest). At least one block.
inline unsigned grid_blocks(int64_t work, int threads, int64_t cap = 4096) {
  return static_cast<unsigned>(std::clamp<int64_t>((work + threads - 1) / threads, 1, cap));
}

// gridDim.y (and z) cannot exceed 65535: kernels with a y grid loop grid-stride past it.
constexpr int64_t kMaxGridY = 65535;
inline unsigned grid_y(int64_t work) { return static_cast<unsigned>(std::clamp<int64_t>(work, 1, kMaxGridY)); }

// The end of an op entry point (cuda_check.cuh's end_op: asynchronous unless SIMCSEPP_CUDA_SYNC=1).
inline void finish_op() { end_op(detail::op_stream()); }

constexpr int kMapThreads = 256;

// op(i) for every i in [0, n): thread t of the grid takes t, t + stride, ... (coalesced).
template <class Op>
__global__ void __launch_bounds__(kMapThreads) map_kernel(Op op, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) op(i);
}

// Runs map_kernel with `op` over [0, n) (256 threads a block, at most 4096 blocks) on the default stream.
template <class Op>
void run_map(const char* what, const Op& op, int64_t n) {
  require();
  if (n <= 0) return;
  launch(what, map_kernel<Op>, grid_blocks(n, kMapThreads), kMapThreads, 0, detail::op_stream(), op, n);
  finish_op();
}

}  // namespace simcsepp::cuda::detail
