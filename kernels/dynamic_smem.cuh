// A block's dynamic shared memory (the launch's smem bytes), for kernels whose shared arrays exceed the 48 KB of
// static shared memory: `extern __shared__` on a GPU; under the host emulator, which cannot compile that,
// cuemu::dynamic_shared(), whose accesses it checks as those of a __shared__ array of the launch's size.
// A launch of more than 48 KB needs the kernel's cudaFuncAttributeMaxDynamicSharedMemorySize raised first
// (allow_dynamic_smem), on a GPU and under the emulator alike.
#pragma once
#include <cstddef>

#include "cuda_check.cuh"

namespace simcsepp::cuda {

// The block's dynamic shared memory as T (128-byte aligned on a GPU, 4096 under the emulator).
template <class T>
__device__ __forceinline__ T* dynamic_smem() {
#if defined(SIMCSEPP_CUDA_EMULATOR)
  return reinterpret_cast<T*>(::cuemu::dynamic_shared());
#else
  extern __shared__ __align__(128) unsigned char simcsepp_dynamic_smem[];
  return reinterpret_cast<T*>(simcsepp_dynamic_smem);
#endif
}

// Lets `kernel` launch with up to `bytes` of dynamic shared memory (beyond the default 48 KB); throws CudaError
// naming `what` where the device allows less. Once per kernel and process is enough (the attribute stays).
template <class Kernel>
void allow_dynamic_smem(const char* what, Kernel* kernel, size_t bytes) {
  detail::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
                what);
}

}  // namespace simcsepp::cuda
