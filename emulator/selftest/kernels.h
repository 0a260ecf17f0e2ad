// The emulator's test kernels (kernels.cu), declared for the test driver (main.cpp).
#pragma once
#include "cuda_fp16.h"
#include "cuda_runtime.h"

namespace cuemu_selftest {

void block_sum(const float* in, float* out, int n);
void block_sum_missing_barrier(const float* in, float* out, int n);
void reuse_without_barrier(const float* in, float* out);
void divergent_barrier(float* out);
void barrier_after_early_return(float* out, int n);
void read_past_end(const float* in, float* out, int n);
void shared_overrun(float* out);
void dynamic_reverse(const float* in, float* out, int n, int barrier, int extra);
void touch(float* p);
void twice_plus_one(float* p);
void shuffle_with_exited_lane(float* out);
void warp_ops(const int* in, int* out);
void atomics(float* f, double* d, int* mx, int* counted);
void order_sum(int* order, int* next, float* sum);
void neighbour_read(float* out, int peek);
void wmma_gemm_half(const __half* A, const __half* B, float* C);
void wmma_gemm_tf32(const float* A, const float* B, float* C);
void wmma_half_warp(const __half* A, float* C);
void wmma_load_tile(const __half* A, float* C);
void shared_with_constructor(float* out);
void vector_copy(const float* in, float* out, int offset);
void wmma_load_at(const __half* A, float* C, int offset, unsigned ldm);

}  // namespace cuemu_selftest
