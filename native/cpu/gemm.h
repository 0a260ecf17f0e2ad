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

// sgemm of the operands rounded to bfloat16 (common/bf16.h), summed in fp32: the linear layers' bf16
// products (ops/precision.h). Where the CPU has AMX and the OS grants its tiles (Linux 5.16+), packed products
// with K >= 16 run on AMX's TDPBF16PS (gemm_bf16.cpp; 2.5-5x the fp32 GEMM per core at BERT's shapes), whose
// sums are not the fp32 FMA sequence's bits but are as close to the exact products of the rounded operands
// (test/gemm-bf16.test.ts). Otherwise the bits are those of rounded copies of A and B passed to sgemm: packed
// products run on the AVX512_BF16 kernel where VDPBF16PS issues at about the FMA's rate (two k per instruction:
// 1.4-2.2x the fp32 GEMM per core on AMD's Zen 5; measured at the first bf16 product, see gemm.cpp), else round
// the operands as the fp32 kernel packs them (no copies: the fp32 GEMM's speed); small ones use the copies.
// SIMCSEPP_GEMM_BF16 picks: packed (the fp32 kernel), copies (the copies at every size), avx512bf16 (on a CPU
// with AVX512_BF16 and an FMA kernel for fp32, even where it is slow: half the fp32 GEMM's speed on Sapphire
// Rapids).
SgemmFn sgemm_bf16;

// What sgemm_fused does to C once its sum is complete, tile by tile while the tile is still in L1 (instead of
// extra passes over C in memory): C[i, j] += bias[j]; then gelu_out[i, j] = GELU(C[i, j]) (C keeps the
// pre-activation, which the backward needs), or C[i, j] *= GELU'(gelu_grad_x[i, j]) (the backward through
// GELU of the product's output gradient; with round_before_gelu_grad, C[i, j] rounded to bf16 first, common/bf16.h:
// linear_backward at bf16). Null members are skipped; GELU is gelu.h's.
struct GemmEpilogue {
  const float* bias = nullptr;  // [N]
  // Before the GELU: C[i, j] rounded to bf16 (common/bf16.h), its bits stored in bf16_out (a pre-activation kept in
  // bf16: linear_forward's outBf16); the GELU then reads the rounded values.
  uint16_t* bf16_out = nullptr;  // [M, ld_bf16_out]
  int64_t ld_bf16_out = 0;
  float* gelu_out = nullptr;  // [M, ld_gelu_out]
  int64_t ld_gelu_out = 0;
  const float* gelu_grad_x = nullptr;  // [M, ld_gelu_grad_x]
  int64_t ld_gelu_grad_x = 0;
  bool round_before_gelu_grad = false;
  // Not on C: a_row_sums[i] += sum_k op(A)[i, k] (fp32, whatever the precision of the product), e.g. the bias
  // gradient alongside a weight gradient dW += dY^T X, whose op(A) is dY^T. The fp32 packed path sums the
  // packed panels while they are in cache (each row over each K block in k order, in double, the blocks added in
  // K order: the same bits at any thread count); bf16 on AMX sums the fp32 values as it rounds and packs a
  // transposed A, in the same order; the other paths read op(A) once more.
  float* a_row_sums = nullptr;  // [M]
};

// sgemm (bf16: sgemm_bf16) followed by the epilogue: C = ep(alpha op(A) op(B) + beta C). Same summation, so
// C's bits before the epilogue are sgemm's.
void sgemm_fused(bool bf16, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const GemmEpilogue& ep);

// How sgemm_bf16's packed products run: "amx", "avx512bf16", "rounded while packed" or "rounded copies".
const char* sgemm_bf16_kernel_name();

// Name of the micro-kernel in use: "avx512", "avx2" or "generic".
const char* sgemm_kernel_name();

// Testing/benchmark hook: force a micro-kernel ("avx512", "avx2", "generic"); returns false (and
// changes nothing) when it is unknown or this CPU cannot run it. Not meant to be called while
// another thread is inside sgemm. The environment variable SIMCSEPP_GEMM_KERNEL does the same at
// first use.
bool sgemm_force_kernel(const char* name);

}  // namespace simcsepp::cpu
