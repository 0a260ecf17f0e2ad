// The one place that writes `<<< >>>`: every kernel launch in kernels/ goes through launch(), which
// also checks the launch (a bad configuration or a missing kernel image only shows up in
// cudaGetLastError). In the emulated build (SIMCSEPP_CUDA=emulate, emulator/) the host compiler
// compiles this file and launch() hands the kernel to the emulator instead, so every kernel source is
// the same for the GPU and for the emulator.
#pragma once
#include <cstddef>
#include <string>
#include <utility>

#include "cuda_check.cuh"
#include "graph_capture.cuh"
#include "kernel_profile.cuh"

namespace simcsepp::cuda {

// Launches kernel<<<grid, block, smem, stream>>>(args...) and throws CudaError("launch of <what>
// failed: ...") if the launch is refused. `stream` is explicit everywhere: the op entry points pass
// detail::op_stream() (graph_capture.cuh): the legacy default stream, or a capturing session's stream.
template <class... Params, class... Args>
void launch(const char* what, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            Args&&... args) {
  kernel_profile::Timed timed(what, stream);  // an open kernel profile's events around the launch
#if defined(SIMCSEPP_CUDA_EMULATOR)
  (void)::cuemu::launch_kernel(what, kernel, grid, block, smem, stream, std::forward<Args>(args)...);
#else
  // Inside a preprocessor branch clang-format would split the launch chevrons.
  // clang-format off
  kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
  // clang-format on
#endif
  detail::check(cudaGetLastError(), (std::string("launch of ") + what).c_str());
  timed.done();
}

}  // namespace simcsepp::cuda
