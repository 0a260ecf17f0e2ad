// Node-API entry points of the optimiser ops (ops/optim.h): validate, then run on the tensors'
// device through dispatch.h.
//
//   adamwStep(params, grads, m, v, lr, beta1, beta2, eps, weightDecay, step, gradScale?)
//   gradSumSquares(g) -> number
//   scaleInplace(x, s)
//   clipGradNorm(g, maxNorm) -> the sum of squares before clipping
//   clipGradScale(g, maxNorm, scale) -> the sum of squares; scale[0] = the factor clipGradNorm would apply
#include <napi.h>

#include <string>

#include "args.h"
#include "dispatch.h"
#include "register.h"

namespace simcsepp {

namespace {

constexpr const char* kAdamwNames[] = {"params", "grads", "m", "v"};

// A Tensor of one element (a scale the op reads or writes).
void require_scalar(const Napi::Env& env, const NativeTensor* t, const char* name) {
  if (t->numel() != 1)
    throw Napi::RangeError::New(
        env, std::string("Expected ") + name + " to hold one element but it holds " + std::to_string(t->numel()));
}

Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "adamwStep");
  auto t = ts.same_size({kAdamwNames[0], kAdamwNames[1], kAdamwNames[2], kAdamwNames[3]});
  const double lr = arg_non_negative(info, 4, "lr");
  const double beta1 = arg_non_negative(info, 5, "beta1");
  const double beta2 = arg_non_negative(info, 6, "beta2");
  if (beta1 >= 1) throw Napi::RangeError::New(env, "Expected beta1 to be in [0, 1) but received " + number_text(beta1));
  if (beta2 >= 1) throw Napi::RangeError::New(env, "Expected beta2 to be in [0, 1) but received " + number_text(beta2));
  const double eps = arg_positive(info, 7, "eps");
  const double wd = arg_non_negative(info, 8, "weightDecay");
  const int64_t step = arg_positive_int(info, 9, "step");
  NativeTensor* gradScale = ts.optional(10, "gradScale");
  if (gradScale != nullptr) {
    require_scalar(env, gradScale, "gradScale");
    // Read by every element's update while params, m and v are written.
    for (size_t i : {0, 2, 3}) require_disjoint(env, gradScale, "gradScale", t[i], kAdamwNames[i]);
  }
  AdamwStepFn* adamw_step = ts.entry(&Backend::adamw_step);
  return guarded_void(env, [&] {
    // params: AdamW updates their bf16 mirror, if any, with them (kernels/optim.cu).
    adamw_step(t[0]->data_updating_mirror(), t[1]->data(), t[2]->data(), t[3]->data(), t[0]->numel(), lr, beta1, beta2,
               eps, wd, step, gradScale != nullptr ? gradScale->read_data() : nullptr);
  });
}

Napi::Value GradSumSquares(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "gradSumSquares");
  NativeTensor* g = ts.tensor(0, "g");
  GradSumSquaresFn* grad_sum_squares = ts.entry(&Backend::grad_sum_squares);
  return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, grad_sum_squares(g->data(), g->numel())); });
}

Napi::Value ScaleInplace(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "scaleInplace");
  NativeTensor* x = ts.tensor(0, "x");
  const float s = static_cast<float>(arg_number(info, 1, "s"));
  ScaleInplaceFn* scale_inplace = ts.entry(&Backend::scale_inplace);
  return guarded_void(info.Env(), [&] { scale_inplace(x->data(), s, x->numel()); });
}

Napi::Value ClipGradNorm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "clipGradNorm");
  NativeTensor* g = ts.tensor(0, "g");
  const double maxNorm = arg_positive(info, 1, "maxNorm");
  ClipGradNormFn* clip_grad_norm = ts.entry(&Backend::clip_grad_norm);
  return guarded(
      env, [&]() -> Napi::Value { return Napi::Number::New(env, clip_grad_norm(g->data(), g->numel(), maxNorm)); });
}

Napi::Value ClipGradScale(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "clipGradScale");
  NativeTensor* g = ts.tensor(0, "g");
  const double maxNorm = arg_positive(info, 1, "maxNorm");
  NativeTensor* scale = ts.tensor(2, "scale");
  require_scalar(env, scale, "scale");
  require_disjoint(env, scale, "scale", g, "g");
  ClipGradScaleFn* clip_grad_scale = ts.entry(&Backend::clip_grad_scale);
  return guarded(env, [&]() -> Napi::Value {
    return Napi::Number::New(env, clip_grad_scale(g->read_data(), g->numel(), maxNorm, scale->data()));
  });
}

}  // namespace

void register_optim(Napi::Env env, Napi::Object exports) {
  export_functions(env, exports,
                   {
                       {"adamwStep", AdamwStep},
                       {"gradSumSquares", GradSumSquares},
                       {"scaleInplace", ScaleInplace},
                       {"clipGradNorm", ClipGradNorm},
                       {"clipGradScale", ClipGradScale},
                   });
}

}  // namespace simcsepp
