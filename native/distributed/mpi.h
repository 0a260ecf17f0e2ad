// MPI, loaded at run time (dlopen) so that the addon builds and runs without it. Only what data-parallel
// training needs: init, rank/size, in-place all-reduce and all-gather of floats, broadcast, abort.
//
// The two MPI ABIs in use are both handled, told apart by the symbols the library exports: Open MPI's
// handles are the addresses of exported objects (MPI_COMM_WORLD = &ompi_mpi_comm_world), MPICH's (and
// Intel MPI's, MVAPICH's) are integer constants. Every call is checked; MPI's default error handler
// aborts the job on a failed collective, which is also what we want when a peer dies.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace simcsepp::dist {

class Mpi {
 public:
  virtual ~Mpi() = default;
  int rank = 0;
  int size = 1;
  std::string library;  // the path or name that was loaded
  std::string flavour;  // "Open MPI" or "MPICH"
  std::string version;  // MPI_Get_library_version's first line

  // In place over every rank: data[i] = sum (max) of data[i] on all ranks. Any count (split at INT_MAX).
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_max(double* data, int n) = 0;
  // In place: rank r's counts[r] floats sit at offset sum(counts[0..r)) of data; afterwards every rank
  // holds all of them.
  virtual void allgatherv(float* data, const std::vector<int64_t>& counts) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
  [[noreturn]] virtual void abort(int code) = 0;
  // MPI_Finalize, once (later calls do nothing).
  virtual void finalize() = 0;
  bool finalized = false;
};

// Loads the library (once) and calls MPI_Init_thread (once, unless MPI is already initialised, e.g. by
// another addon). Throws std::runtime_error naming every library tried and why each failed.
Mpi& mpi();
// The loaded and initialised MPI, or nullptr when mpi() was never called successfully.
Mpi* mpi_if_loaded();

// The libraries mpi() tries, in order: $SIMCSEPP_MPI_LIB alone when set, else Open MPI's and MPICH's sonames
// (MPICH's first under its launcher, Hydra), then libmpi.so.
std::vector<std::string> mpi_candidates();

}  // namespace simcsepp::dist
