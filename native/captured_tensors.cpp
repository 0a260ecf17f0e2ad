#include "captured_tensors.h"

namespace simcsepp {

namespace {
thread_local CapturedTensors* t_notes = nullptr;
}

const std::string* CapturedTensors::first_freed() const {
  for (const Note& n : notes)
    if (n.storage->freed) return &n.name;
  return nullptr;
}

CaptureNotes::CaptureNotes(CapturedTensors* into) : previous_(t_notes) { t_notes = into; }

CaptureNotes::~CaptureNotes() { t_notes = previous_; }

void note_captured_collectives(const void* communicator) {
  if (t_notes != nullptr) t_notes->communicator = communicator;
}

void note_captured_tensor(const NativeTensor* t, const char* name) {
  if (t_notes == nullptr || t->device() != Device::kCuda) return;
  const std::shared_ptr<Storage>& s = t->storage();
  if (t_notes->seen.emplace(s.get(), t_notes->notes.size()).second) t_notes->notes.push_back({s, name});
}

}  // namespace simcsepp
