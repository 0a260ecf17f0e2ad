// bf16 handoffs (bf16_handoff.cuh): this thread's request, handoff and buffer.
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "bf16_copy.cuh"
#include "bf16_handoff.cuh"
#include "graph_capture.cuh"

namespace simcsepp::cuda {

namespace {

std::atomic<int64_t> g_handedOff{0};

struct Handoff {
  const float* requested = nullptr;  // the output range a binding asked a copy of
  int64_t requestedN = 0;
  const float* src = nullptr;  // the range the buffer holds the copy of, while valid
  int64_t n = 0;
  bool valid = false;
  __nv_bfloat16* buffer = nullptr;
  int64_t capacity = 0;  // elements
  ~Handoff() {
    // A worker thread's buffer goes with it. The main thread's is left to the process's end: freeing it then
    // can race the driver's own teardown (as the workspace, cuda_check.cuh).
#if defined(__linux__)
    if (buffer != nullptr && getpid() != static_cast<pid_t>(syscall(SYS_gettid))) free_device(buffer);
#endif
  }
};

thread_local Handoff t_handoff;

bool overlaps(const float* a, int64_t an, const float* b, int64_t bn) { return a < b + bn && b < a + an; }

// Grows the buffer to n elements; false when it cannot grow now (inside a capture).
bool reserve(Handoff& h, int64_t n) {
  if (n <= h.capacity) return true;
  if (detail::capturing()) return false;
  if (h.buffer != nullptr && !detail::graph_sessions_live()) free_device(h.buffer);  // else graphs may address it
  h.buffer = nullptr;
  h.capacity = 0;
  const int64_t rounded = (n + (int64_t{1} << 19) - 1) / (int64_t{1} << 19) * (int64_t{1} << 19);  // whole MiB
  h.buffer = static_cast<__nv_bfloat16*>(malloc_device(static_cast<size_t>(rounded) * sizeof(__nv_bfloat16)));
  h.capacity = rounded;
  return true;
}

}  // namespace

void bf16_handoff_request(const float* out, int64_t n) {
  const char* v = std::getenv("SIMCSEPP_BF16_HANDOFF");
  if (v != nullptr && std::strcmp(v, "0") == 0) return;
  if (bf16copy::operands() != bf16copy::Operands::kCopies) return;  // the products read fp32 operands
  t_handoff.requested = out;
  t_handoff.requestedN = n;
}

void bf16_handoff_written(const float* p, int64_t n) noexcept {
  Handoff& h = t_handoff;
  if (h.valid && overlaps(p, n, h.src, h.n)) h.valid = false;
}

namespace bf16handoff {

int64_t handed_off_elements() { return g_handedOff.load(); }

__nv_bfloat16* claim(const float* out, int64_t n) {
  Handoff& h = t_handoff;
  const bool asked = h.requested == out && h.requestedN == n && n > 0;
  h.requested = nullptr;
  h.requestedN = 0;
  h.valid = false;
  if (!asked || !reserve(h, n)) return nullptr;
  h.src = out;
  h.n = n;
  h.valid = true;
  g_handedOff += n;
  return h.buffer;
}

const __nv_bfloat16* take(const float* inp, int64_t n) {
  Handoff& h = t_handoff;
  const bool mine = h.valid && h.src == inp && h.n == n;
  h.valid = false;
  return mine ? h.buffer : nullptr;
}

void decline() { claim(nullptr, 0); }

void forget() { t_handoff.valid = false; }

}  // namespace bf16handoff

}  // namespace simcsepp::cuda
