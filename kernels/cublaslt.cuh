// The GEMM library of the CUDA backend: cuBLASLt when it can be loaded at run time (dlopen, so the build
// needs only nvcc and the CUDA runtime), else simcsepp's own kernels (tile_gemm.cuh for fp32,
// gemm_bf16.cuh for bf16). Probed once, at the first product or cudaStatus(): the library is searched
// (SIMCSEPP_CUBLASLT, the loader path, the CUDA toolkit, Python's nvidia-cublas wheels), then checked
// against the kernels on a few odd-sized products, for each kind of product (fp32; fp32 operands with bf16
// math; bf16 operands): a library that is missing or fails to start is not used, one that gets a kind wrong is
// not used for that kind, and cudaStatus().gemm says why. SIMCSEPP_GEMM=kernels skips cuBLASLt.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <string>

#include "cuda_check.cuh"
#include "ops/precision.h"

namespace simcsepp::cuda::lt {

// "cuBLASLt 130100 (/usr/local/cuda/lib64/libcublasLt.so.13)" or "simcsepp kernels (<why not cuBLASLt>)".
const std::string& gemm_library();

// C = alpha op(A) op(B) + beta C (+ bias[c] added to every row when bias != null), row-major with the
// conventions of tile::sgemm (transA: A stored [K, M]; transB: B stored [N, K]). At kBf16 the operands
// are rounded to bfloat16 and summed in fp32. Returns false, doing nothing, when cuBLASLt is not in use
// (the caller runs its kernel).
bool gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias, Precision precision,
          cudaStream_t stream);

// Whether cuBLASLt serves bf16 products with bf16 operands (gemm_bf16), with bf16 operands and output
// (gemm_bf16_out, without or with a bias), and with fp32 operands (gemm at Precision::kBf16): loaded, and that kind's
// self-check passed.
bool serves_bf16_operands();
bool serves_bf16_output(bool bias);
bool serves_fp32_operands_bf16();

// The same with bf16 operands (the linear layers' bf16 copies, bf16_copy.cuh): C, bias and the sums fp32.
bool gemm_bf16(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
               int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias,
               cudaStream_t stream);

// C = bf16(alpha op(A) op(B) + bias) with bf16 operands (bias fp32, may be null): the fp32 sums rounded to nearest
// even as they are stored (beta 0). Returns false, doing nothing, when cuBLASLt does not serve it (the caller then
// has the product written in fp32 and rounds it, or runs gemm_bf16_kernel with a bf16 output).
bool gemm_bf16_out(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
                   int64_t lda, const __nv_bfloat16* B, int64_t ldb, __nv_bfloat16* C, int64_t ldc, const float* bias,
                   cudaStream_t stream);

}  // namespace simcsepp::cuda::lt
