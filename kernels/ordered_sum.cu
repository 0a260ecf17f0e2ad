// ordered_sum (ordered_sum.cuh): parts summed in a fixed order by one block of 256 threads.
#include "launch.cuh"
#include "ordered_sum.cuh"

namespace simcsepp::cuda::detail {

namespace {

constexpr int kSumThreads = 256;

__global__ void __launch_bounds__(kSumThreads) ordered_sum_kernel(const double* parts, int64_t count, double* out) {
  __shared__ double s[kSumThreads];
  double v = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += kSumThreads) v += parts[i];
  s[threadIdx.x] = v;
  __syncthreads();
  for (int half = kSumThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) s[threadIdx.x] += s[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) *out = s[0];
}

}  // namespace

void ordered_sum(const double* parts, int64_t count, double* out, cudaStream_t stream) {
  launch("ordered_sum_kernel", ordered_sum_kernel, 1, kSumThreads, 0, stream, parts, count, out);
}

}  // namespace simcsepp::cuda::detail
