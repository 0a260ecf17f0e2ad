// CUDA entry points for builds without nvcc: status() says "not compiled" and every op throws.
// Only linked when SIMCSEPP_WITH_CUDA is off (see CMakeLists.txt and binding.gyp).
#include "backend.h"
#include "cuda_api.h"

namespace simcsepp::cuda {

namespace {
[[noreturn]] void not_compiled() {
  throw CudaError("CUDA is unavailable: this build of simcsepp was compiled without CUDA (nvcc was not found at install time)");
}
}  // namespace

const Status& status() {
  static const Status s = [] {
    Status st;
    st.compiled = false;
    st.available = false;
    st.reason = "not compiled: this build of simcsepp has no CUDA kernels (nvcc was not found at install time)";
    return st;
  }();
  return s;
}

void require() { not_compiled(); }
void* malloc_device(size_t) { not_compiled(); }
void free_device(void*) noexcept {}
void copy_to_device(void*, const void*, size_t) { not_compiled(); }
void copy_to_host(void*, const void*, size_t) { not_compiled(); }
void copy_device_to_device(void*, const void*, size_t) { not_compiled(); }
void memset_device(void*, int, size_t) { not_compiled(); }
void synchronize() { not_compiled(); }
size_t free_device_memory() { not_compiled(); }

LossResult simcse(const SimcseArgs&, const LossGradOut&) { not_compiled(); }
LossResult offDropout(const OffDropoutArgs&, const LossGradOut&) { not_compiled(); }
LossResult dcl(const DclArgs&, const LossGradOut&) { not_compiled(); }
void dropout(const DropoutArgs&) { not_compiled(); }
LossResult offDropoutUnfused(const OffDropoutArgs&, const LossGradOut&, size_t*) { not_compiled(); }
size_t offDropoutWorkspaceBytes(int64_t, int64_t) { not_compiled(); }

}  // namespace simcsepp::cuda
