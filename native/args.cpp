// Argument validation helpers (see args.h).
#include "args.h"

#include <cmath>

#include "addon_data.h"
#include "cuda_api.h"

namespace simcsepp {

void throw_arg(const Napi::Env& env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return std::string("boolean ") + (v.As<Napi::Boolean>().Value() ? "true" : "false");
  if (v.IsNumber()) {
    const double d = v.As<Napi::Number>().DoubleValue();
    std::string s = std::isnan(d) ? "NaN" : std::to_string(d);
    return "number " + s;
  }
  if (v.IsString()) return "string \"" + v.As<Napi::String>().Utf8Value().substr(0, 40) + "\"";
  if (v.IsTypedArray()) {
    switch (v.As<Napi::TypedArray>().TypedArrayType()) {
      case napi_float32_array: return "a Float32Array";
      case napi_float64_array: return "a Float64Array (float64: simcsepp tensors are float32)";
      case napi_int32_array: return "an Int32Array";
      case napi_uint8_array: return "a Uint8Array";
      default: return "a typed array of another type";
    }
  }
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  if (v.IsObject()) return "an object";
  return "a value of another type";
}

NativeTensor* arg_tensor(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Env env = info.Env();
  if (!NativeTensor::IsInstance(env, info[index]))
    throw_arg(env, std::string("Expected ") + name + " to be a Tensor but received " + describe(info[index]));
  NativeTensor* t = NativeTensor::Unwrap(info[index].As<Napi::Object>());
  if (t->disposed()) throw_arg(env, std::string(name) + " is a disposed Tensor");
  return t;
}

NativeTensor* arg_optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info[index].IsUndefined() || info[index].IsNull()) return nullptr;
  return arg_tensor(info, index, name);
}

NativeTensor* arg_matrix(const Napi::CallbackInfo& info, size_t index, const char* name) {
  NativeTensor* t = arg_tensor(info, index, name);
  if (t->shape().size() != 2 || t->shape()[0] < 1 || t->shape()[1] < 1)
    throw_arg(info.Env(), std::string("Expected ") + name + " to be a [N, D] float32 tensor with N >= 1 and D >= 1 but received " +
                              t->shape_string());
  return t;
}

double arg_number(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsNumber())
    throw_arg(info.Env(), std::string("Expected ") + name + " to be a number but received " + describe(info[index]));
  const double v = info[index].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v)) throw_arg(info.Env(), std::string("Expected ") + name + " to be a finite number but received " + describe(info[index]));
  return v;
}

bool arg_bool(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsBoolean())
    throw_arg(info.Env(), std::string("Expected ") + name + " to be a boolean but received " + describe(info[index]));
  return info[index].As<Napi::Boolean>().Value();
}

uint64_t arg_u64(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Env env = info.Env();
  if (info[index].IsBigInt()) {
    bool lossless = false;
    const uint64_t v = info[index].As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw_arg(env, std::string("Expected ") + name + " to be an unsigned 64-bit integer");
    return v;
  }
  const double v = arg_number(info, index, name);
  if (v < 0 || v != std::floor(v) || v > 9007199254740991.0)
    throw_arg(env, std::string("Expected ") + name + " to be a non-negative integer (or a bigint) but received " + describe(info[index]));
  return static_cast<uint64_t>(v);
}

Device arg_device(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Env env = info.Env();
  const std::string s = info[index].IsString() ? info[index].As<Napi::String>().Utf8Value() : "";
  if (s == "cpu") return Device::kCpu;
  if (s == "cuda") {
    try {
      cuda::require();
    } catch (const std::exception& e) {
      throw Napi::Error::New(env, std::string(name) + " 'cuda' cannot be used: " + e.what());
    }
    return Device::kCuda;
  }
  throw_arg(env, std::string("Expected ") + name + " to be 'cpu' or 'cuda' but received " + describe(info[index]));
}

std::vector<int64_t> arg_shape(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Env env = info.Env();
  if (!info[index].IsArray()) throw_arg(env, std::string("Expected ") + name + " to be an array of sizes but received " + describe(info[index]));
  auto a = info[index].As<Napi::Array>();
  if (a.Length() > 8) throw_arg(env, std::string("Expected ") + name + " to have at most 8 dimensions");
  std::vector<int64_t> shape;
  double total = 1;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0) || d != std::floor(d) || d > 2147483647.0)
      throw_arg(env, std::string("Expected ") + name + "[" + std::to_string(i) + "] to be a non-negative integer but received " + describe(v));
    shape.push_back(static_cast<int64_t>(d));
    total *= d;
  }
  if (total > 4.0e12) throw_arg(env, std::string(name) + " describes more elements than any device can hold");
  return shape;
}

void require_same(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b, const char* bName) {
  if (b->shape() != a->shape())
    throw_arg(env, std::string("Expected ") + bName + " to have the shape of " + aName + " " + a->shape_string() + " but received " +
                       b->shape_string());
  if (b->device() != a->device())
    throw_arg(env, std::string("Expected ") + bName + " to be on " + aName + "'s device '" + device_name(a->device()) + "' but it is on '" +
                       device_name(b->device()) + "'");
}

}  // namespace simcsepp
