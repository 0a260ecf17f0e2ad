// Node-API entry points used only by the benchmarks (lib/bench/):
//   offDropoutUnfused(z1, z2, z0, temperature, posScale, gz1, gz2, gz0) -> { loss, workspaceBytes }
//   offDropoutWorkspaceBytes(n, d) -> bytes the fused CPU kernel allocates
#include <napi.h>

#include "args.h"
#include "backend.h"
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
  if (z1->device() != Device::kCpu) throw_arg(env, "offDropoutUnfused: only the CPU baseline is implemented");
  const double tau = arg_number(info, 3, "temperature");
  const double m = arg_number(info, 4, "posScale");
  NativeTensor* g[3] = {arg_tensor(info, 5, "gz1"), arg_tensor(info, 6, "gz2"), arg_tensor(info, 7, "gz0")};
  for (NativeTensor* t : g) require_same(env, z1, "z1", t, "gradient");
  if (static_cast<double>(z1->shape()[0]) * static_cast<double>(z1->shape()[0]) > 2.0e9)
    throw Napi::RangeError::New(env, "offDropoutUnfused: N x N logits would not fit in memory");
  LossGradOut out;
  out.gz1 = g[0]->data();
  out.gz2 = g[1]->data();
  out.gz0 = g[2]->data();
  const OffDropoutArgs a{z1->data(), z2->data(), z0->data(), z1->shape()[0], z1->shape()[1], static_cast<float>(tau),
                         static_cast<float>(m)};
  return guarded(env, [&]() -> Napi::Value {
    size_t bytes = 0;
    const LossResult r = cpu::offDropoutUnfused(a, out, &bytes);
    Napi::Object o = Napi::Object::New(env);
    o.Set("loss", r.loss);
    o.Set("workspaceBytes", static_cast<double>(bytes));
    return o;
  });
}

Napi::Value OffDropoutWorkspaceBytes(const Napi::CallbackInfo& info) {
  const double n = arg_number(info, 0, "n"), d = arg_number(info, 1, "d");
  return Napi::Number::New(info.Env(), static_cast<double>(cpu::offDropoutWorkspaceBytes(static_cast<int64_t>(n), static_cast<int64_t>(d))));
}

}  // namespace

void register_bench(Napi::Env env, Napi::Object exports) {
  exports.Set("offDropoutUnfused", Napi::Function::New<OffDropoutUnfused>(env, "offDropoutUnfused"));
  exports.Set("offDropoutWorkspaceBytes", Napi::Function::New<OffDropoutWorkspaceBytes>(env, "offDropoutWorkspaceBytes"));
}

}  // namespace simcsepp
