// The run-time MPI loader (mpi.h). The few MPI functions used are declared here, per ABI, instead of
// including mpi.h, so that nothing about MPI is needed at build time.
#include "distributed/mpi.h"

#include <dlfcn.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace simcsepp::dist {

namespace {

// The MPI functions used, for a handle type H (Open MPI: pointers; MPICH: int).
template <class H>
struct Api {
  int (*Initialized)(int*);
  int (*Init_thread)(int*, char***, int, int*);
  int (*Comm_rank)(H, int*);
  int (*Comm_size)(H, int*);
  int (*Allreduce)(const void*, void*, int, H, H, H);
  int (*Allgatherv)(const void*, int, H, void*, const int*, const int*, H, H);
  int (*Bcast)(void*, int, H, int, H);
  int (*Barrier)(H);
  int (*Abort)(H, int);
  int (*Finalized)(int*);
  int (*Finalize)();
};

// The handles of one ABI.
template <class H>
struct Handles {
  H comm_world, float_type, double_type, byte_type, op_sum, op_max;
  void* in_place;
};

template <class T>
void bind(void* lib, const char* name, T& fn) {
  void* p = dlsym(lib, name);
  if (!p) throw std::runtime_error(std::string("the MPI library lacks ") + name);
  fn = reinterpret_cast<T>(p);
}

void check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + " failed (MPI error " + std::to_string(rc) + ")");
}

template <class H>
class MpiImpl final : public Mpi {
 public:
  MpiImpl(void* lib, const Handles<H>& h) : h_(h) {
    bind(lib, "MPI_Initialized", api_.Initialized);
    bind(lib, "MPI_Init_thread", api_.Init_thread);
    bind(lib, "MPI_Comm_rank", api_.Comm_rank);
    bind(lib, "MPI_Comm_size", api_.Comm_size);
    bind(lib, "MPI_Allreduce", api_.Allreduce);
    bind(lib, "MPI_Allgatherv", api_.Allgatherv);
    bind(lib, "MPI_Bcast", api_.Bcast);
    bind(lib, "MPI_Barrier", api_.Barrier);
    bind(lib, "MPI_Abort", api_.Abort);
    bind(lib, "MPI_Finalized", api_.Finalized);
    bind(lib, "MPI_Finalize", api_.Finalize);
    int done = 0;
    check(api_.Initialized(&done), "MPI_Initialized");
    if (!done) {
      // Collectives are called from the JS thread only (MPI_THREAD_FUNNELED = 1 in both ABIs).
      int provided = 0;
      check(api_.Init_thread(nullptr, nullptr, 1, &provided), "MPI_Init_thread");
    }
    check(api_.Comm_rank(h_.comm_world, &rank), "MPI_Comm_rank");
    check(api_.Comm_size(h_.comm_world, &size), "MPI_Comm_size");
  }

  void allreduce_sum(float* data, int64_t n) override {
    for (int64_t at = 0; at < n; at += INT_MAX) {
      const int k = static_cast<int>(std::min<int64_t>(INT_MAX, n - at));
      check(api_.Allreduce(h_.in_place, data + at, k, h_.float_type, h_.op_sum, h_.comm_world), "MPI_Allreduce");
    }
  }

  void allreduce_max(double* data, int n) override {
    check(api_.Allreduce(h_.in_place, data, n, h_.double_type, h_.op_max, h_.comm_world), "MPI_Allreduce");
  }

  void allgatherv(float* data, const std::vector<int64_t>& counts) override {
    if (counts.size() != static_cast<size_t>(size)) throw std::runtime_error("allgatherv: one count per rank expected");
    std::vector<int> c(size), d(size);
    int64_t at = 0;
    for (int r = 0; r < size; r++) {
      // Displacements are ints in MPI: a gathered buffer is at most INT_MAX floats (8 GiB).
      if (counts[r] < 0 || at + counts[r] > INT_MAX)
        throw std::runtime_error("allgatherv: more than 2^31 - 1 floats gathered at once");
      c[r] = static_cast<int>(counts[r]);
      d[r] = static_cast<int>(at);
      at += counts[r];
    }
    check(api_.Allgatherv(h_.in_place, 0, h_.float_type, data, c.data(), d.data(), h_.float_type, h_.comm_world),
          "MPI_Allgatherv");
  }

  void broadcast(void* data, int64_t bytes, int root) override {
    char* p = static_cast<char*>(data);
    for (int64_t at = 0; at < bytes; at += INT_MAX) {
      const int k = static_cast<int>(std::min<int64_t>(INT_MAX, bytes - at));
      check(api_.Bcast(p + at, k, h_.byte_type, root, h_.comm_world), "MPI_Bcast");
    }
  }

  void barrier() override { check(api_.Barrier(h_.comm_world), "MPI_Barrier"); }

  [[noreturn]] void abort(int code) override {
    api_.Abort(h_.comm_world, code);
    std::_Exit(code);  // MPI_Abort does not return; should it, the process still ends
  }

  void finalize() override {
    if (finalized) return;
    finalized = true;
    int done = 0;
    if (api_.Finalized(&done) == 0 && !done) api_.Finalize();
  }

 private:
  Api<H> api_{};
  Handles<H> h_;
};

std::string library_version(void* lib) {
  using Fn = int (*)(char*, int*);
  auto fn = reinterpret_cast<Fn>(dlsym(lib, "MPI_Get_library_version"));
  if (!fn) return "";
  std::string s(8192, '\0');  // MPI_MAX_LIBRARY_VERSION_STRING: 256 in Open MPI, 8192 in MPICH
  int len = 0;
  if (fn(s.data(), &len) != 0) return "";
  s.resize(static_cast<size_t>(std::max(0, len)));
  s.resize(std::strlen(s.c_str()));  // the length may count the terminating NUL
  return s.substr(0, s.find('\n'));
}

std::unique_ptr<Mpi> open_mpi(void* lib) {
  auto sym = [&](const char* name) {
    void* p = dlsym(lib, name);
    if (!p) throw std::runtime_error(std::string("the Open MPI library lacks ") + name);
    return p;
  };
  Handles<void*> h{sym("ompi_mpi_comm_world"), sym("ompi_mpi_float"),  sym("ompi_mpi_double"),    sym("ompi_mpi_byte"),
                   sym("ompi_mpi_op_sum"),     sym("ompi_mpi_op_max"), reinterpret_cast<void*>(1)};
  return std::make_unique<MpiImpl<void*>>(lib, h);
}

std::unique_ptr<Mpi> mpich(void* lib) {
  Handles<int> h{0x44000000,
                 0x4c00040a,
                 0x4c00080b,
                 0x4c00010d,
                 0x58000003,
                 0x58000001,
                 reinterpret_cast<void*>(static_cast<intptr_t>(-1))};
  return std::make_unique<MpiImpl<int>>(lib, h);
}

std::unique_ptr<Mpi>& instance() {
  static std::unique_ptr<Mpi> m;
  return m;
}

}  // namespace

std::vector<std::string> mpi_candidates() {
  std::vector<std::string> names;
  // A library named by the user is the one to use: no fallback to another MPI than the launcher's.
  if (const char* env = std::getenv("SIMCSEPP_MPI_LIB"); env && *env) return {env};
  // The launcher's library first: under MPICH's Hydra (PMI_SIZE) Open MPI would start as a singleton,
  // a world of one rank, and the other way round.
  const bool hydra = std::getenv("PMI_SIZE") != nullptr && std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr;
  const std::vector<const char*> open_mpi = {"libmpi.so.40"}, mpich = {"libmpich.so.12", "libmpi.so.12"};
  for (const auto* group : hydra ? std::vector{&mpich, &open_mpi} : std::vector{&open_mpi, &mpich})
    for (const char* n : *group) names.push_back(n);
  names.push_back("libmpi.so");
  return names;
}

Mpi& mpi() {
  std::unique_ptr<Mpi>& m = instance();
  if (m) return *m;
  std::string tried;
  for (const std::string& name : mpi_candidates()) {
    // RTLD_GLOBAL: Open MPI's plugins (mca_*.so) resolve their MPI symbols against the loaded library.
    void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (!lib) {
      const char* err = dlerror();
      tried += (tried.empty() ? "" : "; ") + name + ": " + (err ? err : "not found");
      continue;
    }
    const std::string version = library_version(lib);
    const bool ompi = dlsym(lib, "ompi_mpi_comm_world") != nullptr;
    const bool mpich_abi =
        !ompi && (version.find("MPICH") != std::string::npos || version.find("Intel") != std::string::npos ||
                  version.find("MVAPICH") != std::string::npos);
    if (!ompi && !mpich_abi) {
      tried += (tried.empty() ? "" : "; ") + name + ": neither Open MPI nor MPICH (" + version + ")";
      continue;
    }
    m = ompi ? open_mpi(lib) : mpich(lib);
    m->library = name;
    m->flavour = ompi ? "Open MPI" : "MPICH";
    m->version = version;
    return *m;
  }
  throw std::runtime_error("cannot load MPI (tried " + tried +
                           "): install Open MPI or MPICH, or set SIMCSEPP_MPI_LIB to the path of libmpi.so");
}

Mpi* mpi_if_loaded() { return instance().get(); }

}  // namespace simcsepp::dist
