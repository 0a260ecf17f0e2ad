// NCCL, loaded at run time (dlopen of libnccl.so.2), for collectives on CUDA device memory: one
// communicator over all ranks, its unique id broadcast over MPI. Not yet run on real GPUs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "distributed/mpi.h"

namespace simcsepp::dist {

class Nccl {
 public:
  // Loads libnccl.so.2 ($SIMCSEPP_NCCL_LIB first) and creates the communicator; collective over all
  // ranks (every rank must call it). Returns nullptr, with the reason in `why`, when NCCL cannot be
  // used on some rank: then every rank gets nullptr, so that all of them take the same path.
  static Nccl* create(Mpi& mpi, std::string& why);
  // In place on device memory, then waits for the device (the kernels run on the default stream).
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
