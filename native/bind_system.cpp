// Node-API entry points about the build and the machine: cudaStatus, numThreads, backendOps (which
// ops a backend's table has, so callers can tell whether work can run on a device without trying it),
// the raw Philox generator (exposed so tests can check it against the Random123 known-answer vectors),
// firstNonFinite (the scan of a checkpoint's weights at load, a memory-bound pass in C++), and
// tensorMemory (bytes of tensor storage held, and reported to V8: equal when the accounting is right).
#include <napi.h>

#include <cstdint>
#include <cstring>

#include "args.h"
#include "backend.h"
#include "common/philox.h"
#include "cpu/parallel.h"
#include "cuda_api.h"
#include "register.h"
#include "tensor.h"

namespace simcsepp {

namespace {

Napi::Value CudaStatus(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda::Status& s = cuda::status();
  Napi::Object o = Napi::Object::New(env);
  o.Set("compiled", s.compiled);
  o.Set("available", s.available);
  if (s.emulated) o.Set("emulated", true);
  if (!s.available) o.Set("reason", s.reason);
  if (!s.device.empty()) o.Set("device", s.device);
  if (s.available) {
    try {
      o.Set("gemm", cuda::gemm_library());
    } catch (const std::exception& e) {
      o.Set("gemm", std::string("unknown (") + e.what() + ")");
    }
    o.Set("bf16Operands", cuda::bf16_operands());
    try {
      Napi::Object memory = Napi::Object::New(env);
      memory.Set("freeBytes", static_cast<double>(cuda::free_device_memory()));
      memory.Set("totalBytes", static_cast<double>(cuda::total_device_memory()));
      o.Set("memory", memory);
    } catch (const std::exception&) {
      // Unknown: callers size batches from host memory instead.
    }
  }
  return o;
}

Napi::Value NumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cpu::num_threads()); }

// backendOps(device: 'cpu' | 'cuda') -> the Backend members this build fills for that device (CUDA:
// what is registered, whether or not a device is usable now; empty without nvcc).
Napi::Value BackendOps(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string d = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  if (d != "cpu" && d != "cuda")
    throw_arg(env, "Expected device to be 'cpu' or 'cuda' but received " + describe(info[0]));
  const std::vector<const char*> ops = implemented_ops(d == "cpu" ? cpu_backend() : cuda_backend());
  Napi::Array a = Napi::Array::New(env, ops.size());
  for (uint32_t i = 0; i < ops.size(); ++i) a.Set(i, Napi::String::New(env, ops[i]));
  return a;
}

// philox4x32(c0, c1, c2, c3, k0, k1) -> [4 uint32]
Napi::Value Philox(const Napi::CallbackInfo& info) {
  const Philox4 r = philox4x32_10(arg_u32(info, 0, "c0"), arg_u32(info, 1, "c1"), arg_u32(info, 2, "c2"),
                                  arg_u32(info, 3, "c3"), arg_u32(info, 4, "k0"), arg_u32(info, 5, "k1"));
  Napi::Array a = Napi::Array::New(info.Env(), 4);
  for (uint32_t i = 0; i < 4; ++i) a.Set(i, Napi::Number::New(info.Env(), r.v[i]));
  return a;
}

// firstNonFinite(data: Float32Array) -> index of the first NaN or ±Infinity, or -1. Blocks are
// scanned branch-free on the exponent bits (vectorisable); only a flagged block is searched.
Napi::Value FirstNonFinite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_arg(env, "Expected data to be a Float32Array but received " + describe(info[0]));
  auto a = info[0].As<Napi::Float32Array>();
  const float* x = a.Data();
  const size_t n = a.ElementLength();
  constexpr uint32_t kExp = 0x7f800000u;  // all exponent bits set: Inf or NaN
  constexpr size_t kBlock = 4096;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = b + kBlock < n ? b + kBlock : n;
    uint32_t any = 0;
    for (size_t i = b; i < e; ++i) {
      uint32_t u;
      std::memcpy(&u, x + i, sizeof u);
      any |= static_cast<uint32_t>((u & kExp) == kExp);
    }
    if (!any) continue;
    for (size_t i = b; i < e; ++i) {
      uint32_t u;
      std::memcpy(&u, x + i, sizeof u);
      if ((u & kExp) == kExp) return Napi::Number::New(env, static_cast<double>(i));
    }
  }
  return Napi::Number::New(env, -1);
}

// tensorMemory() -> { heldBytes, reportedBytes } over every tensor of the process (tensor.h).
Napi::Value TensorMemory(const Napi::CallbackInfo& info) {
  const MemoryStats s = memory_stats();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("heldBytes", static_cast<double>(s.heldBytes));
  o.Set("reportedBytes", static_cast<double>(s.reportedBytes));
  return o;
}

// bf16Counters() -> { convertedElements, mirrorRefreshes, mirrorBytes, handedOffElements } since the process
// started (cuda_api.h): what the bf16 products rounded into operand copies, how often a stale weight mirror was
// refreshed, the device bytes the live mirrors hold, and what producers wrote as bf16 handoffs. Zeros without
// CUDA.
Napi::Value Bf16Counters(const Napi::CallbackInfo& info) {
  const cuda::Bf16Counters c = cuda::bf16_counters();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("convertedElements", static_cast<double>(c.convertedElements));
  o.Set("mirrorRefreshes", static_cast<double>(c.mirrorRefreshes));
  o.Set("mirrorBytes", static_cast<double>(c.mirrorBytes));
  o.Set("handedOffElements", static_cast<double>(c.handedOffElements));
  return o;
}

}  // namespace

void register_system(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaStatus", Napi::Function::New<CudaStatus>(env, "cudaStatus"));
  exports.Set("numThreads", Napi::Function::New<NumThreads>(env, "numThreads"));
  exports.Set("backendOps", Napi::Function::New<BackendOps>(env, "backendOps"));
  exports.Set("philox4x32", Napi::Function::New<Philox>(env, "philox4x32"));
  exports.Set("firstNonFinite", Napi::Function::New<FirstNonFinite>(env, "firstNonFinite"));
  exports.Set("tensorMemory", Napi::Function::New<TensorMemory>(env, "tensorMemory"));
  exports.Set("bf16Counters", Napi::Function::New<Bf16Counters>(env, "bf16Counters"));
}

}  // namespace simcsepp
