// Node-API entry points used only by the benchmarks (lib/bench/):
//   offDropoutUnfused(z1, z2, z0, temperature, posScale, gz1, gz2, gz0) -> { loss, workspaceBytes }
//     (CPU or CUDA tensors; throws a RangeError whose message says "would not fit" when the N x N
//     logits exceed what the backend can hold: the CPU limit or the free device memory)
//   offDropoutWorkspaceBytes(n, d, device) -> bytes the fused kernel of that device allocates
//   cudaTimerMark() -> index; cudaTimerElapsed(a, b) -> device milliseconds from mark a to mark b (waits for
//     b); cudaTimerReset(): the GPU-time markers of the op profile (lib/bench/op-profile.ts, cuda_api.h)
//   cudaKernelProfileStart(); cudaKernelProfileStop() -> [{ name, ms, flops, mark[, readBytes, writtenBytes] }]: the
//     per-kernel device times (kernels/kernel_profile.cuh) of what was launched in between, in launch order; on the
//     emulator also the device-memory bytes each read and wrote
#include <napi.h>

#include <string>
#include <vector>

#include "args.h"
#include "cuda_api.h"
#include "dispatch.h"
#include "register.h"

namespace simcsepp {

namespace {

Napi::Value OffDropoutUnfused(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "offDropoutUnfused");
  NativeTensor* z1 = ts.matrix(0, "z1");
  NativeTensor* z2 = ts.matrix(1, "z2");
  NativeTensor* z0 = ts.matrix(2, "z0");
  require_same(env, z1, "z1", z2, "z2");
  require_same(env, z1, "z1", z0, "z0");
  const float tau = arg_temperature(info, 3, "temperature");
  const float m = static_cast<float>(arg_scale(info, 4, "posScale"));
  NativeTensor* g[3] = {ts.tensor(5, "gz1"), ts.tensor(6, "gz2"), ts.tensor(7, "gz0")};
  for (NativeTensor* t : g) require_same(env, z1, "z1", t, "gradient");
  OffDropoutUnfusedFitFn* fit = ts.entry(&Backend::offDropoutUnfusedFit);
  OffDropoutUnfusedFn* unfused = ts.entry(&Backend::offDropoutUnfused);
  const int64_t n = z1->shape()[0], d = z1->shape()[1];
  const std::string tooBig =
      guarded(env, [&]() -> Napi::Value { return Napi::String::New(env, fit(n, d)); }).As<Napi::String>().Utf8Value();
  if (!tooBig.empty()) throw Napi::RangeError::New(env, tooBig);
  LossGradOut out;
  out.gz1 = g[0]->data();
  out.gz2 = g[1]->data();
  out.gz0 = g[2]->data();
  const OffDropoutArgs a{z1->data(), z2->data(), z0->data(), n, d, tau, m};
  return guarded(env, [&]() -> Napi::Value {
    size_t bytes = 0;
    const LossResult r = unfused(a, out, &bytes);
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", r.loss);
    o.Set("workspaceBytes", static_cast<double>(bytes));
    return o;
  });
}

Napi::Value OffDropoutWorkspaceBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto n = static_cast<int64_t>(arg_non_negative(info, 0, "n"));
  const auto d = static_cast<int64_t>(arg_non_negative(info, 1, "d"));
  const Device device = arg_device_name(info, 2, "device");
  OffDropoutWorkspaceBytesFn* bytes =
      op_entry(env, "offDropoutWorkspaceBytes", device, &Backend::offDropoutWorkspaceBytes);
  return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, static_cast<double>(bytes(n, d))); });
}

Napi::Value CudaTimerMark(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, static_cast<double>(cuda::timer_mark())); });
}

Napi::Value CudaTimerElapsed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t marks = cuda::timer_marks();
  const char* names[2] = {"a", "b"};
  int64_t at[2] = {};
  for (size_t i = 0; i < 2; ++i) {
    at[i] = static_cast<int64_t>(arg_u32(info, i, names[i]));
    if (at[i] >= marks)
      throw Napi::RangeError::New(env, std::string(names[i]) + ": marker " + std::to_string(at[i]) +
                                           " was not recorded (" + std::to_string(marks) + " since the last reset)");
  }
  return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, cuda::timer_elapsed(at[0], at[1])); });
}

Napi::Value CudaTimerReset(const Napi::CallbackInfo& info) {
  cuda::timer_reset();
  return info.Env().Undefined();
}

Napi::Value CudaKernelProfileStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    cuda::kernel_profile_start();
    return env.Undefined();
  });
}

Napi::Value CudaKernelProfileStop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const std::vector<cuda::KernelTime> times = cuda::kernel_profile_stop();
    Napi::Array out = Napi::Array::New(env, times.size());
    for (size_t i = 0; i < times.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", times[i].name);
      o.Set("ms", times[i].ms);
      o.Set("flops", times[i].flops);
      o.Set("mark", static_cast<double>(times[i].mark));
      if (times[i].readBytes >= 0) o.Set("readBytes", times[i].readBytes);
      if (times[i].writtenBytes >= 0) o.Set("writtenBytes", times[i].writtenBytes);
      out.Set(static_cast<uint32_t>(i), o);
    }
    return out;
  });
}

}  // namespace

void register_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("offDropoutUnfused", Napi::Function::New<OffDropoutUnfused>(env, "offDropoutUnfused"));
  exports.Set("offDropoutWorkspaceBytes",
              Napi::Function::New<OffDropoutWorkspaceBytes>(env, "offDropoutWorkspaceBytes"));
  exports.Set("cudaTimerMark", Napi::Function::New<CudaTimerMark>(env, "cudaTimerMark"));
  exports.Set("cudaTimerElapsed", Napi::Function::New<CudaTimerElapsed>(env, "cudaTimerElapsed"));
  exports.Set("cudaTimerReset", Napi::Function::New<CudaTimerReset>(env, "cudaTimerReset"));
  exports.Set("cudaKernelProfileStart", Napi::Function::New<CudaKernelProfileStart>(env, "cudaKernelProfileStart"));
  exports.Set("cudaKernelProfileStop", Napi::Function::New<CudaKernelProfileStop>(env, "cudaKernelProfileStop"));
}

}  // namespace simcsepp
