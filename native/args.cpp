// Argument validation helpers (see args.h).
#include "args.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "addon_data.h"
#include "captured_tensors.h"
#include "cuda_api.h"

namespace simcsepp {

void throw_arg(const Napi::Env& env, const std::string& message) { throw Napi::TypeError::New(env, message); }

std::string number_text(double v, int digits) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  std::string s = buf;  // "1e-06" -> "1e-6", "1e+300" -> "1e300"
  const size_t e = s.find('e');
  if (e == std::string::npos) return s;
  std::string exponent = s.substr(e + 1);
  const bool negative = exponent[0] == '-';
  if (exponent[0] == '-' || exponent[0] == '+') exponent.erase(0, 1);
  exponent.erase(0, std::min(exponent.find_first_not_of('0'), exponent.size() - 1));
  return s.substr(0, e + 1) + (negative ? "-" : "") + exponent;
}

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return std::string("boolean ") + (v.As<Napi::Boolean>().Value() ? "true" : "false");
  if (v.IsNumber()) {
    return "number " + number_text(v.As<Napi::Number>().DoubleValue());
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
  note_captured_tensor(t, name);  // (a step graph being captured refuses replays once it is disposed)
  return t;
}

NativeTensor* arg_optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info[index].IsUndefined() || info[index].IsNull()) return nullptr;
  return arg_tensor(info, index, name);
}

NativeTensor* arg_matrix(const Napi::CallbackInfo& info, size_t index, const char* name) {
  NativeTensor* t = arg_tensor(info, index, name);
  if (t->shape().size() != 2 || t->shape()[0] < 1 || t->shape()[1] < 1)
    throw_arg(info.Env(), std::string("Expected ") + name +
                              " to be a [N, D] float32 tensor with N >= 1 and D >= 1 but received " +
                              t->shape_string());
  return t;
}

double arg_number(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (!info[index].IsNumber())
    throw_arg(info.Env(), std::string("Expected ") + name + " to be a number but received " + describe(info[index]));
  const double v = info[index].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(v))
    throw_arg(info.Env(),
              std::string("Expected ") + name + " to be a finite number but received " + describe(info[index]));
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
    throw_arg(env, std::string("Expected ") + name + " to be a non-negative integer (or a bigint) but received " +
                       describe(info[index]));
  return static_cast<uint64_t>(v);
}

double arg_positive(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = arg_number(info, index, name);
  if (!(v > 0))
    throw Napi::RangeError::New(info.Env(),
                                std::string("Expected ") + name + " to be > 0 but received " + number_text(v));
  return v;
}

double arg_non_negative(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = arg_number(info, index, name);
  if (!(v >= 0))
    throw Napi::RangeError::New(info.Env(),
                                std::string("Expected ") + name + " to be >= 0 but received " + number_text(v));
  return v;
}

float arg_temperature(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = arg_positive(info, index, name);
  if (v < kMinTemperature || v > kMaxTemperature)
    throw Napi::RangeError::New(info.Env(), std::string("Expected ") + name + " to be in [" +
                                                number_text(kMinTemperature) + ", " + number_text(kMaxTemperature) +
                                                "] (1/" + name + " must stay finite in float32) but received " +
                                                number_text(v));
  return static_cast<float>(v);
}

double arg_scale(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = arg_number(info, index, name);
  if (std::fabs(v) > kMaxScale)
    throw Napi::RangeError::New(info.Env(), std::string("Expected ") + name + " to be in [-" + number_text(kMaxScale) +
                                                ", " + number_text(kMaxScale) + "] but received " + number_text(v));
  return v;
}

float arg_probability(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double p = arg_number(info, index, name);
  if (p < 0 || p > 1)
    throw Napi::RangeError::New(info.Env(),
                                std::string("Expected ") + name + " to be in [0, 1] but received " + number_text(p));
  return static_cast<float>(p);
}

int64_t arg_positive_int(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = arg_number(info, index, name);
  if (!(v >= 1) || v != std::floor(v) || v > 9007199254740991.0)
    throw Napi::RangeError::New(
        info.Env(), std::string("Expected ") + name + " to be an integer >= 1 but received " + describe(info[index]));
  return static_cast<int64_t>(v);
}

uint32_t arg_u32(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const uint64_t v = arg_u64(info, index, name);
  if (v > 0xFFFFFFFFull) throw_arg(info.Env(), std::string("Expected ") + name + " to fit in 32 bits");
  return static_cast<uint32_t>(v);
}

Device arg_device_name(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const std::string s = info[index].IsString() ? info[index].As<Napi::String>().Utf8Value() : "";
  if (s == "cpu") return Device::kCpu;
  if (s == "cuda") return Device::kCuda;
  throw_arg(info.Env(),
            std::string("Expected ") + name + " to be 'cpu' or 'cuda' but received " + describe(info[index]));
}

int64_t arg_first_row(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (index >= info.Length() || info[index].IsUndefined()) return 0;
  const Napi::Value v = info[index];
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
  if (!(d >= 0.0 && d <= 9007199254740991.0 && std::floor(d) == d))
    throw_arg(info.Env(),
              std::string("Expected ") + name + " to be a non-negative integer but received " + describe(v));
  return static_cast<int64_t>(d);
}

namespace {

// Field `key` of a row index object: a safe integer of at least `min` (0 when optional and absent).
int64_t row_index_field(const Napi::Env& env, const Napi::Object& o, const char* key, const char* name, double min,
                        bool optional) {
  const Napi::Value v = o.Get(key);
  if (optional && v.IsUndefined()) return 0;
  const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
  if (!(d >= min && d <= 9007199254740991.0 && std::floor(d) == d))
    throw_arg(env, std::string("Expected ") + name + "." + key + " to be an integer of at least " + number_text(min) +
                       " but received " + describe(v));
  return static_cast<int64_t>(d);
}

}  // namespace

RowIndex arg_row_index(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t rows, int64_t perRow) {
  const Napi::Env env = info.Env();
  RowIndex r;
  if (index >= info.Length() || info[index].IsUndefined() || info[index].IsNumber()) {
    r.first = arg_first_row(info, index, name);
  } else {
    const Napi::Value v = info[index];
    if (!v.IsObject() || v.IsArray() || v.IsTypedArray() || v.IsFunction())
      throw_arg(env, std::string("Expected ") + name +
                         " to be a non-negative integer or { first, block, stride, skip? } but received " +
                         describe(v));
    const Napi::Object o = v.As<Napi::Object>();
    r.first = row_index_field(env, o, "first", name, 0, false);
    r.block = row_index_field(env, o, "block", name, 1, false);
    r.stride = row_index_field(env, o, "stride", name, static_cast<double>(r.block), false);
    r.skip = row_index_field(env, o, "skip", name, 0, true);
  }
  // The last row's place, in double (exact enough to bound it): at(rows - 1) without int64 overflow.
  const double i = static_cast<double>(r.skip) + static_cast<double>(std::max<int64_t>(rows, 1) - 1);
  const double last = r.block == 0 ? static_cast<double>(r.first) + i
                                   : static_cast<double>(r.first) +
                                         std::floor(i / static_cast<double>(r.block)) * static_cast<double>(r.stride) +
                                         std::fmod(i, static_cast<double>(r.block));
  if ((last + 1.0) * static_cast<double>(std::max<int64_t>(perRow, 1)) > 4611686018427387904.0)  // 2^62
    throw Napi::RangeError::New(env, std::string("Expected ") + name + " to place the " + std::to_string(rows) +
                                         " rows below row " +
                                         number_text(4611686018427387904.0 / std::max<int64_t>(perRow, 1), 6) +
                                         " of the whole batch but its last row is " + number_text(last, 17));
  return r;
}

Precision arg_precision(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const std::string s = info[index].IsString() ? info[index].As<Napi::String>().Utf8Value() : "";
  if (s == "fp32") return Precision::kFp32;
  if (s == "bf16") return Precision::kBf16;
  throw_arg(info.Env(),
            std::string("Expected ") + name + " to be 'fp32' or 'bf16' but received " + describe(info[index]));
}

Precision arg_optional_precision(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || info[index].IsUndefined()) return Precision::kFp32;
  return arg_precision(info, index, name);
}

Device arg_device(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const Device d = arg_device_name(info, index, name);
  if (d == Device::kCuda) {
    try {
      cuda::require();
    } catch (const std::exception& e) {
      throw Napi::Error::New(info.Env(), std::string(name) + " 'cuda' cannot be used: " + e.what());
    }
  }
  return d;
}

std::vector<int64_t> arg_shape(const Napi::CallbackInfo& info, size_t index, const char* name) {
  Napi::Env env = info.Env();
  if (!info[index].IsArray())
    throw_arg(env, std::string("Expected ") + name + " to be an array of sizes but received " + describe(info[index]));
  auto a = info[index].As<Napi::Array>();
  if (a.Length() > 8) throw_arg(env, std::string("Expected ") + name + " to have at most 8 dimensions");
  std::vector<int64_t> shape;
  double total = 1;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value v = a.Get(i);
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    const std::string at = std::string(name) + "[" + std::to_string(i) + "]";
    if (!(d >= 0) || d != std::floor(d))
      throw_arg(env, "Expected " + at + " to be a non-negative integer but received " + describe(v));
    if (d > kMaxDim)
      throw Napi::RangeError::New(env, at + " = " + number_text(d) + " is too large: a dimension may be at most " +
                                           number_text(kMaxDim) + " (2^31 - 1)");
    shape.push_back(static_cast<int64_t>(d));
    total *= d;  // exact up to 2^53 and never overflows a double: at most 8 factors below 2^31
  }
  if (total > kMaxElements)
    throw Napi::RangeError::New(env, std::string(name) + " " + shape_text(shape) + " describes " + number_text(total) +
                                         " elements, more than the limit of " + number_text(kMaxElements) +
                                         " (16 TB of float32): use a smaller shape");
  return shape;
}

const int32_t* arg_i32(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t length) {
  Napi::Env env = info.Env();
  if (!info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_arg(env, std::string("Expected ") + name + " to be an Int32Array but received " + describe(info[index]));
  auto a = info[index].As<Napi::Int32Array>();
  if (static_cast<int64_t>(a.ElementLength()) != length)
    throw_arg(env, std::string("Expected ") + name + " to have " + std::to_string(length) + " entries but it has " +
                       std::to_string(a.ElementLength()));
  return a.Data();
}

const uint8_t* arg_keep_rows(const Napi::CallbackInfo& info, size_t index, int64_t rows, const char* perRow) {
  Napi::Env env = info.Env();
  if (info[index].IsUndefined() || info[index].IsNull()) return nullptr;
  if (!info[index].IsTypedArray() || info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_arg(env, "Expected keepRows to be a Uint8Array or null but received " + describe(info[index]));
  auto k = info[index].As<Napi::Uint8Array>();
  if (static_cast<int64_t>(k.ElementLength()) != rows)
    throw_arg(env, std::string("Expected keepRows to have one entry per ") + perRow + " (" + std::to_string(rows) +
                       ") but it has " + std::to_string(k.ElementLength()));
  return k.Data();
}

void check_indices(const Napi::Env& env, const int32_t* ids, int64_t n, int64_t rows, const char* name,
                   const char* tableName) {
  for (int64_t r = 0; r < n; ++r)
    if (ids[r] < 0 || ids[r] >= rows)
      throw Napi::RangeError::New(env, std::string(name) + "[" + std::to_string(r) + "] = " + std::to_string(ids[r]) +
                                           " is out of range for " + tableName + " (" + std::to_string(rows) +
                                           " rows)");
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

void expect_shape(const Napi::Env& env, const NativeTensor* t, const char* name, const std::vector<int64_t>& shape) {
  if (t->shape() != shape)
    throw_arg(env, std::string("Expected ") + name + " to have shape " + shape_text(shape) + " but received " +
                       t->shape_string());
}

void expect_rows(const Napi::Env& env, const NativeTensor* t, const char* name, int64_t n, int64_t last) {
  if (t->numel() != n || t->shape().empty() || t->shape().back() != last)
    throw_arg(env, std::string("Expected ") + name + " to hold " + std::to_string(n / last) + " rows of " +
                       std::to_string(last) + " (last dimension " + std::to_string(last) + ") but received " +
                       t->shape_string());
}

void expect_numel(const Napi::Env& env, const NativeTensor* t, const char* name, int64_t n, const char* ofName) {
  if (t->numel() != n)
    throw_arg(env, std::string("Expected ") + name + " to hold " + std::to_string(n) + " elements (as " + ofName +
                       ") but received " + t->shape_string());
}

void expect_rank(const Napi::Env& env, const NativeTensor* t, const char* name, size_t rank, const char* layout) {
  bool ok = t->shape().size() == rank;
  for (int64_t d : t->shape()) ok = ok && d >= 1;
  if (!ok)
    throw_arg(env, std::string("Expected ") + name + " to be a " + layout +
                       " float32 tensor (every size >= 1) but received " + t->shape_string());
}

int64_t last_dim(const Napi::Env& env, const NativeTensor* t, const char* name) {
  if (t->shape().empty() || t->numel() < 1)
    throw_arg(env, std::string("Expected ") + name + " to be a non-empty tensor but received " + t->shape_string());
  return t->shape().back();
}

void require_same_device(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
                         const char* bName) {
  if (b->device() != a->device())
    throw_arg(env, std::string("Expected ") + bName + " to be on " + aName + "'s device '" + device_name(a->device()) +
                       "' but it is on '" + device_name(b->device()) + "'");
}

void require_same(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
                  const char* bName) {
  if (b->shape() != a->shape())
    throw_arg(env, std::string("Expected ") + bName + " to have the shape of " + aName + " " + a->shape_string() +
                       " but received " + b->shape_string());
  require_same_device(env, a, aName, b, bName);
}

void require_same_width(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
                        const char* bName) {
  const auto& s = b->shape();
  if (s.size() != 2 || s[0] < 1 || s[1] != a->shape().back())
    throw_arg(env, std::string("Expected ") + bName + " to be a [M, " + std::to_string(a->shape().back()) +
                       "] tensor (M >= 1, the width of " + aName + ") but received " + b->shape_string());
  require_same_device(env, a, aName, b, bName);
}

void require_disjoint(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
                      const char* bName) {
  const float *a0 = a->read_data(), *b0 = b->read_data();  // addresses only: nothing is written here
  if (a0 < b0 + b->numel() && b0 < a0 + a->numel())
    throw_arg(env, std::string("Expected ") + aName + " and " + bName + " not to overlap");
}

}  // namespace simcsepp
