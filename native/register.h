// Each native/bind_*.cpp file adds its functions to the addon's exports through one of these.
#pragma once
#include <napi.h>

#include <initializer_list>

namespace simcsepp {

void register_system(Napi::Env env, Napi::Object exports);   // bind_system.cpp
void register_losses(Napi::Env env, Napi::Object exports);   // bind_losses.cpp
void register_bench(Napi::Env env, Napi::Object exports);    // bind_bench.cpp
void register_gemm(Napi::Env env, Napi::Object exports);     // bind_gemm.cpp
void register_encoder(Napi::Env env, Napi::Object exports);  // bind_encoder.cpp
void register_optim(Napi::Env env, Napi::Object exports);    // bind_optim.cpp
void register_dist(Napi::Env env, Napi::Object exports);     // bind_dist.cpp
void register_graph(Napi::Env env, Napi::Object exports);    // bind_graph.cpp
void register_search(Napi::Env env, Napi::Object exports);   // bind_search.cpp
void register_int8(Napi::Env env, Napi::Object exports);     // bind_int8.cpp

struct Export {
  const char* name;  // the JS name (lib/native.ts's Addon interface declares each one)
  Napi::Value (*fn)(const Napi::CallbackInfo&);
};

inline void export_functions(Napi::Env env, Napi::Object exports, std::initializer_list<Export> functions) {
  for (const Export& f : functions) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

}  // namespace simcsepp
