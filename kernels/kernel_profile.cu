// The kernel profile of kernel_profile.cuh: a pool of CUDA events (created on first use, reused by every later
// profile, never destroyed: a record may outlive the profile that made it only until the next start) and the
// records of the open profile. Its own pool, not runtime.cu's timer_mark(): those markers' indices are the op
// profile's, which each record counts to say which op launched it. Launches come from the op thread; the mutex guards
// against a profile started or stopped from another one.
#include <mutex>
#include <string>
#include <vector>

#include "cuda_check.cuh"
#include "graph_capture.cuh"
#include "kernel_profile.cuh"

namespace simcsepp::cuda {

namespace kernel_profile::detail {
std::atomic<bool> g_open{false};
}

namespace {

struct Record {
  std::string name;
  double flops;
  int64_t mark;
  size_t before, after;  // events; after == kNoEvent: the launch threw
};
constexpr size_t kNoEvent = SIZE_MAX;

struct Profile {
  std::mutex mu;
  std::vector<cudaEvent_t> events;
  size_t nextEvent = 0;
  std::vector<Record> records;
  double nextFlops = 0;  // next_launch_flops(), for the next before()
};
Profile& profile() {
  static Profile* p = new Profile();
  return *p;
}

// The pool's next event, recorded on `stream` (p.mu held).
size_t record_event(Profile& p, cudaStream_t stream) {
  if (p.nextEvent == p.events.size()) {
    cudaEvent_t e = nullptr;
    SIMCSEPP_CUDA_CHECK(cudaEventCreate(&e));
    p.events.push_back(e);
  }
  SIMCSEPP_CUDA_CHECK(cudaEventRecord(p.events[p.nextEvent], stream));
  return p.nextEvent++;
}

}  // namespace

int64_t kernel_profile::before(const char* what, cudaStream_t stream, double flops) {
  if (!is_open() || cuda::detail::capturing()) return -1;
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);
  if (!is_open()) return -1;
  if (flops == 0) flops = p.nextFlops;
  p.nextFlops = 0;
  p.records.push_back(Record{what, flops, timer_marks(), record_event(p, stream), kNoEvent});
  return static_cast<int64_t>(p.records.size() - 1);
}

void kernel_profile::next_launch_flops(double flops) {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);
  p.nextFlops = flops;
}

void kernel_profile::after(int64_t slot, cudaStream_t stream) {
  if (slot < 0) return;
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);
  if (!is_open() || static_cast<size_t>(slot) >= p.records.size()) return;  // stopped (and maybe restarted) since
  p.records[static_cast<size_t>(slot)].after = record_event(p, stream);
}

void kernel_profile_start() {
  require();
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);
  p.records.clear();
  p.nextEvent = 0;
  p.nextFlops = 0;
#if defined(SIMCSEPP_CUDA_EMULATOR)
  cuemu::set_traffic_counting(true);  // slower: every access of device memory noted (emulator/traffic.cpp)
#endif
  kernel_profile::detail::g_open.store(true, std::memory_order_relaxed);
}

std::vector<KernelTime> kernel_profile_stop() {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);  // held throughout: a start from another thread would reuse the events
  if (!kernel_profile::detail::g_open.exchange(false, std::memory_order_relaxed)) return {};
  std::vector<Record> records;
  records.swap(p.records);
  std::vector<KernelTime> out;
#if defined(SIMCSEPP_CUDA_EMULATOR)
  struct CountingOff {  // once the work queued so far has run, however this returns
    ~CountingOff() { cuemu::set_traffic_counting(false); }
  } countingOff;
#endif
  if (records.empty()) return out;
  SIMCSEPP_CUDA_CHECK(cudaDeviceSynchronize());
  out.reserve(records.size());
  for (const Record& r : records) {
    if (r.after == kNoEvent) continue;
    float ms = 0.0f;
    SIMCSEPP_CUDA_CHECK(cudaEventElapsedTime(&ms, p.events[r.before], p.events[r.after]));
    out.push_back(KernelTime{r.name, ms, r.flops, r.mark});
#if defined(SIMCSEPP_CUDA_EMULATOR)
    // The emulator counts the device-memory traffic between the two events (emulator/traffic.cpp).
    uint64_t read0 = 0, written0 = 0, read1 = 0, written1 = 0;
    SIMCSEPP_CUDA_CHECK(cuemu::event_traffic(p.events[r.before], &read0, &written0));
    SIMCSEPP_CUDA_CHECK(cuemu::event_traffic(p.events[r.after], &read1, &written1));
    out.back().readBytes = static_cast<double>(read1 - read0);
    out.back().writtenBytes = static_cast<double>(written1 - written0);
#endif
  }
  return out;
}

}  // namespace simcsepp::cuda
