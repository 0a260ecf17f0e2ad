// The emulator's internals, shared by its translation units (none of which is instrumented: only the
// kernel sources are compiled with -fsanitize=thread, see checks.cpp).
//
//   runtime_api.cpp  errors, device properties, streams, events
//   memory.cpp       device allocations (with redzones), copies, memset
//   context.cpp      fiber context switches
//   scheduler.cpp    kernel launches: blocks one after another, threads as fibers, barriers, warp collectives
//   checks.cpp       the memory-access hooks: bounds of device and shared memory, shared-memory races
//   symbols.cpp      where __shared__ variables lie (ELF symbols of the TLS segment), source lines of faults
//   traffic.cpp      device-memory traffic of launches, copies and fills (the kernel profile's bytes)
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#define SIMCSEPP_EMU_RUNTIME 1
#include "context.h"
#include "cuda_runtime.h"

namespace cuemu::detail {

// ---- runtime_api.cpp
// Records `e` as the calling thread's last error, with `report` (what the emulator found) appended to
// cudaGetErrorString(e) until the next failure. Returns e.
cudaError_t set_error(cudaError_t e, const std::string& report = {});
bool valid_stream(cudaStream_t s);
// A launch's fault (sticky, see cuemu::clear_fault): recorded once, the first one kept, and returned by
// every later call that uses the device. Returns e.
cudaError_t record_fault(cudaError_t e, const std::string& report);
// The recorded fault (set again as the calling thread's last error, with its report), or cudaSuccess.
cudaError_t faulted();

// ---- graphs.cpp
// A stream-ordered operation, replayable on any stream.
using StreamOp = std::function<cudaError_t(cudaStream_t)>;
// What a stream-ordered call on `stream` does now. Run: not capturing, the caller runs it. Recorded:
// `op` was appended to the stream's capture. Failed: `*error` holds why (work on the legacy stream while
// another stream captures, or host memory in a captured copy), and the capture is invalidated.
enum class CaptureAction { Run, Recorded, Failed };
CaptureAction capture_stream_op(cudaStream_t stream, const char* what, bool touchesHost, const StreamOp& op,
                                cudaError_t* error);
// cudaSuccess, or the error of calling `what` (a synchronising or allocating call) from a thread that
// is capturing, after invalidating its capture.
cudaError_t refuse_while_capturing(const char* what);
// Deferred execution (CUEMU_DEFER, on unless set to 0): stream work that is not captured is queued, in issue
// order, and runs only when the host waits for it, as a GPU runs it behind the host's back. So host code
// that reads what the device has not written yet, or rewrites what a queued copy has not read yet (pinned
// staging reused too early), sees the wrong data here as it would on a GPU.
bool deferring();
// Whether `stream` is being captured.
bool capturing(cudaStream_t stream);
// Runs the queued work issued before `seq` (all of it by default), as a synchronising call does. A failing
// operation ends it and drops the rest (a faulted GPU context runs nothing more); its error is returned.
cudaError_t run_deferred(uint64_t seq = UINT64_MAX);
// Queues `op` on `stream`; returns its sequence number (what an event recorded after it waits for).
uint64_t defer(cudaStream_t stream, StreamOp op);

// ---- memory.cpp
// Serialises the runtime API and launches: one emulated device, used by one OS thread at a time.
std::recursive_mutex& device_mutex();
struct Range {
  uintptr_t base = 0;
  size_t size = 0;
  bool contains(uintptr_t a, size_t n) const { return a >= base && n <= size && a - base <= size - n; }
};
// cudaMemcpy's and cudaMemset's work, checked (what a captured copy or memset runs at each replay).
cudaError_t copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t fill(void* dst, int value, size_t bytes);
// The live allocation containing [a, a + n), if any.
bool find_allocation(uintptr_t a, size_t n, Range* out);
// Whether [p, p + n) lies in memory from cudaMallocHost (page-locked: copies to and from it run in stream order).
bool is_pinned(const void* p, size_t n);
// Why [a, a + n) is not device memory: past the end or before the start of an allocation (and by how
// much), inside a freed one, or unknown.
std::string describe_bad_address(uintptr_t a, size_t n);

// ---- symbols.cpp
struct SharedVar {
  uintptr_t offset;  // within the module's TLS segment
  size_t size;
  std::string name;      // demangled, e.g. "simcsepp::cuda::(anon)::infonce_lse_kernel(...)::As"
  bool guard = false;    // the guard of a __shared__ variable with a constructor (not allowed in CUDA)
  bool dynamic = false;  // the dynamic shared memory (dynamic_shared_area): its size is the launch's, not this
};
struct ModuleTls {
  uintptr_t lo = 0, hi = 0;            // this OS thread's copy of the module's TLS segment
  const std::vector<SharedVar>* vars;  // sorted by offset; empty when the symbol table is unavailable
};
// The emulator's module (the addon or a test program) as seen from the calling thread.
ModuleTls module_tls();
// Read-only data of the module (kernel code may read constant tables the compiler placed there).
bool in_readonly_data(uintptr_t a, size_t n);
// "kernels/infonce.cu:215 (dot_tile)" for a return address in kernel code, or "" when unknown.
std::string source_of(const void* pc);
// "kernels/infonce.cu" of "/path/to/kernels/infonce.cu": the file and its directory.
std::string short_path(const std::string& path);
// Short name of a shared variable: "As" of "...::infonce_lse_kernel(...)::As".
std::string short_name(const std::string& demangled);

// ---- scheduler.cpp
// The dynamic shared memory a kernel may opt into per block: 99 KB, the smallest opt-in limit of the GPUs the build
// runs on (compute capability 8.6 and 8.9: RTX 30xx / 40xx, L40S; an A100 allows 163 KB, an H100 227 KB), so that
// a kernel that runs here fits every one of them. A kernel's static __shared__ variables are not counted against
// it (on a GPU static and dynamic shared memory share the limit): kernels that opt in use dynamic memory alone.
constexpr size_t kDynamicSmemOptin = 99 * 1024;
// The area that cuemu::dynamic_shared() returns: a function-local TLS array (symbols.cpp finds it by this name), so
// kernel accesses to it are checked as shared memory; a launch may use its first dynamicSmem bytes.
unsigned char* dynamic_shared_area();
constexpr const char* kDynamicSharedAreaName = "cuemu::detail::dynamic_shared_area()::area";

enum class Wait { Running, Block, Warp, Done };

struct Fiber {
  ThreadCoords coords{};
  int tid = 0;  // linear index in the block
  Wait wait = Wait::Running;
  const char* file = nullptr;  // where it waits
  int line = 0;
  int barOp = 0, barPred = 0, barResult = 0;  // block barrier reduction
  WarpOp op{};                                // warp collective
  unsigned mask = 0;
  uint64_t value = 0, result = 0;
  int arg = 0, width = 32;
  uint32_t warpSyncs = 0;  // __syncwarp()s passed: they order this warp's shared-memory accesses
  Context ctx;
  char* stack = nullptr;
  size_t stackSize = 0;
};

struct Launch {
  const char* kernel = nullptr;
  void (*body)(void*) = nullptr;
  void* state = nullptr;  // the argument pack, read by every thread
  size_t stateSize = 0;
  dim3 grid, block;
  uint3 blockIdx{};
  std::vector<Fiber>* fibers = nullptr;
  int threads = 0;
  Fiber* cur = nullptr;
  Context sched;
  uint32_t epoch = 0;      // shared-memory phase: advances at every block barrier and block start
  size_t dynamicSmem = 0;  // bytes of dynamic shared memory per block
  ModuleTls tls;
  Range recentAllocs[4];     // the allocations the last device accesses hit (a kernel reads and writes several)
  unsigned recentNext = 0;   // the slot the next allocation found replaces
  bool globalRaces = false;  // CUEMU_GLOBAL_RACES=1: check device-memory accesses between blocks (checks.cpp)
  bool traffic = false;      // cuemu::set_traffic_counting(true): note the sectors it reads and writes (traffic.cpp)
  bool failed = false;
  cudaError_t error = cudaSuccess;
  std::string report;
};

// The launch in progress (null when none); only `runner` executes emulated code while `running` is set.
extern Launch* g_launch;
extern std::atomic<bool> g_running;
extern pthread_t g_runner;

// Stops the launch with `e`; from a fiber it never returns (the fiber is abandoned).
void fail(cudaError_t e, const std::string& report);
// "infonce_lse_kernel, block (2,0,0), thread (17,0,0)"
std::string where(const Fiber& f);

// ---- checks.cpp
// Bounds check of an access the emulator makes for a thread (atomics, shared data exchange).
void check_access(Fiber& f, uintptr_t a, size_t n, bool write, bool atomic, const void* pc);
// Forgets the device-memory accesses of the previous launch (CUEMU_GLOBAL_RACES); called as a launch starts.
void reset_global_races();

// ---- traffic.cpp (callers hold device_mutex)
bool traffic_counting();
// A kernel's access of n bytes at a, inside a device allocation: its sectors noted for the running launch.
void traffic_access(uintptr_t a, size_t n, bool write, bool atomic);
// The running launch's distinct sectors added to the totals (and forgotten).
void traffic_launch_done();
void traffic_totals(uint64_t* read, uint64_t* written);

}  // namespace cuemu::detail
