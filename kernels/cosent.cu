// CoSENT over scored pairs (native/ops/losses.h; Su 2022, sentence-transformers' CoSENTLoss):
//   c_i = cos(z1_i, z2_i),  s_i = c_i / tau,  P = {(i, j): y_i < y_j}  (AnglE: c_i = q_i = (x . R y) rinv_x rinv_y and
//   s_i = |q_i| / tau; every z2 below is then R z2 for z1's gradient and R^T z1 for z2's, times sign(q): losses.h),
//   L = M + log(exp(-M) + sum_P e_ij),  e_ij = exp(s_i - s_j - M),  M = max(0, max_P (s_i - s_j)),
//   dL/ds_k = (out_k - in_k) / Z,  out_k = sum_{j: y_k < y_j} e_kj,  in_k = sum_{i: y_i < y_k} e_ik,  Z = exp(-M) +
//   sum_k out_k, dL/dz1_k = dL/ds_k / tau * (u2_k - c_k u1_k) * rinv1_k,  u = z * rinv  (z2 symmetric).
// The n^2 pair terms are scalars of n cosines, never stored. Launches (after one cudaMemsetAsync of the header; the
// scores reach the device as a host argument, a CUDA step graph's bound array):
//   1. cosent_rows_kernel: a warp per row: dot and squared norms (fp32 lanes, warp sums), rinv, c_i, s_i (double),
//      NaN/Inf flag.
//   2. cosent_max_kernel: a block per row i: the largest s_i - s_j of its pairs (0 when none); then
//      cosent_top_kernel, one block: M = the rows' largest (a max: the same in any order).
//   3. cosent_sums_kernel: a block per row k: out_k and in_k (double), each thread's strided terms, then a fixed
//      tree; ordered_sum adds the out_k in row order; cosent_loss_kernel forms Z and the loss into the header.
//   4. cosent_grad_kernel: a warp per row: gz1, gz2 from (out_k - in_k) / Z, with weight and accumulate.
// No atomics but the non-finite flag: a run repeats bit for bit.
#include <cmath>

#include "cuda_check.cuh"
#include "host_args.cuh"
#include "launch.cuh"
#include "ordered_sum.cuh"
#include "warp_reduce.cuh"

namespace simcsepp::cuda {

namespace {

using detail::DeviceHeader;

constexpr int kThreads = 256;

struct CosentParams {
  const float* z1;
  const float* z2;
  const float* y;  // the scores, on the device
  int64_t n, d;
  int64_t h;   // AnglE's half width, ceil(d / 2)
  bool angle;  // AnglE's similarity instead of the cosine
  double invTau;
  float* rinv1;
  float* rinv2;
  float* cosv;
  double* s;
  double* rowMax;
  double* out;
  double* in;
  double* total;  // sum_k out_k (ordered_sum), then Z (cosent_loss_kernel)
  double* top;    // M
  DeviceHeader* hdr;
  float* gz1;
  float* gz2;
  float weight;
  bool accumulate;
};

// Block-wide sum or max of one value per thread, in a fixed tree (blockDim.x == kThreads).
template <bool kMax>
__device__ double block_reduce(double v, double* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      const double o = shared[threadIdx.x + half];
      shared[threadIdx.x] = kMax ? fmax(shared[threadIdx.x], o) : shared[threadIdx.x] + o;
    }
    __syncthreads();
  }
  return shared[0];
}

// v[i], or the zero an odd width is padded with.
__device__ __forceinline__ float padded(const float* v, int64_t d, int64_t i) { return i < d ? v[i] : 0.0f; }

// Element k of z1's partner: z2 (cosine) or R z2 (AnglE); of z2's partner: z1 or R^T z1 (the CPU's formulas).
__device__ __forceinline__ float partner_of_z1(const CosentParams& P, const float* y, int64_t k) {
  if (!P.angle) return y[k];
  return k < P.h ? padded(y, P.d, k) - padded(y, P.d, P.h + k) : padded(y, P.d, k - P.h) + padded(y, P.d, k);
}
__device__ __forceinline__ float partner_of_z2(const CosentParams& P, const float* x, int64_t k) {
  if (!P.angle) return x[k];
  return k < P.h ? padded(x, P.d, k) + padded(x, P.d, P.h + k) : padded(x, P.d, k) - padded(x, P.d, k - P.h);
}

__global__ void __launch_bounds__(kThreads) cosent_rows_kernel(CosentParams P) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (row >= P.n) return;  // whole warps leave together
  float dot = 0.0f, s1 = 0.0f, s2 = 0.0f;
  bool bad1 = false, bad2 = false;
  for (int64_t c = lane; c < P.d; c += 32) {
    const float x = P.z1[row * P.d + c], v = P.z2[row * P.d + c];
    bad1 |= !(fabsf(x) <= kMaxLossInput);  // NaN, Inf or too large (as the CPU op)
    bad2 |= !(fabsf(v) <= kMaxLossInput);
    dot = fmaf(x, partner_of_z1(P, P.z2 + row * P.d, c), dot);
    s1 = fmaf(x, x, s1);
    s2 = fmaf(v, v, s2);
  }
  dot = warp_sum(dot);
  s1 = warp_sum(s1);
  s2 = warp_sum(s2);
  const bool any1 = __any_sync(0xffffffffu, bad1), any2 = __any_sync(0xffffffffu, bad2);
  if (lane != 0) return;
  const float r1 = 1.0f / fmaxf(sqrtf(s1), kNormEps), r2 = 1.0f / fmaxf(sqrtf(s2), kNormEps);
  const float c = dot * r1 * r2;
  P.rinv1[row] = r1;
  P.rinv2[row] = r2;
  P.cosv[row] = c;
  // AnglE: |q|, whose derivative sign(q) the gradient kernel takes from cosv (0 at 0, as torch's abs).
  P.s[row] = static_cast<double>(P.angle ? fabsf(c) : c) * P.invTau;
  if (any1) detail::flag_non_finite(&P.hdr->flag, kZ1);
  if (any2) detail::flag_non_finite(&P.hdr->flag, kZ2);
}

__global__ void __launch_bounds__(kThreads) cosent_max_kernel(CosentParams P) {
  __shared__ double shared[kThreads];
  const int64_t i = blockIdx.x;
  const float yi = P.y[i];
  const double si = P.s[i];
  double m = 0.0;
  for (int64_t j = threadIdx.x; j < P.n; j += kThreads)
    if (yi < P.y[j]) m = fmax(m, si - P.s[j]);
  m = block_reduce<true>(m, shared);
  if (threadIdx.x == 0) P.rowMax[i] = m;
}

__global__ void __launch_bounds__(kThreads) cosent_top_kernel(CosentParams P) {
  __shared__ double shared[kThreads];
  double m = 0.0;
  for (int64_t i = threadIdx.x; i < P.n; i += kThreads) m = fmax(m, P.rowMax[i]);
  m = block_reduce<true>(m, shared);
  if (threadIdx.x == 0) *P.top = m;
}

__global__ void __launch_bounds__(kThreads) cosent_sums_kernel(CosentParams P) {
  __shared__ double shared[kThreads];
  const int64_t k = blockIdx.x;
  const float yk = P.y[k];
  const double sk = P.s[k], m = *P.top;
  double out = 0.0, in = 0.0;
  for (int64_t j = threadIdx.x; j < P.n; j += kThreads) {
    const float yj = P.y[j];
    if (yk < yj) out += exp(sk - P.s[j] - m);
    if (yj < yk) in += exp(P.s[j] - sk - m);
  }
  out = block_reduce<false>(out, shared);
  __syncthreads();  // shared is reused
  in = block_reduce<false>(in, shared);
  if (threadIdx.x == 0) {
    P.out[k] = out;
    P.in[k] = in;
  }
}

__global__ void cosent_loss_kernel(CosentParams P) {
  const double m = *P.top, z = exp(-m) + *P.total;
  *P.total = z;
  P.hdr->loss = m + log(z);
}

__global__ void __launch_bounds__(kThreads) cosent_grad_kernel(CosentParams P) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (row >= P.n) return;
  const double c = P.cosv[row];
  const double sign = !P.angle ? 1.0 : c > 0 ? 1.0 : c < 0 ? -1.0 : 0.0;
  const double gc = (P.out[row] - P.in[row]) / *P.total * P.invTau * sign * static_cast<double>(P.weight);
  const float r1 = P.rinv1[row], r2 = P.rinv2[row];
  const float* z1 = P.z1 + row * P.d;
  const float* z2 = P.z2 + row * P.d;
  for (int64_t col = lane; col < P.d; col += 32) {
    const int64_t e = row * P.d + col;
    const double x = z1[col], v = z2[col];
    const double p1 = partner_of_z1(P, z2, col), p2 = partner_of_z2(P, z1, col);
    const float g1 = static_cast<float>(gc * (p1 * r2 - c * x * r1) * r1);
    const float g2 = static_cast<float>(gc * (p2 * r1 - c * v * r2) * r2);
    if (P.gz1 != nullptr) P.gz1[e] = P.accumulate ? P.gz1[e] + g1 : g1;
    if (P.gz2 != nullptr) P.gz2[e] = P.accumulate ? P.gz2[e] + g2 : g2;
  }
}

LossResult run_cosent(const CosentArgs& a, const LossGradOut& g, cudaStream_t stream) {
  require();
  const int64_t n = a.n, d = a.d;
  if (n <= 0) return LossResult{};
  // The scores first (their lock, then the workspace's, as no other op takes both the other way round).
  detail::HostArgs args(stream);
  const float* y = args.to_device(a.scores, n, detail::kSlotScores);
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);
  auto layout = [&](detail::Carver& cv, CosentParams& P) {
    P.hdr = cv.take<DeviceHeader>(1);
    P.rinv1 = cv.take<float>(static_cast<size_t>(n));
    P.rinv2 = cv.take<float>(static_cast<size_t>(n));
    P.cosv = cv.take<float>(static_cast<size_t>(n));
    P.s = cv.take<double>(static_cast<size_t>(n));
    P.rowMax = cv.take<double>(static_cast<size_t>(n));
    P.out = cv.take<double>(static_cast<size_t>(n));
    P.in = cv.take<double>(static_cast<size_t>(n));
    P.total = cv.take<double>(1);
    P.top = cv.take<double>(1);
  };
  CosentParams P{};
  detail::Carver measure(nullptr);
  layout(measure, P);
  detail::Carver cv(static_cast<char*>(ws.reserve(measure.used())));
  layout(cv, P);
  P.z1 = a.z1;
  P.z2 = a.z2;
  P.y = y;
  P.n = n;
  P.d = d;
  P.invTau = 1.0 / static_cast<double>(a.temperature);
  P.angle = a.similarity == kAngle;
  P.h = (d + 1) / 2;
  P.gz1 = g.gz1;
  P.gz2 = g.gz2;
  P.weight = static_cast<float>(g.weight);
  P.accumulate = g.accumulate;

  SIMCSEPP_CUDA_CHECK(cudaMemsetAsync(P.hdr, 0, sizeof(DeviceHeader), stream));
  const unsigned warpBlocks = static_cast<unsigned>((n + kThreads / 32 - 1) / (kThreads / 32));
  launch("cosent_rows_kernel", cosent_rows_kernel, warpBlocks, kThreads, 0, stream, P);
  launch("cosent_max_kernel", cosent_max_kernel, static_cast<unsigned>(n), kThreads, 0, stream, P);
  launch("cosent_top_kernel", cosent_top_kernel, 1, kThreads, 0, stream, P);
  launch("cosent_sums_kernel", cosent_sums_kernel, static_cast<unsigned>(n), kThreads, 0, stream, P);
  detail::ordered_sum(P.out, n, P.total, stream);
  launch("cosent_loss_kernel", cosent_loss_kernel, 1, 1, 0, stream, P);
  if (g.gz1 != nullptr || g.gz2 != nullptr)
    launch("cosent_grad_kernel", cosent_grad_kernel, warpBlocks, kThreads, 0, stream, P);
  return detail::loss_result(P.hdr, 1.0, static_cast<double>(g.weight), stream);
}

}  // namespace

LossResult cosent(const CosentArgs& a, const LossGradOut& g) { return run_cosent(a, g, detail::op_stream()); }

}  // namespace simcsepp::cuda
