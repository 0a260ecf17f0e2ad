// The op set passes small index arrays (token ids, position and type ids, attention masks, keepRows) as
// host pointers for every backend (native/ops/encoder.h). A CUDA op copies them into device buffers
// that only grow, one per slot, so once warm it allocates nothing. The copy is ordered on `stream`
// before the op's launches, and a later op's copy into the same slot is ordered after them (one stream),
// so a kernel never sees the next call's indices. Callers use the returned pointers only for the op.
#pragma once
#include <cstdint>
#include <mutex>

#include "cuda_check.cuh"

namespace simcsepp::cuda::detail {

// kSlotEmbeddingGroups: embedding_backward's row groups, built on the host from the ids (embedding.cu).
// kSlotScores: cosent's gold scores of the pairs (cosent.cu). kSlotTargets: mse's teacher vectors (mse.cu).
enum HostArgSlot {
  kSlotIds,
  kSlotPosIds,
  kSlotTypeIds,
  kSlotMask,
  kSlotKeepRows,
  kSlotEmbeddingGroups,
  kSlotScores,
  kSlotTargets,
  kHostArgSlots
};

// One op's host arguments. Holds a process-wide mutex from construction to destruction, so create it
// before the copies and keep it until the op's launches are issued: another thread's op cannot
// overwrite a slot between this op's copy and its kernels.
class HostArgs {
 public:
  explicit HostArgs(cudaStream_t stream);
  // The device copy of host[0, count) in `slot` (null when host is null).
  template <class T>
  const T* to_device(const T* host, int64_t count, HostArgSlot slot) {
    return static_cast<const T*>(copy(host, static_cast<size_t>(count) * sizeof(T), slot));
  }

 private:
  const void* copy(const void* host, size_t bytes, HostArgSlot slot);
  std::unique_lock<std::mutex> lock_;
  cudaStream_t stream_;
};

}  // namespace simcsepp::cuda::detail
