// The CUDA runtime as the rest of the addon sees it: status, memory, copies.
//
// Implemented in kernels/runtime.cu when the build compiles CUDA (SIMCSEPP_WITH_CUDA), and by
// native/cuda_stub.cpp otherwise, so the addon always links and loads without a GPU or driver.
// Every function except status() throws CudaError when CUDA is unavailable or a call fails.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace simcsepp::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Status {
  bool compiled = false;   // CUDA kernels are in this build
  bool available = false;  // a device can be used now
  bool emulated = false;   // the device is the host emulator (emulator/): real kernel sources, run on the CPU
  std::string reason;      // why not, when !available
  std::string device;      // device 0's name and compute capability, when available
};

// Probes once (first call) and caches the answer.
const Status& status();

// Throws CudaError with status().reason when CUDA cannot be used.
void require();

void* malloc_device(size_t bytes);
void free_device(void* p) noexcept;
void copy_to_device(void* dst, const void* src, size_t bytes);
void copy_to_host(void* dst, const void* src, size_t bytes);
void copy_device_to_device(void* dst, const void* src, size_t bytes);
void memset_device(void* dst, int value, size_t bytes);
void synchronize();
// For libraries the addon hands a stream (NCCL): the stream the ops launch on now (the capturing step
// graph's on this thread, else the legacy default stream, nullptr), and whether this thread is capturing.
void* op_stream();
bool capturing();
// The address of the runtime's cudaLaunchHostFunc (the emulated build's stand-in NCCL queues its
// collectives in stream order with it: native/distributed/nccl.cpp).
void* launch_host_func();
// Bytes currently free on the device (cudaMemGetInfo).
size_t free_device_memory();
// Bytes the device has in all (cudaMemGetInfo).
size_t total_device_memory();
// The library the matrix products run on: "cuBLASLt <version> (<path>)", or "simcsepp kernels (<why>)"
// (kernels/cublaslt.cuh). Probes once; call only when status().available.
const std::string& gemm_library();
// What the bf16 products read: "bf16 copies (...)" or "fp32, rounded to bf16 inside the GEMM (...)"
// (kernels/bf16_copy.cuh; SIMCSEPP_BF16_OPERANDS, read at each call).
std::string bf16_operands();

// bf16 weight mirrors (kernels/bf16_mirror.cuh): a bf16 copy of a parameter storage base[0, n) that the bf16
// products read their weights from. Made fresh; bf16_mirror_mark_stale says the fp32 values may have changed
// (the next product refreshes it). Destroy frees its device memory.
struct Bf16Mirror;
Bf16Mirror* bf16_mirror_create(const float* base, int64_t n);
void bf16_mirror_destroy(Bf16Mirror* m) noexcept;
void bf16_mirror_mark_stale(Bf16Mirror* m) noexcept;
size_t bf16_mirror_bytes(int64_t n);
// Counters since the process started: elements rounded into bf16 operand copies (kernels/bf16_copy.cuh),
// whole-mirror refreshes, and the device bytes the live mirrors hold.
struct Bf16Counters {
  int64_t convertedElements = 0;
  int64_t mirrorRefreshes = 0;
  int64_t mirrorBytes = 0;
  int64_t handedOffElements = 0;  // written by producers for the next product (bf16 handoffs, below)
};
Bf16Counters bf16_counters();
// bf16 handoffs (kernels/bf16_handoff.cuh): the next op on this thread that produces exactly out[0, n) also
// writes its bf16 copy, which a bf16 product reading exactly that range next uses instead of making one.
// bf16_handoff_written: a binding may write p[0, n) (NativeTensor::data()): drops an overlapping handoff.
// fp32Unused: only that product reads out, so a producer that can may write the bf16 copy alone (linearForward's
// bf16Next 'only'); a product that would read those fp32 values instead throws.
void bf16_handoff_request(const float* out, int64_t n, bool fp32Unused = false);
void bf16_handoff_written(const float* p, int64_t n) noexcept;

// GPU-time markers for profiles (kernels/runtime.cu): timer_mark() records the next event of a reused pool
// on the op stream and returns its index; timer_elapsed(a, b) waits for mark b and returns the device's
// milliseconds from mark a to mark b; timer_marks() counts the marks since timer_reset(). Not while a
// step graph is captured (a CudaError).
int64_t timer_mark();
double timer_elapsed(int64_t a, int64_t b);
int64_t timer_marks();
void timer_reset();

// Per-kernel device times (kernels/kernel_profile.cu): kernel_profile_start() clears the records and opens the
// profile; from then on every kernel, cuBLASLt product, device copy and fill that is launched (not captured) gets a
// record; kernel_profile_stop() closes it, waits for the device and returns the records in launch order. `mark`: the
// timer marks recorded before the launch (so the op whose marker pair encloses it launched it); `flops`: 2 M N K
// for a product, else 0.
struct KernelTime {
  std::string name;
  double ms = 0;
  double flops = 0;
  int64_t mark = 0;
  // The device-memory bytes it read and wrote, where the device counts them (the emulator: kernel_profile.cu); else -1.
  double readBytes = -1, writtenBytes = -1;
};
void kernel_profile_start();
std::vector<KernelTime> kernel_profile_stop();

// Step graphs (kernels/graph_capture.cu): the ops a training step launches, captured once per padded
// batch shape and replayed. A session binds the step's small host arrays (ids, mask, keepRows: what the
// ops receive as host pointers) to device buffers of the given sizes, refilled before each replay; the
// dropout offsets of a replay are those of the capture plus `offsetDelta`. maxRows: the token rows the
// session's embedding_backwards cover in all (one per micro-batch). A session made with a `peer` joins the peer's
// group: one stream (replays run in launch order), one divergence flag, one set of launches in flight.
struct GraphSession;
struct HostArray {
  const void* data;
  size_t bytes;
};
GraphSession* graph_session_create(const std::vector<size_t>& boundBytes, int64_t maxRows, GraphSession* peer);
void graph_session_destroy(GraphSession* s) noexcept;
// Captures what `record` launches (it runs the ops; nothing executes) as a new graph of the session; the
// ops must receive host arrays inside `arrays` (the session's bound arrays, at their addresses now).
// Returns the graph's index. A failed capture throws and leaves the session as it was.
int graph_capture(GraphSession* s, const std::vector<HostArray>& arrays, const std::function<void()>& record);
// Copies `arrays` into the bound buffers and replays graph `graph` without waiting for the GPU; a captured
// AdamW step runs at learning rate `lr` and (1-based) step `step`, unless a step of the group diverged
// since the flag was last cleared (clearSkip clears it first). After the replay, the graph's results and
// the device ranges `readback` are copied to pinned host memory. Returns the launch's ticket for
// graph_results; the group keeps the last 2 launches' results.
int64_t graph_launch(GraphSession* s, int graph, const std::vector<HostArray>& arrays, uint64_t offsetDelta, double lr,
                     int64_t step, const std::vector<HostArray>& readback, bool clearSkip);
// What launch `ticket` left for the host (waits for that launch only): each loss op's result in capture
// order (loss times its weight, or the first non-finite input's code), each sum of squares, and the
// readback ranges as floats.
enum class ResultKind { kLoss, kSumSquares };
struct GraphResult {
  ResultKind kind;
  double value;
  int nonFinite;
};
struct GraphReadback {
  std::vector<GraphResult> results;
  std::vector<std::vector<float>> readback;
};
GraphReadback graph_results(GraphSession* s, int64_t ticket);
// While this thread captures a step graph: the `count` ints at `host` (inside one of its bound arrays) index a table
// of `limit` rows, so every replay of the graph first checks the ints it is given there, as the op checked these
// ("name[r] = v is out of range for table (limit rows)"): a replayed kernel given an id out of range would read or
// write outside the table, and on a GPU such a fault ends the process's CUDA context. Not capturing: nothing.
void capture_index_limit(const int32_t* host, int64_t count, int64_t limit, const char* name, const char* table);

}  // namespace simcsepp::cuda
