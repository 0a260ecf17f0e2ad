// The run-time NCCL loader (nccl.h). The functions used are declared here (nccl.h of NCCL 2 is not
// needed at build time): ncclUniqueId is 128 bytes, ncclComm_t and cudaStream_t are pointers,
// ncclFloat32 = 7, ncclSum = 0. Not yet run on real GPUs. CI runs it on the emulated build against a
// stand-in library carried over MPI (emulator/fake_nccl.cpp, named by SIMCSEPP_NCCL_LIB); without it, the
// emulated build routes CUDA tensors through MPI on host copies (bind_dist.cpp).
#include "distributed/nccl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "cuda_api.h"
#include "nvidia_wheels.h"

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
  int (*CommDestroy)(void*);
};

namespace {

template <class T>
bool bind(void* lib, const char* name, T& fn) {
  fn = reinterpret_cast<T>(dlsym(lib, name));
  return fn != nullptr;
}

// The libraries to try, in order.
std::vector<std::string> nccl_candidates() {
  // A library named by the user is the one to use.
  if (const char* env = std::getenv("SIMCSEPP_NCCL_LIB"); env && *env) return {env};
  std::vector<std::string> c = {"libnccl.so.2"};  // the loader's path (e.g. Debian's and NVIDIA's libnccl2)
  for (const std::string& so : nvidia_wheel_libraries("*/lib/libnccl.so.2")) c.push_back(so);  // nvidia-nccl-cu12/13
  return c;
}

}  // namespace

Nccl* Nccl::create(Mpi& mpi, std::string& why) {
  auto api = std::make_unique<Api>();
  std::string tried;
  void* lib = nullptr;
  std::string name;
  for (const std::string& c : nccl_candidates()) {
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      name = c;
      break;
    }
    const char* err = dlerror();
    tried += (tried.empty() ? "" : "; ") + c + ": " + (err ? err : "not found");
  }
  if (!lib) {
    why = "cannot load NCCL (tried " + tried + "; set SIMCSEPP_NCCL_LIB to the path of libnccl.so.2)";
  } else if (!(bind(lib, "ncclGetUniqueId", api->GetUniqueId) && bind(lib, "ncclCommInitRank", api->CommInitRank) &&
               bind(lib, "ncclAllReduce", api->AllReduce) && bind(lib, "ncclBroadcast", api->Broadcast) &&
               bind(lib, "ncclGroupStart", api->GroupStart) && bind(lib, "ncclGroupEnd", api->GroupEnd) &&
               bind(lib, "ncclGetErrorString", api->GetErrorString) && bind(lib, "ncclGetVersion", api->GetVersion) &&
               bind(lib, "ncclCommDestroy", api->CommDestroy))) {
    why = name + " lacks an NCCL 2 function";
  } else if (cuda::status().emulated) {
    // The stand-in queues the collectives it is given on a capturing stream with the emulator's
    // cudaLaunchHostFunc (so that a step graph replays them); it cannot find that symbol itself (Node
    // loads the addon RTLD_LOCAL).
    using UseLauncher = void (*)(void*);
    if (auto use = reinterpret_cast<UseLauncher>(dlsym(lib, "cuemuFakeNcclUseHostLauncher")))
      use(cuda::launch_host_func());
  }
  // Every rank takes the same path: NCCL only when it loaded everywhere.
  double failed = why.empty() ? 0 : 1;
  mpi.allreduce_max(&failed, 1);
  if (failed != 0) {
    if (why.empty()) why = "NCCL could not be loaded on another rank";
    return nullptr;
  }
  // Rank 0's unique id, with its status, to every rank: a failure there must not leave the others waiting.
  struct {
    UniqueId id;
    int rc;
  } root{};
  if (mpi.rank == 0) root.rc = api->GetUniqueId(&root.id);
  mpi.broadcast(&root, sizeof root, 0);
  if (root.rc != 0) {
    why = std::string("ncclGetUniqueId on rank 0: ") + api->GetErrorString(root.rc);
    return nullptr;
  }
  auto n = std::make_unique<Nccl>();
  n->rank_ = mpi.rank;
  const int rc = api->CommInitRank(&n->comm_, mpi.size, root.id, mpi.rank);
  failed = rc != 0 ? 1 : 0;
  mpi.allreduce_max(&failed, 1);
  if (failed != 0) {
    if (rc == 0) api->CommDestroy(n->comm_);
    n->comm_ = nullptr;
    why = rc != 0 ? std::string("ncclCommInitRank: ") + api->GetErrorString(rc)
                  : "ncclCommInitRank failed on another rank";
    return nullptr;
  }
  int v = 0;
  api->GetVersion(&v);
  n->version =
      "NCCL " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
  n->api_ = api.release();
  return n.release();
}

Nccl::~Nccl() {
  if (api_ && comm_) api_->CommDestroy(comm_);
  delete api_;
}

// The collectives go on the ops' stream (cuda::op_stream()): outside a step graph, the legacy default stream,
// after which the host waits for them (the caller times them, and may read the data); while a step graph is
// captured, the capturing stream, and nothing waits (NCCL collectives can be captured; every rank replays
// its graph, so they meet).
//
// The emulator's stand-in NCCL (emulator/fake_nccl.cpp) moves the data when called on the legacy stream, while
// the emulator queues stream work until the host waits for it: the work queued before a collective runs first
// there. (A real NCCL is queued behind it on the stream; on a capturing stream the stand-in queues itself too.)
namespace {
void* before_collective() {
  void* stream = cuda::op_stream();
  if (!cuda::capturing() && cuda::status().emulated) cuda::synchronize();
  return stream;
}
void after_collective() {
  if (!cuda::capturing()) cuda::synchronize();
}
}  // namespace

void Nccl::allreduce_sum(float* data, int64_t n) {
  void* stream = before_collective();
  const int rc = api_->AllReduce(data, data, static_cast<size_t>(n), kFloat32, kSum, comm_, stream);
  if (rc != 0) throw std::runtime_error(std::string("ncclAllReduce: ") + api_->GetErrorString(rc));
  after_collective();
}

void Nccl::allgatherv(float* data, const std::vector<int64_t>& counts) {
  void* stream = before_collective();
  api_->GroupStart();
  int64_t at = 0;
  for (size_t r = 0; r < counts.size(); r++) {
    const int rc = api_->Broadcast(data + at, data + at, static_cast<size_t>(counts[r]), kFloat32, static_cast<int>(r),
                                   comm_, stream);
    if (rc != 0) throw std::runtime_error(std::string("ncclBroadcast: ") + api_->GetErrorString(rc));
    at += counts[r];
  }
  const int rc = api_->GroupEnd();
  if (rc != 0) throw std::runtime_error(std::string("ncclGroupEnd: ") + api_->GetErrorString(rc));
  after_collective();
}

}  // namespace simcsepp::dist
