// See context.h.
#include "context.h"

#include <cstdint>

#if defined(__x86_64__) && defined(__linux__)

// cuemu_switch(void** saveSp, void* loadSp): pushes the System V callee-saved registers and the
// SSE/x87 control words, stores the stack pointer, loads the other one and pops the same layout.
asm(R"(
  .text
  .globl cuemu_switch
  .type cuemu_switch, @function
cuemu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size cuemu_switch, .-cuemu_switch

  .globl cuemu_trampoline
  .type cuemu_trampoline, @function
cuemu_trampoline:
  movq %rbx, %rax
  andq $-16, %rsp
  callq *%rax
  ud2
  .size cuemu_trampoline, .-cuemu_trampoline
  .section .note.GNU-stack,"",@progbits
  .text
)");

extern "C" void cuemu_switch(void** saveSp, void* loadSp);
extern "C" void cuemu_trampoline();

namespace cuemu::detail {

void context_init(Context& c, char* stack, size_t size, void (*entry)()) {
  auto* top = reinterpret_cast<uint64_t*>((reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t{15}));
  uint64_t* sp = top - 10;
  uint32_t mxcsr = 0;
  uint16_t fpcw = 0;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpcw));
  sp[0] = static_cast<uint64_t>(mxcsr) | static_cast<uint64_t>(fpcw) << 32;  // control words
  sp[1] = 0;                                                                 // r15
  sp[2] = 0;                                                                 // r14
  sp[3] = 0;                                                                 // r13
  sp[4] = 0;                                                                 // r12
  sp[5] = reinterpret_cast<uint64_t>(entry);                                 // rbx: called by the trampoline
  sp[6] = 0;                                                                 // rbp
  sp[7] = reinterpret_cast<uint64_t>(&cuemu_trampoline);                     // return address
  c.sp = sp;
}

void context_switch(Context& from, Context& to) { cuemu_switch(&from.sp, to.sp); }

}  // namespace cuemu::detail

#else

namespace cuemu::detail {

void context_init(Context& c, char* stack, size_t size, void (*entry)()) {
  getcontext(&c.uc);
  c.uc.uc_stack.ss_sp = stack;
  c.uc.uc_stack.ss_size = size;
  c.uc.uc_link = nullptr;
  makecontext(&c.uc, entry, 0);
}

void context_switch(Context& from, Context& to) { swapcontext(&from.uc, &to.uc); }

}  // namespace cuemu::detail

#endif
