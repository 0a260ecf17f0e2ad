// Stream capture, graphs and deferred execution, emulated. Work that is not captured runs when the host
// waits for it (deferred execution, internal.h), or when it is issued under CUEMU_DEFER=0. A
// capturing stream instead appends each launch, device copy and memset to its capture as a closure
// (a launch keeps a copy of its argument block); cudaStreamEndCapture hands the list over as a graph,
// and cudaGraphLaunch runs it in order on the launch stream. Kernel arguments are fixed at capture, as
// on a GPU: a replay reads whatever device memory its pointers address at that moment.
//
// CUDA's capture rules that the emulator enforces, so that code which would fail on a GPU fails here:
// a synchronising call (cudaStreamSynchronize, cudaDeviceSynchronize, cudaMemcpy, cudaMemset), cudaMalloc
// or cudaFree from the capturing thread, a captured copy to or from host memory, and work on the legacy
// default stream while a stream captures are errors and invalidate the capture (cudaStreamEndCapture
// then fails with cudaErrorStreamCaptureInvalidated).
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "internal.h"

namespace cuemu::detail {

namespace {

struct Capture {
  std::thread::id thread;
  std::vector<StreamOp> ops;
  std::string invalidatedBy;  // empty while the capture is valid
};

std::map<cudaStream_t, Capture>& captures() {
  static auto* m = new std::map<cudaStream_t, Capture>();
  return *m;
}

bool legacy(cudaStream_t s) { return s == nullptr || s == cudaStreamLegacy; }

cudaError_t invalidate(Capture& c, cudaError_t e, const std::string& why) {
  if (c.invalidatedBy.empty()) c.invalidatedBy = why;
  return set_error(e, why);
}

}  // namespace

namespace {

struct Deferred {
  uint64_t seq;
  cudaStream_t stream;
  StreamOp op;
};

std::deque<Deferred>& queue() {
  static auto* q = new std::deque<Deferred>();
  return *q;
}
uint64_t g_issued = 0;
int g_replaying = 0;  // > 0 while queued work runs: the ops it issues run at once

// Not capturing: queue the op (deferred execution) or tell the caller to run it.
CaptureAction run_or_defer(cudaStream_t stream, const StreamOp& op) {
  if (!deferring() || g_replaying > 0) return CaptureAction::Run;
  defer(stream, op);
  return CaptureAction::Recorded;
}

}  // namespace

bool deferring() {
  static const bool on = [] {
    const char* v = std::getenv("CUEMU_DEFER");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return on;
}

uint64_t defer(cudaStream_t stream, StreamOp op) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  queue().push_back(Deferred{++g_issued, stream, std::move(op)});
  return g_issued;
}

cudaError_t run_deferred(uint64_t seq) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  auto& q = queue();
  ++g_replaying;
  cudaError_t e = cudaSuccess;
  while (!q.empty() && q.front().seq <= seq) {
    Deferred d = std::move(q.front());
    q.pop_front();
    e = d.op(d.stream);
    if (e != cudaSuccess) {
      q.clear();
      break;
    }
  }
  --g_replaying;
  return e;
}

bool capturing(cudaStream_t stream) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  return captures().count(stream) != 0;
}

CaptureAction capture_stream_op(cudaStream_t stream, const char* what, bool touchesHost, const StreamOp& op,
                                cudaError_t* error) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  auto& all = captures();
  if (all.empty()) return run_or_defer(stream, op);
  if (legacy(stream)) {
    // The legacy stream waits for every blocking stream: it would join the capture implicitly.
    for (auto& [s, c] : all)
      *error = invalidate(c, cudaErrorStreamCaptureImplicit,
                          std::string(what) + " on the legacy default stream while another stream is capturing");
    return CaptureAction::Failed;
  }
  const auto it = all.find(stream);
  if (it == all.end()) return run_or_defer(stream, op);
  Capture& c = it->second;
  if (touchesHost) {
    *error = invalidate(c, cudaErrorStreamCaptureUnsupported,
                        std::string(what) + " to or from host memory while the stream is capturing");
    return CaptureAction::Failed;
  }
  c.ops.push_back(op);
  return CaptureAction::Recorded;
}

cudaError_t refuse_while_capturing(const char* what) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  cudaError_t e = cudaSuccess;
  for (auto& [s, c] : captures())
    if (c.thread == std::this_thread::get_id())
      e = invalidate(c, cudaErrorStreamCaptureUnsupported,
                     std::string(what) + " while this thread is capturing a stream");
  return e;
}

}  // namespace cuemu::detail

using namespace cuemu::detail;

struct CUgraph_st {
  std::vector<StreamOp> ops;
};
struct CUgraphExec_st {
  std::vector<StreamOp> ops;
};

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode /*mode*/) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamBeginCapture: unknown stream");
  if (legacy(stream) || stream == cudaStreamPerThread)
    return set_error(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture on the default stream");
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (captures().count(stream) != 0)
    return set_error(cudaErrorIllegalState, "cudaStreamBeginCapture: the stream is already capturing");
  // Queued work first (one valid schedule): run later, work queued on the legacy stream would count as
  // issued while this stream captures.
  if (const cudaError_t e = run_deferred(); e != cudaSuccess) return e;
  captures()[stream] = Capture{std::this_thread::get_id(), {}, {}};
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (graph == nullptr) return set_error(cudaErrorInvalidValue);
  *graph = nullptr;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  const auto it = captures().find(stream);
  if (it == captures().end())
    return set_error(cudaErrorIllegalState, "cudaStreamEndCapture: the stream is not capturing");
  Capture c = std::move(it->second);
  captures().erase(it);
  if (!c.invalidatedBy.empty())
    return set_error(cudaErrorStreamCaptureInvalidated, "the capture was invalidated by " + c.invalidatedBy);
  *graph = new CUgraph_st{std::move(c.ops)};
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (status == nullptr) return set_error(cudaErrorInvalidValue);
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamIsCapturing: unknown stream");
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  const auto it = captures().find(stream);
  *status = it == captures().end()             ? cudaStreamCaptureStatusNone
            : it->second.invalidatedBy.empty() ? cudaStreamCaptureStatusActive
                                               : cudaStreamCaptureStatusInvalidated;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long /*flags*/) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (exec == nullptr || graph == nullptr)
    return set_error(cudaErrorInvalidValue, "cudaGraphInstantiate of a null graph");
  *exec = new CUgraphExec_st{graph->ops};
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (exec == nullptr) return set_error(cudaErrorInvalidValue, "cudaGraphLaunch of a null graph");
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaGraphLaunch: unknown stream");
  cudaError_t e = cudaSuccess;
  const StreamOp replay = [exec](cudaStream_t s) {
    for (const StreamOp& op : exec->ops)
      if (const cudaError_t r = op(s); r != cudaSuccess) return r;
    return cudaSuccess;
  };
  switch (capture_stream_op(stream, "cudaGraphLaunch", false, replay, &e)) {
    case CaptureAction::Run: return replay(stream);
    case CaptureAction::Recorded: return cudaSuccess;
    case CaptureAction::Failed: return e;
  }
  return e;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  (void)run_deferred();  // a replay still queued holds it (a GPU frees it once the replay is done)
  delete exec;
  return cudaSuccess;
}
