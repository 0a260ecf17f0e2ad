// Node-API entry points of data-parallel training (dist/mpi.h, dist/nccl.h): the collectives
// lib/dist/communicator.ts runs over tensors. CPU tensors go through MPI in place; CUDA tensors
// through NCCL on the device, or, where NCCL is unavailable (under the emulated CUDA build unless
// SIMCSEPP_NCCL_LIB names the stand-in, emulator/fake_nccl.cpp), through MPI on host copies.
//
//   distInit() -> { rank, size, library, flavour, version }
//   distAllReduceSum(t)               t = sum of t over the ranks
//   distAllGather(t, counts)          rank r's counts[r] elements at offset sum(counts[0..r)), to all
//   distBroadcast(t, root)
//   distMax(x) -> the largest x of any rank
//   distBarrier(), distAbort(code), distFinalize()
//   distStats() -> { bytes, cudaPath }  bytes: tensor payload handed to the collectives so far
#include <napi.h>

#include <cmath>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "args.h"
#include "captured_tensors.h"
#include "cuda_api.h"
#include "distributed/mpi.h"
#include "distributed/nccl.h"
#include "register.h"
#include "tensor.h"

namespace simcsepp {

namespace {

struct DistState {
  double bytes = 0;
  bool ncclTried = false;
  std::unique_ptr<dist::Nccl> nccl;
  std::string cudaPath;  // how CUDA tensors travel, once decided
};

DistState& state() {
  static DistState s;
  return s;
}

dist::Mpi& require_mpi(const Napi::Env& env, const char* fn) {
  dist::Mpi* m = dist::mpi_if_loaded();
  if (!m) throw Napi::Error::New(env, std::string(fn) + ": call distInit() first");
  if (m->finalized) throw Napi::Error::New(env, std::string(fn) + ": MPI was finalized (distFinalize)");
  return *m;
}

// NCCL for CUDA tensors, decided once, collectively, on the first CUDA collective.
dist::Nccl* nccl_for_cuda(dist::Mpi& m) {
  DistState& s = state();
  if (!s.ncclTried) {
    s.ncclTried = true;
    std::string why;
    const char* lib = std::getenv("SIMCSEPP_NCCL_LIB");
    if (cuda::status().emulated && !(lib && *lib)) {
      // A real NCCL would fault on the emulator's host memory; a stand-in named by SIMCSEPP_NCCL_LIB
      // (emulator/fake_nccl.cpp) does not.
      why = "the emulated CUDA device is host memory";
      double failed = 1;
      m.allreduce_max(&failed, 1);  // the same collective sequence as Nccl::create
    } else {
      s.nccl.reset(dist::Nccl::create(m, why));
    }
    s.cudaPath = s.nccl ? s.nccl->version : "MPI on host copies (" + why + ")";
  }
  // (a step graph captured with this communicator's collectives is not replayed once it is gone)
  if (s.nccl) note_captured_collectives(s.nccl.get());
  return s.nccl.get();
}

// Runs `op` on host memory holding t's elements: t's own for a CPU tensor, a copy for a CUDA one (which a
// step graph cannot capture: only NCCL's collectives can be part of one).
template <class F>
void on_host(NativeTensor* t, F&& op) {
  const size_t bytes = static_cast<size_t>(t->numel()) * sizeof(float);
  if (t->device() == Device::kCpu) return op(t->data());
  if (cuda::capturing())
    throw cuda::CudaError("a collective on CUDA tensors inside a step graph needs NCCL (they travel through " +
                          state().cudaPath + ")");
  std::vector<float> host(static_cast<size_t>(t->numel()));
  cuda::copy_to_host(host.data(), t->data(), bytes);
  op(host.data());
  cuda::copy_to_device(t->data(), host.data(), bytes);
}

Napi::Value DistInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    dist::Mpi& m = dist::mpi();
    Napi::Object o = Napi::Object::New(env);
    o.Set("rank", m.rank);
    o.Set("size", m.size);
    o.Set("library", m.library);
    o.Set("flavour", m.flavour);
    o.Set("version", m.version);
    return o;
  });
}

Napi::Value DistAllReduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* t = arg_tensor(info, 0, "t");
  dist::Mpi& m = require_mpi(env, "distAllReduceSum");
  return guarded_void(env, [&] {
    state().bytes += static_cast<double>(t->numel()) * sizeof(float);
    if (t->device() == Device::kCuda)
      if (dist::Nccl* n = nccl_for_cuda(m)) return n->allreduce_sum(t->data(), t->numel());
    on_host(t, [&](float* p) { m.allreduce_sum(p, t->numel()); });
  });
}

Napi::Value DistAllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* t = arg_tensor(info, 0, "t");
  dist::Mpi& m = require_mpi(env, "distAllGather");
  if (!info[1].IsArray()) throw_arg(env, "Expected counts to be an array of numbers but received " + describe(info[1]));
  Napi::Array a = info[1].As<Napi::Array>();
  if (a.Length() != static_cast<uint32_t>(m.size))
    throw Napi::RangeError::New(env, "Expected counts to hold one entry per rank (" + std::to_string(m.size) +
                                         ") but it holds " + std::to_string(a.Length()));
  std::vector<int64_t> counts(m.size);
  int64_t total = 0;
  for (int r = 0; r < m.size; r++) {
    Napi::Value v = a.Get(static_cast<uint32_t>(r));
    const double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 0) || x != std::floor(x) || x > 9007199254740991.0)
      throw_arg(env,
                "Expected counts[" + std::to_string(r) + "] to be a non-negative integer but received " + describe(v));
    counts[r] = static_cast<int64_t>(x);
    total += counts[r];
  }
  if (total != t->numel())
    throw Napi::RangeError::New(env, "Expected counts to add up to the " + std::to_string(t->numel()) +
                                         " elements of t but they add up to " + std::to_string(total));
  return guarded_void(env, [&] {
    state().bytes += static_cast<double>(total) * sizeof(float);
    if (t->device() == Device::kCuda)
      if (dist::Nccl* n = nccl_for_cuda(m)) return n->allgatherv(t->data(), counts);
    on_host(t, [&](float* p) { m.allgatherv(p, counts); });
  });
}

Napi::Value DistBroadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* t = arg_tensor(info, 0, "t");
  dist::Mpi& m = require_mpi(env, "distBroadcast");
  const uint32_t root = arg_u32(info, 1, "root");
  if (root >= static_cast<uint32_t>(m.size))
    throw Napi::RangeError::New(
        env, "Expected root to be a rank below " + std::to_string(m.size) + " but received " + std::to_string(root));
  return guarded_void(env, [&] {
    on_host(
        t, [&](float* p) { m.broadcast(p, t->numel() * static_cast<int64_t>(sizeof(float)), static_cast<int>(root)); });
  });
}

Napi::Value DistMax(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double x = arg_number(info, 0, "x");
  dist::Mpi& m = require_mpi(env, "distMax");
  return guarded(env, [&]() -> Napi::Value {
    m.allreduce_max(&x, 1);
    return Napi::Number::New(env, x);
  });
}

Napi::Value DistBarrier(const Napi::CallbackInfo& info) {
  dist::Mpi& m = require_mpi(info.Env(), "distBarrier");
  return guarded_void(info.Env(), [&] { m.barrier(); });
}

Napi::Value DistAbort(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t code = arg_u32(info, 0, "code");
  dist::Mpi& m = require_mpi(env, "distAbort");
  m.abort(static_cast<int>(code));
  return env.Undefined();  // not reached: the process ends
}

Napi::Value DistFinalize(const Napi::CallbackInfo& info) {
  state().nccl.reset();  // the communicator goes before the MPI it was set up over
  if (dist::Mpi* m = dist::mpi_if_loaded()) m->finalize();
  return info.Env().Undefined();
}

Napi::Value DistStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("bytes", state().bytes);
  if (!state().cudaPath.empty()) o.Set("cudaPath", state().cudaPath);
  return o;
}

}  // namespace

bool nccl_communicator_live(const void* communicator) { return communicator == state().nccl.get(); }

void register_dist(Napi::Env env, Napi::Object exports) {
  export_functions(env, exports,
                   {
                       {"distInit", DistInit},
                       {"distAllReduceSum", DistAllReduceSum},
                       {"distAllGather", DistAllGather},
                       {"distBroadcast", DistBroadcast},
                       {"distMax", DistMax},
                       {"distBarrier", DistBarrier},
                       {"distAbort", DistAbort},
                       {"distFinalize", DistFinalize},
                       {"distStats", DistStats},
                   });
}

}  // namespace simcsepp
