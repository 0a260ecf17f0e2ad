// The CUDA runtime and op table for builds without nvcc: status() says "not compiled", the memory
// functions throw, and the op table is empty.
// Only linked when SIMCSEPP_WITH_CUDA is off (see CMakeLists.txt and binding.gyp).
#include "backend.h"
#include "cuda_api.h"

namespace simcsepp::cuda {

namespace {
[[noreturn]] void not_compiled() {
  throw CudaError(
      "CUDA is unavailable: this build of simcsepp was compiled without CUDA (built without nvcc, or without an NVIDIA "
      "driver; SIMCSEPP_CUDA=on npm rebuild simcsepp compiles them)");
}
}  // namespace

const Status& status() {
  static const Status s = [] {
    Status st;
    st.compiled = false;
    st.available = false;
    st.reason =
        "not compiled: this build of simcsepp has no CUDA kernels (built without nvcc, or without an NVIDIA driver; "
        "SIMCSEPP_CUDA=on npm rebuild simcsepp compiles them)";
    return st;
  }();
  return s;
}

void require() { not_compiled(); }
const std::string& gemm_library() {
  static const std::string none = "none (this build has no CUDA kernels)";
  return none;
}
std::string bf16_operands() { return "none (this build has no CUDA kernels)"; }
Bf16Mirror* bf16_mirror_create(const float*, int64_t) { not_compiled(); }
void bf16_mirror_destroy(Bf16Mirror*) noexcept {}
void bf16_mirror_mark_stale(Bf16Mirror*) noexcept {}
size_t bf16_mirror_bytes(int64_t n) { return static_cast<size_t>(n) * 2; }
Bf16Counters bf16_counters() { return {}; }
void bf16_handoff_request(const float*, int64_t, bool) {}
void bf16_handoff_written(const float*, int64_t) noexcept {}
void* malloc_device(size_t) { not_compiled(); }
void free_device(void*) noexcept {}
void copy_to_device(void*, const void*, size_t) { not_compiled(); }
void copy_to_host(void*, const void*, size_t) { not_compiled(); }
void copy_device_to_device(void*, const void*, size_t) { not_compiled(); }
void memset_device(void*, int, size_t) { not_compiled(); }
void synchronize() { not_compiled(); }
void* op_stream() { return nullptr; }
bool capturing() { return false; }
void* launch_host_func() { return nullptr; }
size_t free_device_memory() { not_compiled(); }
size_t total_device_memory() { not_compiled(); }
int64_t timer_mark() { not_compiled(); }
double timer_elapsed(int64_t, int64_t) { not_compiled(); }
int64_t timer_marks() { return 0; }
void timer_reset() {}
void kernel_profile_start() { not_compiled(); }
std::vector<KernelTime> kernel_profile_stop() { return {}; }
GraphSession* graph_session_create(const std::vector<size_t>&, int64_t, GraphSession*) { not_compiled(); }
void graph_session_destroy(GraphSession*) noexcept {}
int graph_capture(GraphSession*, const std::vector<HostArray>&, const std::function<void()>&) { not_compiled(); }
int64_t graph_launch(GraphSession*, int, const std::vector<HostArray>&, uint64_t, double, int64_t,
                     const std::vector<HostArray>&, bool) {
  not_compiled();
}
GraphReadback graph_results(GraphSession*, int64_t) { not_compiled(); }
void capture_index_limit(const int32_t*, int64_t, int64_t, const char*, const char*) {}

}  // namespace simcsepp::cuda

namespace simcsepp {

// No kernels: every entry is nullptr (dispatch.h reports "this build has no CUDA kernels" first).
const Backend& cuda_backend() {
  static const Backend table{"cuda"};
  return table;
}

}  // namespace simcsepp
