// Device-memory traffic, for the kernel profile's bytes (kernels/kernel_profile.cu; cuemu::set_traffic_counting in
// cuda_runtime.h). While counting is on, a kernel launch adds the distinct 32-byte sectors of device memory that it
// read and those that it wrote (a sector read by many threads, or twice by one, counts once per launch: what a GPU
// must move between DRAM and its L2 at least, when the launch's footprint fits the L2), a device-to-device copy its
// bytes read and written, a fill its bytes written, and the host code of the stand-in cuBLASLt's products what they
// name (add_traffic). A sector both read and written counts in both totals. Atomics count as reads and writes.
// An event's record notes the totals reached by the work queued before it (runtime_api.cpp), so the difference
// between two events is what ran between them.
#include <cstdint>
#include <unordered_set>

#include "internal.h"

namespace cuemu::detail {

namespace {

constexpr unsigned kSectorShift = 5;  // 32-byte sectors: the unit of a GPU's DRAM and L2 transactions

struct Traffic {
  bool on = false;
  uint64_t read = 0, written = 0;               // totals since counting began (bytes)
  std::unordered_set<uintptr_t> launchRead;     // the running launch's sectors
  std::unordered_set<uintptr_t> launchWritten;  // (device_mutex held by every caller)
};
Traffic& traffic() {
  static Traffic* t = new Traffic();
  return *t;
}

}  // namespace

bool traffic_counting() { return traffic().on; }

void traffic_access(uintptr_t a, size_t n, bool write, bool atomic) {
  Traffic& t = traffic();
  for (uintptr_t s = a >> kSectorShift, last = (a + n - 1) >> kSectorShift; s <= last; ++s) {
    if (write || atomic) t.launchWritten.insert(s);
    if (!write || atomic) t.launchRead.insert(s);
  }
}

void traffic_launch_done() {
  Traffic& t = traffic();
  t.read += static_cast<uint64_t>(t.launchRead.size()) << kSectorShift;
  t.written += static_cast<uint64_t>(t.launchWritten.size()) << kSectorShift;
  t.launchRead.clear();
  t.launchWritten.clear();
}

void traffic_totals(uint64_t* read, uint64_t* written) {
  *read = traffic().read;
  *written = traffic().written;
}

}  // namespace cuemu::detail

namespace cuemu {

void set_traffic_counting(bool on) {
  std::lock_guard<std::recursive_mutex> lock(detail::device_mutex());
  detail::traffic().on = on;
}

void add_traffic(uint64_t readBytes, uint64_t writtenBytes) {
  std::lock_guard<std::recursive_mutex> lock(detail::device_mutex());
  detail::Traffic& t = detail::traffic();
  if (!t.on) return;
  t.read += readBytes;
  t.written += writtenBytes;
}

}  // namespace cuemu
