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
  bool requestedUnused = false;  // and that only the product reads its fp32 values
  // Ranges whose producer wrote only the bf16 copy (claim's fp32Unused), until the product takes it or a binding
  // writes there (or frees it). A fixed array, trivially destructible: Storage::release may still call in while
  // the thread's objects are torn down. Past kOwed ranges the oldest is forgotten (a model owes one at a time).
  static constexpr int kOwed = 8;
  struct Range {
    const float* p;
    int64_t n;
  } owed[kOwed] = {};
  int owedCount = 0;
  void owe(const float* p, int64_t n) {
    if (owedCount == kOwed) forget_owed(0);
    owed[owedCount++] = Range{p, n};
  }
  void forget_owed(int i) {
    for (int j = i + 1; j < owedCount; ++j) owed[j - 1] = owed[j];
    --owedCount;
  }
  const float* src = nullptr;  // the range the buffer holds the copy of, while valid
  int64_t n = 0;
  bool valid = false;
  // Two buffers of one capacity: a claim writes the one the last take did not return, so that an op may claim a
  // handoff for its output while its own products still read the handoff it took (gemm.cu's fused GELU backward).
  __nv_bfloat16* buffers[2] = {nullptr, nullptr};
  __nv_bfloat16* external = nullptr;                            // claim's `into`: the copy's memory instead of these
  int64_t capacity = 0;                                         // elements, of each
  int taken = 1;                                                // the buffer the last take returned
  __nv_bfloat16* buffer() const { return buffers[1 - taken]; }  // the one claims write
  ~Handoff() {
    // A worker thread's buffers go with it. The main thread's are left to the process's end: freeing them then
    // can race the driver's own teardown (as the workspace, cuda_check.cuh).
#if defined(__linux__)
    if (getpid() != static_cast<pid_t>(syscall(SYS_gettid)))
      for (__nv_bfloat16* b : buffers)
        if (b != nullptr) free_device(b);
#endif
  }
};

thread_local Handoff t_handoff;

bool overlaps(const float* a, int64_t an, const float* b, int64_t bn) { return a < b + bn && b < a + an; }

// Grows both buffers to n elements (whichever a claim gets, it fits); false when they cannot grow now (inside a
// capture).
bool reserve(Handoff& h, int64_t n) {
  if (n <= h.capacity) return true;
  if (detail::capturing()) return false;
  for (__nv_bfloat16*& b : h.buffers) {
    if (b != nullptr && !detail::graph_sessions_live()) free_device(b);  // else graphs may address it
    b = nullptr;
  }
  h.capacity = 0;
  const int64_t rounded = (n + (int64_t{1} << 19) - 1) / (int64_t{1} << 19) * (int64_t{1} << 19);  // whole MiB
  for (__nv_bfloat16*& b : h.buffers)
    b = static_cast<__nv_bfloat16*>(malloc_device(static_cast<size_t>(rounded) * sizeof(__nv_bfloat16)));
  h.capacity = rounded;
  return true;
}

}  // namespace

void bf16_handoff_request(const float* out, int64_t n, bool fp32Unused) {
  const char* v = std::getenv("SIMCSEPP_BF16_HANDOFF");
  if (v != nullptr && std::strcmp(v, "0") == 0) return;
  if (bf16copy::operands() != bf16copy::Operands::kCopies) return;  // the products read fp32 operands
  t_handoff.requested = out;
  t_handoff.requestedN = n;
  t_handoff.requestedUnused = fp32Unused && linear_takes_bf16_copies();  // else no product would take the copy
}

void bf16_handoff_written(const float* p, int64_t n) noexcept {
  Handoff& h = t_handoff;
  if (h.valid && overlaps(p, n, h.src, h.n)) h.valid = false;
  for (int i = h.owedCount - 1; i >= 0; --i)
    if (overlaps(p, n, h.owed[i].p, h.owed[i].n)) h.forget_owed(i);
}

namespace bf16handoff {

int64_t handed_off_elements() { return g_handedOff.load(); }

__nv_bfloat16* claim(const float* out, int64_t n, bool* fp32Unused, __nv_bfloat16* into) {
  Handoff& h = t_handoff;
  const bool asked = h.requested == out && h.requestedN == n && n > 0, unused = h.requestedUnused;
  h.requested = nullptr;
  h.requestedN = 0;
  h.requestedUnused = false;
  h.valid = false;
  h.external = nullptr;
  if (fp32Unused != nullptr) *fp32Unused = false;
  if (!asked || (into == nullptr && !reserve(h, n))) return nullptr;
  h.external = into;
  h.src = out;
  h.n = n;
  h.valid = true;
  if (unused && fp32Unused != nullptr) {
    *fp32Unused = true;
    h.owe(out, n);
  }
  g_handedOff += n;
  return into != nullptr ? into : h.buffer();
}

const __nv_bfloat16* take(const float* inp, int64_t n) {
  Handoff& h = t_handoff;
  const bool mine = h.valid && h.src == inp && h.n == n;
  h.valid = false;
  if (!mine) return nullptr;
  for (int i = h.owedCount - 1; i >= 0; --i)
    if (h.owed[i].p == inp && h.owed[i].n == n) h.forget_owed(i);
  if (h.external != nullptr) {  // the producer's kept copy: the next claim may write either buffer
    const __nv_bfloat16* copy = h.external;
    h.external = nullptr;
    return copy;
  }
  h.taken = 1 - h.taken;  // the buffer the claim wrote; the next claim writes the other
  return h.buffers[h.taken];
}

void require_written(const float* inp, int64_t n) {
  const Handoff& h = t_handoff;
  for (int i = 0; i < h.owedCount; ++i)
    if (overlaps(inp, n, h.owed[i].p, h.owed[i].n))
      throw CudaError(
          "a product's input was written only as a bf16 copy for the op after its producer (bf16Next 'only'), and "
          "that copy was dropped before the product: its fp32 values were never written");
}

void decline() { claim(nullptr, 0); }

void forget() { t_handoff.valid = false; }

}  // namespace bf16handoff

}  // namespace simcsepp::cuda
