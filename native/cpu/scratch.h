// Grow-only per-thread buffers for the temporaries of the CPU losses, so that after the first call of a shape
// nothing is allocated, as the training step requires (fresh std::vectors per call cost the heap a trim and page
// faults at every step).
//
// Each file names its buffers by slot under its own tag type. A function's own buffers and those of the chunks it
// hands to parallel_for (which the calling thread also runs) must take different slots; the contents are not
// zeroed.
#pragma once
#include <cstdint>
#include <vector>

namespace simcsepp::cpu {

constexpr int kScratchSlots = 8;

template <class Tag, class T>
T* thread_scratch(int slot, int64_t n) {
  thread_local std::vector<T> buffers[kScratchSlots];
  std::vector<T>& b = buffers[slot];
  if (b.size() < static_cast<size_t>(n)) b.resize(static_cast<size_t>(n));
  return b.data();
}

}  // namespace simcsepp::cpu
