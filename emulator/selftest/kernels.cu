// Kernels for the emulator's own tests (emulator/selftest/main.cpp): correct ones whose results are
// checked, and deliberately broken ones that the emulator must catch (a missing barrier, a divergent
// barrier, out-of-bounds accesses, a collective naming an exited lane). Compiled only for the emulator.
#include "kernels.h"

namespace cuemu_selftest {

// Block sum through shared memory (tree reduction); out[blockIdx.x] = sum of the block's inputs.
__global__ void block_sum(const float* in, float* out, int n) {
  __shared__ float s[256];
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  s[t] = i < n ? in[i] : 0.0f;
  __syncthreads();
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (t < half) s[t] += s[t + half];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

// The same without the barrier between the store and the first read: a read-after-write race.
__global__ void block_sum_missing_barrier(const float* in, float* out, int n) {
  __shared__ float s[256];
  const int t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
  s[t] = i < n ? in[i] : 0.0f;
  for (int half = blockDim.x / 2; half > 0; half /= 2) {
    if (t < half) s[t] += s[t + half];
    __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = s[0];
}

// A write-after-read race: the buffer is refilled while slower threads may still read the old values.
__global__ void reuse_without_barrier(const float* in, float* out) {
  __shared__ float s[64];
  const int t = threadIdx.x;
  s[t] = in[t];
  __syncthreads();
  const float v = s[(t + 1) % 64];
  s[t] = v * 2.0f;  // thread t - 1 may not have read s[t] yet
  out[t] = v;
}

// Half the block waits at one barrier, the other half at another.
__global__ void divergent_barrier(float* out) {
  if (threadIdx.x < 16) {
    __syncthreads();
    out[threadIdx.x] = 1.0f;
  } else {
    out[threadIdx.x] = 2.0f;
    __syncthreads();
  }
}

// Threads past n leave before the barrier the others wait at.
__global__ void barrier_after_early_return(float* out, int n) {
  if (static_cast<int>(threadIdx.x) >= n) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// Reads one element past the end of `in` (the bound is <= instead of <).
__global__ void read_past_end(const float* in, float* out, int n) {
  const int i = threadIdx.x;
  if (i <= n) out[0] += in[i];
}

// Writes one element past a __shared__ array.
__global__ void shared_overrun(float* out) {
  __shared__ float s[32];
  s[threadIdx.x + 1] = 1.0f;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}

// out[i] = in[n - 1 - i] through the block's dynamic shared memory (n floats of it): each thread stores a strided
// share, then reads another thread's. barrier = false leaves out the __syncthreads() between the two (a race);
// extra > 0 also writes `extra` floats past the n (out of bounds when the launch has exactly n floats).
__global__ void dynamic_reverse(const float* in, float* out, int n, int barrier, int extra) {
  float* buf = reinterpret_cast<float*>(cuemu::dynamic_shared());
  for (int i = threadIdx.x; i < n + extra; i += blockDim.x) buf[i] = i < n ? in[i] : 0.0f;
  if (barrier) __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = buf[n - 1 - i];
}

// Dereferences whatever pointer it is given (a host pointer, or a freed device buffer).
__global__ void touch(float* p) { p[threadIdx.x] = 1.0f; }

// p[i] = 2 p[i] + 1: replays of a graph holding it are counted by the result (2^k - 1 from 0).
__global__ void twice_plus_one(float* p) { p[threadIdx.x] = 2.0f * p[threadIdx.x] + 1.0f; }

// Lane 0 returns, the rest shuffle with a full mask that still names lane 0.
__global__ void shuffle_with_exited_lane(float* out) {
  if (threadIdx.x == 0) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

// Warp intrinsics: results the test checks lane by lane.
__global__ void warp_ops(const int* in, int* out) {
  const int lane = threadIdx.x % 32, v = in[threadIdx.x];
  int s = v;
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  out[threadIdx.x * 6 + 0] = s;                                       // warp sum
  out[threadIdx.x * 6 + 1] = __shfl_sync(0xffffffffu, v, 5);          // lane 5's value
  out[threadIdx.x * 6 + 2] = __shfl_up_sync(0xffffffffu, v, 1);       // previous lane's (own for lane 0)
  out[threadIdx.x * 6 + 3] = __shfl_down_sync(0xffffffffu, v, 2, 8);  // two lanes down within groups of 8
  out[threadIdx.x * 6 + 4] = static_cast<int>(__ballot_sync(0xffffffffu, v % 2 == 1));
  out[threadIdx.x * 6 + 5] =
      (__any_sync(0xffffffffu, v == 7) ? 1 : 0) + (__all_sync(0xffffffffu, v >= 0) ? 2 : 0) + (lane == 0 ? 0 : 0);
}

// Atomics on global memory from every thread, and a barrier reduction.
__global__ void atomics(float* f, double* d, int* mx, int* counted) {
  atomicAdd(f, 1.0f);
  atomicAdd(d, 0.5);
  atomicMax(mx, static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x));
  const int c = __syncthreads_count(threadIdx.x % 3 == 0);
  if (threadIdx.x == 0) atomicAdd(counted, c);
}

// Block b writes out[b], then reads out[(b + 1) % blocks], which another block writes: a race on a GPU
// (nothing orders two blocks of a launch), reported with CUEMU_GLOBAL_RACES=1. `peek` = 0 reads its own.
__global__ void neighbour_read(float* out, int peek) {
  if (threadIdx.x != 0) return;
  out[blockIdx.x] = static_cast<float>(blockIdx.x);
  out[gridDim.x + blockIdx.x] = out[(blockIdx.x + peek) % gridDim.x];
}

// Block b appends its index to the order it ran in, and adds to a float sum: block 0 adds 1, the others
// half an ulp of 1 each, which vanishes when added to 1 but not when added up first. A total whose bits
// depend on the order of the blocks, as split-K float atomics do.
__global__ void order_sum(int* order, int* next, float* sum) {
  if (threadIdx.x != 0) return;
  order[atomicAdd(next, 1)] = static_cast<int>(blockIdx.x);
  atomicAdd(sum, blockIdx.x == 0 ? 1.0f : 0x1p-24f * 0.5f);
}

}  // namespace cuemu_selftest

// WMMA (tensor-core API) kernels: the emulator runs them as warp collectives.
#include <mma.h>

namespace cuemu_selftest {

using namespace nvcuda;

// C (32 x 32, float) = A (32 x 32 half, row-major) B (32 x 32 half, column-major); one 16 x 16 tile per warp.
__global__ void wmma_gemm_half(const __half* A, const __half* B, float* C) {
  const int warp = threadIdx.x / 32, tm = warp / 2, tn = warp % 2;
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> b;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
  wmma::fill_fragment(c, 0.0f);
  for (int k = 0; k < 32; k += 16) {
    wmma::load_matrix_sync(a, A + tm * 16 * 32 + k, 32);
    wmma::load_matrix_sync(b, B + tn * 16 * 32 + k, 32);
    wmma::mma_sync(c, a, b, c);
  }
  wmma::store_matrix_sync(C + tm * 16 * 32 + tn * 16, c, 32, wmma::mem_row_major);
}

// C (16 x 16) = A (16 x 16) B (16 x 16), all float row-major, through tf32 fragments (m16n16k8).
__global__ void wmma_gemm_tf32(const float* A, const float* B, float* C) {
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> c;
  wmma::fill_fragment(c, 0.0f);
  for (int k = 0; k < 16; k += 8) {
    wmma::load_matrix_sync(a, A + k, 16);
    wmma::load_matrix_sync(b, B + k * 16, 16);
    for (int i = 0; i < a.num_elements; ++i) a.x[i] = wmma::__float_to_tf32(a.x[i]);
    for (int i = 0; i < b.num_elements; ++i) b.x[i] = wmma::__float_to_tf32(b.x[i]);
    wmma::mma_sync(c, a, b, c);
  }
  wmma::store_matrix_sync(C, c, 16, wmma::mem_row_major);
}

// Only half of the warp loads the fragment: WMMA operations are warp-wide.
__global__ void wmma_half_warp(const __half* A, float* C) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
  if (threadIdx.x < 16) wmma::load_matrix_sync(a, A, 16);
  C[threadIdx.x] = static_cast<float>(a.x[0]);
}

}  // namespace cuemu_selftest

namespace cuemu_selftest {

// Loads one 16 x 16 half tile (row-major, ldm 16) with the whole warp.
__global__ void wmma_load_tile(const __half* A, float* C) {
  nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __half, nvcuda::wmma::row_major> a;
  nvcuda::wmma::load_matrix_sync(a, A, 16);
  C[threadIdx.x] = static_cast<float>(a.x[0]);
}

}  // namespace cuemu_selftest

namespace cuemu_selftest {

// A __shared__ variable whose type has a constructor: CUDA rejects or ignores the initialisation.
struct WithInit {
  float v;
  WithInit() { v = 1.0f; }
};
__global__ void shared_with_constructor(float* out) {
  __shared__ WithInit s[4];
  out[threadIdx.x] = s[threadIdx.x % 4].v;
}

}  // namespace cuemu_selftest

namespace cuemu_selftest {

// A float4 copy through pointers offset by `offset` floats: on a GPU, a 16-byte access must be 16-byte aligned.
__global__ void vector_copy(const float* in, float* out, int offset) {
  reinterpret_cast<float4*>(out)[threadIdx.x] = reinterpret_cast<const float4*>(in + offset)[threadIdx.x];
}

// A WMMA load at A + offset with leading dimension ldm.
__global__ void wmma_load_at(const __half* A, float* C, int offset, unsigned ldm) {
  nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __half, nvcuda::wmma::row_major> a;
  nvcuda::wmma::load_matrix_sync(a, A + offset, ldm);
  C[threadIdx.x] = static_cast<float>(a.x[0]);
}

}  // namespace cuemu_selftest
