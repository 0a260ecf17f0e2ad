// Each native/bind_*.cpp file adds its functions to the addon's exports through one of these.
#pragma once
#include <napi.h>

namespace simcsepp {
void register_losses(Napi::Env env, Napi::Object exports);
void register_system(Napi::Env env, Napi::Object exports);
void register_bench(Napi::Env env, Napi::Object exports);
void register_gemm(Napi::Env env, Napi::Object exports);
void register_ops(Napi::Env env, Napi::Object exports);
}  // namespace simcsepp
