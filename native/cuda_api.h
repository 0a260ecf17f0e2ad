// The CUDA runtime as the rest of the addon sees it: status, memory, copies.
//
// Implemented in kernels/runtime.cu when the build compiles CUDA (SIMCSEPP_WITH_CUDA), and by
// native/cuda_stub.cpp otherwise, so the addon always links and loads without a GPU or driver.
// Every function except status() throws CudaError when CUDA is unavailable or a call fails.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>

namespace simcsepp::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Status {
  bool compiled = false;   // CUDA kernels are in this build
  bool available = false;  // a device can be used now
  bool emulated = false;   // the device is the host emulator (emulator/): real kernel sources, run on the CPU
  std::string reason;      // why not, when !available
  std::string device;      // device 0's name and compute capability, when available
};

// Probes once (first call) and caches the answer.
const Status& status();

// Throws CudaError with status().reason when CUDA cannot be used.
void require();

void* malloc_device(size_t bytes);
void free_device(void* p) noexcept;
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_device_to_device(void* dst, const void* src, size_t bytes);
void memset_device(void* dst, int value, size_t bytes);
void synchronize();
// Bytes currently free on the device (cudaMemGetInfo).
size_t free_device_memory();
// Bytes the device has in all (cudaMemGetInfo).
size_t total_device_memory();
// The library the matrix products run on: "cuBLASLt <version> (<path>)", or "simcsepp kernels (<why>)"
// (kernels/cublaslt.cuh). Probes once; call only when status().available.
const std::string& gemm_library();

}  // namespace simcsepp::cuda
