// Device checks and backend lookup for the bindings (see dispatch.h).
#include "dispatch.h"

#include <string>

#include "args.h"
#include "cuda_api.h"

namespace simcsepp {

const Backend& backend(Device device) { return device == Device::kCpu ? cpu_backend() : cuda_backend(); }

void require_runnable(const Napi::Env& env, const char* op, Device device, bool implemented, bool cpuHas,
                      const char* culprit) {
  std::string why;
  if (device == Device::kCuda && !cuda::status().compiled) {
    why =
        "this build has no CUDA kernels (built without nvcc, or without an NVIDIA driver; SIMCSEPP_CUDA=on npm rebuild "
        "simcsepp compiles them)";
  } else if (device == Device::kCuda && !cuda::status().available) {
    why = cuda::status().reason;  // "no CUDA driver found: ...", "no CUDA device: ...", ...
  } else if (!implemented) {
    why = cpuHas && device != Device::kCpu ? "not yet implemented (the CPU backend has it)" : "not yet implemented";
    // The wording earlier versions used, which callers and tests may still look for.
    if (culprit && device == Device::kCuda)
      why += std::string(". ") + op + " has no CUDA implementation yet (" + culprit + " is on 'cuda')";
  } else {
    return;
  }
  throw Napi::Error::New(env, std::string(op) + " cannot run on '" + device_name(device) + "': " + why);
}

NativeTensor* OpTensors::keep(NativeTensor* t, const char* name) {
  if (t) args_.push_back({t, name});
  return t;
}

void OpTensors::require_live() const {
  for (const Arg& a : args_)
    if (a.tensor->disposed()) throw_arg(info_.Env(), std::string(a.name) + " is a disposed Tensor");
}

NativeTensor* OpTensors::tensor(size_t index, const char* name) { return keep(arg_tensor(info_, index, name), name); }

NativeTensor* OpTensors::optional(size_t index, const char* name) {
  return keep(arg_optional_tensor(info_, index, name), name);
}

NativeTensor* OpTensors::matrix(size_t index, const char* name) { return keep(arg_matrix(info_, index, name), name); }

std::vector<NativeTensor*> OpTensors::same_size(const std::vector<const char*>& names) {
  std::vector<NativeTensor*> t;
  for (size_t i = 0; i < names.size(); ++i) {
    t.push_back(tensor(i, names[i]));
    if (i > 0) expect_numel(info_.Env(), t[i], names[i], t[0]->numel(), names[0]);
  }
  return t;
}

Device OpTensors::device() const {
  if (args_.empty()) return Device::kCpu;
  for (const Arg& a : args_) require_same_device(info_.Env(), args_[0].tensor, args_[0].name, a.tensor, a.name);
  return args_[0].tensor->device();
}

}  // namespace simcsepp
