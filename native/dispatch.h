// The one path from an op call's validated tensors to a backend's implementation of the op.
//
// A binding collects its tensor arguments in an OpTensors while validating them, then asks for the
// op's entry (a member of the Backend table, backend.h). That checks devices once: every tensor's
// device must be able to run the op (else an Error "<op> cannot run on 'cuda': <why>" naming the
// argument there), and all tensors must be on one device (else a TypeError naming the argument).
// The reasons: this build has no CUDA kernels, no usable CUDA driver or device, or the op is not yet
// implemented there.
#pragma once
#include <napi.h>

#include <vector>

#include "backend.h"
#include "tensor.h"

namespace simcsepp {

// The op table of `device` (for CUDA, what this build registered; empty without nvcc).
const Backend& backend(Device device);

// Throws unless `op` can run on `device`: CUDA compiled in and usable, and `implemented` (the table
// has the op). `cpuHas` says whether the CPU backend has it (for the message); `culprit`, if not
// null, names the argument that lives on `device`.
void require_runnable(const Napi::Env& env, const char* op, Device device, bool implemented, bool cpuHas,
                      const char* culprit);

// The entry `member` of `device`'s table, for ops whose device is an argument rather than a tensor.
template <class Fn>
Fn* op_entry(const Napi::Env& env, const char* op, Device device, Fn* Backend::*member) {
  require_runnable(env, op, device, backend(device).*member != nullptr, cpu_backend().*member != nullptr, nullptr);
  return backend(device).*member;
}

class OpTensors {
 public:
  OpTensors(const Napi::CallbackInfo& info, const char* op) : info_(info), op_(op) {}

  NativeTensor* tensor(size_t index, const char* name);    // a live Tensor (arg_tensor)
  NativeTensor* optional(size_t index, const char* name);  // same, or nullptr for undefined / null
  NativeTensor* matrix(size_t index, const char* name);    // a [N, D] Tensor, N, D >= 1 (arg_matrix)
  // Tensors at 0, 1, ... named `names`, each holding as many elements as the first (element-wise ops).
  std::vector<NativeTensor*> same_size(const std::vector<const char*>& names);

  // The entry `member` of the table of the tensors' device, after the device checks above and a last
  // check that every collected tensor is still live (validating a later argument can run JavaScript,
  // e.g. a Proxy's trap during instanceof, which might have disposed an earlier one).
  template <class Fn>
  Fn* entry(Fn* Backend::*member) const {
    require_live();
    for (const Arg& a : args_) {
      const Device d = a.tensor->device();
      require_runnable(info_.Env(), op_, d, backend(d).*member != nullptr, cpu_backend().*member != nullptr, a.name);
    }
    return backend(device()).*member;
  }

  // The device all collected tensors are on (TypeError naming the first argument that is not).
  Device device() const;

 private:
  struct Arg {
    NativeTensor* tensor;
    const char* name;
  };
  NativeTensor* keep(NativeTensor* t, const char* name);
  void require_live() const;

  const Napi::CallbackInfo& info_;
  const char* op_;
  std::vector<Arg> args_;
};

}  // namespace simcsepp
