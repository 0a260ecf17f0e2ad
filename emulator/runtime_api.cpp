// The emulated CUDA runtime's errors, device, streams and events. Stream work is queued in issue order and
// runs when the host waits for it (deferred execution, graphs.cpp), which is one valid schedule of CUDA's
// stream semantics: every stream is trivially an ordered queue (and ordered with all the others), and the
// synchronising calls here run the queue up to what they wait for. With CUEMU_DEFER=0 work runs when it
// is issued instead.
#include <unistd.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <set>

#include "internal.h"

namespace cuemu::detail {

namespace {

thread_local cudaError_t t_last = cudaSuccess;
thread_local std::string t_report;  // for the last failure: appended to cudaGetErrorString of its code
thread_local cudaError_t t_reportCode = cudaSuccess;
thread_local std::string t_message;

// The device's fault (cuemu::clear_fault), under device_mutex(): set by a failed launch, kept until cleared.
cudaError_t g_fault = cudaSuccess;
std::string g_faultReport;

std::set<cudaStream_t>& streams() {
  static std::set<cudaStream_t>* s = new std::set<cudaStream_t>();
  return *s;
}

struct Event {
  bool recorded = false;
  std::chrono::steady_clock::time_point at;
  uint64_t seq = 0;                          // deferred: the queued record it waits for (0: none)
  uint64_t readBytes = 0, writtenBytes = 0;  // the device-memory traffic totals when it was reached (traffic.cpp)
};
// Reached: the time and the traffic totals of the work before it.
void reach(Event* e) {
  e->recorded = true;
  e->at = std::chrono::steady_clock::now();
  traffic_totals(&e->readBytes, &e->writtenBytes);
}
std::set<Event*>& events() {
  static std::set<Event*>* s = new std::set<Event*>();
  return *s;
}

const char* standard_text(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorStubLibrary: return "CUDA driver is a stub library";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorInvalidDeviceFunction: return "invalid device function";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorAssert: return "device-side assert triggered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
  }
  return "unrecognized error code";
}

}  // namespace

cudaError_t set_error(cudaError_t e, const std::string& report) {
  if (e == cudaSuccess) return e;
  t_last = e;
  if (!report.empty()) {
    t_report = report;
    t_reportCode = e;
  }
  return e;
}

cudaError_t record_fault(cudaError_t e, const std::string& report) {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (g_fault == cudaSuccess) {
    g_fault = e;
    g_faultReport = report;
  }
  return set_error(e, report);
}

cudaError_t faulted() {
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  return g_fault == cudaSuccess ? cudaSuccess : set_error(g_fault, g_faultReport);
}

bool valid_stream(cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread) return true;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  return streams().count(s) != 0;
}

}  // namespace cuemu::detail

void cuemu::clear_fault() {
  using namespace cuemu::detail;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  g_fault = cudaSuccess;
  g_faultReport.clear();
}

using namespace cuemu::detail;

const char* cudaGetErrorString(cudaError_t e) {
  if (e == t_reportCode && !t_report.empty()) {
    t_message = std::string(standard_text(e)) + " [CUDA emulator: " + t_report + "]";
    return t_message.c_str();
  }
  return standard_text(e);
}

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
#define SIMCSEPP_EMU_NAME(x) \
  case x: return #x;
    SIMCSEPP_EMU_NAME(cudaSuccess)
    SIMCSEPP_EMU_NAME(cudaErrorInvalidValue)
    SIMCSEPP_EMU_NAME(cudaErrorMemoryAllocation)
    SIMCSEPP_EMU_NAME(cudaErrorInitializationError)
    SIMCSEPP_EMU_NAME(cudaErrorInvalidConfiguration)
    SIMCSEPP_EMU_NAME(cudaErrorInvalidDevicePointer)
    SIMCSEPP_EMU_NAME(cudaErrorInvalidMemcpyDirection)
    SIMCSEPP_EMU_NAME(cudaErrorStubLibrary)
    SIMCSEPP_EMU_NAME(cudaErrorInsufficientDriver)
    SIMCSEPP_EMU_NAME(cudaErrorInvalidDeviceFunction)
    SIMCSEPP_EMU_NAME(cudaErrorNoDevice)
    SIMCSEPP_EMU_NAME(cudaErrorInvalidDevice)
    SIMCSEPP_EMU_NAME(cudaErrorInvalidResourceHandle)
    SIMCSEPP_EMU_NAME(cudaErrorNotReady)
    SIMCSEPP_EMU_NAME(cudaErrorIllegalAddress)
    SIMCSEPP_EMU_NAME(cudaErrorLaunchOutOfResources)
    SIMCSEPP_EMU_NAME(cudaErrorAssert)
    SIMCSEPP_EMU_NAME(cudaErrorMisalignedAddress)
    SIMCSEPP_EMU_NAME(cudaErrorLaunchFailure)
    SIMCSEPP_EMU_NAME(cudaErrorIllegalState)
    SIMCSEPP_EMU_NAME(cudaErrorStreamCaptureUnsupported)
    SIMCSEPP_EMU_NAME(cudaErrorStreamCaptureInvalidated)
    SIMCSEPP_EMU_NAME(cudaErrorStreamCaptureImplicit)
#undef SIMCSEPP_EMU_NAME
  }
  return "cudaErrorUnknown";
}

cudaError_t cudaGetLastError() {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;  // sticky: not cleared
  const cudaError_t e = t_last;
  t_last = cudaSuccess;
  return e;
}

cudaError_t cudaPeekAtLastError() {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  return t_last;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return set_error(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return set_error(cudaErrorInvalidValue);
  if (device != 0) return set_error(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof(prop->name), "simcsepp CUDA emulator (host CPU)");
  prop->totalGlobalMem = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<size_t>(sysconf(_SC_PAGESIZE));
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = kDynamicSmemOptin;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = INT_MAX;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->major = 9;  // the newest architecture the real build targets
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  // A small L2 (real GPUs of compute capability 8.0 and up have 6 to 96 MB), so that the ops that cut their rows
  // into slabs of half the L2 (kernels/l2_slab.cuh) do so at the sizes of the tests: at BERT-base's width a slab is
  // one 128-row chunk.
  prop->l2CacheSize = 1 << 20;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : set_error(cudaErrorInvalidDevice); }

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return set_error(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* version) {
  if (version == nullptr) return set_error(cudaErrorInvalidValue);
  *version = CUDART_VERSION;
  return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* version) { return cudaDriverGetVersion(version); }

cudaError_t cudaDeviceSynchronize() {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (const cudaError_t e = refuse_while_capturing("cudaDeviceSynchronize"); e != cudaSuccess) return e;
  return run_deferred();
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned /*flags*/) {
  if (stream == nullptr) return set_error(cudaErrorInvalidValue);
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  *stream = reinterpret_cast<cudaStream_t>(new char);  // a unique handle
  streams().insert(*stream);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  (void)run_deferred();  // its queued work still runs (as on a GPU), and names the stream
  if (streams().erase(stream) == 0)
    return set_error(cudaErrorInvalidResourceHandle, "cudaStreamDestroy of a stream that does not exist");
  delete reinterpret_cast<char*>(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (!valid_stream(stream))
    return set_error(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize of an unknown stream");
  if (const cudaError_t e = refuse_while_capturing("cudaStreamSynchronize"); e != cudaSuccess) return e;
  return run_deferred();
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned /*flags*/) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: unknown stream");
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  if (events().count(reinterpret_cast<Event*>(event)) == 0)
    return set_error(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: unknown event");
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, 0); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned /*flags*/) {
  if (event == nullptr) return set_error(cudaErrorInvalidValue);
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  Event* e = new Event();
  events().insert(e);
  *event = reinterpret_cast<cudaEvent_t>(e);
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  (void)run_deferred();  // a queued record of it may still be pending
  Event* e = reinterpret_cast<Event*>(event);
  if (events().erase(e) == 0) return set_error(cudaErrorInvalidResourceHandle, "cudaEventDestroy of an unknown event");
  delete e;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (!valid_stream(stream)) return set_error(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown stream");
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  Event* e = reinterpret_cast<Event*>(event);
  if (events().count(e) == 0) return set_error(cudaErrorInvalidResourceHandle, "cudaEventRecord: unknown event");
  if (deferring() && !capturing(stream)) {
    // Reached once the work queued before it has run.
    e->seq = defer(stream, [e](cudaStream_t) {
      reach(e);
      return cudaSuccess;
    });
    return cudaSuccess;
  }
  reach(e);
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  Event* e = reinterpret_cast<Event*>(event);
  if (events().count(e) == 0) return set_error(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: unknown event");
  return e->seq != 0 ? run_deferred(e->seq) : cudaSuccess;
}

cudaError_t cudaEventQuery(cudaEvent_t event) { return cudaEventSynchronize(event); }

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (const cudaError_t f = faulted(); f != cudaSuccess) return f;
  if (ms == nullptr) return set_error(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  Event* a = reinterpret_cast<Event*>(start);
  Event* b = reinterpret_cast<Event*>(end);
  if (events().count(a) == 0 || events().count(b) == 0)
    return set_error(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: unknown event");
  if (!a->recorded || !b->recorded)
    return set_error(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: not recorded");
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return cudaSuccess;
}

cudaError_t cuemu::event_traffic(cudaEvent_t event, uint64_t* readBytes, uint64_t* writtenBytes) {
  if (readBytes == nullptr || writtenBytes == nullptr) return set_error(cudaErrorInvalidValue);
  std::lock_guard<std::recursive_mutex> lock(device_mutex());
  Event* e = reinterpret_cast<Event*>(event);
  if (events().count(e) == 0) return set_error(cudaErrorInvalidResourceHandle, "event_traffic: unknown event");
  if (!e->recorded) return set_error(cudaErrorInvalidResourceHandle, "event_traffic: not recorded");
  *readBytes = e->readBytes;
  *writtenBytes = e->writtenBytes;
  return cudaSuccess;
}
