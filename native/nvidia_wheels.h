// Where NVIDIA's Python wheels put their shared libraries (nvidia-cublas-cu12: nvidia/cublas/lib; CUDA 13's
// nvidia/cu13/lib; nvidia-nccl-cu12/13: nvidia/nccl/lib), so that a machine with PyTorch installed also
// serves the libraries we load at run time (cuBLASLt, NCCL) without a CUDA toolkit.
#pragma once
#include <string>
#include <vector>

namespace simcsepp {

// The files matching `pattern` (a glob below site-packages/nvidia/, e.g. "nccl/lib/libnccl.so.2") in the
// usual site-packages locations: system and user Pythons, an active virtualenv or conda environment,
// conda's base. In search order, with repeats left out.
std::vector<std::string> nvidia_wheel_libraries(const std::string& pattern);

}  // namespace simcsepp
