// Per-environment addon state (one per main thread or worker_thread), so the addon works in
// several Node environments at once: nothing JS-related lives in globals.
#pragma once
#include <napi.h>

namespace simcsepp {

struct AddonData {
  Napi::FunctionReference tensorConstructor;
};

inline AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

}  // namespace simcsepp
