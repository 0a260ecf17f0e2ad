// The memory-access hooks. The kernel sources are compiled with -fsanitize=thread, which makes the
// compiler call __tsan_read4(address), __tsan_write16(address), ... before every load and store that
// may touch memory shared between threads. The emulator supplies those functions (no ThreadSanitizer
// runtime is linked), so it sees every access of kernel code while a launch runs:
//   - the running fiber's own stack (locals, the kernel's argument copies): allowed;
//   - this OS thread's copy of the module's TLS segment, where __shared__ variables live: the access must
//     lie inside one __shared__ variable (symbols.cpp) and must not race: a write and another thread's
//     read or write of the same byte in the same phase (between two block barriers; lanes of one warp
//     are also ordered by __syncwarp) is a race;
//   - device memory: the access must lie inside one live allocation (memory.cpp); with
//     CUEMU_GLOBAL_RACES=1, also no byte that one block of the launch writes may be read or written by
//     another block of it (blocks run concurrently on a GPU, with nothing ordering them; atomics excepted);
//   - reads of the launch's own bookkeeping (threadIdx and friends, the argument pack) and of the
//     module's read-only data: allowed; anything else is an illegal address;
//   - an access whose type makes it naturally aligned (a float4, a double) at an address that is not a
//     multiple of its size: a misaligned address, as on a GPU.
// Outside a launch, host code of the kernel sources that touches device memory ends the process with a
// report (on a GPU it would crash): CUEMU_HOST_CHECKS=0 turns that off.
// The first fault stops the launch; the report names the kernel, block, thread, address and source line.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <sstream>
#include <unordered_map>

#include "internal.h"

namespace cuemu::detail {

namespace {

constexpr uint16_t kManyReaders = 0xFFFF;

// CUEMU_HOST_CHECKS=0 turns off the check that host code leaves device memory alone (on by default).
bool host_checks() {
  static const bool on = [] {
    const char* v = std::getenv("CUEMU_HOST_CHECKS");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}

// Shadow of one byte of the TLS segment: the last write and the reads of the current phase.
struct Cell {
  uint32_t wEpoch = 0, rEpoch = 0;
  uint16_t wTid = 0, rTid = 0;
  uint32_t wSyncs = 0, rSyncs = 0;
  const void* wPc = nullptr;
  const void* rPc = nullptr;
};

std::vector<Cell>& shadow() {
  static std::vector<Cell>* s = new std::vector<Cell>();
  return *s;
}

std::string hex(uintptr_t a) {
  std::ostringstream s;
  s << "0x" << std::hex << a;
  return s.str();
}

std::string at_source(const void* pc) {
  const std::string s = source_of(pc);
  return s.empty() ? "" : " at " + s;
}

std::string thread_of(const Launch& L, uint16_t tid) {
  const dim3 b = L.block;
  return "(" + std::to_string(tid % b.x) + "," + std::to_string(tid / b.x % b.y) + "," +
         std::to_string(tid / (b.x * b.y)) + ")";
}

// Whether an earlier access by thread `other` (in this phase) is ordered before one by `f`: only by a
// __syncwarp both passed since, when they are lanes of one warp.
bool ordered(const Fiber& f, uint16_t other, uint32_t otherSyncs) {
  return other / 32 == f.tid / 32 && otherSyncs != f.warpSyncs;
}

const SharedVar* find_var(const ModuleTls& tls, uintptr_t offset) {
  const std::vector<SharedVar>& v = *tls.vars;
  size_t lo = 0, hi = v.size();
  while (lo < hi) {  // last variable starting at or before offset
    const size_t mid = (lo + hi) / 2;
    if (v[mid].offset <= offset)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo == 0 ? nullptr : &v[lo - 1];
}

void shared_access(Launch& L, Fiber& f, uintptr_t a, size_t n, bool write, bool atomic, const void* pc) {
  const uintptr_t off = a - L.tls.lo;
  const SharedVar* var = nullptr;
  if (!L.tls.vars->empty()) {
    const SharedVar* v = find_var(L.tls, off);
    const size_t size = v == nullptr ? 0 : v->dynamic ? L.dynamicSmem : v->size;  // dynamic: the launch's bytes
    const bool inside = v != nullptr && off - v->offset + n <= size;
    if (inside && v->guard) {
      fail(cudaErrorLaunchFailure,
           where(f) + ": __shared__ " + short_name(v->name) +
               " has a constructor (a member initialiser, or a member type with one): CUDA does "
               "not allow dynamic initialisation of __shared__ variables" +
               at_source(pc));
      return;
    }
    if (!inside) {
      std::string rel = "outside every __shared__ variable";
      if (v != nullptr && v->dynamic)
        rel = std::to_string(off + n - (v->offset + size)) + " bytes past the end of the dynamic shared memory (" +
              std::to_string(size) + " bytes, the launch's)";
      else if (v != nullptr && off >= v->offset)
        rel = std::to_string(off + n - (v->offset + v->size)) + " bytes past the end of __shared__ " +
              short_name(v->name) + " (" + std::to_string(v->size) + " bytes)";
      const char* kind = atomic ? "atomic" : (write ? "write" : "read");
      fail(cudaErrorIllegalAddress, "out-of-bounds shared-memory " + std::string(kind) + " of " + std::to_string(n) +
                                        " bytes in " + where(f) + ": " + rel + at_source(pc));
      return;
    }
    var = v;
  }
  if (atomic) return;  // atomics do not race with each other
  std::vector<Cell>& S = shadow();
  const uint32_t E = L.epoch;
  const uint16_t t = static_cast<uint16_t>(f.tid);
  for (size_t i = 0; i < n; ++i) {
    Cell& c = S[off + i];
    const char* conflict = nullptr;
    uint16_t other = 0;
    const void* otherPc = nullptr;
    if (c.wEpoch == E && c.wTid != t && !ordered(f, c.wTid, c.wSyncs)) {
      conflict = "wrote";
      other = c.wTid;
      otherPc = c.wPc;
    } else if (write && c.rEpoch == E && c.rTid != t && (c.rTid == kManyReaders || !ordered(f, c.rTid, c.rSyncs))) {
      conflict = "read";
      other = c.rTid;
      otherPc = c.rPc;
    }
    if (conflict != nullptr) {
      const std::string who = other == kManyReaders ? "other threads" : "thread " + thread_of(L, other);
      const std::string at =
          var == nullptr ? "shared memory" : short_name(var->name) + "+" + std::to_string(off - var->offset);
      fail(cudaErrorLaunchFailure, "shared-memory race in " + where(f) + ": " + (write ? "writes " : "reads ") +
                                       std::to_string(n) + " bytes at " + at + " (" + hex(a) + ")" + at_source(pc) +
                                       ", which " + who + " " + conflict + at_source(otherPc) +
                                       " with no __syncthreads() in between");
      return;
    }
    if (write) {
      c.wEpoch = E;
      c.wTid = t;
      c.wSyncs = f.warpSyncs;
      c.wPc = pc;
    } else if (c.rEpoch != E) {
      c.rEpoch = E;
      c.rTid = t;
      c.rSyncs = f.warpSyncs;
      c.rPc = pc;
    } else if (c.rTid != t) {
      c.rTid = kManyReaders;
    }
  }
}

// CUEMU_GLOBAL_RACES: per byte of device memory touched by the launch, the block that last wrote it and
// the block that read it (kMany: several).
constexpr int64_t kNone = -1, kMany = -2;
struct GlobalCell {
  int64_t writer = kNone, reader = kNone;
  const void* wPc = nullptr;
  const void* rPc = nullptr;
};

std::unordered_map<uintptr_t, GlobalCell>& global_shadow() {
  static auto* m = new std::unordered_map<uintptr_t, GlobalCell>();
  return *m;
}

std::string block_name(const Launch& L, int64_t id) {
  const int64_t x = id % L.grid.x, y = id / L.grid.x % L.grid.y, z = id / (static_cast<int64_t>(L.grid.x) * L.grid.y);
  return "block (" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}

// "byte 1032 of the 4096-byte device allocation at 0x..."
std::string in_allocation(uintptr_t a) {
  Range r;
  if (!find_allocation(a, 1, &r)) return hex(a);
  return "byte " + std::to_string(a - r.base) + " of the " + std::to_string(r.size) + "-byte device allocation at " +
         hex(r.base);
}

void global_access(Launch& L, Fiber& f, uintptr_t a, size_t n, bool write, const void* pc) {
  const uint3 b = f.coords.blockIdx;
  const int64_t id = b.x + static_cast<int64_t>(L.grid.x) * (b.y + static_cast<int64_t>(L.grid.y) * b.z);
  auto& m = global_shadow();
  for (size_t i = 0; i < n; ++i) {
    GlobalCell& c = m[a + i];
    const char* conflict = nullptr;
    int64_t other = kNone;
    const void* otherPc = nullptr;
    if (c.writer != kNone && c.writer != id) {
      conflict = "wrote";
      other = c.writer;
      otherPc = c.wPc;
    } else if (write && c.reader != kNone && c.reader != id) {
      conflict = "read";
      other = c.reader;
      otherPc = c.rPc;
    }
    if (conflict != nullptr) {
      const std::string who = other == kMany ? "other blocks" : block_name(L, other);
      fail(cudaErrorLaunchFailure,
           "global-memory race between blocks in " + where(f) + ": " + (write ? "writes " : "reads ") +
               std::to_string(n) + " bytes at " + in_allocation(a) + at_source(pc) + ", which " + who + " " + conflict +
               at_source(otherPc) + " in the same launch (blocks are not ordered: use separate launches)");
      return;
    }
    if (write) {
      c.writer = id;
      c.wPc = pc;
    } else if (c.reader == kNone) {
      c.reader = id;
      c.rPc = pc;
    } else if (c.reader != id) {
      c.reader = kMany;
    }
  }
}

// `aligned`: the compiler took the access to be naturally aligned (the __tsan_readN/writeN hooks, as opposed to
// the unaligned and ranged ones): its type says so, e.g. a float4 or double load. A GPU faults on such an access
// at an address that is not a multiple of its size (a float4 read through a pointer that is only 4-byte
// aligned), where the host would just read it.
// Host code of the kernel sources (instrumented too) touching device memory: a GPU's device memory is not
// mapped into the process, so this is a crash there; here it would quietly work. Ends the process.
[[noreturn]] void host_touched_device(uintptr_t a, size_t n, bool write, const void* pc) {
  std::fprintf(stderr,
               "CUDA emulator: host code %s %zu bytes of device memory at %s%s (on a GPU this is a segmentation "
               "fault: copy with cudaMemcpy instead)\n",
               write ? "wrote" : "read", n, in_allocation(a).c_str(), at_source(pc).c_str());
  std::abort();
}

// Whether [a, a + n) lies in one of the allocations the launch's last accesses hit (no lookup in the map).
inline bool recent_allocation(const Launch& L, uintptr_t a, size_t n) {
  for (const Range& r : L.recentAllocs)
    if (r.contains(a, n)) return true;
  return false;
}

// Host code touching memory (slow path of on_access, out of line so that the kernels' path stays short).
[[gnu::noinline]] void host_access(const void* addr, size_t n, bool write, const void* pc) {
  if (!host_checks()) return;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  Range r;
  if (find_allocation(reinterpret_cast<uintptr_t>(addr), 1, &r))
    host_touched_device(reinterpret_cast<uintptr_t>(addr), n, write, pc);
}

[[gnu::noinline]] void misaligned(const Fiber& f, uintptr_t a, size_t n, bool write, const void* pc) {
  fail(cudaErrorMisalignedAddress, "misaligned address in " + where(f) + ": a " + std::to_string(n) + "-byte " +
                                       (write ? "write" : "read") + " at " + in_allocation(a) + ", not a multiple of " +
                                       std::to_string(n) + at_source(pc));
}

// Every instrumented access of kernel code. The common case (global memory in the allocation the launch touched
// last, no race checks between blocks) returns here without a call: this hook runs for every load and store.
inline void on_access(const void* addr, size_t n, bool write, const void* pc, bool aligned) {
  if (!g_running.load(std::memory_order_relaxed) || !pthread_equal(pthread_self(), g_runner)) {
    host_access(addr, n, write, pc);
    return;
  }
  Launch& L = *g_launch;
  Fiber* f = L.cur;
  if (f == nullptr || L.failed) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(addr);
  if (a - reinterpret_cast<uintptr_t>(f->stack) < f->stackSize) return;  // own stack
  if (aligned && n > 1 && a % n != 0) {
    misaligned(*f, a, n, write, pc);
    return;
  }
  if (!L.globalRaces && !L.traffic && !(a >= L.tls.lo && a < L.tls.hi) && recent_allocation(L, a, n)) return;
  check_access(*f, a, n, write, false, pc);
}

}  // namespace

void check_access(Fiber& f, uintptr_t a, size_t n, bool write, bool atomic, const void* pc) {
  Launch& L = *g_launch;
  if (a >= L.tls.lo && a < L.tls.hi) {
    if (shadow().size() < L.tls.hi - L.tls.lo) shadow().resize(L.tls.hi - L.tls.lo);
    shared_access(L, f, a, n, write, atomic, pc);
    return;
  }
  if (recent_allocation(L, a, n)) {
    if (L.globalRaces && !atomic) global_access(L, f, a, n, write, pc);
    if (L.traffic) traffic_access(a, n, write, atomic);
    return;
  }
  // Reads of the thread's coordinates and of the kernel's parameters (host memory, never in a device
  // allocation): frequent, so tested before the allocation map.
  if (!write && !atomic) {
    const uintptr_t coordsLo = reinterpret_cast<uintptr_t>(&f.coords);
    if (a - coordsLo < sizeof(ThreadCoords) || a == reinterpret_cast<uintptr_t>(&current)) return;
    if (a >= reinterpret_cast<uintptr_t>(L.state) && a < reinterpret_cast<uintptr_t>(L.state) + L.stateSize) return;
  }
  Range r;
  if (find_allocation(a, n, &r)) {
    L.recentAllocs[L.recentNext++ % std::size(L.recentAllocs)] = r;
    if (L.globalRaces && !atomic) global_access(L, f, a, n, write, pc);
    if (L.traffic) traffic_access(a, n, write, atomic);
    return;
  }
  if (!write && !atomic && in_readonly_data(a, n)) return;
  const char* kind = atomic ? "atomic" : (write ? "write" : "read");
  fail(cudaErrorIllegalAddress,
       std::string("out-of-bounds ") + kind + " in " + where(f) + ": " + describe_bad_address(a, n) + at_source(pc));
}

void reset_global_races() { global_shadow().clear(); }

}  // namespace cuemu::detail

using cuemu::detail::on_access;

// The hooks GCC and Clang emit under -fsanitize=thread (plain, unaligned, volatile and ranged forms).
extern "C" {
#define SIMCSEPP_EMU_HOOKS(n)                                                                                     \
  void __tsan_read##n(void* a) { on_access(a, n, false, __builtin_return_address(0), true); }                     \
  void __tsan_write##n(void* a) { on_access(a, n, true, __builtin_return_address(0), true); }                     \
  void __tsan_unaligned_read##n(void* a) { on_access(a, n, false, __builtin_return_address(0), false); }          \
  void __tsan_unaligned_write##n(void* a) { on_access(a, n, true, __builtin_return_address(0), false); }          \
  void __tsan_volatile_read##n(void* a) { on_access(a, n, false, __builtin_return_address(0), true); }            \
  void __tsan_volatile_write##n(void* a) { on_access(a, n, true, __builtin_return_address(0), true); }            \
  void __tsan_unaligned_volatile_read##n(void* a) { on_access(a, n, false, __builtin_return_address(0), false); } \
  void __tsan_unaligned_volatile_write##n(void* a) { on_access(a, n, true, __builtin_return_address(0), false); }
SIMCSEPP_EMU_HOOKS(1)
SIMCSEPP_EMU_HOOKS(2)
SIMCSEPP_EMU_HOOKS(4)
SIMCSEPP_EMU_HOOKS(8)
SIMCSEPP_EMU_HOOKS(16)
#undef SIMCSEPP_EMU_HOOKS
void __tsan_read_range(void* a, unsigned long n) { on_access(a, n, false, __builtin_return_address(0), false); }
void __tsan_write_range(void* a, unsigned long n) { on_access(a, n, true, __builtin_return_address(0), false); }
void __tsan_init() {}
void __tsan_func_entry(void*) {}
void __tsan_func_exit() {}
void __tsan_vptr_update(void**, void*) {}
void __tsan_vptr_read(void**) {}
}

// Atomics in instrumented code (e.g. the guard of a function-local static) arrive as __tsan_atomic*
// calls; host code uses them, so they are performed for real, with the requested ordering.
extern "C" {
#define SIMCSEPP_EMU_ATOMICS(bits, T)                                                                      \
  T __tsan_atomic##bits##_load(const volatile T* a, int mo) { return __atomic_load_n(a, mo); }             \
  void __tsan_atomic##bits##_store(volatile T* a, T v, int mo) { __atomic_store_n(a, v, mo); }             \
  T __tsan_atomic##bits##_exchange(volatile T* a, T v, int mo) { return __atomic_exchange_n(a, v, mo); }   \
  T __tsan_atomic##bits##_fetch_add(volatile T* a, T v, int mo) { return __atomic_fetch_add(a, v, mo); }   \
  T __tsan_atomic##bits##_fetch_sub(volatile T* a, T v, int mo) { return __atomic_fetch_sub(a, v, mo); }   \
  T __tsan_atomic##bits##_fetch_and(volatile T* a, T v, int mo) { return __atomic_fetch_and(a, v, mo); }   \
  T __tsan_atomic##bits##_fetch_or(volatile T* a, T v, int mo) { return __atomic_fetch_or(a, v, mo); }     \
  T __tsan_atomic##bits##_fetch_xor(volatile T* a, T v, int mo) { return __atomic_fetch_xor(a, v, mo); }   \
  T __tsan_atomic##bits##_fetch_nand(volatile T* a, T v, int mo) { return __atomic_fetch_nand(a, v, mo); } \
  int __tsan_atomic##bits##_compare_exchange_strong(volatile T* a, T* c, T v, int mo, int fmo) {           \
    return __atomic_compare_exchange_n(a, c, v, false, mo, fmo);                                           \
  }                                                                                                        \
  int __tsan_atomic##bits##_compare_exchange_weak(volatile T* a, T* c, T v, int mo, int fmo) {             \
    return __atomic_compare_exchange_n(a, c, v, true, mo, fmo);                                            \
  }                                                                                                        \
  T __tsan_atomic##bits##_compare_exchange_val(volatile T* a, T c, T v, int mo, int fmo) {                 \
    __atomic_compare_exchange_n(a, &c, v, false, mo, fmo);                                                 \
    return c;                                                                                              \
  }
SIMCSEPP_EMU_ATOMICS(8, uint8_t)
SIMCSEPP_EMU_ATOMICS(16, uint16_t)
SIMCSEPP_EMU_ATOMICS(32, uint32_t)
SIMCSEPP_EMU_ATOMICS(64, uint64_t)
#undef SIMCSEPP_EMU_ATOMICS
void __tsan_atomic_thread_fence(int mo) { __atomic_thread_fence(mo); }
void __tsan_atomic_signal_fence(int mo) { __atomic_signal_fence(mo); }
}
