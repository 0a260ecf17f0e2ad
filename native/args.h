// Argument validation at the Node-API boundary: every check throws a Napi::Error (a JS Error)
// whose message names the argument and says what was expected and what was received.
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tensor.h"

namespace simcsepp {

[[noreturn]] void throw_arg(const Napi::Env& env, const std::string& message);
std::string describe(const Napi::Value& v);

// A live (not disposed) NativeTensor.
NativeTensor* arg_tensor(const Napi::CallbackInfo& info, size_t index, const char* name);
// Same, or nullptr when the argument is undefined or null.
NativeTensor* arg_optional_tensor(const Napi::CallbackInfo& info, size_t index, const char* name);
// A tensor of rank 2 ("[N, D] float32 tensor").
NativeTensor* arg_matrix(const Napi::CallbackInfo& info, size_t index, const char* name);

double arg_number(const Napi::CallbackInfo& info, size_t index, const char* name);
bool arg_bool(const Napi::CallbackInfo& info, size_t index, const char* name);
uint64_t arg_u64(const Napi::CallbackInfo& info, size_t index, const char* name);
Device arg_device(const Napi::CallbackInfo& info, size_t index, const char* name);
std::vector<int64_t> arg_shape(const Napi::CallbackInfo& info, size_t index, const char* name);

// Requires b to have exactly a's shape and device.
void require_same(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
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

}  // namespace simcsepp
