// Node-API entry points used only by the benchmarks (lib/bench/):
//   offDropoutUnfused(z1, z2, z0, temperature, posScale, gz1, gz2, gz0) -> { loss, workspaceBytes }
//     (CPU or CUDA tensors; throws a RangeError whose message says "would not fit" when the N x N
//     logits exceed the CPU limit or the free device memory)
//   offDropoutWorkspaceBytes(n, d, device) -> bytes the fused kernel of that device allocates
#include <napi.h>

#include <string>

#include "args.h"
#include "backend.h"
#include "cuda_api.h"
#include "register.h"

namespace simcsepp {

namespace {

Napi::Value OffDropoutUnfused(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* z1 = arg_matrix(info, 0, "z1");
  NativeTensor* z2 = arg_matrix(info, 1, "z2");
  NativeTensor* z0 = arg_matrix(info, 2, "z0");
  require_same(env, z1, "z1", z2, "z2");
  require_same(env, z1, "z1", z0, "z0");
  const double tau = arg_number(info, 3, "temperature");
  const double m = arg_number(info, 4, "posScale");
  NativeTensor* g[3] = {arg_tensor(info, 5, "gz1"), arg_tensor(info, 6, "gz2"), arg_tensor(info, 7, "gz0")};
  for (NativeTensor* t : g) require_same(env, z1, "z1", t, "gradient");
  const bool onCpu = z1->device() == Device::kCpu;
  const double nn = static_cast<double>(z1->shape()[0]) * static_cast<double>(z1->shape()[0]);
  if (onCpu && nn > 2.0e9)
    throw Napi::RangeError::New(env, "offDropoutUnfused: N x N logits would not fit in memory");
  if (!onCpu) {
    // Everything the CUDA baseline cudaMallocs: N^2 + 4 N D + 5 N floats and the loss accumulator.
    const double nd = static_cast<double>(z1->shape()[0]) * static_cast<double>(z1->shape()[1]);
    const double need = (nn + 4.0 * nd + 5.0 * static_cast<double>(z1->shape()[0])) * 4.0 + 8.0;
    const double freeBytes = guarded(env, [&]() -> Napi::Value {
                               return Napi::Number::New(env, static_cast<double>(cuda::free_device_memory()));
                             }).As<Napi::Number>().DoubleValue();
    if (need > freeBytes)
      throw Napi::RangeError::New(env, "offDropoutUnfused: the N x N logits would not fit in device memory (" +
                                           std::to_string(static_cast<long long>(need)) + " bytes needed, " +
                                           std::to_string(static_cast<long long>(freeBytes)) + " free)");
  }
  LossGradOut out;
  out.gz1 = g[0]->data();
  out.gz2 = g[1]->data();
  out.gz0 = g[2]->data();
  const OffDropoutArgs a{z1->data(), z2->data(), z0->data(), z1->shape()[0], z1->shape()[1], static_cast<float>(tau),
                         static_cast<float>(m)};
  return guarded(env, [&]() -> Napi::Value {
    size_t bytes = 0;
    const LossResult r = onCpu ? cpu::offDropoutUnfused(a, out, &bytes) : cuda::offDropoutUnfused(a, out, &bytes);
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", r.loss);
    o.Set("workspaceBytes", static_cast<double>(bytes));
    return o;
  });
}

Napi::Value OffDropoutWorkspaceBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double n = arg_number(info, 0, "n"), d = arg_number(info, 1, "d");
  if (!(n >= 0) || !(d >= 0)) throw_arg(env, "offDropoutWorkspaceBytes: n and d must be non-negative numbers");
  const Device device = arg_device(info, 2, "device");
  const auto ni = static_cast<int64_t>(n), di = static_cast<int64_t>(d);
  return guarded(env, [&]() -> Napi::Value {
    const size_t bytes = device == Device::kCpu ? cpu::offDropoutWorkspaceBytes(ni, di) : cuda::offDropoutWorkspaceBytes(ni, di);
    return Napi::Number::New(env, static_cast<double>(bytes));
  });
}

}  // namespace

void register_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("offDropoutUnfused", Napi::Function::New<OffDropoutUnfused>(env, "offDropoutUnfused"));
  exports.Set("offDropoutWorkspaceBytes", Napi::Function::New<OffDropoutWorkspaceBytes>(env, "offDropoutWorkspaceBytes"));
}

}  // namespace simcsepp
