// NCCL, loaded at run time (dlopen of libnccl.so.2), for collectives on CUDA device memory: one
// communicator over all ranks, its unique id broadcast over MPI. Not yet run on real GPUs (CI runs it on
// the emulator against a stand-in, emulator/fake_nccl.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "distributed/mpi.h"

namespace simcsepp::dist {

class Nccl {
 public:
  // Loads libnccl.so.2 ($SIMCSEPP_NCCL_LIB alone when set, else the loader's path, then Python's NVIDIA wheels) and
  // creates the communicator; collective over all ranks (every rank must call it). Returns nullptr, with the reason in
  // `why`, when NCCL cannot be used on some rank: then every rank gets nullptr, so that all of them take the same path.
  static Nccl* create(Mpi& mpi, std::string& why);
  // Destroys the communicator (before MPI is finalized: distFinalize).
  ~Nccl();
  // In place on device memory, on the ops' stream, then waits for the device, unless a step graph is being
  // captured (then the collective is part of the graph: nccl.cpp).
  void allreduce_sum(float* data, int64_t n);
  // rank r's counts[r] floats at offset sum(counts[0..r)); a group of broadcasts, as the slices may differ.
  void allgatherv(float* data, const std::vector<int64_t>& counts);
  std::string version;

 private:
  struct Api;
  Api* api_ = nullptr;
  void* comm_ = nullptr;
  int rank_ = 0;
};

}  // namespace simcsepp::dist
