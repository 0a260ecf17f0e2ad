// The simcsepp Node-API addon: module initialisation. Each bind_*.cpp registers its functions.
#include <napi.h>

#include "addon_data.h"
#include "register.h"
#include "tensor.h"

namespace simcsepp {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted by Node when this environment is torn down
  Napi::Function tensor = NativeTensor::Define(env);
  data->tensorConstructor = Napi::Persistent(tensor);
  exports.Set("NativeTensor", tensor);
  register_system(env, exports);
  register_losses(env, exports);
  register_bench(env, exports);
  register_gemm(env, exports);
  register_encoder(env, exports);
  register_optim(env, exports);
  register_dist(env, exports);
  register_graph(env, exports);
  register_search(env, exports);
  register_int8(env, exports);
  return exports;
}

}  // namespace simcsepp

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return simcsepp::Init(env, exports); }

NODE_API_MODULE(simcsepp, InitAddon)
