// Optimiser ops (native/ops/optim.h):
//   adamw_step:       torch.optim.AdamW, one step, per element (common/adamw.h):
//                     p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//                     p -= lr / (1 - b1^step) * m / (sqrt(v) / sqrt(1 - b2^step) + eps).
//                     The constants are formed in double on the host by the same code as the CPU's and
//                     the update rounds every operation separately, so it matches cpu::adamw_step bit
//                     for bit. With a gradScale (a device float, clip_grad_scale's), g is g * scale first,
//                     rounded once, as clip_grad_norm's in-place scale rounds it. When the params have a bf16
//                     mirror, bf16(p) is written into it too. Tiling: detail::run_map (grid.cuh), one thread per
//                     element, grid-stride.
//   grad_sum_squares: sum g^2 in double. Fixed chunks of 16384 elements, one 256-thread block per chunk
//                     (at most 4096 blocks, grid-stride over chunks): thread t sums elements t, t + 256, ... of its
//                     chunk in double, the block adds the 256 partials by a fixed shared-memory tree, and the chunk
//                     partials are copied to the host and added in chunk order. Chunking and orders are fixed, so the
//                     result is bit-identical from run to run; it differs from the CPU's (sequential within a chunk)
//                     only by double rounding.
//   clip_grad_norm:   the same partials, added on the device (sum_partials_kernel: one thread, in chunk order, the
//                     next 32 partials in flight), which also forms the coefficient (common/clip.h) into a device
//                     float; then g *= coefficient when it is not 1.
//   clip_grad_scale:  the same two kernels, the coefficient into the caller's float (for adamw_step's gradScale);
//                     g is not touched, which saves clip_grad_norm's pass over it (read and write).
//   scale_inplace:    elementwise.cu.
#include <vector>

#include "bf16_mirror.cuh"
#include "common/adamw.h"
#include "common/clip.h"
#include "grid.cuh"
#include "in_order_sum.cuh"

namespace simcsepp::cuda {

namespace {

constexpr int kSumThreads = 256;
constexpr int64_t kSumChunk = 16384;
constexpr int kAhead = 32;  // partials sum_partials_kernel keeps in flight

struct AdamwOp {
  AdamwConstants k;
  float* params;
  const float* grads;
  float* m;
  float* v;
  __nv_bfloat16* mirror;   // the params' bf16 mirror (bf16_mirror.cuh), or null
  const float* gradScale;  // clip_grad_scale's coefficient, or null
  __device__ void operator()(int64_t i) const {
    adamw_update(k, params[i], m[i], v[i], gradScale != nullptr ? adamw_mul(grads[i], *gradScale) : grads[i]);
    if (mirror != nullptr) mirror[i] = __float2bfloat16(params[i]);
  }
};

// AdamW inside a step graph: the constants are read from the device (they change with every step) and
// the update is skipped when the step's losses or gradient norm were not finite (graph_capture.cuh).
struct CapturedAdamwOp {
  detail::CapturedAdamw c;
  float* params;
  const float* grads;
  float* m;
  float* v;
  __nv_bfloat16* mirror;
  const float* gradScale;
  __device__ void operator()(int64_t i) const {
    if (*c.skip != 0) return;
    adamw_update(*c.constants, params[i], m[i], v[i],
                 gradScale != nullptr ? adamw_mul(grads[i], *gradScale) : grads[i]);
    if (mirror != nullptr) mirror[i] = __float2bfloat16(params[i]);
  }
};

// The chunk partials added in chunk order (as the host adds them) into *out, and the clipping coefficient
// of that sum into *scale: one thread.
__global__ void sum_partials_kernel(const double* partial, int64_t chunks, double* out, double maxNorm, float* scale) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  double total = 0.0;  // in chunk order, as grad_sum_squares adds them on the host
  detail::add_in_order<kAhead>(
      total, chunks, [&](int64_t k) { return partial[k]; }, [](double s, double x) { return s + x; });
  *out = total;
  *scale = clip_coefficient(total, maxNorm);
}

// g *= *scale (clip_coefficient's), unless it is 1.
struct ClipOp {
  float* g;
  const float* scale;
  __device__ void operator()(int64_t i) const {
    if (*scale != 1.0f) g[i] = g[i] * *scale;
  }
};

__global__ void __launch_bounds__(kSumThreads)
    sum_squares_kernel(double* partial, const float* g, int64_t n, int64_t chunks) {
  __shared__ double sums[kSumThreads];
  for (int64_t chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    const int64_t begin = chunk * kSumChunk;
    const int64_t end = begin + kSumChunk < n ? begin + kSumChunk : n;
    double s = 0.0;
    for (int64_t i = begin + threadIdx.x; i < end; i += kSumThreads) s += static_cast<double>(g[i]) * g[i];
    sums[threadIdx.x] = s;
    __syncthreads();
    for (int half = kSumThreads / 2; half > 0; half >>= 1) {
      if (static_cast<int>(threadIdx.x) < half) sums[threadIdx.x] += sums[threadIdx.x + half];
      __syncthreads();
    }
    if (threadIdx.x == 0) partial[chunk] = sums[0];
    __syncthreads();  // sums[0] is read before the next chunk overwrites it
  }
}

}  // namespace

void adamw_step(float* params, const float* grads, float* m, float* v, int64_t n, double lr, double beta1, double beta2,
                double eps, double weightDecay, int64_t step, const float* gradScale) {
  // A bf16 mirror of the params is written as they are updated: a fresh mirror stays fresh (a stale one stays
  // stale; its next reader refreshes it).
  __nv_bfloat16* mirror = bf16mirror::updated_by_adamw(params, n);
  if (detail::capturing()) {
    const detail::CapturedAdamw c = detail::capture_adamw(beta1, beta2, eps, weightDecay);
    detail::run_map("adamw_step (step graph)", CapturedAdamwOp{c, params, grads, m, v, mirror, gradScale}, n);
    return;
  }
  const AdamwConstants k = adamw_constants(lr, beta1, beta2, eps, weightDecay, step);
  detail::run_map("adamw_step", AdamwOp{k, params, grads, m, v, mirror, gradScale}, n);
}

namespace {

// The sum of squares of g[0, n) into *ss (inside a step graph: a result slot) and its clipping coefficient into
// *scale (the workspace's, when null), on the op stream; returns where ss went and where scale went.
struct ClipSums {
  double* ss;
  float* scale;
};
ClipSums launch_clip_sums(const char* what, const float* g, int64_t n, double maxNorm, float* scale,
                          detail::Workspace& ws) {
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  detail::Carver measure(nullptr);
  measure.take<double>(static_cast<size_t>(chunks));
  measure.take<double>(1);
  measure.take<float>(1);
  detail::Carver cv(static_cast<char*>(ws.reserve(measure.used())));
  double* partial = cv.take<double>(static_cast<size_t>(chunks));
  // Inside a step graph the sum goes to a result slot, read after the replay.
  double* ss = detail::capturing() ? detail::capture_sum_squares_slot() : cv.take<double>(1);
  float* ownScale = cv.take<float>(1);
  if (scale == nullptr) scale = ownScale;
  const cudaStream_t stream = detail::op_stream();
  if (chunks > 0)  // (none: the sum is 0, as the CPU's)
    launch(what, sum_squares_kernel, detail::grid_blocks(chunks, 1), kSumThreads, 0, stream, partial, g, n, chunks);
  launch(what, sum_partials_kernel, 1, 32, 0, stream, partial, chunks, ss, maxNorm, scale);
  return ClipSums{ss, scale};
}

// The sum of squares at ss, once the stream has formed it (0 while capturing: the graph's results hold it).
double read_sum_squares(const double* ss) {
  if (detail::capturing()) return 0.0;
  const cudaStream_t stream = detail::op_stream();
  double total = 0.0;
  SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(&total, ss, sizeof(total), cudaMemcpyDeviceToHost, stream));
  SIMCSEPP_CUDA_CHECK(cudaStreamSynchronize(stream));
  return total;
}

}  // namespace

double clip_grad_norm(float* g, int64_t n, double maxNorm) {
  require();
  if (n <= 0) return 0.0;
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);
  const ClipSums sums = launch_clip_sums("clip_grad_norm (sums)", g, n, maxNorm, nullptr, ws);
  launch("clip_grad_norm (scale)", detail::map_kernel<ClipOp>, detail::grid_blocks(n, detail::kMapThreads),
         detail::kMapThreads, 0, detail::op_stream(), ClipOp{g, sums.scale}, n);
  return read_sum_squares(sums.ss);
}

double clip_grad_scale(const float* g, int64_t n, double maxNorm, float* scale) {
  require();
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);
  return read_sum_squares(launch_clip_sums("clip_grad_scale (sums)", g, n, maxNorm, scale, ws).ss);
}

double grad_sum_squares(const float* g, int64_t n) {
  require();
  if (n <= 0) return 0.0;
  const int64_t chunks = (n + kSumChunk - 1) / kSumChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
  {
    detail::Workspace& ws = detail::workspace();
    std::lock_guard<std::mutex> lock(ws.mu);
    auto* dPartial = static_cast<double*>(ws.reserve(static_cast<size_t>(chunks) * sizeof(double)));
    launch("grad_sum_squares", sum_squares_kernel, detail::grid_blocks(chunks, 1), kSumThreads, 0, detail::op_stream(),
           dPartial, g, n, chunks);
    SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(partial.data(), dPartial, partial.size() * sizeof(double),
                                        cudaMemcpyDeviceToHost, detail::op_stream()));
    detail::finish_op();
  }
  double total = 0.0;
  for (const double p : partial) total += p;
  return total;
}

}  // namespace simcsepp::cuda
