// Emulated device memory: every cudaMalloc is a separate host allocation with 256-byte redzones on both
// sides, registered by address, so the access hooks (checks.cpp) can tell an in-bounds access from one
// that runs off an allocation, and a freed buffer from a live one. Fresh allocations are filled with
// 0xFF bytes (NaN as float): a kernel that reads memory nobody wrote produces NaN, not a plausible zero.
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <vector>

#include "internal.h"

namespace cuemu::detail {

namespace {

constexpr size_t kRedzone = 256;
constexpr size_t kAlign = 256;
constexpr size_t kFreedHistory = 256;

struct Allocation {
  size_t size;
  char* raw;
};

struct Heap {
  std::map<uintptr_t, Allocation> live;  // by base address
  std::deque<Range> freed;               // the most recent frees, newest first
  size_t liveBytes = 0;
};

Heap& heap() {
  static Heap* h = new Heap();  // never destroyed: kernels may still be freed during static teardown
  return *h;
}

size_t physical_memory() {
  return static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

std::string hex(uintptr_t a) {
  std::ostringstream s;
  s << "0x" << std::hex << a;
  return s.str();
}

// What [p, p + n) is, for a copy or memset argument: "" when it lies inside one live allocation.
std::string device_range_problem(const void* p, size_t n) {
  Range r;
  if (find_allocation(reinterpret_cast<uintptr_t>(p), n, &r)) return "";
  return describe_bad_address(reinterpret_cast<uintptr_t>(p), n);
}

bool is_device(const void* p) {
  Range r;
  return find_allocation(reinterpret_cast<uintptr_t>(p), 1, &r);
}

}  // namespace

std::recursive_mutex& device_mutex() {
  static std::recursive_mutex* m = new std::recursive_mutex();
  return *m;
}

bool find_allocation(uintptr_t a, size_t n, Range* out) {
  const Heap& h = heap();
  auto it = h.live.upper_bound(a);
  if (it == h.live.begin()) return false;
  --it;
  const Range r{it->first, it->second.size};
  if (!r.contains(a, n)) return false;
  *out = r;
  return true;
}

std::string describe_bad_address(uintptr_t a, size_t n) {
  const Heap& h = heap();
  const std::string what = std::to_string(n) + " byte" + (n == 1 ? "" : "s") + " at " + hex(a);
  for (const Range& f : h.freed)
    if (f.contains(a, 1))
      return what + ": inside a " + std::to_string(f.size) + "-byte device allocation that was freed";
  auto above = h.live.upper_bound(a);
  if (above != h.live.begin()) {
    auto below = std::prev(above);
    const uintptr_t end = below->first + below->second.size;
    if (a < end && a + n > end)
      return what + ": runs " + std::to_string(a + n - end) + " bytes past the end of a " +
             std::to_string(below->second.size) + "-byte device allocation at " + hex(below->first);
    if (a >= end && a - end < 4096)
      return what + ": " + (a == end ? std::string("just") : std::to_string(a - end) + " bytes") +
             " past the end of a " + std::to_string(below->second.size) + "-byte device allocation at " +
             hex(below->first);
  }
  if (above != h.live.end() && above->first - a <= 4096)
    return what + ": " + std::to_string(above->first - a) + " bytes before the start of a " +
           std::to_string(above->second.size) + "-byte device allocation at " + hex(above->first);
  return what + ": not device memory (a host pointer, or a stale or wild device pointer)";
}

}  // namespace cuemu::detail

using namespace cuemu::detail;

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  if (ptr == nullptr) return set_error(cudaErrorInvalidValue);
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (const cudaError_t e = refuse_while_capturing("cudaMalloc"); e != cudaSuccess) return e;
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  Heap& h = heap();
  if (bytes > physical_memory() || h.liveBytes + bytes > physical_memory())
    return set_error(cudaErrorMemoryAllocation, "cudaMalloc of " + std::to_string(bytes) +
                                                    " bytes exceeds the emulated device (this machine's memory)");
  const size_t total = (bytes + 2 * kRedzone + kAlign - 1) / kAlign * kAlign;
  char* raw = static_cast<char*>(std::aligned_alloc(kAlign, total));
  if (raw == nullptr) return set_error(cudaErrorMemoryAllocation, "host allocation failed");
  std::memset(raw, 0xFF, total);
  char* base = raw + kRedzone;
  h.live[reinterpret_cast<uintptr_t>(base)] = Allocation{bytes, raw};
  h.liveBytes += bytes;
  *ptr = base;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (const cudaError_t e = refuse_while_capturing("cudaFree"); e != cudaSuccess) return e;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (const cudaError_t e = run_deferred(); e != cudaSuccess) return e;  // it synchronises, as on a GPU
  Heap& h = heap();
  auto it = h.live.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == h.live.end()) {
    return set_error(cudaErrorInvalidValue,
                     "cudaFree of " + describe_bad_address(reinterpret_cast<uintptr_t>(ptr), 1) +
                         " (not the start of a live allocation: freed twice, or never allocated)");
  }
  h.liveBytes -= it->second.size;
  h.freed.push_front(Range{it->first, it->second.size});
  if (h.freed.size() > kFreedHistory) h.freed.pop_back();
  std::free(it->second.raw);
  h.live.erase(it);
  return cudaSuccess;
}

namespace {

std::map<uintptr_t, size_t>& pinned() {  // base -> bytes
  static auto* s = new std::map<uintptr_t, size_t>();
  return *s;
}

}  // namespace

namespace cuemu::detail {

bool is_pinned(const void* p, size_t n) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = pinned().upper_bound(a);
  if (it == pinned().begin()) return false;
  --it;
  return Range{it->first, it->second}.contains(a, n);
}

}  // namespace cuemu::detail

cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  if (ptr == nullptr) return set_error(cudaErrorInvalidValue);
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (const cudaError_t e = refuse_while_capturing("cudaMallocHost"); e != cudaSuccess) return e;
  *ptr = nullptr;
  if (bytes == 0) return cudaSuccess;
  void* p = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  if (p == nullptr)
    return set_error(cudaErrorMemoryAllocation, "cudaMallocHost of " + std::to_string(bytes) + " bytes failed");
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  pinned()[reinterpret_cast<uintptr_t>(p)] = bytes;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (const cudaError_t e = refuse_while_capturing("cudaFreeHost"); e != cudaSuccess) return e;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (const cudaError_t e = run_deferred(); e != cudaSuccess) return e;  // it synchronises, as on a GPU
  if (pinned().erase(reinterpret_cast<uintptr_t>(ptr)) == 0)
    return set_error(cudaErrorInvalidValue, "cudaFreeHost of a pointer cudaMallocHost did not return (or freed twice)");
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes) {
  if (freeBytes == nullptr || totalBytes == nullptr) return set_error(cudaErrorInvalidValue);
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  const size_t total = physical_memory();
  const size_t available = static_cast<size_t>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  *totalBytes = total;
  *freeBytes = std::min(available, total - std::min(total, heap().liveBytes));
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (bytes == 0) return cudaSuccess;
  if (const cudaError_t e = refuse_while_capturing("cudaMemcpy"); e != cudaSuccess) return e;
  if (const cudaError_t e = run_deferred(); e != cudaSuccess) return e;  // on the legacy stream: after all work
  return copy(dst, src, bytes, kind);
}

namespace cuemu::detail {

cudaError_t copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (kind == cudaMemcpyDefault) {
    const bool d = is_device(dst), s = is_device(src);
    kind = d ? (s ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
             : (s ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  }
  if (kind < cudaMemcpyHostToHost || kind > cudaMemcpyDefault) return set_error(cudaErrorInvalidMemcpyDirection);
  const bool dstDevice = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool srcDevice = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (dstDevice) {
    const std::string p = device_range_problem(dst, bytes);
    if (!p.empty()) return set_error(cudaErrorInvalidValue, "cudaMemcpy destination: " + p);
  }
  if (srcDevice) {
    const std::string p = device_range_problem(src, bytes);
    if (!p.empty()) return set_error(cudaErrorInvalidValue, "cudaMemcpy source: " + p);
  }
  if (dst == nullptr || src == nullptr) return set_error(cudaErrorInvalidValue, "cudaMemcpy of a null pointer");
  std::memmove(dst, src, bytes);
  add_traffic(srcDevice ? bytes : 0, dstDevice ? bytes : 0);  // the device memory's side of the copy
  return cudaSuccess;
}

}  // namespace cuemu::detail

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync on an unknown stream");
  if (bytes == 0) return cudaSuccess;
  // A captured copy touching host memory would read or write that host address at every replay.
  const bool host = kind == cudaMemcpyDefault ? !(is_device(dst) && is_device(src)) : kind != cudaMemcpyDeviceToDevice;
  cudaError_t e = cudaSuccess;
  StreamOp op = [=](cudaStream_t) { return copy(dst, src, bytes, kind); };
  if (host && deferring() && !capturing(stream)) {
    // Pageable host memory: a copy to it returns once done (so, after the work queued before it); a copy
    // from it returns once the source was read (staged by the driver), and the device sees it in stream
    // order. Pinned memory is read and written in stream order, when the queue gets there.
    const bool srcHost =
        kind == cudaMemcpyDefault ? !is_device(src) : kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost;
    const bool dstHost =
        kind == cudaMemcpyDefault ? !is_device(dst) : kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost;
    if (dstHost && !is_pinned(dst, bytes)) {
      if (const cudaError_t r = run_deferred(); r != cudaSuccess) return r;
      return copy(dst, src, bytes, kind);
    }
    if (srcHost && src != nullptr && !is_pinned(src, bytes)) {
      auto staged =
          std::make_shared<std::vector<char>>(static_cast<const char*>(src), static_cast<const char*>(src) + bytes);
      op = [=](cudaStream_t) { return copy(dst, staged->data(), bytes, kind); };
    }
  }
  switch (capture_stream_op(stream, "cudaMemcpyAsync", host, op, &e)) {
    case CaptureAction::Run: return op(stream);
    case CaptureAction::Recorded: return cudaSuccess;
    case CaptureAction::Failed: return e;
  }
  return e;
}

cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (bytes == 0) return cudaSuccess;
  if (const cudaError_t e = refuse_while_capturing("cudaMemset"); e != cudaSuccess) return e;
  if (const cudaError_t e = run_deferred(); e != cudaSuccess) return e;
  return fill(dst, value, bytes);
}

namespace cuemu::detail {

cudaError_t fill(void* dst, int value, size_t bytes) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  const std::string p = device_range_problem(dst, bytes);
  if (!p.empty()) return set_error(cudaErrorInvalidValue, "cudaMemset: " + p);
  std::memset(dst, value, bytes);
  add_traffic(0, bytes);
  return cudaSuccess;
}

}  // namespace cuemu::detail

// A host function in stream order: captured (a host node: it runs at every replay), queued with the
// stream's work, or run now. As on a GPU, it must not call the CUDA API.
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* userData) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (!valid_stream(stream))
    return set_error(cudaErrorInvalidResourceHandle, "cudaLaunchHostFunc on an unknown stream");
  if (fn == nullptr) return set_error(cudaErrorInvalidValue, "cudaLaunchHostFunc: a null function");
  cudaError_t e = cudaSuccess;
  const StreamOp op = [=](cudaStream_t) {
    fn(userData);
    return cudaSuccess;
  };
  switch (capture_stream_op(stream, "cudaLaunchHostFunc", false, op, &e)) {
    case CaptureAction::Run: return op(stream);
    case CaptureAction::Recorded: return cudaSuccess;
    case CaptureAction::Failed: return e;
  }
  return e;
}

cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemsetAsync on an unknown stream");
  cudaError_t e = cudaSuccess;
  const StreamOp op = [=](cudaStream_t) { return bytes == 0 ? cudaSuccess : fill(dst, value, bytes); };
  switch (capture_stream_op(stream, "cudaMemsetAsync", false, op, &e)) {
    case CaptureAction::Run: return op(stream);
    case CaptureAction::Recorded: return cudaSuccess;
    case CaptureAction::Failed: return e;
  }
  return e;
}
