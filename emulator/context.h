// Fiber context switching for the emulator's threads. On x86-64 a hand-written switch saves only the
// callee-saved registers (tens of nanoseconds); elsewhere ucontext's swapcontext, which also saves the
// signal mask with a system call per switch (a microsecond), so the emulator is several times slower.
#pragma once
#include <ucontext.h>

#include <cstddef>

namespace cuemu::detail {

struct Context {
  void* sp = nullptr;  // saved stack pointer (x86-64)
  ucontext_t uc{};     // saved context (other architectures)
};

// Prepares `c` to run entry() on [stack, stack + size) at the first switch to it. entry must never
// return: it ends by switching away for good.
void context_init(Context& c, char* stack, size_t size, void (*entry)());
// Saves the running context into `from` and resumes `to`.
void context_switch(Context& from, Context& to);

}  // namespace cuemu::detail
