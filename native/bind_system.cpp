// Node-API entry points about the build and the machine: cudaStatus, numThreads, backendOps (which
// ops a backend's table has, so callers can tell whether work can run on a device without trying it),
// and the raw Philox generator (exposed so tests can check it against the Random123 known-answer vectors).
#include <napi.h>

#include "args.h"
#include "backend.h"
#include "common/philox.h"
#include "cpu/parallel.h"
#include "cuda_api.h"
#include "register.h"

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

}  // namespace

void register_system(Napi::Env env, Napi::Object exports) {
  exports.Set("cudaStatus", Napi::Function::New<CudaStatus>(env, "cudaStatus"));
  exports.Set("numThreads", Napi::Function::New<NumThreads>(env, "numThreads"));
  exports.Set("backendOps", Napi::Function::New<BackendOps>(env, "backendOps"));
  exports.Set("philox4x32", Napi::Function::New<Philox>(env, "philox4x32"));
}

}  // namespace simcsepp
