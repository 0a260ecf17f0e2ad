// Argument validation at the Node-API boundary, one copy of each check for every bind_*.cpp: every
// check throws a Napi::Error (a JS TypeError, or RangeError for a value out of range) whose message
// names the argument and says what was expected and what was received.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/row_index.h"
#include "ops/precision.h"
#include "tensor.h"

namespace simcsepp {

[[noreturn]] void throw_arg(const Napi::Env& env, const std::string& message);
std::string describe(const Napi::Value& v);
// A number as a message shows it: "0.05", "1e-300", "2147483648", "NaN", "-Infinity" (with at most
// `digits` significant digits: a float constant such as 1e15f reads "1e15" with 6).
std::string number_text(double v, int digits = 10);

// A live (not disposed) NativeTensor.
NativeTensor* arg_tensor(const Napi::CallbackInfo& info, size_t index, const char* name);
// Same, or nullptr when the argument is undefined or null.
NativeTensor* arg_optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* name);
// A tensor of rank 2 ("[N, D] float32 tensor").
NativeTensor* arg_matrix(const Napi::CallbackInfo& info, size_t index, const char* name);

// Numbers. All of them reject NaN, Infinity and non-numbers; the range checks throw RangeError.
double arg_number(const Napi::CallbackInfo& info, size_t index, const char* name);
double arg_positive(const Napi::CallbackInfo& info, size_t index, const char* name);       // > 0
double arg_non_negative(const Napi::CallbackInfo& info, size_t index, const char* name);   // >= 0
float arg_probability(const Napi::CallbackInfo& info, size_t index, const char* name);     // in [0, 1]
int64_t arg_positive_int(const Napi::CallbackInfo& info, size_t index, const char* name);  // integer >= 1
bool arg_bool(const Napi::CallbackInfo& info, size_t index, const char* name);
// Loss parameters, bounded so that everything they scale stays finite in float32 (lib/options.ts
// checks the same ranges to name the option): a temperature in [1e-6, 1e6], a scale (posScale, a loss
// weight) in [-1e6, 1e6].
constexpr double kMinTemperature = 1e-6, kMaxTemperature = 1e6, kMaxScale = 1e6;
float arg_temperature(const Napi::CallbackInfo& info, size_t index, const char* name);
double arg_scale(const Napi::CallbackInfo& info, size_t index, const char* name);
// A non-negative integer (number or bigint) of 64 / 32 bits.
uint64_t arg_u64(const Napi::CallbackInfo& info, size_t index, const char* name);
uint32_t arg_u32(const Napi::CallbackInfo& info, size_t index, const char* name);

// 'cpu' or 'cuda'; 'cuda' only when CUDA can be used (else an Error with the reason).
Device arg_device(const Napi::CallbackInfo& info, size_t index, const char* name);
// 'cpu' or 'cuda', whether or not CUDA can be used (the op dispatch says why it cannot).
Device arg_device_name(const Napi::CallbackInfo& info, size_t index, const char* name);
// An optional row index (undefined: 0), a non-negative safe integer: a micro-batch's first row.
int64_t arg_first_row(const Napi::CallbackInfo& info, size_t index, const char* name);
// Where a call's rows sit in the whole batch (common/row_index.h): undefined (row 0 on), a non-negative
// safe integer (the first row), or { first, block, stride, skip? } with block >= 1 and stride >= block.
// The call has `rows` rows of `perRow` elements; the Philox index of its last element must stay below 2^62.
RowIndex arg_row_index(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t rows, int64_t perRow);
// 'fp32' or 'bf16' (ops/precision.h).
Precision arg_precision(const Napi::CallbackInfo& info, size_t index, const char* name);
// arg_precision, or kFp32 when the argument is missing or undefined.
Precision arg_optional_precision(const Napi::CallbackInfo& info, size_t index, const char* name);
// Tensor shapes: at most 8 dimensions of at most kMaxDim each, at most kMaxElements in all (RangeError).
constexpr double kMaxDim = 2147483647.0;  // 2^31 - 1
constexpr double kMaxElements = 4.0e12;
std::vector<int64_t> arg_shape(const Napi::CallbackInfo& info, size_t index, const char* name);

// Typed arrays of host data: an Int32Array of exactly `length` entries; a Uint8Array keepRows of one
// byte per row (`perRow` names a row in the message, e.g. "sentence"), or nullptr for undefined/null.
const int32_t* arg_i32(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t length);
const uint8_t* arg_keep_rows(const Napi::CallbackInfo& info, size_t index, int64_t rows, const char* perRow);
// Every ids[r] in [0, rows): row indices into the table `tableName` (RangeError otherwise).
void check_indices(const Napi::Env& env, const int32_t* ids, int64_t n, int64_t rows, const char* name,
                   const char* tableName);

// Tensor shapes.
std::string shape_text(const std::vector<int64_t>& shape);  // "[2, 3]"
void expect_shape(const Napi::Env& env, const NativeTensor* t, const char* name, const std::vector<int64_t>& shape);
// t holds n elements whose last dimension is `last` (any leading shape).
void expect_rows(const Napi::Env& env, const NativeTensor* t, const char* name, int64_t n, int64_t last);
// t holds n elements (as the tensor `ofName` says it should).
void expect_numel(const Napi::Env& env, const NativeTensor* t, const char* name, int64_t n, const char* ofName);
// t has exactly `rank` dimensions, each >= 1 (`layout` describes them, e.g. "[B, T, H]").
void expect_rank(const Napi::Env& env, const NativeTensor* t, const char* name, size_t rank, const char* layout);
// The last dimension of a non-empty tensor (the feature size C).
int64_t last_dim(const Napi::Env& env, const NativeTensor* t, const char* name);

// Requires b to be on a's device.
void require_same_device(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
                         const char* bName);
// Requires b to have exactly a's shape and device.
void require_same(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
                  const char* bName);

// Requires b to be a [M, D] matrix (M >= 1) with a's D ([N, D]), on a's device: rows of the same vectors.
void require_same_width(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
                        const char* bName);

// a and b must not share memory (an output written while the other is still being read).
void require_disjoint(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
                      const char* bName);

// Runs fn, turning C++ exceptions (CUDA failures, bad_alloc) into JS Errors.
template <class F>
Napi::Value guarded(const Napi::Env& env, F&& fn) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(env, "simcsepp: out of memory");
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, e.what());
  }
}

// guarded() for an op that returns nothing: runs fn and returns undefined.
template <class F>
Napi::Value guarded_void(const Napi::Env& env, F&& fn) {
  return guarded(env, [&]() -> Napi::Value {
    fn();
    return env.Undefined();
  });
}

}  // namespace simcsepp
