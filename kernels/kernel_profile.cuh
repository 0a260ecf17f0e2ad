// Per-kernel device times (kernels/kernel_profile.cu), for `bench step --profile` on CUDA: while a kernel profile is
// open, every kernel launch() makes (launch.cuh), every cuBLASLt product (cublaslt.cu) and every stream-ordered
// device copy and fill (runtime.cu) records a CUDA event before and after itself on its stream, and the profile
// reports each one's device time between its pair, in launch order. The op profile's markers (runtime.cu's
// timer_mark) say which op launched it: each record keeps the number of markers recorded before it.
// Nothing is recorded while the calling thread captures a step graph (the profile runs steps without graphs).
// With no profile open a launch pays one relaxed atomic load.
#pragma once
#include <atomic>
#include <cstdint>

#include "cuda_check.cuh"

namespace simcsepp::cuda::kernel_profile {

namespace detail {
extern std::atomic<bool> g_open;
}

inline bool is_open() { return detail::g_open.load(std::memory_order_relaxed); }

// The event before a launch of `what` on `stream` (flops: the product's 2 M N K, else 0); returns the record's index,
// or -1 (no profile open, or capturing). What `what` points to is copied.
int64_t before(const char* what, cudaStream_t stream, double flops = 0);
// The flops of the next launch on this thread (a product kernel that launch() runs: tile_gemm.cuh, gemm_bf16.cuh),
// recorded by its before() when that is given none. Call only when is_open().
void next_launch_flops(double flops);
// The event after record `slot` (from before(); -1 does nothing). A record without one (its launch threw) is left out.
void after(int64_t slot, cudaStream_t stream);

// before() and after() around one launch: `Timed t("name", stream); launch...; t.done();` (not done: left out).
class Timed {
 public:
  Timed(const char* what, cudaStream_t stream, double flops = 0)
      : slot_(is_open() ? before(what, stream, flops) : -1), stream_(stream) {}
  void done() {
    if (slot_ >= 0) after(slot_, stream_);
    slot_ = -1;
  }

 private:
  int64_t slot_;
  cudaStream_t stream_;
};

}  // namespace simcsepp::cuda::kernel_profile
