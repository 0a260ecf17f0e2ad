// The tensors a step graph was captured with (bind_graph.cpp): while a capture runs on this thread, each CUDA tensor
// an op receives (arg_tensor) is noted with its argument's name. The graph's kernels hold raw pointers into those
// tensors' storage, so a replay after one of them was disposed (or collected) would run on freed device memory: on a
// GPU, an illegal address that ends the process's CUDA context, or silently another tensor's memory. A launch checks
// its graph's notes first and refuses such a replay; likewise one whose NCCL collectives' communicator is gone.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "tensor.h"

namespace simcsepp {

struct CapturedTensors {
  struct Note {
    std::shared_ptr<Storage> storage;  // (kept to read its `freed` flag; the memory is still its owner's)
    std::string name;                  // the argument it was first passed as
  };
  std::vector<Note> notes;
  std::unordered_map<const Storage*, size_t> seen;
  const void* communicator = nullptr;  // the NCCL communicator its collectives use (bind_dist.cpp), if any

  // The name of the first noted tensor whose storage has been freed, or null.
  const std::string* first_freed() const;
};

// While this guard lives, the CUDA tensors ops receive on this thread are noted into `into`.
class CaptureNotes {
 public:
  explicit CaptureNotes(CapturedTensors* into);
  ~CaptureNotes();
  CaptureNotes(const CaptureNotes&) = delete;
  CaptureNotes& operator=(const CaptureNotes&) = delete;

 private:
  CapturedTensors* previous_;
};

// Called by arg_tensor for every tensor argument: a CUDA tensor is noted when a capture is under way on this thread.
void note_captured_tensor(const NativeTensor* t, const char* name);
// Called by a collective that goes through NCCL: the graph being captured uses `communicator`, which a replay needs
// alive (distFinalize destroys it: NCCL's kernels would then run with a freed communicator).
void note_captured_collectives(const void* communicator);
// Whether `communicator` is still the process's (bind_dist.cpp).
bool nccl_communicator_live(const void* communicator);

}  // namespace simcsepp
