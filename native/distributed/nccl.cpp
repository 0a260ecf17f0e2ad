// The run-time NCCL loader (nccl.h). The functions used are declared here (nccl.h of NCCL 2 is not
// needed at build time): ncclUniqueId is 128 bytes, ncclComm_t and cudaStream_t are pointers,
// ncclFloat32 = 7, ncclSum = 0. Not yet run on real GPUs: the emulated build routes CUDA tensors through
// MPI on host copies instead (bind_dist.cpp).
#include "distributed/nccl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "cuda_api.h"

namespace simcsepp::dist {

namespace {
struct UniqueId {
  char internal[128];
};
constexpr int kFloat32 = 7, kSum = 0;
}  // namespace

struct Nccl::Api {
  int (*GetUniqueId)(UniqueId*);
  int (*CommInitRank)(void**, int, UniqueId, int);
  int (*AllReduce)(const void*, void*, size_t, int, int, void*, void*);
  int (*Broadcast)(const void*, void*, size_t, int, int, void*, void*);
  int (*GroupStart)();
  int (*GroupEnd)();
  const char* (*GetErrorString)(int);
  int (*GetVersion)(int*);
};

namespace {

template <class T>
bool bind(void* lib, const char* name, T& fn) {
  fn = reinterpret_cast<T>(dlsym(lib, name));
  return fn != nullptr;
}

}  // namespace

Nccl* Nccl::create(Mpi& mpi, std::string& why) {
  auto api = std::make_unique<Api>();
  const char* env = std::getenv("SIMCSEPP_NCCL_LIB");
  const std::string name = env && *env ? env : "libnccl.so.2";
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char* err = dlerror();
    why = "cannot load " + name + ": " + (err ? err : "not found");
  } else if (!(bind(lib, "ncclGetUniqueId", api->GetUniqueId) && bind(lib, "ncclCommInitRank", api->CommInitRank) &&
               bind(lib, "ncclAllReduce", api->AllReduce) && bind(lib, "ncclBroadcast", api->Broadcast) &&
               bind(lib, "ncclGroupStart", api->GroupStart) && bind(lib, "ncclGroupEnd", api->GroupEnd) &&
               bind(lib, "ncclGetErrorString", api->GetErrorString) && bind(lib, "ncclGetVersion", api->GetVersion))) {
    why = name + " lacks an NCCL 2 function";
  }
  // Every rank takes the same path: NCCL only when it loaded everywhere.
  double failed = why.empty() ? 0 : 1;
  mpi.allreduce_max(&failed, 1);
  if (failed != 0) {
    if (why.empty()) why = "NCCL could not be loaded on another rank";
    return nullptr;
  }
  UniqueId id{};
  if (mpi.rank == 0) {
    const int rc = api->GetUniqueId(&id);
    if (rc != 0) throw std::runtime_error(std::string("ncclGetUniqueId: ") + api->GetErrorString(rc));
  }
  mpi.broadcast(&id, sizeof id, 0);
  auto* n = new Nccl();
  n->rank_ = mpi.rank;
  const int rc = api->CommInitRank(&n->comm_, mpi.size, id, mpi.rank);
  if (rc != 0) throw std::runtime_error(std::string("ncclCommInitRank: ") + api->GetErrorString(rc));
  int v = 0;
  api->GetVersion(&v);
  n->version =
      "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  n->api_ = api.release();
  return n;
}

void Nccl::allreduce_sum(float* data, int64_t n) {
  const int rc = api_->AllReduce(data, data, static_cast<size_t>(n), kFloat32, kSum, comm_, nullptr);
  if (rc != 0) throw std::runtime_error(std::string("ncclAllReduce: ") + api_->GetErrorString(rc));
  cuda::synchronize();
}

void Nccl::allgatherv(float* data, const std::vector<int64_t>& counts) {
  api_->GroupStart();
  int64_t at = 0;
  for (size_t r = 0; r < counts.size(); r++) {
    const int rc = api_->Broadcast(data + at, data + at, static_cast<size_t>(counts[r]), kFloat32, static_cast<int>(r),
                                   comm_, nullptr);
    if (rc != 0) throw std::runtime_error(std::string("ncclBroadcast: ") + api_->GetErrorString(rc));
    at += counts[r];
  }
  const int rc = api_->GroupEnd();
  if (rc != 0) throw std::runtime_error(std::string("ncclGroupEnd: ") + api_->GetErrorString(rc));
  cuda::synchronize();
}

}  // namespace simcsepp::dist
