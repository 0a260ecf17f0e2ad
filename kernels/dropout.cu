// Selective dropout (backend.h DropoutArgs), bit-identical to the CPU backend:
//   y[e] = x[e]                                   if keepRows && keepRows[r] == 0   (row kept whole)
//        = u_e >= p ? x[e] * (1.0f / (1.0f - p)) : 0   otherwise,
//   e = rowIndex.at(r)*cols + c (64-bit), u_e = dropout_uniform(seed, offset, e) (native/common/philox.h);
//   rowIndex places x's rows in a larger batch (common/row_index.h), so a micro-batch or a data-parallel
//   rank's rows draw that batch's masks.
// Tiling: one launch per run of rows consecutive in the whole batch (one, or one per view of a rank's rows),
// so that its elements have consecutive Philox indices; in it, one thread per group of 4 consecutive
// elements, because one Philox call yields the uniforms of exactly the 4 elements 4q..4q+3
// (dropout_uniform uses counter e/4 and word e%4); grid-stride loop. Groups are read/written as float4
// when both pointers are 16-byte aligned and the run's first index is a multiple of 4 (groups then line up
// with the memory). x and y may alias: each element is read and then written by the same thread.
#include <algorithm>

#include "common/philox.h"
#include "cuda_check.cuh"
#include "host_args.cuh"
#include "launch.cuh"

namespace simcsepp::cuda {

namespace {

struct DropoutParams {
  const float* x;
  float* y;
  int64_t total, cols;
  float p, scale;
  uint64_t seed, offset;
  const uint8_t* keepRows;
  int64_t base;                 // Philox index of element 0: rowIndex.at(run's first row) * cols
  const uint64_t* offsetDelta;  // added to offset inside a step graph (graph_capture.cuh), else null
};

__device__ __forceinline__ float drop_one(const DropoutParams& P, int64_t e, float x, const Philox4& r, int word) {
  if (P.keepRows != nullptr && P.keepRows[e / P.cols] == 0) return x;
  const float u = philox_to_unit(r.v[word]);
  return u >= P.p ? x * P.scale : 0.0f;
}

// Thread t of the grid takes Philox groups G0 + t, G0 + t + stride, ... of the global element indices
// [base, base + total); group g covers global elements 4g .. 4g + 3, i.e. local e = 4g + w - base.
template <bool kVec>
__global__ void dropout_kernel(DropoutParams P) {
  const int64_t g0 = P.base >> 2, g1 = (P.base + P.total + 3) >> 2;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const uint64_t offset = detail::dropout_offset(P.offset, P.offsetDelta);
  for (int64_t g = g0 + static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < g1; g += stride) {
    // Same counter layout as dropout_uniform: (block = e>>2 as 64 bits, offset as 64 bits), key = seed.
    const Philox4 r = philox4x32_10(static_cast<uint32_t>(g), static_cast<uint32_t>(g >> 32),
                                    static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                                    static_cast<uint32_t>(P.seed), static_cast<uint32_t>(P.seed >> 32));
    const int64_t e0 = g * 4 - P.base;           // local index of the group's word 0 (may be < 0 for the first group)
    if (kVec && e0 >= 0 && e0 + 4 <= P.total) {  // kVec: base % 4 == 0 and x, y 16-byte aligned
      float4 v = reinterpret_cast<const float4*>(P.x)[e0 / 4];
      v.x = drop_one(P, e0 + 0, v.x, r, 0);
      v.y = drop_one(P, e0 + 1, v.y, r, 1);
      v.z = drop_one(P, e0 + 2, v.z, r, 2);
      v.w = drop_one(P, e0 + 3, v.w, r, 3);
      reinterpret_cast<float4*>(P.y)[e0 / 4] = v;
    } else {
      for (int w = 0; w < 4; ++w) {
        const int64_t e = e0 + w;
        if (e >= 0 && e < P.total) P.y[e] = drop_one(P, e, P.x[e], r, w);
      }
    }
  }
}

// Launches the kernel over rows r0 <= r < r0 + n of a, consecutive in the whole batch.
void launch_run(const DropoutArgs& a, int64_t r0, int64_t n, cudaStream_t stream) {
  const int64_t total = n * a.cols;
  const int64_t base = a.rowIndex.at(r0) * a.cols;
  const float* x = a.x + r0 * a.cols;
  float* y = a.y + r0 * a.cols;
  // keepRows shifted so that the kernel's row e / cols (counted from the run's start) finds its byte.
  const uint8_t* keep = a.keepRows != nullptr ? a.keepRows + r0 : nullptr;
  DropoutParams P{x, y, total, a.cols, a.p,
                  // p >= 1 drops every element (u < 1 <= p); scale is then never used, keep it finite.
                  a.p < 1.0f ? 1.0f / (1.0f - a.p) : 0.0f, a.seed, a.offset, keep, base, detail::offset_delta()};
  const int threads = 256;
  const int64_t groups = ((base + total + 3) >> 2) - (base >> 2);
  const int blocks = static_cast<int>(std::min<int64_t>((groups + threads - 1) / threads, 16384));
  const bool aligned =
      base % 4 == 0 && (reinterpret_cast<uintptr_t>(x) % 16 == 0) && (reinterpret_cast<uintptr_t>(y) % 16 == 0);
  if (aligned) {
    launch("dropout_kernel", dropout_kernel<true>, blocks, threads, 0, stream, P);
  } else {
    launch("dropout_kernel", dropout_kernel<false>, blocks, threads, 0, stream, P);
  }
}

// Launches the kernel on `stream`, once per run of a's rows (common/row_index.h); keepRows (if any) is a
// device pointer.
void launch_dropout(const DropoutArgs& a, cudaStream_t stream) {
  const int64_t total = a.rows * a.cols;
  if (total <= 0) return;
  if (a.p <= 0.0f) {  // p == 0: every element survives with scale 1, i.e. a copy
    if (a.x != a.y) {
      SIMCSEPP_CUDA_CHECK(
          cudaMemcpyAsync(a.y, a.x, static_cast<size_t>(total) * sizeof(float), cudaMemcpyDeviceToDevice, stream));
    }
    return;
  }
  for (int64_t r0 = 0; r0 < a.rows;) {
    const int64_t n = std::min(a.rows - r0, a.rowIndex.run_left(r0));
    launch_run(a, r0, n, stream);
    r0 += n;
  }
}

}  // namespace

// The op entry point: keepRows arrives as a host pointer (one byte per row, backend.h); it is copied
// into the host-argument buffer (host_args.cuh), so the call allocates nothing once warm.
void dropout(const DropoutArgs& a) {
  require();
  if (a.rows * a.cols <= 0) return;
  DropoutArgs dev = a;
  detail::HostArgs args(detail::op_stream());
  dev.keepRows = args.to_device(a.keepRows, a.rows, detail::kSlotKeepRows);
  launch_dropout(dev, detail::op_stream());
  detail::end_op(detail::op_stream());
}

}  // namespace simcsepp::cuda
