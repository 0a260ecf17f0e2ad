// Internal helpers shared by the kernel files: CUDA error checks that throw CudaError, the loss ops'
// result header, and the cached device workspace the loss ops use for their scratch buffers.
//
// Includes: native/ is on the include path of the CUDA compilation too, so kernels include project
// headers as the C++ side does ("backend.h", "common/philox.h"). No header under native/ may share a
// name with a CUDA toolkit header (nvcc force-includes the toolkit's <cuda_runtime.h>, and a project
// header of that name would shadow it): CMakeLists.txt refuses to configure if one does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "cuda_api.h"
#include "entry_points.cuh"

namespace simcsepp::cuda::detail {

// Throws CudaError("<what> failed: <cudaGetErrorString> (<cudaGetErrorName>)") unless e == cudaSuccess.
inline void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so the next call does not report it again
  throw CudaError(std::string(what) + " failed: " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")");
}

}  // namespace simcsepp::cuda::detail

// Wrap every runtime call (kernel launches go through launch() in launch.cuh, which checks them).
#define SIMCSEPP_CUDA_CHECK(call) ::simcsepp::cuda::detail::check((call), #call)

namespace simcsepp::cuda::detail {

// The end of an op entry point that returns nothing to the host. The ops run asynchronously on the
// default stream: the host goes on issuing the next op while the GPU works, and anything that reads a
// result (a copy to the host, a loss, the gradient norm) waits for it. SIMCSEPP_CUDA_SYNC=1 makes every
// op wait for its kernels (like CUDA_LAUNCH_BLOCKING), so that a fault is reported by the op that
// caused it rather than by a later one.
void end_op(cudaStream_t stream);

}  // namespace simcsepp::cuda::detail

namespace simcsepp::cuda::detail {

// Header at the start of every loss op's workspace, zeroed (one cudaMemsetAsync) before launch 1.
struct DeviceHeader {
  double loss;  // sum of the per-row (or per-dimension) losses, accumulated with atomicAdd(double)
  int flag;     // 0, or kFlagBase - NonFinite code (atomicMax keeps the smallest code = first input)
  int pad;
};
constexpr int kFlagBase = 16;

// Device-side: record that input `code` holds NaN/Inf (smaller codes win).
#if defined(__CUDACC__) || defined(SIMCSEPP_CUDA_EMULATOR)
__device__ __forceinline__ void flag_non_finite(int* flag, int code) { atomicMax(flag, kFlagBase - code); }
#endif
inline int decode_flag(int flag) { return flag == 0 ? kNone : kFlagBase - flag; }

// Copies the header back once `stream` has finished and turns it into the op's result:
// loss = sum / count * weight, or the non-finite input's code.
inline LossResult read_loss(const DeviceHeader* hdr, double count, double weight, cudaStream_t stream) {
  DeviceHeader h{};
  check(cudaMemcpyAsync(&h, hdr, sizeof(h), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync of the loss header");
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  LossResult res;
  res.nonFinite = decode_flag(h.flag);
  res.loss = res.nonFinite == kNone ? h.loss / count * weight : 0.0;
  return res;
}

// One device buffer shared by the loss ops. It only grows, so once warm no op calls cudaMalloc.
// An op holds `mu` for its whole duration (launches and the final copy), because concurrent callers
// (Node worker threads) would otherwise overwrite each other's scratch.
class Workspace {
 public:
  std::mutex mu;
  // Returns a buffer of at least `bytes` bytes (caller holds mu). Growing frees the old buffer.
  void* reserve(size_t bytes);

 private:
  void* ptr_ = nullptr;
  size_t cap_ = 0;
};

// The process-wide workspace (never freed: freeing at exit can race the driver's own teardown).
Workspace& workspace();

// Carves 256-byte aligned sub-buffers out of a workspace allocation; first pass (base == nullptr)
// only measures.
class Carver {
 public:
  explicit Carver(char* base) : base_(base) {}
  template <class T>
  T* take(size_t count) {
    const size_t at = used_;
    used_ += (count * sizeof(T) + 255) / 256 * 256;
    return base_ ? reinterpret_cast<T*>(base_ + at) : nullptr;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

}  // namespace simcsepp::cuda::detail
