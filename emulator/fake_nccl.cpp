// A stand-in libnccl for the emulated build: the subset of NCCL 2's C API that native/distributed/nccl.cpp
// calls, with the semantics nccl.h documents, carried over the Open MPI the addon has already loaded
// (RTLD_GLOBAL, so its symbols are found here). The emulator's device memory is host memory, so buffers
// go to MPI as they are. It lets CI run our NCCL code (dlopen, the unique id's broadcast, communicator
// set-up, in-place all-reduce, the grouped broadcasts of all-gather) without GPUs.
//
// It refuses what a real NCCL refuses or would hang on, with an error string saying why:
// - a communicator whose ranks were given different unique ids, or ranks that do not match MPI's world;
// - unsupported data types or reductions, null buffers, a null or destroyed communicator;
// - ranks calling different collectives (kind, count, type, reduction or root) at the same point;
// - unbalanced ncclGroupStart/ncclGroupEnd. Collectives between them are deferred to the outermost
//   ncclGroupEnd and then run in call order, as NCCL runs a group's operations together.
// Streams: a collective on the legacy default stream (null) runs when called; the addon has waited for the
// emulator's queued work first (native/distributed/nccl.cpp). On any other stream (a step graph being
// captured) it goes into the stream's order through the emulator's cudaLaunchHostFunc, which the addon hands
// over (cuemuFakeNcclUseHostLauncher): captured as a host node, it runs at every replay of the graph, when
// the emulator's queue gets there. A collective that fails there ends the process with the reason (a real
// NCCL would hang, or report it asynchronously).
//
// Built as libnccl-emulated.so next to the emulated addon; SIMCSEPP_NCCL_LIB points the addon at it
// (test/cuda-distributed.test.ts). Test switches: CUEMU_FAKE_NCCL_BUG=local makes all-reduce leave each
// rank's own values (a library that disagrees with MPI); CUEMU_FAKE_NCCL_LOG=file appends, at exit, the
// rank and the number of collectives run and floats moved.
#include <dlfcn.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

// ncclResult_t
constexpr int kSuccess = 0, kSystemError = 2, kInternalError = 3, kInvalidArgument = 4, kInvalidUsage = 5;
// ncclDataType_t and ncclRedOp_t values used (nccl.h): ncclFloat32 = 7; ncclSum = 0, ncclMax = 2, ncclMin = 3.
constexpr int kFloat32 = 7;
constexpr int kSum = 0, kMax = 2, kMin = 3;
constexpr int kVersion = 22805;                       // reported as NCCL 2.28.5
constexpr uint64_t kIdMagic = 0x6e63636c2d656d75ull;  // "nccl-emu"

struct UniqueId {
  char internal[128];
};

// Open MPI's C API, as far as used here (handles are the addresses of exported objects).
struct Mpi {
  void *world = nullptr, *floatType = nullptr, *longType = nullptr, *sum = nullptr, *max = nullptr, *min = nullptr;
  int (*Comm_rank)(void*, int*) = nullptr;
  int (*Comm_size)(void*, int*) = nullptr;
  int (*Allreduce)(const void*, void*, int, void*, void*, void*) = nullptr;
  int (*Bcast)(void*, int, void*, int, void*) = nullptr;
};

struct Op {
  enum Kind : int64_t { kAllReduce = 1, kBroadcast = 2 } kind;
  const float* send;
  float* recv;
  size_t count;
  int type;
  int redOrRoot;  // the reduction of an all-reduce, the root of a broadcast
  void* stream;
};

struct Comm {
  int rank = 0, size = 0;
  bool alive = true;
};

thread_local std::string g_lastError;
int g_groupDepth = 0;
std::vector<std::pair<Comm*, Op>> g_deferred;
long g_collectives = 0;
double g_floats = 0;
int g_rank = -1;

int fail(int code, const std::string& why) {
  g_lastError = why;
  std::fprintf(stderr, "stand-in NCCL: %s\n", why.c_str());
  return code;
}

bool bug(const char* what) {
  const char* b = std::getenv("CUEMU_FAKE_NCCL_BUG");
  return b != nullptr && std::strcmp(b, what) == 0;
}

void write_log() {
  if (const char* log = std::getenv("CUEMU_FAKE_NCCL_LOG"))
    if (FILE* f = std::fopen(log, "a")) {
      std::fprintf(f, "%d %ld %.0f\n", g_rank, g_collectives, g_floats);
      std::fclose(f);
    }
}

// Open MPI, found among the process's global symbols. Null (and g_lastError set) when it is not there.
const Mpi* mpi() {
  static Mpi m;
  static bool ready = false;
  if (ready) return &m;
  auto sym = [](const char* name) { return dlsym(RTLD_DEFAULT, name); };
  m.world = sym("ompi_mpi_comm_world");
  m.floatType = sym("ompi_mpi_float");
  m.longType = sym("ompi_mpi_long_long_int");
  m.sum = sym("ompi_mpi_op_sum");
  m.max = sym("ompi_mpi_op_max");
  m.min = sym("ompi_mpi_op_min");
  m.Comm_rank = reinterpret_cast<decltype(m.Comm_rank)>(sym("MPI_Comm_rank"));
  m.Comm_size = reinterpret_cast<decltype(m.Comm_size)>(sym("MPI_Comm_size"));
  m.Allreduce = reinterpret_cast<decltype(m.Allreduce)>(sym("MPI_Allreduce"));
  m.Bcast = reinterpret_cast<decltype(m.Bcast)>(sym("MPI_Bcast"));
  if (!m.world || !m.floatType || !m.longType || !m.sum || !m.max || !m.min || !m.Comm_rank || !m.Comm_size ||
      !m.Allreduce || !m.Bcast) {
    fail(kSystemError, "Open MPI is not loaded globally in this process (the stand-in carries data over it)");
    return nullptr;
  }
  ready = true;
  return &m;
}

void* const kInPlace = reinterpret_cast<void*>(1);  // Open MPI's MPI_IN_PLACE

// True when every rank passed the same values (compared as the max and min over the ranks).
bool same_on_all_ranks(const Mpi& m, std::vector<long long> v) {
  const int n = static_cast<int>(v.size());
  std::vector<long long> neg(v.size());
  for (size_t i = 0; i < v.size(); i++) neg[i] = -v[i];
  if (m.Allreduce(kInPlace, v.data(), n, m.longType, m.max, m.world) != 0 ||
      m.Allreduce(kInPlace, neg.data(), n, m.longType, m.max, m.world) != 0)
    return false;
  for (size_t i = 0; i < v.size(); i++)
    if (v[i] != -neg[i]) return false;
  return true;
}

int check_comm(const Comm* c, const char* fn) {
  if (c == nullptr) return fail(kInvalidArgument, std::string(fn) + ": comm is null");
  if (!c->alive) return fail(kInvalidUsage, std::string(fn) + ": comm was destroyed");
  return kSuccess;
}

int run(Comm* c, const Op& op) {
  const Mpi* m = mpi();
  if (m == nullptr) return kSystemError;
  // Every rank must call the same collective here; NCCL would hang or mix up the data otherwise.
  if (!same_on_all_ranks(*m, {op.kind, static_cast<long long>(op.count), op.type, op.redOrRoot}))
    return fail(kInvalidUsage, "ranks called different collectives (kind, count, type, reduction or root) at " +
                                   std::to_string(g_collectives + 1) + "th collective");
  ++g_collectives;
  g_floats += static_cast<double>(op.count);
  for (size_t at = 0; at < op.count; at += INT_MAX) {
    const int k = static_cast<int>(std::min<size_t>(INT_MAX, op.count - at));
    if (op.kind == Op::kAllReduce) {
      if (op.send != op.recv) std::memmove(op.recv + at, op.send + at, static_cast<size_t>(k) * sizeof(float));
      if (bug("local")) continue;
      void* red = op.redOrRoot == kSum ? m->sum : op.redOrRoot == kMax ? m->max : m->min;
      if (m->Allreduce(kInPlace, op.recv + at, k, m->floatType, red, m->world) != 0)
        return fail(kSystemError, "MPI_Allreduce failed");
    } else {
      if (c->rank == op.redOrRoot && op.send != op.recv)
        std::memmove(op.recv + at, op.send + at, static_cast<size_t>(k) * sizeof(float));
      if (m->Bcast(op.recv + at, k, m->floatType, op.redOrRoot, m->world) != 0)
        return fail(kSystemError, "MPI_Bcast failed");
    }
  }
  return kSuccess;
}

// The emulator's cudaLaunchHostFunc (cudaStream_t, cudaHostFn_t, void*) -> cudaError_t, once handed over.
int (*g_launchHostFunc)(void*, void (*)(void*), void*) = nullptr;

// Collectives queued on a stream together (one call, or one group), kept for as long as the process runs:
// a captured graph replays them.
using Batch = std::vector<std::pair<Comm*, Op>>;
std::vector<Batch*> g_queued;

void run_queued(void* p) {
  for (auto& [c, op] : *static_cast<Batch*>(p))
    if (run(c, op) != kSuccess) {
      std::fprintf(stderr, "stand-in NCCL: a collective queued on a stream failed (%s); a real NCCL would hang\n",
                   g_lastError.c_str());
      std::abort();
    }
}

// Runs `ops` now (the legacy stream), or queues them on their stream.
int dispatch(Batch ops) {
  if (ops.empty()) return kSuccess;
  void* stream = ops[0].second.stream;
  for (const auto& [c, op] : ops)
    if (op.stream != stream)
      return fail(kInvalidUsage, "a group of collectives on different streams (not supported here)");
  if (stream == nullptr) {
    for (auto& [c, op] : ops)
      if (const int rc = run(c, op)) return rc;
    return kSuccess;
  }
  if (g_launchHostFunc == nullptr)
    return fail(kInvalidUsage, "a collective on a stream, but the addon did not hand over cudaLaunchHostFunc");
  g_queued.push_back(new Batch(std::move(ops)));
  if (g_launchHostFunc(stream, run_queued, g_queued.back()) != 0)
    return fail(kSystemError, "cudaLaunchHostFunc failed (see the emulator's error)");
  return kSuccess;
}

int enqueue(Comm* c, const Op& op) {
  if (g_groupDepth > 0) {
    g_deferred.emplace_back(c, op);
    return kSuccess;
  }
  return dispatch({{c, op}});
}

}  // namespace

extern "C" {

// Not NCCL's: how the addon hands over the emulator's cudaLaunchHostFunc.
void cuemuFakeNcclUseHostLauncher(void* launchHostFunc) {
  g_launchHostFunc = reinterpret_cast<int (*)(void*, void (*)(void*), void*)>(launchHostFunc);
}

int ncclGetVersion(int* version) {
  if (version == nullptr) return fail(kInvalidArgument, "ncclGetVersion: version is null");
  *version = kVersion;
  return kSuccess;
}

const char* ncclGetErrorString(int result) {
  switch (result) {
    case kSuccess: return "no error";
    case kSystemError: return "unhandled system error";
    case kInternalError: return "internal error";
    case kInvalidArgument: return "invalid argument";
    case kInvalidUsage: return "invalid usage";
    default: return "unknown result code";
  }
}

const char* ncclGetLastError(void* /*comm*/) { return g_lastError.c_str(); }

int ncclGetUniqueId(UniqueId* id) {
  if (id == nullptr) return fail(kInvalidArgument, "ncclGetUniqueId: uniqueId is null");
  std::memset(id->internal, 0, sizeof id->internal);
  std::random_device rd;
  const uint64_t words[3] = {kIdMagic, (static_cast<uint64_t>(rd()) << 32) | rd(),
                             (static_cast<uint64_t>(rd()) << 32) | rd()};
  std::memcpy(id->internal, words, sizeof words);
  return kSuccess;
}

int ncclCommInitRank(Comm** comm, int nranks, UniqueId id, int rank) {
  if (comm == nullptr) return fail(kInvalidArgument, "ncclCommInitRank: comm is null");
  if (nranks < 1 || rank < 0 || rank >= nranks)
    return fail(kInvalidArgument,
                "ncclCommInitRank: rank " + std::to_string(rank) + " of " + std::to_string(nranks) + " ranks");
  uint64_t words[3];
  std::memcpy(words, id.internal, sizeof words);
  if (words[0] != kIdMagic) return fail(kInvalidArgument, "ncclCommInitRank: not a unique id from ncclGetUniqueId");
  const Mpi* m = mpi();
  if (m == nullptr) return kSystemError;
  int worldRank = 0, worldSize = 0;
  m->Comm_rank(m->world, &worldRank);
  m->Comm_size(m->world, &worldSize);
  if (nranks != worldSize || rank != worldRank)
    return fail(kInvalidUsage, "ncclCommInitRank: the stand-in needs rank " + std::to_string(worldRank) + " of " +
                                   std::to_string(worldSize) + " (MPI's world), got rank " + std::to_string(rank) +
                                   " of " + std::to_string(nranks));
  // A real NCCL hangs when ranks are given different ids: they never meet. Say so instead.
  if (!same_on_all_ranks(*m, {static_cast<long long>(words[1]), static_cast<long long>(words[2])}))
    return fail(kInvalidUsage, "ncclCommInitRank: the ranks were given different unique ids");
  auto* c = new Comm();
  c->rank = rank;
  c->size = nranks;
  *comm = c;
  if (g_rank < 0) {
    g_rank = rank;
    std::atexit(write_log);
  }
  return kSuccess;
}

int ncclCommDestroy(Comm* comm) {
  if (const int rc = check_comm(comm, "ncclCommDestroy")) return rc;
  comm->alive = false;  // kept, so that a later use is reported rather than a use after free
  return kSuccess;
}

int ncclAllReduce(const void* send, void* recv, size_t count, int type, int op, Comm* comm, void* stream) {
  if (const int rc = check_comm(comm, "ncclAllReduce")) return rc;
  if (type != kFloat32) return fail(kInvalidArgument, "ncclAllReduce: only ncclFloat32 (7) is supported here");
  if (op != kSum && op != kMax && op != kMin)
    return fail(kInvalidArgument, "ncclAllReduce: only ncclSum, ncclMax and ncclMin are supported here");
  if (count > 0 && (send == nullptr || recv == nullptr)) return fail(kInvalidArgument, "ncclAllReduce: a null buffer");
  return enqueue(comm,
                 {Op::kAllReduce, static_cast<const float*>(send), static_cast<float*>(recv), count, type, op, stream});
}

int ncclBroadcast(const void* send, void* recv, size_t count, int type, int root, Comm* comm, void* stream) {
  if (const int rc = check_comm(comm, "ncclBroadcast")) return rc;
  if (type != kFloat32) return fail(kInvalidArgument, "ncclBroadcast: only ncclFloat32 (7) is supported here");
  if (root < 0 || root >= comm->size)
    return fail(kInvalidArgument,
                "ncclBroadcast: root " + std::to_string(root) + " of " + std::to_string(comm->size) + " ranks");
  if (count > 0 && (recv == nullptr || (comm->rank == root && send == nullptr)))
    return fail(kInvalidArgument, "ncclBroadcast: a null buffer");
  return enqueue(
      comm, {Op::kBroadcast, static_cast<const float*>(send), static_cast<float*>(recv), count, type, root, stream});
}

int ncclGroupStart() {
  ++g_groupDepth;
  return kSuccess;
}

int ncclGroupEnd() {
  if (g_groupDepth == 0) return fail(kInvalidUsage, "ncclGroupEnd without ncclGroupStart");
  if (--g_groupDepth > 0) return kSuccess;
  Batch ops;
  ops.swap(g_deferred);
  return dispatch(std::move(ops));
}

}  // extern "C"
