// Node-API entry points of the loss ops and dropout: validate, then run on the tensors' device
// through dispatch.h.
//
//   simcse(z1, z2, z3|null, temperature, gz1, gz2, gz3|null, weight, accumulate) -> loss
//   offDropout(z1, z2, z0, temperature, posScale, gz1, gz2, gz0, weight, accumulate) -> loss
//   dcl(z1, z2, temperature, gz1, gz2, weight, accumulate) -> loss
//   cosent(z1, z2, scores: Float32Array, temperature, gz1, gz2, weight, accumulate, similarity?: 'cosine' | 'angle')
//       -> loss
//   mse(z, target: Float32Array, gz, weight, accumulate) -> loss   (target: [n, d] with n dividing z's rows)
//   dropout(x, y, p, seed, offset, keepRows: Uint8Array|null)   (y may be x: in place)
// Gradient tensors are written (or, with accumulate, added to) in place.
#include <napi.h>

#include <cmath>
#include <string>

#include "args.h"
#include "dispatch.h"
#include "register.h"

namespace simcsepp {

namespace {

const char* nonfinite_name(int code, const char* z3Name, const char* z1Name) {
  switch (code) {
    case kZ1: return z1Name;
    case kZ2: return "z2";
    case kZ0: return "z0";
    default: return z3Name;
  }
}

// The loss, or a RangeError naming the input that held NaN, Inf or a value too large to normalise.
// The bounds on the inputs and parameters keep the loss finite; should it not be, that is an Error
// too rather than a NaN handed on to the optimiser.
Napi::Value finish(const Napi::Env& env, const char* op, const LossResult& r, const char* z3Name = "z3",
                   const char* z1Name = "z1") {
  if (r.nonFinite != kNone)
    throw Napi::RangeError::New(env, std::string(nonfinite_name(r.nonFinite, z3Name, z1Name)) +
                                         " contains NaN or Inf values, or values beyond ±" +
                                         number_text(kMaxLossInput, 6) + " (the embeddings have diverged)");
  if (!std::isfinite(r.loss))
    throw Napi::RangeError::New(env, std::string(op) + ": the loss is " + number_text(r.loss) +
                                         " although every input is finite; please report this with the inputs");
  return Napi::Number::New(env, r.loss);
}

LossGradOut grads(const Napi::CallbackInfo& info, size_t weightIndex) {
  LossGradOut g;
  g.weight = arg_scale(info, weightIndex, "weight");
  g.accumulate = arg_bool(info, weightIndex + 1, "accumulate");
  return g;
}

// Gradient tensors at info[first..]: each must have z1's shape and device.
void expect_grads(OpTensors& ts, const NativeTensor* z1, size_t first, const char* const names[], NativeTensor** out,
                  int count, const Napi::Env& env) {
  for (int k = 0; k < count; ++k) {
    out[k] = ts.tensor(first + k, names[k]);
    require_same(env, z1, "z1", out[k], names[k]);
  }
}

// The gradients of a loss of two inputs: gz1, gz2 at info[first], info[first + 1] (z1's shape and device), then
// weight and accumulate.
LossGradOut pair_grads(const Napi::CallbackInfo& info, OpTensors& ts, const NativeTensor* z1, size_t first) {
  static const char* const names[2] = {"gz1", "gz2"};
  NativeTensor* gz[2];
  expect_grads(ts, z1, first, names, gz, 2, info.Env());
  LossGradOut g = grads(info, first + 2);
  g.gz1 = gz[0]->data();
  g.gz2 = gz[1]->data();
  return g;
}

Napi::Value Simcse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "simcse");
  NativeTensor* z1 = ts.matrix(0, "z1");
  NativeTensor* z2 = ts.matrix(1, "z2");
  NativeTensor* z3 = ts.optional(2, "hardNegatives");
  require_same(env, z1, "z1", z2, "z2");
  if (z3) require_same_width(env, z1, "z1", z3, "hardNegatives");
  const float tau = arg_temperature(info, 3, "temperature");
  static const char* const names[2] = {"gz1", "gz2"};
  NativeTensor* gz[2];
  expect_grads(ts, z1, 4, names, gz, 2, env);
  NativeTensor* gz3 = ts.optional(6, "gz3");
  if (z3 && !gz3) throw_arg(env, "Expected gz3 to be a Tensor when hardNegatives is given");
  if (gz3) require_same(env, z3 ? z3 : z1, z3 ? "hardNegatives" : "z1", gz3, "gz3");
  LossGradOut g = grads(info, 7);
  g.gz1 = gz[0]->data();
  g.gz2 = gz[1]->data();
  g.gz3 = z3 ? gz3->data() : nullptr;
  SimcseArgs a{z1->data(), z2->data(), z3 ? z3->data() : nullptr, z1->shape()[0], z1->shape()[1], tau};
  a.m = z3 ? z3->shape()[0] : 0;
  SimcseFn* simcse = ts.entry(&Backend::simcse);
  return guarded(env, [&] { return finish(env, "simcse", simcse(a, g), "hardNegatives"); });
}

Napi::Value OffDropout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "offDropout");
  NativeTensor* z1 = ts.matrix(0, "z1");
  NativeTensor* z2 = ts.matrix(1, "z2");
  NativeTensor* z0 = ts.matrix(2, "z0");
  require_same(env, z1, "z1", z2, "z2");
  require_same(env, z1, "z1", z0, "z0");
  const float tau = arg_temperature(info, 3, "temperature");
  const float m = static_cast<float>(arg_scale(info, 4, "posScale"));
  static const char* const names[3] = {"gz1", "gz2", "gz0"};
  NativeTensor* gz[3];
  expect_grads(ts, z1, 5, names, gz, 3, env);
  LossGradOut g = grads(info, 8);
  g.gz1 = gz[0]->data();
  g.gz2 = gz[1]->data();
  g.gz0 = gz[2]->data();
  const OffDropoutArgs a{z1->data(), z2->data(), z0->data(), z1->shape()[0], z1->shape()[1], tau, m};
  OffDropoutFn* offDropout = ts.entry(&Backend::offDropout);
  return guarded(env, [&] { return finish(env, "offDropout", offDropout(a, g)); });
}

Napi::Value Dcl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "dcl");
  NativeTensor* z1 = ts.matrix(0, "z1");
  NativeTensor* z2 = ts.matrix(1, "z2");
  require_same(env, z1, "z1", z2, "z2");
  const float tau = arg_temperature(info, 2, "temperature");
  const LossGradOut g = pair_grads(info, ts, z1, 3);
  const DclArgs a{z1->data(), z2->data(), z1->shape()[0], z1->shape()[1], tau};
  DclFn* dcl = ts.entry(&Backend::dcl);
  return guarded(env, [&] { return finish(env, "dcl", dcl(a, g)); });
}

// The pairs' gold scores: a Float32Array of one finite value per row of z1 (a host array on every backend).
const float* arg_scores(const Napi::CallbackInfo& info, size_t index, int64_t n) {
  Napi::Env env = info.Env();
  if (!info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_arg(env, "Expected scores to be a Float32Array but received " + describe(info[index]));
  auto a = info[index].As<Napi::Float32Array>();
  if (static_cast<int64_t>(a.ElementLength()) != n)
    throw_arg(env, "Expected scores to have one entry per row of z1 (" + std::to_string(n) + ") but it has " +
                       std::to_string(a.ElementLength()));
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(a[static_cast<size_t>(i)]))
      throw Napi::RangeError::New(env, "scores[" + std::to_string(i) + "] is " +
                                           number_text(a[static_cast<size_t>(i)]) +
                                           ": every pair needs a finite score");
  return a.Data();
}

// The pair similarity of cosent: 'cosine' (default) or 'angle' (AnglE).
int arg_similarity(const Napi::CallbackInfo& info, size_t index) {
  if (info[index].IsUndefined()) return kCosine;
  if (info[index].IsString()) {
    const std::string s = info[index].As<Napi::String>().Utf8Value();
    if (s == "cosine") return kCosine;
    if (s == "angle") return kAngle;
  }
  throw_arg(info.Env(), "Expected similarity to be 'cosine' or 'angle' but received " + describe(info[index]));
}

Napi::Value Cosent(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "cosent");
  NativeTensor* z1 = ts.matrix(0, "z1");
  NativeTensor* z2 = ts.matrix(1, "z2");
  require_same(env, z1, "z1", z2, "z2");
  const float* scores = arg_scores(info, 2, z1->shape()[0]);
  const float tau = arg_temperature(info, 3, "temperature");
  const LossGradOut g = pair_grads(info, ts, z1, 4);
  const CosentArgs a{z1->data(), z2->data(), scores, z1->shape()[0], z1->shape()[1], tau, arg_similarity(info, 8)};
  CosentFn* cosent = ts.entry(&Backend::cosent);
  return guarded(env, [&] { return finish(env, "cosent", cosent(a, g)); });
}

// mse's targets: a Float32Array of n rows of z's width, n dividing z's rows (each target row is that of every n-th
// row of z), every value finite and within the losses' input bound (a host array on every backend). Returns n.
int64_t arg_targets(const Napi::CallbackInfo& info, size_t index, int64_t rows, int64_t d, const float** out) {
  Napi::Env env = info.Env();
  if (!info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_arg(env, "Expected target to be a Float32Array but received " + describe(info[index]));
  auto a = info[index].As<Napi::Float32Array>();
  const int64_t len = static_cast<int64_t>(a.ElementLength());
  const int64_t n = d > 0 ? len / d : 0;
  if (d <= 0 || rows <= 0 || len % d != 0 || n == 0 || rows % n != 0)
    throw_arg(env, "Expected target to hold n rows of z's width " + std::to_string(d) + ", n dividing z's " +
                       std::to_string(rows) + " rows, but it has " + std::to_string(len) + " values");
  for (int64_t i = 0; i < len; ++i)
    if (!(std::fabs(a[static_cast<size_t>(i)]) <= kMaxLossInput))
      throw Napi::RangeError::New(
          env, "target[" + std::to_string(i) + "] is " + number_text(a[static_cast<size_t>(i)]) +
                   ": the teacher's vectors must be finite (within ±" + number_text(kMaxLossInput, 6) + ")");
  *out = a.Data();
  return n;
}

Napi::Value Mse(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "mse");
  NativeTensor* z = ts.matrix(0, "z");
  const float* target = nullptr;
  const int64_t n = arg_targets(info, 1, z->shape()[0], z->shape()[1], &target);
  static const char* const names[1] = {"gz"};
  NativeTensor* gz[1];
  expect_grads(ts, z, 2, names, gz, 1, env);
  LossGradOut g = grads(info, 3);
  g.gz1 = gz[0]->data();
  const MseArgs a{z->data(), target, z->shape()[0], n, z->shape()[1]};
  MseFn* mse = ts.entry(&Backend::mse);
  return guarded(env, [&] { return finish(env, "mse", mse(a, g), "z3", "z"); });
}

Napi::Value Dropout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "dropout");
  NativeTensor* x = ts.tensor(0, "x");
  NativeTensor* y = ts.tensor(1, "out");
  require_same(env, x, "x", y, "out");
  if (x->shape().empty()) throw_arg(env, "Expected x to have at least one dimension (rows)");
  const float p = arg_probability(info, 2, "p");
  const uint64_t seed = arg_u64(info, 3, "seed");
  const uint64_t offset = arg_u64(info, 4, "offset");
  const int64_t rows = x->shape()[0];
  const int64_t cols = rows ? x->numel() / rows : 0;
  const uint8_t* keep = arg_keep_rows(info, 5, rows, "row of x");
  const RowIndex rowIndex = arg_row_index(info, 6, "firstRow", rows, cols);
  DropoutFn* dropout = ts.entry(&Backend::dropout);
  return guarded_void(env, [&] {
    if (x->numel() > 0) dropout(DropoutArgs{x->data(), y->data(), rows, cols, p, seed, offset, keep, rowIndex});
  });
}

}  // namespace

void register_losses(Napi::Env env, Napi::Object exports) {
  exports.Set("simcse", Napi::Function::New<Simcse>(env, "simcse"));
  exports.Set("offDropout", Napi::Function::New<OffDropout>(env, "offDropout"));
  exports.Set("dcl", Napi::Function::New<Dcl>(env, "dcl"));
  exports.Set("cosent", Napi::Function::New<Cosent>(env, "cosent"));
  exports.Set("mse", Napi::Function::New<Mse>(env, "mse"));
  exports.Set("dropout", Napi::Function::New<Dropout>(env, "dropout"));
}

}  // namespace simcsepp
