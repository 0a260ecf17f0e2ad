// Single-precision GEMM for the CPU backend: cpu::sgemm implements the op set's SgemmFn (the contract,
// row-major C = alpha op(A) op(B) + beta C, is in ops/gemm.h).
//
// Implementation (gemm.cpp): BLIS/GotoBLAS-style packed, cache-blocked GEMM with a register-
// blocked micro-kernel chosen once at run time (AVX-512, AVX2+FMA or portable C++), multi-threaded
// on the pool in parallel.h. Safe to call concurrently from several threads and from inside a
// parallel_for chunk (it then runs on the calling thread only). Packing buffers are thread-local
// and reused, so a warm call does not allocate.
#pragma once
#include <cstdint>

#include "ops/gemm.h"

namespace simcsepp::cpu {

SgemmFn sgemm;

// Name of the micro-kernel in use: "avx512", "avx2" or "generic".
const char* sgemm_kernel_name();

// Testing/benchmark hook: force a micro-kernel ("avx512", "avx2", "generic"); returns false (and
// changes nothing) when it is unknown or this CPU cannot run it. Not meant to be called while
// another thread is inside sgemm. The environment variable SIMCSEPP_GEMM_KERNEL does the same at
// first use.
bool sgemm_force_kernel(const char* name);

}  // namespace simcsepp::cpu
