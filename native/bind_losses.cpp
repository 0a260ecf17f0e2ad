// Node-API entry points of the loss ops and dropout: validate, then dispatch on the device.
//
//   simcse(z1, z2, z3|null, temperature, gz1, gz2, gz3|null, weight, accumulate) -> loss
//   offDropout(z1, z2, z0, temperature, posScale, gz1, gz2, gz0, weight, accumulate) -> loss
//   dcl(z1, z2, temperature, gz1, gz2, weight, accumulate) -> loss
//   dropout(x, y, p, seed, offset, keepRows: Uint8Array|null)   (y may be x: in place)
// Gradient tensors are written (or, with accumulate, added to) in place.
#include <napi.h>

#include <string>
#include <vector>

#include "args.h"
#include "backend.h"
#include "cuda_api.h"
#include "register.h"

namespace simcsepp {

namespace {

const char* nonfinite_name(int code, const char* z3Name) {
  switch (code) {
    case kZ1: return "z1";
    case kZ2: return "z2";
    case kZ0: return "z0";
    default: return z3Name;
  }
}

Napi::Value finish(const Napi::Env& env, const LossResult& r, const char* z3Name = "z3") {
  if (r.nonFinite != kNone)
    throw Napi::RangeError::New(env, std::string(nonfinite_name(r.nonFinite, z3Name)) + " contains NaN or Inf values");
  return Napi::Number::New(env, r.loss);
}

float arg_temperature(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double t = arg_number(info, index, name);
  if (!(t > 0)) throw Napi::RangeError::New(info.Env(), std::string("Expected ") + name + " to be > 0 but received " + std::to_string(t));
  return static_cast<float>(t);
}

LossGradOut grads(const Napi::CallbackInfo& info, size_t weightIndex) {
  LossGradOut g;
  g.weight = arg_number(info, weightIndex, "weight");
  g.accumulate = arg_bool(info, weightIndex + 1, "accumulate");
  return g;
}

Napi::Value Simcse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* z1 = arg_matrix(info, 0, "z1");
  NativeTensor* z2 = arg_matrix(info, 1, "z2");
  NativeTensor* z3 = arg_optional_tensor(info, 2, "hardNegatives");
  require_same(env, z1, "z1", z2, "z2");
  if (z3) require_same(env, z1, "z1", z3, "hardNegatives");
  const float tau = arg_temperature(info, 3, "temperature");
  NativeTensor* gz1 = arg_tensor(info, 4, "gz1");
  NativeTensor* gz2 = arg_tensor(info, 5, "gz2");
  NativeTensor* gz3 = arg_optional_tensor(info, 6, "gz3");
  require_same(env, z1, "z1", gz1, "gz1");
  require_same(env, z1, "z1", gz2, "gz2");
  if (z3 && !gz3) throw_arg(env, "Expected gz3 to be a Tensor when hardNegatives is given");
  if (gz3) require_same(env, z1, "z1", gz3, "gz3");
  LossGradOut g = grads(info, 7);
  g.gz1 = gz1->data();
  g.gz2 = gz2->data();
  g.gz3 = z3 ? gz3->data() : nullptr;
  const SimcseArgs a{z1->data(), z2->data(), z3 ? z3->data() : nullptr, z1->shape()[0], z1->shape()[1], tau};
  return guarded(env, [&] {
    return finish(env, z1->device() == Device::kCpu ? cpu::simcse(a, g) : cuda::simcse(a, g), "hardNegatives");
  });
}

Napi::Value OffDropout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* z1 = arg_matrix(info, 0, "z1");
  NativeTensor* z2 = arg_matrix(info, 1, "z2");
  NativeTensor* z0 = arg_matrix(info, 2, "z0");
  require_same(env, z1, "z1", z2, "z2");
  require_same(env, z1, "z1", z0, "z0");
  const float tau = arg_temperature(info, 3, "temperature");
  const float m = static_cast<float>(arg_number(info, 4, "posScale"));
  NativeTensor* gz1 = arg_tensor(info, 5, "gz1");
  NativeTensor* gz2 = arg_tensor(info, 6, "gz2");
  NativeTensor* gz0 = arg_tensor(info, 7, "gz0");
  require_same(env, z1, "z1", gz1, "gz1");
  require_same(env, z1, "z1", gz2, "gz2");
  require_same(env, z1, "z1", gz0, "gz0");
  LossGradOut g = grads(info, 8);
  g.gz1 = gz1->data();
  g.gz2 = gz2->data();
  g.gz0 = gz0->data();
  const OffDropoutArgs a{z1->data(), z2->data(), z0->data(), z1->shape()[0], z1->shape()[1], tau, m};
  return guarded(env, [&] {
    return finish(env, z1->device() == Device::kCpu ? cpu::offDropout(a, g) : cuda::offDropout(a, g));
  });
}

Napi::Value Dcl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* z1 = arg_matrix(info, 0, "z1");
  NativeTensor* z2 = arg_matrix(info, 1, "z2");
  require_same(env, z1, "z1", z2, "z2");
  const float tau = arg_temperature(info, 2, "temperature");
  NativeTensor* gz1 = arg_tensor(info, 3, "gz1");
  NativeTensor* gz2 = arg_tensor(info, 4, "gz2");
  require_same(env, z1, "z1", gz1, "gz1");
  require_same(env, z1, "z1", gz2, "gz2");
  LossGradOut g = grads(info, 5);
  g.gz1 = gz1->data();
  g.gz2 = gz2->data();
  const DclArgs a{z1->data(), z2->data(), z1->shape()[0], z1->shape()[1], tau};
  return guarded(env, [&] { return finish(env, z1->device() == Device::kCpu ? cpu::dcl(a, g) : cuda::dcl(a, g)); });
}

Napi::Value Dropout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* x = arg_tensor(info, 0, "x");
  NativeTensor* y = arg_tensor(info, 1, "out");
  require_same(env, x, "x", y, "out");
  if (x->shape().empty()) throw_arg(env, "Expected x to have at least one dimension (rows)");
  const double p = arg_number(info, 2, "p");
  if (p < 0 || p > 1) throw Napi::RangeError::New(env, "Expected p to be in [0, 1] but received " + std::to_string(p));
  const uint64_t seed = arg_u64(info, 3, "seed");
  const uint64_t offset = arg_u64(info, 4, "offset");
  const int64_t rows = x->shape()[0];
  const int64_t cols = rows ? x->numel() / rows : 0;
  const uint8_t* keep = nullptr;
  if (!info[5].IsUndefined() && !info[5].IsNull()) {
    if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw_arg(env, "Expected keepRows to be a Uint8Array but received " + describe(info[5]));
    auto k = info[5].As<Napi::Uint8Array>();
    if (static_cast<int64_t>(k.ElementLength()) != rows)
      throw_arg(env, "Expected keepRows to have one entry per row of x (" + std::to_string(rows) + ") but it has " +
                         std::to_string(k.ElementLength()));
    keep = k.Data();
  }
  return guarded(env, [&]() -> Napi::Value {
    if (x->numel() == 0) return env.Undefined();
    DropoutArgs a{x->data(), y->data(), rows, cols, static_cast<float>(p), seed, offset, keep};
    if (x->device() == Device::kCpu) cpu::dropout(a);
    else cuda::dropout(a);  // copies keepRows to the device itself
    return env.Undefined();
  });
}

}  // namespace

void register_losses(Napi::Env env, Napi::Object exports) {
  exports.Set("simcse", Napi::Function::New<Simcse>(env, "simcse"));
  exports.Set("offDropout", Napi::Function::New<OffDropout>(env, "offDropout"));
  exports.Set("dcl", Napi::Function::New<Dcl>(env, "dcl"));
  exports.Set("dropout", Napi::Function::New<Dropout>(env, "dropout"));
}

}  // namespace simcsepp
