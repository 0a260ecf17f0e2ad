// The distillation loss (native/ops/losses.h; sentence-transformers' MSELoss):
//   L = sum_{r,c} (z_rc - t_{r mod n, c})^2 / (rows d),   dL/dz_rc = 2 (z_rc - t_{r mod n, c}) / (rows d).
// Launches (after one cudaMemsetAsync of the header; the targets reach the device as a host argument, a CUDA step
// graph's bound array):
//   1. mse_rows_kernel: a warp per row of z: its lanes' strided squared errors in double, a warp sum into rowSums[r],
//      the gradient written element by element (with weight and accumulate), the NaN/Inf flag;
//   2. ordered_sum: the rows' sums in row order into the header's loss.
// No atomics but the non-finite flag: a run repeats bit for bit.
#include "cuda_check.cuh"
#include "graph_capture.cuh"
#include "host_args.cuh"
#include "launch.cuh"
#include "ordered_sum.cuh"
#include "warp_reduce.cuh"

namespace simcsepp::cuda {

namespace {

using detail::DeviceHeader;

constexpr int kThreads = 256;

struct MseParams {
  const float* z;
  const float* t;  // the targets, on the device
  int64_t rows, n, d;
  double scale;  // 2 weight / (rows d)
  double* rowSums;
  DeviceHeader* hdr;
  float* gz;
  bool accumulate;
};

__global__ void __launch_bounds__(kThreads) mse_rows_kernel(MseParams P) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (row >= P.rows) return;  // whole warps leave together
  const float* z = P.z + row * P.d;
  const float* t = P.t + (row % P.n) * P.d;
  double sum = 0.0;
  bool bad = false;
  for (int64_t c = lane; c < P.d; c += 32) {
    bad |= !(fabsf(z[c]) <= kMaxLossInput);  // NaN, Inf or too large (as the CPU op)
    const double e = static_cast<double>(z[c]) - t[c];
    sum += e * e;
    if (P.gz != nullptr) {
      const float v = static_cast<float>(P.scale * e);
      float* dst = P.gz + row * P.d + c;
      *dst = P.accumulate ? *dst + v : v;
    }
  }
  sum = warp_sum(sum);
  const bool any = __any_sync(0xffffffffu, bad);
  if (lane != 0) return;
  P.rowSums[row] = sum;
  if (any) detail::flag_non_finite(&P.hdr->flag, kZ1);
}

LossResult run_mse(const MseArgs& a, const LossGradOut& g, cudaStream_t stream) {
  require();
  const int64_t rows = a.rows, d = a.d;
  if (rows <= 0 || d <= 0) return LossResult{};
  // The targets first (their lock, then the workspace's, as cosent takes them).
  detail::HostArgs args(stream);
  const float* t = args.to_device(a.target, a.n * d, detail::kSlotTargets);
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);
  auto layout = [&](detail::Carver& cv, MseParams& P) {
    P.hdr = cv.take<DeviceHeader>(1);
    P.rowSums = cv.take<double>(static_cast<size_t>(rows));
  };
  MseParams P{};
  detail::Carver measure(nullptr);
  layout(measure, P);
  detail::Carver cv(static_cast<char*>(ws.reserve(measure.used())));
  layout(cv, P);
  const double count = static_cast<double>(rows) * static_cast<double>(d);
  P.z = a.z;
  P.t = t;
  P.rows = rows;
  P.n = a.n;
  P.d = d;
  P.scale = 2.0 / count * static_cast<double>(static_cast<float>(g.weight));
  P.gz = g.gz1;
  P.accumulate = g.accumulate;

  SIMCSEPP_CUDA_CHECK(cudaMemsetAsync(P.hdr, 0, sizeof(DeviceHeader), stream));
  const unsigned warpBlocks = static_cast<unsigned>((rows + kThreads / 32 - 1) / (kThreads / 32));
  launch("mse_rows_kernel", mse_rows_kernel, warpBlocks, kThreads, 0, stream, P);
  detail::ordered_sum(P.rowSums, rows, &P.hdr->loss, stream);
  return detail::loss_result(P.hdr, count, static_cast<double>(g.weight), stream);
}

}  // namespace

LossResult mse(const MseArgs& a, const LossGradOut& g) { return run_mse(a, g, detail::op_stream()); }

}  // namespace simcsepp::cuda
