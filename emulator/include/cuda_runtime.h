// simcsepp's CUDA host emulator: the stand-in for the toolkit's <cuda_runtime.h> in the emulated build
// (SIMCSEPP_CUDA=emulate). kernels/*.cu are compiled by the host C++ compiler with this header
// force-included, so the same source that nvcc compiles for the GPU runs on the CPU:
//
//   - qualifiers (__global__, __device__, __forceinline__, __launch_bounds__) are dropped; a kernel is a
//     plain function that the emulator calls once per thread, each thread a fiber with its own stack;
//   - __shared__ variables are `static thread_local`: blocks run one at a time on the launching OS thread,
//     so every thread (fiber) of a block sees the same storage, and the emulator knows where it lies;
//   - threadIdx, blockIdx, blockDim, gridDim read the running fiber's coordinates;
//   - __syncthreads() and the warp intrinsics (__shfl_*_sync, __any/__all/__ballot_sync) are collective:
//     a fiber arriving at one yields until every thread that must take part has arrived;
//   - atomics, the math intrinsics and the runtime API (memory, copies, streams, events) are here or in
//     emulator/runtime.cpp.
// Memory accesses of the kernel sources are checked because those files are compiled with
// -fsanitize=thread and the emulator supplies the __tsan_* hooks that instrumentation calls (see
// runtime.cpp): every load and store of kernel code is bounds-checked and race-checked. This header
// itself is compiled into those files, so anything here that touches memory on the emulator's behalf
// (atomics, warp data exchange) calls out to runtime.cpp, which is not instrumented.
#pragma once

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>

#define SIMCSEPP_CUDA_EMULATOR 1
#define CUDART_VERSION 13000

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// 4096-byte alignment leaves a gap after most shared arrays, so an overrun lands outside every variable.
#define __shared__ static thread_local __attribute__((aligned(4096)))

// ---------------------------------------------------------------------------------------------
// Vector and launch types.

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};
struct __attribute__((aligned(8))) float2 {
  float x, y;
};
struct __attribute__((aligned(16))) float4 {
  float x, y, z, w;
};
struct __attribute__((aligned(8))) int2 {
  int x, y;
};
struct __attribute__((aligned(16))) int4 {
  int x, y, z, w;
};
struct __attribute__((aligned(16))) double2 {
  double x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline double2 make_double2(double x, double y) { return {x, y}; }

// ---------------------------------------------------------------------------------------------
// Runtime API (the subset simcsepp uses, with the toolkit's names and error codes).

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInitializationError = 3,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevicePointer = 17,
  cudaErrorInvalidMemcpyDirection = 21,
  cudaErrorStubLibrary = 34,
  cudaErrorInsufficientDriver = 35,
  cudaErrorInvalidDeviceFunction = 98,
  cudaErrorNoDevice = 100,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorNotReady = 600,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorAssert = 710,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
  cudaErrorIllegalState = 401,
  cudaErrorStreamCaptureUnsupported = 900,
  cudaErrorStreamCaptureInvalidated = 901,
  cudaErrorStreamCaptureImplicit = 906,
};
typedef cudaError_t cudaError;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

typedef struct CUstream_st* cudaStream_t;
typedef struct CUevent_st* cudaEvent_t;
#define cudaStreamLegacy ((cudaStream_t)0x1)
#define cudaStreamPerThread ((cudaStream_t)0x2)
#define cudaStreamNonBlocking 0x01
#define cudaEventDefault 0x00
typedef struct CUgraph_st* cudaGraph_t;
typedef struct CUgraphExec_st* cudaGraphExec_t;
enum cudaStreamCaptureMode {
  cudaStreamCaptureModeGlobal = 0,
  cudaStreamCaptureModeThreadLocal = 1,
  cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
  cudaStreamCaptureStatusNone = 0,
  cudaStreamCaptureStatusActive = 1,
  cudaStreamCaptureStatusInvalidated = 2,
};
#define cudaEventDisableTiming 0x02

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;  // the dynamic shared memory a kernel may opt into (cudaFuncSetAttribute)
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major;
  int minor;
  int multiProcessorCount;
  int l2CacheSize;  // bytes
};

// Dynamic shared memory: a launch may ask for up to 48 KB, more once cudaFuncSetAttribute has raised the kernel's
// cudaFuncAttributeMaxDynamicSharedMemorySize, up to the device's opt-in limit (scheduler.cpp). Kernel code reaches
// it through cuemu::dynamic_shared(), which stands for `extern __shared__` on a GPU.
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};
enum cudaDeviceAttr {
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
template <class T>
cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaDriverGetVersion(int* version);
cudaError_t cudaRuntimeGetVersion(int* version);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);

cudaError_t cudaMalloc(void** ptr, size_t bytes);
cudaError_t cudaFree(void* ptr);
// Page-locked host memory: plain host memory here (what it buys on a GPU, copies that do not wait for
// the stream, has no meaning when work runs as it is issued); cudaFreeHost checks the pointer.
cudaError_t cudaMallocHost(void** ptr, size_t bytes);
cudaError_t cudaFreeHost(void* ptr);
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* totalBytes);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = 0);
cudaError_t cudaMemset(void* dst, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream = 0);

cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned flags = 0);
typedef void (*cudaHostFn_t)(void* userData);
// Runs fn(userData) on the host in stream order (captured as a host node, or queued with the stream's work).
cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* userData);
cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = 0);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

// Stream capture and graphs (emulator/graphs.cpp): a capturing stream records its launches, device
// copies and memsets in order; a graph replays them. What CUDA refuses while a stream captures is an
// error here too: synchronising calls, cudaMalloc/cudaFree and copies to or from (pageable) host memory
// from the capturing thread, and work on the legacy default stream; each invalidates the capture.
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

// ---------------------------------------------------------------------------------------------
// The emulator's interface to the kernel sources (implemented in emulator/runtime.cpp).

namespace cuemu {

// Coordinates of the emulated thread that is running now (one at a time).
struct ThreadCoords {
  uint3 threadIdx, blockIdx;
  dim3 blockDim, gridDim;
};
extern ThreadCoords* current;

// Block barrier with an optional reduction of `pred` over the block (op: 0 none, 1 count, 2 and, 3 or).
int syncthreads(int op, int pred, const char* file, int line);

// Warp collectives. Each lane contributes `value` (up to 8 bytes); the result is the lane's.
enum class WarpOp { ShflIdx, ShflUp, ShflDown, ShflXor, Any, All, Ballot, Sync, Match };
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int arg, int width, const char* file, int line);

// Atomic read-modify-write on device or shared memory, bounds-checked, exempt from race checks.
enum class AtomicOp { Add, Sub, Max, Min, Exch, Cas, And, Or, Xor, Inc, Dec };
enum class AtomicType { I32, U32, I64, U64, F32, F64 };
void atomic_rmw(void* address, AtomicOp op, AtomicType type, const void* operand, const void* compare, void* old,
                const char* file, int line);

void threadfence();

// Device-memory traffic (emulator/traffic.cpp), for the kernel profile's bytes: while counting is on, each launch
// adds the distinct 32-byte sectors of device memory it read and those it wrote, a copy and a fill the bytes they
// move in device memory, and add_traffic what host code computing for the device (the stand-in cuBLASLt) names. An
// event's record notes the totals of the work queued before it; event_traffic reads them.
void set_traffic_counting(bool on);
void add_traffic(uint64_t readBytes, uint64_t writtenBytes);
cudaError_t event_traffic(cudaEvent_t event, uint64_t* readBytes, uint64_t* writtenBytes);

// Per-warp staging of WMMA fragments for mma_sync (mma.h): each lane deposits its `count` elements into
// `slot`; after a warp barrier any lane copies out the whole warp's 32 * count.
void warp_stage(int slot, const float* values, int count);
void warp_gather(int slot, float* out, int count);
[[noreturn]] void trap(const char* what, const char* file, int line);
// A fault at an address the GPU cannot access that way (cudaErrorMisalignedAddress), e.g. a WMMA pointer
// that is not 32-byte aligned (mma.h).
[[noreturn]] void misaligned(const char* what, const char* file, int line);

template <class T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp intrinsics move values of up to 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <class T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

template <class T>
struct AtomicTypeOf;
template <>
struct AtomicTypeOf<int> {
  static constexpr AtomicType value = AtomicType::I32;
};
template <>
struct AtomicTypeOf<unsigned> {
  static constexpr AtomicType value = AtomicType::U32;
};
template <>
struct AtomicTypeOf<long long> {
  static constexpr AtomicType value = AtomicType::I64;
};
template <>
struct AtomicTypeOf<unsigned long long> {
  static constexpr AtomicType value = AtomicType::U64;
};
template <>
struct AtomicTypeOf<float> {
  static constexpr AtomicType value = AtomicType::F32;
};
template <>
struct AtomicTypeOf<double> {
  static constexpr AtomicType value = AtomicType::F64;
};

template <class T>
inline T atomic(AtomicOp op, T* address, T operand, const char* file, int line, T compare = T()) {
  T old{};
  atomic_rmw(address, op, AtomicTypeOf<T>::value, &operand, &compare, &old, file, line);
  return old;
}

}  // namespace cuemu

constexpr int warpSize = 32;

// The built-in coordinates (not defined for the emulator's own sources, whose structs use these names).
#if !defined(SIMCSEPP_EMU_RUNTIME)
#define threadIdx (::cuemu::current->threadIdx)
#define blockIdx (::cuemu::current->blockIdx)
#define blockDim (::cuemu::current->blockDim)
#define gridDim (::cuemu::current->gridDim)
#endif

#define __syncthreads() ((void)::cuemu::syncthreads(0, 0, __FILE__, __LINE__))
#define __syncthreads_count(pred) ::cuemu::syncthreads(1, (pred) ? 1 : 0, __FILE__, __LINE__)
#define __syncthreads_and(pred) ::cuemu::syncthreads(2, (pred) ? 1 : 0, __FILE__, __LINE__)
#define __syncthreads_or(pred) ::cuemu::syncthreads(3, (pred) ? 1 : 0, __FILE__, __LINE__)
#define __syncwarp(...)                                                                                           \
  ((void)::cuemu::warp_collective(::cuemu::WarpOp::Sync, ::cuemu::syncwarp_mask(__VA_ARGS__), 0, 0, 32, __FILE__, \
                                  __LINE__))
#define __threadfence() ::cuemu::threadfence()
#define __threadfence_block() ::cuemu::threadfence()
#define __trap() ::cuemu::trap("__trap()", __FILE__, __LINE__)

namespace cuemu {
inline unsigned syncwarp_mask(unsigned mask = 0xffffffffu) { return mask; }

template <class T>
inline T shfl(WarpOp op, unsigned mask, T v, int arg, int width, const char* file, int line) {
  return from_bits<T>(warp_collective(op, mask, to_bits(v), arg, width, file, line));
}
}  // namespace cuemu

#define __shfl_sync(mask, v, lane, ...) \
  ::cuemu::shfl(::cuemu::WarpOp::ShflIdx, mask, v, lane, ::cuemu::width_or_32(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_up_sync(mask, v, delta, ...) \
  ::cuemu::shfl(::cuemu::WarpOp::ShflUp, mask, v, delta, ::cuemu::width_or_32(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_down_sync(mask, v, delta, ...) \
  ::cuemu::shfl(::cuemu::WarpOp::ShflDown, mask, v, delta, ::cuemu::width_or_32(__VA_ARGS__), __FILE__, __LINE__)
#define __shfl_xor_sync(mask, v, laneMask, ...) \
  ::cuemu::shfl(::cuemu::WarpOp::ShflXor, mask, v, laneMask, ::cuemu::width_or_32(__VA_ARGS__), __FILE__, __LINE__)
#define __any_sync(mask, pred) \
  (::cuemu::warp_collective(::cuemu::WarpOp::Any, mask, (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__) != 0)
#define __all_sync(mask, pred) \
  (::cuemu::warp_collective(::cuemu::WarpOp::All, mask, (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__) != 0)
#define __ballot_sync(mask, pred) \
  static_cast<unsigned>(          \
      ::cuemu::warp_collective(::cuemu::WarpOp::Ballot, mask, (pred) ? 1 : 0, 0, 32, __FILE__, __LINE__))
#define __activemask() 0xffffffffu

namespace cuemu {
inline int width_or_32(int width = 32) { return width; }
}  // namespace cuemu

// ---------------------------------------------------------------------------------------------
// Atomics (the toolkit's overload set for the types simcsepp uses).

#define SIMCSEPP_EMU_ATOMIC(name, op)                                \
  template <class T>                                                 \
  inline T name##_at(T* a, T v, const char* file, int line) {        \
    return ::cuemu::atomic(::cuemu::AtomicOp::op, a, v, file, line); \
  }
namespace cuemu {
SIMCSEPP_EMU_ATOMIC(atomicAdd, Add)
SIMCSEPP_EMU_ATOMIC(atomicSub, Sub)
SIMCSEPP_EMU_ATOMIC(atomicMax, Max)
SIMCSEPP_EMU_ATOMIC(atomicMin, Min)
SIMCSEPP_EMU_ATOMIC(atomicExch, Exch)
SIMCSEPP_EMU_ATOMIC(atomicAnd, And)
SIMCSEPP_EMU_ATOMIC(atomicOr, Or)
SIMCSEPP_EMU_ATOMIC(atomicXor, Xor)
SIMCSEPP_EMU_ATOMIC(atomicInc, Inc)
SIMCSEPP_EMU_ATOMIC(atomicDec, Dec)
template <class T>
inline T atomicCAS_at(T* a, T compare, T v, const char* file, int line) {
  return ::cuemu::atomic(::cuemu::AtomicOp::Cas, a, v, file, line, compare);
}
}  // namespace cuemu
#undef SIMCSEPP_EMU_ATOMIC
#define atomicAdd(a, v) ::cuemu::atomicAdd_at(a, v, __FILE__, __LINE__)
#define atomicSub(a, v) ::cuemu::atomicSub_at(a, v, __FILE__, __LINE__)
#define atomicMax(a, v) ::cuemu::atomicMax_at(a, v, __FILE__, __LINE__)
#define atomicMin(a, v) ::cuemu::atomicMin_at(a, v, __FILE__, __LINE__)
#define atomicExch(a, v) ::cuemu::atomicExch_at(a, v, __FILE__, __LINE__)
#define atomicAnd(a, v) ::cuemu::atomicAnd_at(a, v, __FILE__, __LINE__)
#define atomicOr(a, v) ::cuemu::atomicOr_at(a, v, __FILE__, __LINE__)
#define atomicXor(a, v) ::cuemu::atomicXor_at(a, v, __FILE__, __LINE__)
#define atomicInc(a, v) ::cuemu::atomicInc_at(a, v, __FILE__, __LINE__)
#define atomicDec(a, v) ::cuemu::atomicDec_at(a, v, __FILE__, __LINE__)
#define atomicCAS(a, c, v) ::cuemu::atomicCAS_at(a, c, v, __FILE__, __LINE__)

// ---------------------------------------------------------------------------------------------
// Device math: CUDA's global-namespace overloads and intrinsics that host libm does not have. The
// fast-math intrinsics (__expf, ...) are computed exactly here: the emulator checks logic, not ulps.

inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return sqrtf(x); }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : (x == x ? x : 0.0f)); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline int __float_as_int(float x) { return ::cuemu::from_bits<int>(::cuemu::to_bits(x)); }
inline unsigned __float_as_uint(float x) { return ::cuemu::from_bits<unsigned>(::cuemu::to_bits(x)); }
inline float __int_as_float(int x) { return ::cuemu::from_bits<float>(::cuemu::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return ::cuemu::from_bits<float>(::cuemu::to_bits(x)); }
inline long long __double_as_longlong(double x) { return ::cuemu::from_bits<long long>(::cuemu::to_bits(x)); }
inline double __longlong_as_double(long long x) { return ::cuemu::from_bits<double>(::cuemu::to_bits(x)); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
  return (x >> 16) | (x << 16);
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int __mulhi(int a, int b) { return static_cast<int>((static_cast<long long>(a) * b) >> 32); }
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
  return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
template <class T>
inline T __ldg(const T* p) {
  return *p;
}

// CUDA's min/max accept mixed integer and floating arguments in the global namespace.
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>>>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}

// ---------------------------------------------------------------------------------------------
// Kernel launch: the emulated counterpart of kernel<<<grid, block, smem, stream>>>(args...).

namespace cuemu {

// Runs `body(state)` once per thread of every block; returns the launch's error (also left for
// cudaGetLastError), with the report of a detected fault in cudaGetErrorString.
cudaError_t launch(const char* name, const void* kernel, void (*body)(void*), void* state, size_t stateSize, dim3 grid,
                   dim3 block, size_t dynamicSmem, cudaStream_t stream);

// A kernel's fault (an illegal or misaligned address, a trap, a launch failure such as a divergent
// barrier) ends the device's context, as on a GPU: from then on every call that uses the device returns
// that error (cudaGetLastError included, which does not clear it), so a fault cannot go unnoticed. A GPU
// process never recovers; the emulator's own tests, which fault on purpose, call clear_fault() after each.
void clear_fault();

// The running block's dynamic shared memory (the launch's dynamicSmem bytes; 4096-byte aligned): what
// `extern __shared__ T buf[]` names on a GPU. Accesses are checked as those of a __shared__ variable of that size.
unsigned char* dynamic_shared();

template <class... Params>
struct KernelCall {
  void (*kernel)(Params...);
  std::tuple<std::decay_t<Params>...> args;
  static void run(void* self) {
    auto* c = static_cast<KernelCall*>(self);
    std::apply(c->kernel, c->args);  // each thread gets its own copy of the arguments
  }
};

template <class... Params, class... Args>
cudaError_t launch_kernel(const char* name, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                          cudaStream_t stream, Args&&... args) {
  KernelCall<Params...> call{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  return launch(name, reinterpret_cast<const void*>(kernel), &KernelCall<Params...>::run, &call, sizeof(call), grid,
                block, smem, stream);
}

}  // namespace cuemu
