// The GEMM of the op set (backend.h): single-precision, row-major, with optional transposes.
//
//   C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C,   op(X) = X, or X transposed when the flag is set:
//   A is stored [M,K] with row stride lda >= K, or (transA) [K,M] with lda >= M;
//   B is stored [K,N] with row stride ldb >= N, or (transB) [N,K] with ldb >= K;
//   C is stored [M,N] with row stride ldc >= N.
// beta == 0 overwrites C without reading it (NaN/Inf in the old C do not propagate).
// alpha == 0 or K == 0 leaves C = beta * C. M == 0 or N == 0 is a no-op.
#pragma once
#include <cstdint>

namespace simcsepp {

using SgemmFn = void(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace simcsepp
