// Optional reference BLAS, loaded at run time (benchmarks only; the build needs no BLAS).
//
// blas_ref_available() dlopens the first of libopenblas.so.0, libopenblas.so, libblas.so.3,
// libcblas.so.3, libmkl_rt.so that exports cblas_sgemm (once; later calls return the cached
// answer) and reports the library's file name and, for OpenBLAS, the kernel family it chose
// (openblas_get_corename: "SkylakeX" and "Cooperlake" run AVX-512, "Haswell" AVX2). blas_ref_sgemm has sgemm's
// row-major contract (gemm.h) and aborts when no library is available. OpenBLAS reads OPENBLAS_NUM_THREADS and
// OPENBLAS_CORETYPE when it is loaded: set them before the first call.
#pragma once
#include <cstdint>
#include <string>

namespace simcsepp::cpu {

bool blas_ref_available(std::string* name_out = nullptr, std::string* core_out = nullptr);

void blas_ref_sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace simcsepp::cpu
