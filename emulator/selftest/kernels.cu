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

// Dereferences whatever pointer it is given (a host pointer, or a freed device buffer).
__global__ void touch(float* p) { p[threadIdx.x] = 1.0f; }

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

}  // namespace cuemu_selftest
