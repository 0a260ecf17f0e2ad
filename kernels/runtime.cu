// The CUDA runtime glue declared in native/cuda_api.h: a one-time device probe (status), checked memory
// management and copies, and the shared op workspace. No kernels live here.
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "cuda_check.cuh"
#include "graph_capture.cuh"
#include "host_args.cuh"
#include "kernel_profile.cuh"
#include "l2_slab.cuh"

namespace simcsepp::cuda {

namespace {

std::string gib(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

std::string version_string(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// Words for the probe's failure: the common install problems get a sentence, the rest the runtime's text.
std::string describe_probe_error(cudaError_t e) {
  const std::string code = std::string(" (") + cudaGetErrorName(e) + ": " + cudaGetErrorString(e) + ")";
  switch (e) {
    case cudaErrorInsufficientDriver: {
      int driver = 0;
      (void)cudaDriverGetVersion(&driver);  // 0 when no driver (libcuda.so) could be loaded at all
      if (driver == 0)
        return "no CUDA driver found: the NVIDIA driver (libcuda.so) is not installed or not loadable" + code;
      return "driver too old for this build: the installed NVIDIA driver supports CUDA " + version_string(driver) +
             ", this build of simcsepp needs CUDA " + version_string(CUDART_VERSION) + " or newer" + code;
    }
    case cudaErrorNoDevice:
      return "no CUDA device: the driver is installed but reports no GPU (check CUDA_VISIBLE_DEVICES)" + code;
    case cudaErrorStubLibrary:
      return "no CUDA driver found: the libcuda.so that was loaded is the toolkit's stub library, not a real driver" +
             code;
    default: return "CUDA is unavailable: device probe failed" + code;
  }
}

Status probe() {
  Status st;
  st.compiled = true;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    st.reason = describe_probe_error(e);
    return st;
  }
  if (count <= 0) {
    st.reason = "no CUDA device: the driver reports no GPU (check CUDA_VISIBLE_DEVICES)";
    return st;
  }
  cudaDeviceProp prop{};
  e = cudaGetDeviceProperties(&prop, 0);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    st.reason = describe_probe_error(e);
    return st;
  }
  const std::string arch = "sm_" + std::to_string(prop.major) + std::to_string(prop.minor);
  st.device = std::string(prop.name) + " (" + arch + ")";
  // The build carries sm_80 and sm_90 code and compute_90 PTX (JIT for newer GPUs); older GPUs cannot run it.
  if (prop.major < 8) {
    st.reason =
        "CUDA device " + st.device + " is too old: simcsepp's kernels need compute capability 8.0 (sm_80) or newer";
    return st;
  }
  st.available = true;
#if defined(SIMCSEPP_CUDA_EMULATOR)
  st.emulated = true;
#endif
  return st;
}

}  // namespace

const Status& status() {
  static const Status s = probe();  // C++11 magic static: thread-safe one-time probe
  return s;
}

void require() {
  const Status& s = status();
  if (!s.available) throw CudaError(s.reason);
}

void* malloc_device(size_t bytes) {
  require();
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    size_t freeBytes = 0, totalBytes = 0;
    const bool known = cudaMemGetInfo(&freeBytes, &totalBytes) == cudaSuccess;
    (void)cudaGetLastError();
    throw CudaError("out of GPU memory: " + gib(bytes) + " requested, " +
                    (known ? gib(freeBytes) + " free of " + gib(totalBytes) : std::string("free memory unknown")) +
                    "; use a smaller batch or shorter sequences (tensors allocated before are still valid)");
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw CudaError("cudaMalloc of " + std::to_string(bytes) + " bytes failed: " + cudaGetErrorString(e));
  }
  return p;
}

void free_device(void* p) noexcept {
  if (p == nullptr || !status().available) return;
  if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();  // noexcept: nothing sensible to report
}

void copy_to_device(void* dst, const void* src, size_t bytes) {
  require();
  if (bytes == 0) return;
  SIMCSEPP_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void copy_to_host(void* dst, const void* src, size_t bytes) {
  require();
  if (bytes == 0) return;
  SIMCSEPP_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

void copy_device_to_device(void* dst, const void* src, size_t bytes) {
  require();
  if (bytes == 0) return;
  // Stream-ordered like the ops (and so capturable into a step graph).
  kernel_profile::Timed timed("device-to-device copy (cudaMemcpyAsync)", detail::op_stream());
  SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, detail::op_stream()));
  timed.done();
}

void memset_device(void* dst, int value, size_t bytes) {
  require();
  if (bytes == 0) return;
  kernel_profile::Timed timed("fill (cudaMemsetAsync)", detail::op_stream());
  SIMCSEPP_CUDA_CHECK(cudaMemsetAsync(dst, value, bytes, detail::op_stream()));
  timed.done();
}

void synchronize() {
  require();
  SIMCSEPP_CUDA_CHECK(cudaDeviceSynchronize());
}

void* op_stream() { return detail::op_stream(); }

bool capturing() { return detail::capturing(); }

void* launch_host_func() { return reinterpret_cast<void*>(&cudaLaunchHostFunc); }

size_t free_device_memory() {
  require();
  size_t freeBytes = 0, totalBytes = 0;
  SIMCSEPP_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));
  return freeBytes;
}

size_t total_device_memory() {
  require();
  size_t freeBytes = 0, totalBytes = 0;
  SIMCSEPP_CUDA_CHECK(cudaMemGetInfo(&freeBytes, &totalBytes));
  return totalBytes;
}

namespace detail {

int64_t l2_cache_bytes() {
  // Read once, as status() probes once: the device does not change within a process.
  static const int64_t bytes = [] {
    if (!status().available) return int64_t{0};
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
      (void)cudaGetLastError();
      return int64_t{0};
    }
    return static_cast<int64_t>(prop.l2CacheSize);
  }();
  return bytes;
}

}  // namespace detail

namespace {

// The profile markers' events, created on first use and reused after timer_reset() (never destroyed).
struct Timers {
  std::mutex mu;
  std::vector<cudaEvent_t> events;
  size_t next = 0;
};
Timers& timers() {
  static Timers* t = new Timers();
  return *t;
}

}  // namespace

int64_t timer_mark() {
  require();
  if (detail::capturing()) throw CudaError("a profile marker cannot be recorded while a step graph is captured");
  Timers& t = timers();
  std::lock_guard<std::mutex> lock(t.mu);
  if (t.next == t.events.size()) {
    cudaEvent_t e = nullptr;
    SIMCSEPP_CUDA_CHECK(cudaEventCreate(&e));
    t.events.push_back(e);
  }
  SIMCSEPP_CUDA_CHECK(cudaEventRecord(t.events[t.next], detail::op_stream()));
  return static_cast<int64_t>(t.next++);
}

double timer_elapsed(int64_t a, int64_t b) {
  require();
  Timers& t = timers();
  std::lock_guard<std::mutex> lock(t.mu);
  const auto n = static_cast<int64_t>(t.next);
  if (a < 0 || a >= n || b < 0 || b >= n)
    throw CudaError("profile marker " + std::to_string(a < 0 || a >= n ? a : b) + " was not recorded (" +
                    std::to_string(n) + " since the last reset)");
  SIMCSEPP_CUDA_CHECK(cudaEventSynchronize(t.events[static_cast<size_t>(b)]));
  float ms = 0.0f;
  SIMCSEPP_CUDA_CHECK(cudaEventElapsedTime(&ms, t.events[static_cast<size_t>(a)], t.events[static_cast<size_t>(b)]));
  return ms;
}

int64_t timer_marks() {
  Timers& t = timers();
  std::lock_guard<std::mutex> lock(t.mu);
  return static_cast<int64_t>(t.next);
}

void timer_reset() {
  Timers& t = timers();
  std::lock_guard<std::mutex> lock(t.mu);
  t.next = 0;
}

namespace detail {

void* Workspace::reserve(size_t bytes) {
  if (bytes <= cap_) return ptr_;
  if (capturing()) throw CudaError("the workspace would grow while a step graph is captured (run the step once first)");
  if (ptr_ != nullptr && graph_sessions_live()) {
    ptr_ = nullptr;  // captured graphs may address it: kept, not freed
    cap_ = 0;
  } else if (ptr_ != nullptr) {
    SIMCSEPP_CUDA_CHECK(cudaFree(ptr_));  // synchronises: no kernel still uses the old buffer
    ptr_ = nullptr;
    cap_ = 0;
  }
  const size_t rounded = (bytes + (1u << 20) - 1) / (1u << 20) * (1u << 20);  // whole MiB: fewer regrowths
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, rounded);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw CudaError("cudaMalloc of a " + std::to_string(rounded) + "-byte workspace failed: " + cudaGetErrorString(e));
  }
  ptr_ = p;
  cap_ = rounded;
  return ptr_;
}

Workspace& workspace() {
  static Workspace* w = new Workspace();  // intentionally leaked, see the header
  return *w;
}

}  // namespace detail
}  // namespace simcsepp::cuda

namespace simcsepp::cuda::detail {

namespace {
struct HostArgBuffers {
  std::mutex mu;
  void* ptr[kHostArgSlots] = {};
  size_t cap[kHostArgSlots] = {};
};
HostArgBuffers& host_arg_buffers() {
  static HostArgBuffers* b = new HostArgBuffers();  // never freed, like the workspace
  return *b;
}
}  // namespace

void end_op(cudaStream_t stream) {
  static const bool sync = [] {
    const char* v = std::getenv("SIMCSEPP_CUDA_SYNC");
    return v != nullptr && std::string(v) == "1";
  }();
  if (sync && !capturing()) SIMCSEPP_CUDA_CHECK(cudaStreamSynchronize(stream));
}

HostArgs::HostArgs(cudaStream_t stream) : lock_(host_arg_buffers().mu), stream_(stream) {}

const void* HostArgs::copy(const void* host, size_t bytes, HostArgSlot slot) {
  if (host == nullptr) return nullptr;
  if (capturing()) return bound_device_copy(host, bytes, "an op's index array");
  HostArgBuffers& b = host_arg_buffers();
  if (bytes > b.cap[slot]) {
    if (b.ptr[slot] != nullptr) SIMCSEPP_CUDA_CHECK(cudaFree(b.ptr[slot]));
    b.ptr[slot] = nullptr;
    b.cap[slot] = 0;
    const size_t rounded = (bytes + 4095) / 4096 * 4096;
    SIMCSEPP_CUDA_CHECK(cudaMalloc(&b.ptr[slot], rounded));
    b.cap[slot] = rounded;
  }
  if (bytes > 0) SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(b.ptr[slot], host, bytes, cudaMemcpyHostToDevice, stream_));
  return b.ptr[slot];
}

}  // namespace simcsepp::cuda::detail
