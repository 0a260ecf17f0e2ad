// Single-precision GEMM for the CPU backend.
//
// sgemm computes, row-major,  C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
// where op(X) = X, or X transposed when the flag is set:
//   A is stored [M,K] with row stride lda >= K, or (transA) [K,M] with lda >= M;
//   B is stored [K,N] with row stride ldb >= N, or (transB) [N,K] with ldb >= K;
//   C is stored [M,N] with row stride ldc >= N.
// beta == 0 overwrites C without reading it (NaN/Inf in the old C do not propagate).
// alpha == 0 or K == 0 leaves C = beta * C. M == 0 or N == 0 is a no-op.
//
// Implementation (gemm.cpp): BLIS/GotoBLAS-style packed, cache-blocked GEMM with a register-
// blocked micro-kernel chosen once at run time (AVX-512, AVX2+FMA or portable C++), multi-threaded
// on the pool in parallel.h. Safe to call concurrently from several threads and from inside a
// parallel_for chunk (it then runs on the calling thread only). Packing buffers are thread-local
// and reused, so a warm call does not allocate.
#pragma once
#include <cstdint>

namespace simcsepp::cpu {

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
           int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// Name of the micro-kernel in use: "avx512", "avx2" or "generic".
const char* sgemm_kernel_name();

// Testing/benchmark hook: force a micro-kernel ("avx512", "avx2", "generic"); returns false (and
// changes nothing) when it is unknown or this CPU cannot run it. Not meant to be called while
// another thread is inside sgemm. The environment variable SIMCSEPP_GEMM_KERNEL does the same at
// first use.
bool sgemm_force_kernel(const char* name);

}  // namespace simcsepp::cpu
