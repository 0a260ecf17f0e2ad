// Kernel launches. A launch runs its blocks one after another on the launching OS thread; the threads of
// a block are fibers (ucontext), each with its own stack, run round-robin. A thread runs until it reaches a
// collective (__syncthreads, a warp intrinsic) or returns; then the next thread runs. When no thread can
// run, the scheduler resolves the collectives that are complete:
//   - a block barrier completes when every thread that has not returned waits at it, all at the same
//     __syncthreads (one source line); threads waiting at different ones are a divergent-barrier fault;
//   - a warp collective completes when every lane of its mask has reached it, all with the same mask and
//     operation at the same line; a lane of the mask that returned or does not exist is a fault;
//   - if nothing completes and some threads still wait, the block is deadlocked: the fault names two
//     threads and where each waits.
// Every block barrier starts a new shared-memory phase (epoch) for the race checks in checks.cpp.
#include <sys/mman.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "internal.h"

namespace cuemu {
ThreadCoords* current = nullptr;
}

namespace cuemu::detail {

Launch* g_launch = nullptr;
std::atomic<bool> g_running{false};
pthread_t g_runner{};

namespace {

constexpr size_t kStackSize = 256 * 1024;
uint32_t g_epoch = 0;  // global, so a new block or launch never matches an old phase

std::vector<Fiber>& fiber_pool() {
  static std::vector<Fiber>* pool = new std::vector<Fiber>();
  return *pool;
}

std::string coords(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

std::string site(const Fiber& f) { return short_path(f.file ? f.file : "?") + ":" + std::to_string(f.line); }

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::ShflIdx: return "__shfl_sync";
    case WarpOp::ShflUp: return "__shfl_up_sync";
    case WarpOp::ShflDown: return "__shfl_down_sync";
    case WarpOp::ShflXor: return "__shfl_xor_sync";
    case WarpOp::Any: return "__any_sync";
    case WarpOp::All: return "__all_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Sync: return "__syncwarp";
    case WarpOp::Match: return "__match_any_sync";
  }
  return "warp collective";
}

std::string waiting_at(const Fiber& f) {
  if (f.wait == Wait::Block) return "__syncthreads() at " + site(f);
  if (f.wait == Wait::Warp) return std::string(op_name(f.op)) + " at " + site(f);
  return "running";
}

void fiber_main() {
  Launch& L = *g_launch;
  L.body(L.state);
  L.cur->wait = Wait::Done;
  context_switch(L.cur->ctx, L.sched);  // never resumed
  __builtin_trap();
}

// Switches from the running fiber back to the scheduler; returns when the fiber is resumed.
void yield_to_scheduler() {
  Launch& L = *g_launch;
  context_switch(L.cur->ctx, L.sched);
}

void prepare_fibers(Launch& L, int threads) {
  std::vector<Fiber>& pool = fiber_pool();
  if (static_cast<int>(pool.size()) < threads) pool.resize(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    Fiber& f = pool[static_cast<size_t>(t)];
    if (f.stack == nullptr) {
      // A guard page below each stack: an overflow faults instead of corrupting the neighbour.
      void* m = mmap(nullptr, kStackSize + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m == MAP_FAILED) throw std::bad_alloc();
      mprotect(m, 4096, PROT_NONE);
      f.stack = static_cast<char*>(m) + 4096;
      f.stackSize = kStackSize;
    }
  }
  L.fibers = &pool;
  L.threads = threads;
}

// The order a launch runs its blocks in. A GPU runs them in no fixed order, many at once; here they run one
// after another, by default in index order. CUEMU_BLOCK_ORDER=reverse, or shuffle:<seed> (a different
// permutation per launch, the same for a seed), runs them otherwise: a kernel whose results depend on the
// order of its blocks (float atomics, one block reading what another writes) then gives other bits, which
// tests that run the same work under several orders see (test/block-order.test.ts).
std::vector<uint3> block_order(dim3 grid) {
  std::vector<uint3> order;
  order.reserve(static_cast<size_t>(grid.x) * grid.y * grid.z);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) order.push_back(uint3{x, y, z});
  const char* how = std::getenv("CUEMU_BLOCK_ORDER");
  if (how == nullptr || *how == '\0' || std::strcmp(how, "index") == 0) return order;
  if (std::strcmp(how, "reverse") == 0) {
    std::reverse(order.begin(), order.end());
    return order;
  }
  if (std::strncmp(how, "shuffle:", 8) == 0) {
    static uint64_t launches = 0;
    uint64_t state = std::strtoull(how + 8, nullptr, 10) * 0x9E3779B97F4A7C15ULL + ++launches;
    const auto next = [&state] {  // splitmix64
      uint64_t r = (state += 0x9E3779B97F4A7C15ULL);
      r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ULL;
      r = (r ^ (r >> 27)) * 0x94D049BB133111EBULL;
      return r ^ (r >> 31);
    };
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[next() % i]);
    return order;
  }
  std::fprintf(stderr,
               "cuemu: CUEMU_BLOCK_ORDER=%s is not index, reverse or shuffle:<seed>; blocks run in index order\n", how);
  return order;
}

void start_block(Launch& L) {
  const dim3 b = L.block;
  for (int t = 0; t < L.threads; ++t) {
    Fiber& f = (*L.fibers)[static_cast<size_t>(t)];
    f.tid = t;
    f.coords.threadIdx = uint3{t % b.x, t / b.x % b.y, t / (b.x * b.y)};
    f.coords.blockIdx = L.blockIdx;
    f.coords.blockDim = L.block;
    f.coords.gridDim = L.grid;
    f.wait = Wait::Running;
    f.file = nullptr;
    f.line = 0;
    f.warpSyncs = 0;
    context_init(f.ctx, f.stack, f.stackSize, fiber_main);
  }
  L.epoch = ++g_epoch;
}

bool same_site(const Fiber& a, const Fiber& b) {
  return a.line == b.line && (a.file == b.file || (a.file && b.file && std::strcmp(a.file, b.file) == 0));
}

// Completes the warp collectives whose lanes have all arrived. Returns whether any did.
bool resolve_warps(Launch& L) {
  bool progressed = false;
  std::vector<Fiber>& F = *L.fibers;
  for (int w0 = 0; w0 < L.threads && !L.failed; w0 += 32) {
    const int lanes = std::min(32, L.threads - w0);
    for (int l = 0; l < lanes && !L.failed; ++l) {
      Fiber& first = F[static_cast<size_t>(w0 + l)];
      if (first.wait != Wait::Warp) continue;
      const unsigned mask = first.mask;
      if ((mask >> l & 1u) == 0) {
        fail(cudaErrorLaunchFailure, where(first) + ": " + op_name(first.op) + " at " + site(first) +
                                         " with a mask that does not include the calling lane");
        return false;
      }
      bool ready = true;
      for (int m = 0; m < 32 && ready; ++m) {
        if ((mask >> m & 1u) == 0) continue;
        if (m >= lanes) {
          fail(cudaErrorLaunchFailure, where(first) + ": " + op_name(first.op) + " at " + site(first) + " names lane " +
                                           std::to_string(m) + ", which does not exist (the block has " +
                                           std::to_string(L.threads) + " threads)");
          return false;
        }
        const Fiber& o = F[static_cast<size_t>(w0 + m)];
        if (o.wait == Wait::Done) {
          fail(cudaErrorLaunchFailure, where(first) + ": " + op_name(first.op) + " at " + site(first) + " names lane " +
                                           std::to_string(m) + ", which has already returned");
          return false;
        }
        if (o.wait != Wait::Warp) {
          ready = false;  // not there yet (or stuck at a block barrier: the deadlock check reports it)
          continue;
        }
        if (o.mask != mask || o.op != first.op || !same_site(o, first)) {
          fail(cudaErrorLaunchFailure, "divergent warp collective in " + where(first) + " (" + waiting_at(first) +
                                           ") and thread " + coords(o.coords.threadIdx) + " (" + waiting_at(o) +
                                           ") of the same warp");
          return false;
        }
      }
      if (!ready) continue;
      // All lanes of the mask are here: compute every lane's result.
      uint64_t ballot = 0;
      for (int m = 0; m < lanes; ++m)
        if ((mask >> m & 1u) != 0 && F[static_cast<size_t>(w0 + m)].value != 0) ballot |= 1ull << m;
      for (int m = 0; m < lanes; ++m) {
        if ((mask >> m & 1u) == 0) continue;
        Fiber& f = F[static_cast<size_t>(w0 + m)];
        const int width = f.width, seg = m / width * width;
        int src = m;
        switch (f.op) {
          case WarpOp::ShflIdx: src = seg + (f.arg % width + width) % width; break;
          case WarpOp::ShflUp: src = m - f.arg >= seg ? m - f.arg : m; break;
          case WarpOp::ShflDown: src = m + f.arg < seg + width ? m + f.arg : m; break;
          case WarpOp::ShflXor: src = (m ^ f.arg) >= seg && (m ^ f.arg) < seg + width ? (m ^ f.arg) : m; break;
          default: break;
        }
        switch (f.op) {
          case WarpOp::ShflIdx:
          case WarpOp::ShflUp:
          case WarpOp::ShflDown:
          case WarpOp::ShflXor:
            if (src >= lanes || (mask >> src & 1u) == 0) {
              fail(cudaErrorLaunchFailure, where(f) + ": " + op_name(f.op) + " at " + site(f) + " reads lane " +
                                               std::to_string(src) + ", which is not in the mask (undefined value)");
              return false;
            }
            f.result = F[static_cast<size_t>(w0 + src)].value;
            break;
          case WarpOp::Any: f.result = ballot != 0; break;
          case WarpOp::All: f.result = ballot == static_cast<uint64_t>(mask) ? 1 : 0; break;
          case WarpOp::Ballot: f.result = ballot; break;
          case WarpOp::Sync:
            f.result = 0;
            ++f.warpSyncs;
            break;
          case WarpOp::Match: {
            uint64_t same = 0;
            for (int k = 0; k < lanes; ++k)
              if ((mask >> k & 1u) != 0 && F[static_cast<size_t>(w0 + k)].value == f.value) same |= 1ull << k;
            f.result = same;
            break;
          }
        }
      }
      for (int m = 0; m < lanes; ++m)
        if ((mask >> m & 1u) != 0) F[static_cast<size_t>(w0 + m)].wait = Wait::Running;
      progressed = true;
    }
  }
  return progressed;
}

// Completes the block barrier if every live thread waits at it. Returns whether it did.
bool resolve_block_barrier(Launch& L) {
  std::vector<Fiber>& F = *L.fibers;
  const Fiber* first = nullptr;
  const Fiber* returned = nullptr;
  int count = 0, all = 1, any = 0;
  for (int t = 0; t < L.threads; ++t) {
    const Fiber& f = F[static_cast<size_t>(t)];
    if (f.wait == Wait::Done) {
      returned = returned ? returned : &f;
      continue;
    }
    if (f.wait != Wait::Block) return false;
    if (first == nullptr) {
      first = &f;
    } else if (!same_site(f, *first) || f.barOp != first->barOp) {
      fail(cudaErrorLaunchFailure, "divergent __syncthreads() in " + where(*first) + " (waits at " + site(*first) +
                                       ") and thread " + coords(f.coords.threadIdx) + " (waits at " + site(f) +
                                       "): every thread of a block must reach the same barrier");
      return false;
    }
    count += f.barPred;
    all &= f.barPred;
    any |= f.barPred;
  }
  if (first == nullptr) return false;
  // CUDA requires every thread of the block to reach a __syncthreads(); one that returned before it
  // never will (hardware may or may not hang: undefined behaviour either way).
  if (returned != nullptr) {
    fail(cudaErrorLaunchFailure, "divergent __syncthreads() in " + where(*first) + " (waits at " + site(*first) +
                                     ") while thread " + coords(returned->coords.threadIdx) +
                                     " has returned: every thread of a block must reach the same barrier");
    return false;
  }
  const int result = first->barOp == 1 ? count : first->barOp == 2 ? all : first->barOp == 3 ? any : 0;
  for (int t = 0; t < L.threads; ++t) {
    Fiber& f = F[static_cast<size_t>(t)];
    if (f.wait == Wait::Block) {
      f.wait = Wait::Running;
      f.barResult = result;
    }
  }
  L.epoch = ++g_epoch;
  return true;
}

void report_deadlock(Launch& L) {
  std::vector<Fiber>& F = *L.fibers;
  const Fiber* a = nullptr;
  const Fiber* b = nullptr;
  for (int t = 0; t < L.threads; ++t) {
    const Fiber& f = F[static_cast<size_t>(t)];
    if (f.wait == Wait::Done) continue;
    if (a == nullptr) {
      a = &f;
    } else if (f.wait != a->wait || !same_site(f, *a)) {
      b = &f;
      break;
    }
  }
  std::string msg = "deadlock in " + where(*a) + ", waiting at " + waiting_at(*a);
  if (b != nullptr) msg += ", while thread " + coords(b->coords.threadIdx) + " waits at " + waiting_at(*b);
  msg += " (divergent barrier: not every thread that must take part reaches it)";
  fail(cudaErrorLaunchFailure, msg);
}

void run_block(Launch& L) {
  start_block(L);
  std::vector<Fiber>& F = *L.fibers;
  for (;;) {
    bool ran = false;
    for (int t = 0; t < L.threads && !L.failed; ++t) {
      Fiber& f = F[static_cast<size_t>(t)];
      if (f.wait != Wait::Running) continue;
      L.cur = &f;
      current = &f.coords;
      context_switch(L.sched, f.ctx);
      L.cur = nullptr;
      current = nullptr;
      ran = true;
    }
    if (L.failed) return;
    bool live = false;
    for (int t = 0; t < L.threads; ++t) live |= F[static_cast<size_t>(t)].wait != Wait::Done;
    if (!live) return;
    if (ran) continue;
    if (resolve_warps(L) || L.failed) continue;
    if (resolve_block_barrier(L) || L.failed) continue;
    report_deadlock(L);
    return;
  }
}

std::string validate(dim3 grid, dim3 block) {
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (block.x == 0 || block.y == 0 || block.z == 0 || grid.x == 0 || grid.y == 0 || grid.z == 0)
    return "a grid or block dimension is 0";
  if (threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
    return "block " + coords(uint3{block.x, block.y, block.z}) + " exceeds 1024 threads (or 1024 x 1024 x 64)";
  if (grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535)
    return "grid " + coords(uint3{grid.x, grid.y, grid.z}) + " exceeds (2^31 - 1, 65535, 65535)";
  return "";
}

// Each kernel's cudaFuncAttributeMaxDynamicSharedMemorySize (48 KB unless raised), under the device mutex.
std::unordered_map<const void*, size_t>& dynamic_smem_limits() {
  static auto* m = new std::unordered_map<const void*, size_t>();
  return *m;
}

constexpr size_t kDefaultDynamicSmem = 48 * 1024;

// Why a launch of `kernel` may not have `smem` bytes of dynamic shared memory, or "": as on a GPU, more than
// 48 KB needs the kernel's attribute raised first, and no kernel gets more than the opt-in limit.
std::string validate_smem(const void* kernel, size_t smem) {
  const auto& limits = dynamic_smem_limits();
  const auto it = limits.find(kernel);
  const size_t limit = it == limits.end() ? kDefaultDynamicSmem : it->second;
  if (smem <= limit) return "";
  return std::to_string(smem) + " bytes of dynamic shared memory exceed the kernel's limit of " +
         std::to_string(limit) +
         " (cudaFuncSetAttribute's cudaFuncAttributeMaxDynamicSharedMemorySize raises it, up to " +
         std::to_string(kDynamicSmemOptin) + ")";
}

}  // namespace

unsigned char* dynamic_shared_area() {
  alignas(4096) static thread_local unsigned char area[kDynamicSmemOptin];
  return area;
}

std::string where(const Fiber& f) {
  const Launch& L = *g_launch;
  return std::string(L.kernel) + ", block " + coords(f.coords.blockIdx) + ", thread " + coords(f.coords.threadIdx);
}

void fail(cudaError_t e, const std::string& report) {
  Launch& L = *g_launch;
  if (!L.failed) {
    L.failed = true;
    L.error = e;
    L.report = report;
  }
  if (L.cur != nullptr) {
    context_switch(L.cur->ctx, L.sched);  // never resumed
    __builtin_trap();
  }
}

}  // namespace cuemu::detail

namespace cuemu {

using namespace detail;

unsigned char* dynamic_shared() { return dynamic_shared_area(); }

cudaError_t launch(const char* name, const void* kernel, void (*body)(void*), void* state, size_t stateSize, dim3 grid,
                   dim3 block, size_t dynamicSmem, cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (g_launch != nullptr)
    return set_error(cudaErrorLaunchFailure, std::string("launch of ") + name + " from inside a kernel");
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle, std::string(name) + ": unknown stream");
  const std::string bad = validate(grid, block);
  if (!bad.empty()) return set_error(cudaErrorInvalidConfiguration, std::string(name) + ": " + bad);
  const std::string badSmem = validate_smem(kernel, dynamicSmem);
  if (!badSmem.empty()) return set_error(cudaErrorInvalidValue, std::string(name) + ": " + badSmem);
  // Captured: a copy of the argument block (kernel arguments are trivially copyable, as in CUDA), launched
  // at each replay.
  auto copy = std::make_shared<std::vector<std::max_align_t>>((stateSize + sizeof(std::max_align_t) - 1) /
                                                              sizeof(std::max_align_t));
  std::memcpy(copy->data(), state, stateSize);
  const StreamOp replay = [=](cudaStream_t s) {
    return launch(name, kernel, body, copy->data(), stateSize, grid, block, dynamicSmem, s);
  };
  cudaError_t captureError = cudaSuccess;
  switch (capture_stream_op(stream, name, false, replay, &captureError)) {
    case CaptureAction::Run: break;
    case CaptureAction::Recorded: return cudaSuccess;
    case CaptureAction::Failed: return captureError;
  }
  Launch L;
  L.kernel = name;
  L.body = body;
  L.state = state;
  L.stateSize = stateSize;
  L.grid = grid;
  L.block = block;
  L.dynamicSmem = dynamicSmem;
  L.tls = module_tls();
  const char* races = std::getenv("CUEMU_GLOBAL_RACES");
  L.globalRaces = races != nullptr && std::strcmp(races, "1") == 0;
  if (L.globalRaces) reset_global_races();
  L.traffic = traffic_counting();
  prepare_fibers(L, static_cast<int>(block.x * block.y * block.z));
  g_launch = &L;
  g_runner = pthread_self();
  g_running.store(true, std::memory_order_release);
  for (const uint3 b : block_order(grid)) {
    if (L.failed) break;
    L.blockIdx = b;
    run_block(L);
  }
  g_running.store(false, std::memory_order_release);
  g_launch = nullptr;
  if (L.traffic) traffic_launch_done();
  return L.failed ? record_fault(L.error, L.report) : cudaSuccess;
}

int syncthreads(int op, int pred, const char* file, int line) {
  Launch& L = *g_launch;
  Fiber& f = *L.cur;
  f.wait = Wait::Block;
  f.file = file;
  f.line = line;
  f.barOp = op;
  f.barPred = pred;
  yield_to_scheduler();
  return f.barResult;
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width, const char* file, int line) {
  Launch& L = *g_launch;
  Fiber& f = *L.cur;
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0)
    fail(cudaErrorLaunchFailure, where(f) + ": " + op_name(op) + " at " + short_path(file) + ":" +
                                     std::to_string(line) + " with width " + std::to_string(width) +
                                     " (must be a power of 2 up to 32)");
  f.wait = Wait::Warp;
  f.op = op;
  f.mask = mask;
  f.value = value;
  f.arg = arg;
  f.width = width;
  f.file = file;
  f.line = line;
  yield_to_scheduler();
  return f.result;
}

void threadfence() {}

namespace {
std::vector<float>& stage(int warp, int slot) {
  static std::vector<std::vector<float>>* s = new std::vector<std::vector<float>>();
  const size_t at = static_cast<size_t>(warp) * 3 + static_cast<size_t>(slot);
  if (s->size() <= at) s->resize(at + 1);
  return (*s)[at];
}
}  // namespace

void warp_stage(int slot, const float* values, int count) {
  const Fiber& f = *g_launch->cur;
  std::vector<float>& s = stage(f.tid / 32, slot);
  if (s.size() < static_cast<size_t>(32 * count)) s.resize(static_cast<size_t>(32 * count));
  std::memcpy(s.data() + static_cast<size_t>(f.tid % 32) * count, values, sizeof(float) * count);
}

void warp_gather(int slot, float* out, int count) {
  const Fiber& f = *g_launch->cur;
  std::memcpy(out, stage(f.tid / 32, slot).data(), sizeof(float) * 32 * count);
}

void trap(const char* what, const char* file, int line) {
  Launch& L = *g_launch;
  fail(cudaErrorAssert, where(*L.cur) + ": " + what + " at " + short_path(file) + ":" + std::to_string(line));
  __builtin_unreachable();
}

void misaligned(const char* what, const char* file, int line) {
  Launch& L = *g_launch;
  fail(cudaErrorMisalignedAddress,
       "misaligned address in " + where(*L.cur) + ": " + what + " at " + short_path(file) + ":" + std::to_string(line));
  __builtin_unreachable();
}

namespace {

template <class T>
T apply_op(AtomicOp op, T old, T v, T cmp) {
  switch (op) {
    case AtomicOp::Add: return old + v;
    case AtomicOp::Sub: return old - v;
    case AtomicOp::Max: return old < v ? v : old;
    case AtomicOp::Min: return v < old ? v : old;
    case AtomicOp::Exch: return v;
    case AtomicOp::Cas: return old == cmp ? v : old;
    default: break;
  }
  if constexpr (std::is_integral_v<T>) {
    switch (op) {
      case AtomicOp::And: return old & v;
      case AtomicOp::Or: return old | v;
      case AtomicOp::Xor: return old ^ v;
      case AtomicOp::Inc: return old >= v ? T(0) : T(old + 1);
      case AtomicOp::Dec: return (old == 0 || old > v) ? v : T(old - 1);
      default: break;
    }
  }
  return old;
}

template <class T>
void rmw(void* a, AtomicOp op, const void* operand, const void* compare, void* old) {
  T cur, v, c;
  std::memcpy(&cur, a, sizeof(T));
  std::memcpy(&v, operand, sizeof(T));
  std::memcpy(&c, compare, sizeof(T));
  std::memcpy(old, &cur, sizeof(T));
  const T next = apply_op(op, cur, v, c);
  std::memcpy(a, &next, sizeof(T));
}

}  // namespace

void atomic_rmw(void* address, AtomicOp op, AtomicType type, const void* operand, const void* compare, void* old,
                const char* /*file*/, int /*line*/) {
  Launch& L = *g_launch;
  const size_t size = (type == AtomicType::I64 || type == AtomicType::U64 || type == AtomicType::F64) ? 8 : 4;
  check_access(*L.cur, reinterpret_cast<uintptr_t>(address), size, true, true, __builtin_return_address(0));
  if (reinterpret_cast<uintptr_t>(address) % size != 0)
    fail(cudaErrorIllegalAddress, where(*L.cur) + ": misaligned atomic on a " + std::to_string(size) + "-byte value");
  switch (type) {
    case AtomicType::I32: rmw<int32_t>(address, op, operand, compare, old); break;
    case AtomicType::U32: rmw<uint32_t>(address, op, operand, compare, old); break;
    case AtomicType::I64: rmw<int64_t>(address, op, operand, compare, old); break;
    case AtomicType::U64: rmw<uint64_t>(address, op, operand, compare, old); break;
    case AtomicType::F32: rmw<float>(address, op, operand, compare, old); break;
    case AtomicType::F64: rmw<double>(address, op, operand, compare, old); break;
  }
}

}  // namespace cuemu

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  using namespace cuemu::detail;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (func == nullptr) return set_error(cudaErrorInvalidDeviceFunction, "cudaFuncSetAttribute: no kernel");
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
    return set_error(cudaErrorInvalidValue,
                     "cudaFuncSetAttribute: attribute " + std::to_string(attr) + " is not emulated");
  if (value < 0 || static_cast<size_t>(value) > kDynamicSmemOptin)
    return set_error(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                                " bytes of dynamic shared memory (the device's opt-in limit is " +
                                                std::to_string(kDynamicSmemOptin) + ")");
  dynamic_smem_limits()[func] = static_cast<size_t>(value);
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  using namespace cuemu::detail;
  if (value == nullptr) return set_error(cudaErrorInvalidValue);
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  if (attr != cudaDevAttrMaxSharedMemoryPerBlockOptin)
    return set_error(cudaErrorInvalidValue,
                     "cudaDeviceGetAttribute: attribute " + std::to_string(attr) + " is not emulated");
  *value = static_cast<int>(kDynamicSmemOptin);
  return cudaSuccess;
}
