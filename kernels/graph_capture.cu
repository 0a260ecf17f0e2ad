// Step graphs: capture of the ops a step launches, and their replay (cuda_api.h, graph_capture.cuh).
//
// A session belongs to one padded batch shape: it owns the device buffers its bound arrays are copied
// into before each replay, the device word holding the dropout offset delta, embedding_backward's group
// buffer and the graphs captured on it. Sessions made with a peer form a group (one per StepGraphs): they
// share a blocking stream (so that their replays run in launch order, and stay ordered with work on the
// legacy default stream), the sticky divergence flag and the pinned staging of the launches in flight.
//
// A launch does not wait for the GPU: its inputs go through pinned staging, and what the host reads back
// (the result slots, and device ranges the caller names) is copied into that staging after the replay,
// behind an event. So a training loop can launch step t+1 before it reads step t's numbers; kInFlight
// launches of a group may be unread at once. The divergence flag is why this is safe: a step whose losses
// or gradient norm are not finite sets it, and every captured AdamW of the group skips its update while it
// is set, including the replays launched before the host saw the bad step. The host clears it at a launch
// (clearSkip) once it has read every earlier launch.
#include <algorithm>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "bf16_handoff.cuh"
#include "bf16_mirror.cuh"
#include "common/embedding_runs.h"
#include "cuda_api.h"
#include "graph_capture.cuh"
#include "launch.cuh"

namespace simcsepp::cuda {

using detail::DeviceHeader;

// A launch's pinned host staging: its inputs (the bound arrays, the offset delta, embedding_backward's
// groups, AdamW's constants) are written here and copied to the device in stream order; after the replay,
// the result slots and the caller's readback ranges are copied back here, and `done` is recorded.
struct Staging {
  char* host = nullptr;  // cudaMallocHost
  size_t bytes = 0;
  cudaEvent_t done = nullptr;
  int64_t ticket = -1;  // the launch it holds (-1: none yet)
  struct ResultDesc {
    ResultKind kind;
    double count, weight;
    int slot;
  };
  std::vector<ResultDesc> results;                  // the replayed graph's results (a copy: the session may go first)
  size_t resultsAt = 0;                             // where the result slots' copy starts
  std::vector<std::pair<size_t, size_t>> readback;  // (offset, bytes) of each readback range
};

constexpr int kInFlight = 2;

// What the sessions of a group share (see the top of this file).
struct GraphGroup {
  cudaStream_t stream = nullptr;
  int* skip = nullptr;  // device int: a step of the group diverged (sticky until a launch clears it)
  int sessions = 0;
  int64_t launches = 0;  // tickets handed out; launch t uses staging[t % kInFlight]
  Staging staging[kInFlight];
};

struct GraphSession {
  struct Bound {
    size_t bytes = 0;
    void* device = nullptr;
    const char* host = nullptr;  // its host address during the capture under way
  };
  struct GroupsRecipe {
    int index[3] = {-1, -1, -1};   // bound arrays holding ids, posIds, typeIds (-1: no gradient)
    size_t offset[3] = {0, 0, 0};  // the first id's byte offset in that array (a micro-batch's rows)
    int64_t BT = 0;
    size_t at = 0;  // where its groups go in the session's group buffer (ints)
  };
  // What a captured graph leaves on the device for the host: loss headers and sums of squares.
  struct AdamwCall {
    double beta1, beta2, eps, weightDecay;
    int slot;
  };
  // Ints of a bound array that index a table (capture_index_limit): checked before each replay.
  struct IndexLimit {
    int array;
    size_t offset;  // bytes into the array
    int64_t count, limit;
    std::string name, table;
  };
  // One captured graph: its executable, its results and its AdamW calls (their constants slots).
  struct Graph {
    cudaGraphExec_t exec = nullptr;
    std::vector<Staging::ResultDesc> results;
    std::vector<AdamwCall> adamw;
    std::vector<IndexLimit> indexLimits;
    std::vector<uint64_t> mirrorSerials;  // the bf16 weight mirrors the capture touched (bf16_mirror.cuh)
    bf16mirror::GraphRecord mirrors;
  };
  GraphGroup* group = nullptr;
  cudaStream_t stream = nullptr;  // the group's
  std::vector<Bound> bound;
  uint64_t* delta = nullptr;
  int32_t* groups = nullptr;
  size_t groupsInts = 0;
  std::vector<GroupsRecipe> recipes;  // one per captured embedding_backward (one per micro-batch)
  size_t groupsUsed = 0;              // ints of `groups` the recipes take
  DeviceHeader* slots = nullptr;      // kResultSlots result slots, shared by the session's graphs in turn
  int slotsUsed = 0;
  AdamwConstants* constants = nullptr;  // kAdamwSlots
  int adamwUsed = 0;
  Graph pending;  // the graph being captured
  std::vector<Graph> graphs;
};

namespace {

constexpr int kResultSlots = 16;
constexpr int kAdamwSlots = 8;

thread_local GraphSession* t_capturing = nullptr;
int g_sessions = 0;  // live sessions: the workspace then retires buffers instead of freeing them

// A session's group buffer for embedding_backwards over at most maxRows rows in all (micro-batches of the
// bound ids, each at least one row): their embedding_groups_ints (at most 2 + 19·BT each) add up to at most this.
size_t session_groups_ints(int64_t maxRows) { return static_cast<size_t>(std::max<int64_t>(maxRows, 1)) * 21; }

// The first of the session's bound arrays holding the host range [h, h + bytes) during a capture, or -1.
int bound_index(const GraphSession& s, const char* h, size_t bytes) {
  for (size_t i = 0; i < s.bound.size(); ++i)
    if (h >= s.bound[i].host && h + bytes <= s.bound[i].host + s.bound[i].bytes) return static_cast<int>(i);
  return -1;
}

void group_destroy(GraphGroup* g) noexcept {
  if (g->stream != nullptr) (void)cudaStreamSynchronize(g->stream);
  for (Staging& st : g->staging) {
    if (st.host != nullptr) (void)cudaFreeHost(st.host);
    if (st.done != nullptr) (void)cudaEventDestroy(st.done);
  }
  free_device(g->skip);
  if (g->stream != nullptr) (void)cudaStreamDestroy(g->stream);
  (void)cudaGetLastError();
  delete g;
}

GraphGroup* group_create() {
  auto* g = new GraphGroup();
  try {
    SIMCSEPP_CUDA_CHECK(cudaStreamCreate(&g->stream));  // blocking: ordered with the legacy stream
    g->skip = static_cast<int*>(malloc_device(sizeof(int)));
    memset_device(g->skip, 0, sizeof(int));
    for (Staging& st : g->staging) SIMCSEPP_CUDA_CHECK(cudaEventCreateWithFlags(&st.done, cudaEventDisableTiming));
  } catch (...) {
    group_destroy(g);
    throw;
  }
  return g;
}

}  // namespace

namespace detail {

cudaStream_t op_stream() { return t_capturing != nullptr ? t_capturing->stream : nullptr; }

bool capturing() { return t_capturing != nullptr; }

bool graph_sessions_live() { return g_sessions > 0; }

const void* bound_device_copy(const void* host, size_t bytes, const char* what) {
  if (host == nullptr) return nullptr;
  const auto* h = static_cast<const char*>(host);
  if (const int i = bound_index(*t_capturing, h, bytes); i >= 0) {
    const GraphSession::Bound& b = t_capturing->bound[static_cast<size_t>(i)];
    return static_cast<const char*>(b.device) + (h - b.host);
  }
  throw CudaError(std::string(what) +
                  ": a host array that is not bound to the step graph being captured (its "
                  "values would be frozen into the graph)");
}

const uint64_t* offset_delta() { return t_capturing != nullptr ? t_capturing->delta : nullptr; }

int32_t* capture_embedding_groups(const int32_t* ids, const int32_t* posIds, const int32_t* typeIds, int64_t BT) {
  GraphSession& s = *t_capturing;
  if (s.groupsUsed + embedding_groups_ints(BT) > s.groupsInts)
    throw CudaError("embedding_backward: more rows than the session's bound ids");
  GraphSession::GroupsRecipe r;
  r.BT = BT;
  r.at = s.groupsUsed;
  const int32_t* const arrays[3] = {ids, posIds, typeIds};
  const size_t bytes = static_cast<size_t>(BT) * sizeof(int32_t);
  for (int k = 0; k < 3; ++k) {
    if (arrays[k] == nullptr) continue;
    const auto* h = reinterpret_cast<const char*>(arrays[k]);
    r.index[k] = bound_index(s, h, bytes);
    if (r.index[k] < 0) throw CudaError("embedding_backward: ids that are not a bound array of the step graph");
    r.offset[k] = static_cast<size_t>(h - s.bound[static_cast<size_t>(r.index[k])].host);
  }
  s.recipes.push_back(r);
  s.groupsUsed += embedding_groups_ints(BT);
  return s.groups + r.at;
}

namespace {

// The next free result slot of the capturing session, recorded for the graph being captured.
DeviceHeader* take_result_slot(ResultKind kind, double count, double weight) {
  GraphSession& s = *t_capturing;
  if (s.slotsUsed >= kResultSlots) throw CudaError("a step graph reads back more than 16 results");
  s.pending.results.push_back({kind, count, weight, s.slotsUsed});
  return s.slots + s.slotsUsed++;
}

// Sets skip when a loss header of the graph so far flags a non-finite input or holds a non-finite sum,
// or a sum of squares is not finite. Never clears it: a replay launched before the host read a diverged
// step must not update the weights either.
__global__ void step_ok_kernel(const DeviceHeader* slots, int first, int count, int* skip) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  int bad = 0;
  for (int i = first; i < first + count; ++i) bad |= slots[i].flag != 0 || !isfinite(slots[i].loss);
  if (bad != 0) *skip = 1;
}

}  // namespace

LossResult loss_result(const DeviceHeader* hdr, double count, double weight, cudaStream_t stream) {
  if (!capturing()) return read_loss(hdr, count, weight, stream);
  DeviceHeader* slot = take_result_slot(ResultKind::kLoss, count, weight);
  SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(slot, hdr, sizeof(DeviceHeader), cudaMemcpyDeviceToDevice, stream));
  return LossResult{};
}

void capture_note_mirror(uint64_t serial) {
  std::vector<uint64_t>& seen = t_capturing->pending.mirrorSerials;
  if (std::find(seen.begin(), seen.end(), serial) == seen.end()) seen.push_back(serial);
}

double* capture_sum_squares_slot() { return &take_result_slot(ResultKind::kSumSquares, 1.0, 1.0)->loss; }

CapturedAdamw capture_adamw(double beta1, double beta2, double eps, double weightDecay) {
  GraphSession& s = *t_capturing;
  if (s.adamwUsed >= kAdamwSlots) throw CudaError("a step graph holds more than 8 AdamW calls");
  const int first = s.pending.results.empty() ? 0 : s.pending.results.front().slot;
  const int count = static_cast<int>(s.pending.results.size());
  launch("step_ok_kernel", step_ok_kernel, 1, 32, 0, s.stream, s.slots, first, count, s.group->skip);
  s.pending.adamw.push_back({beta1, beta2, eps, weightDecay, s.adamwUsed});
  return CapturedAdamw{s.constants + s.adamwUsed++, s.group->skip};
}

int64_t embedding_run_slots(int64_t BT) { return BT > kEmbeddingRun ? 3 * BT / 128 + 3 : 0; }

int64_t embedding_max_finishes(int64_t BT) { return BT > kEmbeddingRun ? 3 * BT / (kEmbeddingRun + 1) : 0; }

size_t embedding_groups_ints(int64_t BT) {
  const auto n = static_cast<size_t>(BT);
  return kEmbeddingHeaderInts + 3 * n * kEmbeddingRunInts +
         static_cast<size_t>(embedding_max_finishes(BT)) * kEmbeddingFinishInts + 3 * n;
}

void build_embedding_groups(std::vector<int32_t>& buf, const int32_t* const ids[3], int64_t BT) {
  thread_local std::vector<uint64_t> keys;  // grow-only: a replay allocates nothing
  thread_local std::vector<int32_t> order, runs, finishes, rows;
  runs.clear();
  finishes.clear();
  rows.clear();
  int32_t slots = 0;
  for (int32_t k = 0; k < 3; ++k) {
    if (ids[k] == nullptr) continue;
    const auto base = static_cast<int32_t>(rows.size());
    group_rows_by_id(ids[k], BT, keys, order, [&](int32_t id, int64_t begin, int64_t end) {
      const int64_t n = embedding_runs(end - begin);
      if (n > 1) finishes.insert(finishes.end(), {k, id, slots, static_cast<int32_t>(n)});
      for (int64_t r0 = begin; r0 < end; r0 += kEmbeddingRun) {
        const int64_t r1 = std::min(end, r0 + kEmbeddingRun);
        runs.insert(runs.end(),
                    {k, id, base + static_cast<int32_t>(r0), base + static_cast<int32_t>(r1), n > 1 ? slots++ : -1});
      }
    });
    rows.insert(rows.end(), order.begin(), order.end());
  }
  const size_t nRuns = runs.size() / kEmbeddingRunInts, nFinishes = finishes.size() / kEmbeddingFinishInts;
  buf.resize(kEmbeddingHeaderInts + runs.size() + finishes.size() + rows.size());
  buf[0] = static_cast<int32_t>(nRuns);
  buf[1] = static_cast<int32_t>(nFinishes);
  auto at = std::copy(runs.begin(), runs.end(), buf.begin() + kEmbeddingHeaderInts);
  at = std::copy(finishes.begin(), finishes.end(), at);
  std::copy(rows.begin(), rows.end(), at);
}

}  // namespace detail

namespace {

void check_arrays(const GraphSession& s, const std::vector<HostArray>& arrays) {
  if (arrays.size() != s.bound.size())
    throw CudaError("step graph: " + std::to_string(arrays.size()) + " arrays for a session of " +
                    std::to_string(s.bound.size()));
  for (size_t i = 0; i < arrays.size(); ++i)
    if (arrays[i].bytes != s.bound[i].bytes)
      throw CudaError("step graph: array " + std::to_string(i) + " holds " + std::to_string(arrays[i].bytes) +
                      " bytes, the session was made for " + std::to_string(s.bound[i].bytes));
}

// The ids a replay of `g` is given, checked as the eager ops check theirs (after check_arrays: the ranges fit).
void check_index_limits(const GraphSession::Graph& g, const std::vector<HostArray>& arrays) {
  for (const GraphSession::IndexLimit& l : g.indexLimits) {
    const char* at = static_cast<const char*>(arrays[static_cast<size_t>(l.array)].data) + l.offset;
    for (int64_t r = 0; r < l.count; ++r) {
      int32_t v;
      std::memcpy(&v, at + r * sizeof(int32_t), sizeof v);  // (the array may be of another type, any alignment)
      if (v < 0 || v >= l.limit)
        throw CudaError("step graph: " + l.name + "[" + std::to_string(r) + "] = " + std::to_string(v) +
                        " is out of range for " + l.table + " (" + std::to_string(l.limit) + " rows)");
    }
  }
}

}  // namespace

GraphSession* graph_session_create(const std::vector<size_t>& boundBytes, int64_t maxRows, GraphSession* peer) {
  require();
  // (No <memory> here: the emulated build's __noinline__ macro clashes with it.)
  auto* s = new GraphSession();
  try {
    s->group = peer != nullptr ? peer->group : group_create();
    ++s->group->sessions;
    s->stream = s->group->stream;
    for (const size_t bytes : boundBytes)
      s->bound.push_back({bytes, malloc_device(std::max<size_t>(bytes, 4)), nullptr});
    s->delta = static_cast<uint64_t*>(malloc_device(sizeof(uint64_t)));
    s->groupsInts = session_groups_ints(maxRows);
    s->slots = static_cast<DeviceHeader*>(malloc_device(kResultSlots * sizeof(DeviceHeader)));
    memset_device(s->slots, 0, kResultSlots * sizeof(DeviceHeader));  // a sum-of-squares slot's flag stays 0
    s->constants = static_cast<AdamwConstants*>(malloc_device(kAdamwSlots * sizeof(AdamwConstants)));
    s->groups = static_cast<int32_t*>(malloc_device(s->groupsInts * sizeof(int32_t)));
  } catch (...) {
    graph_session_destroy(s);
    throw;
  }
  ++g_sessions;
  return s;
}

void graph_session_destroy(GraphSession* s) noexcept {
  if (s == nullptr) return;
  // A replay of this session may still run on the group's stream.
  if (s->stream != nullptr) (void)cudaStreamSynchronize(s->stream);
  for (const GraphSession::Graph& g : s->graphs) (void)cudaGraphExecDestroy(g.exec);
  for (const GraphSession::Bound& b : s->bound) free_device(b.device);
  free_device(s->delta);
  free_device(s->groups);
  free_device(s->slots);
  free_device(s->constants);
  if (s->groups != nullptr) --g_sessions;  // counted once fully created
  if (s->group != nullptr && --s->group->sessions == 0) group_destroy(s->group);
  (void)cudaGetLastError();
  delete s;
}

void capture_index_limit(const int32_t* host, int64_t count, int64_t limit, const char* name, const char* table) {
  if (t_capturing == nullptr || host == nullptr || count <= 0) return;
  GraphSession& s = *t_capturing;
  const auto* h = reinterpret_cast<const char*>(host);
  const int i = bound_index(s, h, static_cast<size_t>(count) * sizeof(int32_t));
  if (i < 0) return;  // (the op refuses a host array that is not bound)
  const size_t offset = static_cast<size_t>(h - s.bound[static_cast<size_t>(i)].host);
  std::vector<GraphSession::IndexLimit>& limits = s.pending.indexLimits;
  // The forward and backward of a micro-batch check the same ids once.
  for (const GraphSession::IndexLimit& l : limits)
    if (l.array == i && l.offset == offset && l.count == count && l.limit == limit) return;
  limits.push_back({i, offset, count, limit, name, table});
}

int graph_capture(GraphSession* s, const std::vector<HostArray>& arrays, const std::function<void()>& record) {
  if (t_capturing != nullptr) throw CudaError("a step graph is already being captured on this thread");
  check_arrays(*s, arrays);
  for (size_t i = 0; i < arrays.size(); ++i) s->bound[i].host = static_cast<const char*>(arrays[i].data);
  const size_t recipes = s->recipes.size(), groupsUsed = s->groupsUsed;
  const int slotsUsed = s->slotsUsed, adamwUsed = s->adamwUsed;
  s->pending = GraphSession::Graph{};
  // Whatever fails leaves the session as it was.
  const auto undo = [&] {
    s->recipes.resize(recipes);
    s->groupsUsed = groupsUsed;
    s->slotsUsed = slotsUsed;
    s->adamwUsed = adamwUsed;
    s->pending = GraphSession::Graph{};
  };
  bf16mirror::before_capture(s->stream);
  // Handoffs (bf16_handoff.cuh) do not cross a capture's edges: one made before would be read by kernels that
  // run at each replay, one made inside is only written when the graph runs.
  bf16handoff::forget();
  SIMCSEPP_CUDA_CHECK(cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal));
  t_capturing = s;
  cudaGraph_t graph = nullptr;
  try {
    record();
  } catch (...) {
    t_capturing = nullptr;
    bf16handoff::forget();
    (void)cudaStreamEndCapture(s->stream, &graph);
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    undo();
    throw;
  }
  t_capturing = nullptr;
  bf16handoff::forget();
  const cudaError_t e = cudaStreamEndCapture(s->stream, &graph);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    undo();
    throw CudaError(std::string("capturing the step graph failed: ") + cudaGetErrorString(e));
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t ie = cudaGraphInstantiate(&exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  if (ie != cudaSuccess) {
    (void)cudaGetLastError();
    undo();
    throw CudaError(std::string("instantiating the step graph failed: ") + cudaGetErrorString(ie));
  }
  s->pending.exec = exec;
  s->pending.mirrors = bf16mirror::record_capture(s->pending.mirrorSerials);
  s->graphs.push_back(std::move(s->pending));
  s->pending = GraphSession::Graph{};
  return static_cast<int>(s->graphs.size()) - 1;
}

namespace {

// Grows a staging buffer to `bytes` (its previous launch has completed: the caller waited for it).
void reserve_staging(Staging& st, size_t bytes) {
  if (bytes <= st.bytes) return;
  if (st.host != nullptr) SIMCSEPP_CUDA_CHECK(cudaFreeHost(st.host));
  st.host = nullptr;
  st.bytes = 0;
  void* p = nullptr;
  SIMCSEPP_CUDA_CHECK(cudaMallocHost(&p, bytes));
  st.host = static_cast<char*>(p);
  st.bytes = bytes;
}

size_t align16(size_t n) { return (n + 15) / 16 * 16; }

}  // namespace

int64_t graph_launch(GraphSession* s, int graph, const std::vector<HostArray>& arrays, uint64_t offsetDelta, double lr,
                     int64_t step, const std::vector<HostArray>& readback, bool clearSkip) {
  require();
  if (graph < 0 || static_cast<size_t>(graph) >= s->graphs.size())
    throw CudaError("step graph " + std::to_string(graph) + " does not exist in this session");
  check_arrays(*s, arrays);
  const GraphSession::Graph& g = s->graphs[static_cast<size_t>(graph)];
  check_index_limits(g, arrays);
  GraphGroup& group = *s->group;
  const int64_t ticket = group.launches;
  Staging& st = group.staging[ticket % kInFlight];
  // The launch kInFlight ago used this staging: its copies must be done before it is overwritten.
  if (st.ticket >= 0) SIMCSEPP_CUDA_CHECK(cudaEventSynchronize(st.done));

  // Layout: the bound arrays, the delta, AdamW's constants, the embedding groups; then the result slots
  // and the readback ranges (16-byte aligned pieces).
  size_t at = 0;
  std::vector<size_t> arrayAt;
  for (const HostArray& a : arrays) {
    arrayAt.push_back(at);
    at += align16(a.bytes);
  }
  const size_t deltaAt = at;
  at += align16(sizeof(uint64_t));
  const size_t constantsAt = at;
  at += align16(g.adamw.size() * sizeof(AdamwConstants));
  std::vector<std::vector<int32_t>> groupBufs(s->recipes.size());
  std::vector<size_t> groupsAt;
  for (size_t r = 0; r < s->recipes.size(); ++r) {
    const GraphSession::GroupsRecipe& rec = s->recipes[r];
    const int32_t* ids[3] = {};
    for (int k = 0; k < 3; ++k)
      if (rec.index[k] >= 0)
        ids[k] = reinterpret_cast<const int32_t*>(
            static_cast<const char*>(arrays[static_cast<size_t>(rec.index[k])].data) + rec.offset[k]);
    detail::build_embedding_groups(groupBufs[r], ids, rec.BT);
    groupsAt.push_back(at);
    at += align16(groupBufs[r].size() * sizeof(int32_t));
  }
  const size_t resultsAt = at;
  if (!g.results.empty()) at += align16(kResultSlots * sizeof(DeviceHeader));
  std::vector<std::pair<size_t, size_t>> readbackAt;
  for (const HostArray& r : readback) {
    readbackAt.emplace_back(at, r.bytes);
    at += align16(r.bytes);
  }
  reserve_staging(st, std::max<size_t>(at, 16));
  st.ticket = -1;  // until the launch below is queued

  // Inputs, through the pinned staging: stream-ordered copies that never wait for the replays queued
  // before them (a copy from pageable memory may).
  char* h = st.host;
  for (size_t i = 0; i < arrays.size(); ++i)
    if (arrays[i].bytes > 0) {
      std::memcpy(h + arrayAt[i], arrays[i].data, arrays[i].bytes);
      SIMCSEPP_CUDA_CHECK(
          cudaMemcpyAsync(s->bound[i].device, h + arrayAt[i], arrays[i].bytes, cudaMemcpyHostToDevice, s->stream));
    }
  std::memcpy(h + deltaAt, &offsetDelta, sizeof(offsetDelta));
  SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(s->delta, h + deltaAt, sizeof(offsetDelta), cudaMemcpyHostToDevice, s->stream));
  // AdamW's constants for this replay's learning rate and step (formed as the eager op forms them).
  for (size_t i = 0; i < g.adamw.size(); ++i) {
    const GraphSession::AdamwCall& a = g.adamw[i];
    const AdamwConstants k = adamw_constants(lr, a.beta1, a.beta2, a.eps, a.weightDecay, step);
    char* dst = h + constantsAt + i * sizeof(AdamwConstants);
    std::memcpy(dst, &k, sizeof(k));
    SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(s->constants + a.slot, dst, sizeof(k), cudaMemcpyHostToDevice, s->stream));
  }
  for (size_t r = 0; r < groupBufs.size(); ++r) {
    const size_t bytes = groupBufs[r].size() * sizeof(int32_t);
    std::memcpy(h + groupsAt[r], groupBufs[r].data(), bytes);
    SIMCSEPP_CUDA_CHECK(
        cudaMemcpyAsync(s->groups + s->recipes[r].at, h + groupsAt[r], bytes, cudaMemcpyHostToDevice, s->stream));
  }
  if (clearSkip) SIMCSEPP_CUDA_CHECK(cudaMemsetAsync(group.skip, 0, sizeof(int), s->stream));
  bf16mirror::before_replay(g.mirrors, s->stream);
  bf16handoff::forget();  // the replay may rewrite this thread's handoff buffer
  SIMCSEPP_CUDA_CHECK(cudaGraphLaunch(g.exec, s->stream));
  bf16mirror::after_replay(g.mirrors);
  // Outputs: copied after the replay, before any later launch can overwrite them.
  if (!g.results.empty())
    SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(h + resultsAt, s->slots, kResultSlots * sizeof(DeviceHeader),
                                        cudaMemcpyDeviceToHost, s->stream));
  for (size_t i = 0; i < readback.size(); ++i)
    if (readback[i].bytes > 0)
      SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(h + readbackAt[i].first, readback[i].data, readback[i].bytes,
                                          cudaMemcpyDeviceToHost, s->stream));
  SIMCSEPP_CUDA_CHECK(cudaEventRecord(st.done, s->stream));
  detail::end_op(s->stream);
  st.results = g.results;
  st.resultsAt = resultsAt;
  st.readback = std::move(readbackAt);
  st.ticket = ticket;
  ++group.launches;
  return ticket;
}

GraphReadback graph_results(GraphSession* s, int64_t ticket) {
  require();
  GraphGroup& group = *s->group;
  if (ticket < 0 || ticket >= group.launches)
    throw CudaError("step graph launch " + std::to_string(ticket) + " was not made in this session's group");
  const Staging& st = group.staging[ticket % kInFlight];
  if (st.ticket != ticket)
    throw CudaError("step graph launch " + std::to_string(ticket) +
                    ": its results were overwritten by a later launch (" + std::to_string(kInFlight) +
                    " launches are kept)");
  SIMCSEPP_CUDA_CHECK(cudaEventSynchronize(st.done));
  GraphReadback out;
  for (const Staging::ResultDesc& r : st.results) {
    DeviceHeader d;
    std::memcpy(&d, st.host + st.resultsAt + static_cast<size_t>(r.slot) * sizeof(DeviceHeader), sizeof(d));
    if (r.kind == ResultKind::kSumSquares) {
      out.results.push_back({r.kind, d.loss, 0});
    } else {
      const int nonFinite = detail::decode_flag(d.flag);
      out.results.push_back({r.kind, nonFinite == kNone ? d.loss / r.count * r.weight : 0.0, nonFinite});
    }
  }
  for (const auto& [offset, bytes] : st.readback) {
    std::vector<float> v(bytes / sizeof(float));
    std::memcpy(v.data(), st.host + offset, v.size() * sizeof(float));
    out.readback.push_back(std::move(v));
  }
  return out;
}

}  // namespace simcsepp::cuda
