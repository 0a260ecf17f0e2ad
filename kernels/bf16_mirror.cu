// bf16 weight mirrors (bf16_mirror.cuh, cuda_api.h). A refresh is one bf16_copy.cuh conversion of the whole
// mirror on the op's stream; the registry of live mirrors is process-wide, behind one mutex (Node worker threads
// each have their own models and mirrors, and may run ops at once).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "bf16_copy.cuh"
#include "bf16_handoff.cuh"
#include "bf16_mirror.cuh"
#include "graph_capture.cuh"

namespace simcsepp::cuda {

struct Bf16Mirror {
  const float* base = nullptr;
  int64_t n = 0;
  __nv_bfloat16* data = nullptr;
  std::atomic<bool> stale{false};
  uint64_t serial = 0;
  std::thread::id thread;  // the thread that made it (its model's)
};

namespace {

std::mutex g_mu;
std::vector<Bf16Mirror*> g_live;  // under g_mu
uint64_t g_serial = 0;            // the last serial handed out (under g_mu)
std::atomic<int64_t> g_refreshes{0}, g_bytes{0};

// The live mirror covering p[0, n) (caller holds g_mu), or nullptr.
Bf16Mirror* covering(const float* p, int64_t n) {
  for (Bf16Mirror* m : g_live)
    if (p >= m->base && p + n <= m->base + m->n) return m;
  return nullptr;
}

Bf16Mirror* by_serial(uint64_t serial) {
  for (Bf16Mirror* m : g_live)
    if (m->serial == serial) return m;
  return nullptr;
}

// Converts all of m (fresh from here on, in stream order).
void convert_all(Bf16Mirror& m, cudaStream_t stream) {
  const bf16copy::Segment all{m.base, m.data, m.n};
  bf16copy::convert(&all, 1, stream);
  m.stale.store(false);
}

// convert_all of a stale mirror, counted (bf16_counters).
void refresh(Bf16Mirror& m, cudaStream_t stream) {
  convert_all(m, stream);
  ++g_refreshes;
}

void note(const Bf16Mirror& m) {
  if (detail::capturing()) detail::capture_note_mirror(m.serial);
}

}  // namespace

Bf16Mirror* bf16_mirror_create(const float* base, int64_t n) {
  require();
  if (capturing()) throw CudaError("a bf16 weight mirror cannot be made while a step graph is captured");
  auto* m = new Bf16Mirror;
  m->base = base;
  m->n = n;
  m->thread = std::this_thread::get_id();
  try {
    m->data = static_cast<__nv_bfloat16*>(malloc_device(static_cast<size_t>(n) * sizeof(__nv_bfloat16)));
    std::lock_guard<std::mutex> lock(g_mu);
    convert_all(*m, detail::op_stream());
    detail::end_op(detail::op_stream());
    m->serial = ++g_serial;
    g_live.push_back(m);
  } catch (...) {
    free_device(m->data);
    delete m;
    throw;
  }
  g_bytes += n * static_cast<int64_t>(sizeof(__nv_bfloat16));
  return m;
}

void bf16_mirror_destroy(Bf16Mirror* m) noexcept {
  if (m == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_live.erase(std::remove(g_live.begin(), g_live.end(), m), g_live.end());
  }
  g_bytes -= m->n * static_cast<int64_t>(sizeof(__nv_bfloat16));
  free_device(m->data);
  delete m;
}

void bf16_mirror_mark_stale(Bf16Mirror* m) noexcept {
  m->stale.store(true);
  note(*m);
}

size_t bf16_mirror_bytes(int64_t n) { return static_cast<size_t>(n) * sizeof(__nv_bfloat16); }

Bf16Counters bf16_counters() {
  return {bf16copy::converted_elements(), g_refreshes.load(), g_bytes.load(), bf16handoff::handed_off_elements()};
}

namespace bf16mirror {

bool enabled() {
  const char* v = std::getenv("SIMCSEPP_BF16_WEIGHT_MIRROR");
  return v == nullptr || std::strcmp(v, "0") != 0;
}

const __nv_bfloat16* weights(const float* w, int64_t n, cudaStream_t stream) {
  if (!enabled()) return nullptr;
  std::lock_guard<std::mutex> lock(g_mu);
  Bf16Mirror* m = covering(w, n);
  if (m == nullptr) return nullptr;
  note(*m);
  if (m->stale.load()) refresh(*m, stream);
  return m->data + (w - m->base);
}

__nv_bfloat16* updated_by_adamw(const float* p, int64_t n) {
  std::lock_guard<std::mutex> lock(g_mu);
  Bf16Mirror* m = covering(p, n);
  if (m == nullptr) return nullptr;
  note(*m);
  return m->data + (p - m->base);
}

void before_capture(cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(g_mu);
  const std::thread::id self = std::this_thread::get_id();
  for (Bf16Mirror* m : g_live)
    if (m->thread == self && m->stale.load()) refresh(*m, stream);
}

GraphRecord record_capture(const std::vector<uint64_t>& touched) {
  std::lock_guard<std::mutex> lock(g_mu);
  GraphRecord r;
  for (const uint64_t serial : touched)
    if (const Bf16Mirror* m = by_serial(serial)) r.touched.emplace_back(serial, m->stale.load());
  r.lastSerial = g_serial;
  return r;
}

void before_replay(const GraphRecord& r, cudaStream_t stream) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto& [serial, staleAtEnd] : r.touched)
    if (Bf16Mirror* m = by_serial(serial); m != nullptr && m->stale.load()) refresh(*m, stream);
}

void after_replay(const GraphRecord& r) {
  std::lock_guard<std::mutex> lock(g_mu);
  for (const auto& [serial, staleAtEnd] : r.touched)
    if (Bf16Mirror* m = by_serial(serial)) m->stale.store(staleAtEnd);
  const std::thread::id self = std::this_thread::get_id();
  for (Bf16Mirror* m : g_live)
    if (m->serial > r.lastSerial && m->thread == self) m->stale.store(true);
}

}  // namespace bf16mirror

}  // namespace simcsepp::cuda
