// The unfused off-dropout InfoNCE on CUDA: the benchmark baseline for the fused kernels of infonce.cu,
// made of separate kernel launches as a framework would run it (the CUDA twin of
// native/cpu/infonce_unfused.cpp). It materialises the N x N logits in global memory: never use it for
// training (N = 65,536 needs 17 GB for the logits alone).
//
//   1. normalise_kernel (x3): u = z / max(|z|, 1e-12), rinv = 1 / max(|z|, 1e-12)    (one warp per row)
//   2. sgemm_kernel<false, true> (tile_gemm.cuh): K = U0 U0^T / tau                                 ([N, N] in global
//   memory)
//   3. positive_kernel: p_i = m u1_i . u2_i / tau                                  (one warp per row)
//   4. row_softmax_kernel: K_ii masked; lse_i = log(exp(p_i) + sum_{j != i} exp(K_ij)); the row's loss
//      term; K becomes B = Q[:, :N] / (N tau) in place (B_ii = 0)                  (one block per row)
//      then ordered_sum: the loss sum over the rows in a fixed order
//   5. sgemm_kernel<false, false>: G0 = B U0;  sgemm_kernel<true, false>: G0 += B^T U0
//   6. normalise_backward_kernel: dz0 = (g - (g.u0) u0) rinv0
//   7. positive_grad_kernel + normalise_backward_kernel, for z1 then z2:
//      g = (a_i - 1) m / (N tau) u_other,  a_i = exp(p_i - lse_i)
// Every buffer is cudaMalloc'd per call and freed before returning (the point is to show what the
// unfused path costs); *workspaceBytes receives the bytes allocated, counted as the CPU baseline counts
// them (N^2 + 4 N D + 5 N floats) plus N + 1 doubles (the rows' loss terms and their sum).
// Gradients honour LossGradOut::weight and ::accumulate like the fused op. Non-finite inputs are not
// detected (the CPU baseline does not either): they give a NaN loss.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_check.cuh"
#include "launch.cuh"
#include "ordered_sum.cuh"
#include "tile_gemm.cuh"
#include "warp_reduce.cuh"

namespace simcsepp::cuda {

namespace {

using namespace tile;

constexpr int kRowThreads = 256;  // one warp per row: 8 rows per block
constexpr int kRowsPerBlock = kRowThreads / 32;

// u = z * rinv, rinv = 1 / max(|z|, kNormEps) with the norm accumulated in double (as the CPU does).
__global__ void __launch_bounds__(kRowThreads) normalise_kernel(const float* __restrict__ z, float* __restrict__ u,
                                                                float* __restrict__ rinv, int64_t n, int64_t d) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (row >= n) return;  // whole warps leave together
  const float* zr = z + row * d;
  double s = 0.0;
  for (int64_t k = lane; k < d; k += 32) s += static_cast<double>(zr[k]) * zr[k];
  s = warp_sum(s);
  const float r = static_cast<float>(1.0 / fmax(sqrt(s), static_cast<double>(kNormEps)));
  float* ur = u + row * d;
  for (int64_t k = lane; k < d; k += 32) ur[k] = zr[k] * r;
  if (lane == 0) rinv[row] = r;
}

// pos_i = m * (u1_i . u2_i) * invTau.
__global__ void __launch_bounds__(kRowThreads)
    positive_kernel(const float* __restrict__ u1, const float* __restrict__ u2, float* __restrict__ pos, int64_t n,
                    int64_t d, float posScale, float invTau) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (row >= n) return;
  float s = 0.0f;
  for (int64_t k = lane; k < d; k += 32) s = fmaf(u1[row * d + k], u2[row * d + k], s);
  s = warp_sum(s);
  if (lane == 0) pos[row] = posScale * s * invTau;
}

// One block per row i of K [n, n]: masked log-sum-exp over [K_i (j != i), p_i], the loss term
// lse_i - p_i (into rowLoss[i], added in a fixed order by ordered_sum), then the row becomes B_ij = exp(K_ij - lse_i) *
// invTau / n (B_ii = 0).
constexpr int kSoftmaxThreads = 256;

__global__ void __launch_bounds__(kSoftmaxThreads)
    row_softmax_kernel(float* __restrict__ k, const float* __restrict__ pos, float* __restrict__ lse,
                       double* __restrict__ rowLoss, int64_t n, float invTau, float invN) {
  __shared__ float redF[kSoftmaxThreads / 32];
  __shared__ double redD[kSoftmaxThreads / 32];
  const int64_t i = blockIdx.x;
  float* row = k + i * n;
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  constexpr int kWarps = kSoftmaxThreads / 32;
  const float p = pos[i];

  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < n; j += kSoftmaxThreads)
    if (j != i) mx = fmaxf(mx, row[j]);
  mx = warp_max(mx);
  if (lane == 0) redF[warp] = mx;
  __syncthreads();
  mx = p;  // the positive is in the denominator too
#pragma unroll
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, redF[w]);

  double s = 0.0;
  for (int64_t j = threadIdx.x; j < n; j += kSoftmaxThreads)
    if (j != i) s += static_cast<double>(expf(row[j] - mx));
  s = warp_sum(s);
  if (lane == 0) redD[warp] = s;
  __syncthreads();
  double total = static_cast<double>(expf(p - mx));
#pragma unroll
  for (int w = 0; w < kWarps; ++w) total += redD[w];
  const float l = static_cast<float>(static_cast<double>(mx) + log(total));

  const float scale = invTau * invN;
  for (int64_t j = threadIdx.x; j < n; j += kSoftmaxThreads) row[j] = j == i ? 0.0f : expf(row[j] - l) * scale;
  if (threadIdx.x == 0) {
    lse[i] = l;
    rowLoss[i] = static_cast<double>(l) - static_cast<double>(p);
  }
}

// g_i = coef_i * v_i with coef_i = (exp(p_i - lse_i) - 1) * m * invTau / n (the positive pair's dL/du).
__global__ void __launch_bounds__(kRowThreads)
    positive_grad_kernel(const float* __restrict__ v, const float* __restrict__ pos, const float* __restrict__ lse,
                         float* __restrict__ g, int64_t n, int64_t d, float posScale, float invTau, float invN) {
  const int64_t total = n * d;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / d;
    const float c = (expf(pos[r] - lse[r]) - 1.0f) * invN * posScale * invTau;
    g[e] = c * v[e];
  }
}

// dz_i = weight * (g_i - (g_i . u_i) u_i) * rinv_i, stored or added into out.
__global__ void __launch_bounds__(kRowThreads)
    normalise_backward_kernel(const float* __restrict__ g, const float* __restrict__ u, const float* __restrict__ rinv,
                              float* out, int64_t n, int64_t d, float weight, bool accumulate) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  if (row >= n) return;
  const float* gr = g + row * d;
  const float* ur = u + row * d;
  float s = 0.0f;
  for (int64_t k = lane; k < d; k += 32) s = fmaf(gr[k], ur[k], s);
  s = warp_sum(s);
  const float r = rinv[row] * weight;
  float* o = out + row * d;
  for (int64_t k = lane; k < d; k += 32) {
    const float v = (gr[k] - s * ur[k]) * r;
    o[k] = accumulate ? o[k] + v : v;
  }
}

// ---------------------------------------------------------------------------------------------
// Host side.

// Per-call device allocations, freed by the destructor (also when a launch throws).
class Allocations {
 public:
  Allocations() = default;
  Allocations(const Allocations&) = delete;
  Allocations& operator=(const Allocations&) = delete;
  ~Allocations() {
    for (void* p : ptrs_)
      if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();  // destructor: nothing to report to
  }
  template <class T>
  T* take(size_t count, const char* what) {
    const size_t bytes = count * sizeof(T);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      size_t freeB = 0, totalB = 0;
      std::string mem;
      if (cudaMemGetInfo(&freeB, &totalB) == cudaSuccess)
        mem = "; " + std::to_string(freeB) + " of " + std::to_string(totalB) + " bytes free on the device";
      else
        (void)cudaGetLastError();
      throw CudaError(std::string("offDropoutUnfused: cudaMalloc of ") + std::to_string(bytes) + " bytes for " + what +
                      " failed: " + cudaGetErrorString(e) + " (" + cudaGetErrorName(e) + ")" + mem);
    }
    ptrs_.push_back(p);
    bytes_ += bytes;
    return static_cast<T*>(p);
  }
  size_t bytes() const { return bytes_; }

 private:
  std::vector<void*> ptrs_;
  size_t bytes_ = 0;
};

unsigned row_blocks(int64_t n) { return static_cast<unsigned>((n + kRowsPerBlock - 1) / kRowsPerBlock); }

// The whole unfused pipeline on `stream`; returns once the loss is on the host.
LossResult run_unfused(const OffDropoutArgs& a, const LossGradOut& g, size_t* workspaceBytes, cudaStream_t stream) {
  if (workspaceBytes) *workspaceBytes = 0;
  require();
  const int64_t n = a.n, d = a.d;
  if (n <= 0) return LossResult{};
  const float invTau = 1.0f / a.temperature, invN = 1.0f / static_cast<float>(n);
  const float weight = static_cast<float>(g.weight);
  const size_t nd = static_cast<size_t>(n) * static_cast<size_t>(d);
  const size_t nn = static_cast<size_t>(n) * static_cast<size_t>(n);  // 4.3e9 at N = 65,536: size_t throughout

  Allocations mem;
  float* k = mem.take<float>(nn, "the N x N logits");
  float* u1 = mem.take<float>(nd, "u1");
  float* u2 = mem.take<float>(nd, "u2");
  float* u0 = mem.take<float>(nd, "u0");
  float* gu = mem.take<float>(nd, "the dL/du buffer");
  float* r1 = mem.take<float>(static_cast<size_t>(n), "rinv1");
  float* r2 = mem.take<float>(static_cast<size_t>(n), "rinv2");
  float* r0 = mem.take<float>(static_cast<size_t>(n), "rinv0");
  float* pos = mem.take<float>(static_cast<size_t>(n), "the positive logits");
  float* lse = mem.take<float>(static_cast<size_t>(n), "the row log-sum-exps");
  double* rowLoss = mem.take<double>(static_cast<size_t>(n), "the rows' loss terms");
  double* lossSum = mem.take<double>(1, "the loss sum");
  if (workspaceBytes) *workspaceBytes = mem.bytes();

  const unsigned rb = row_blocks(n);
  launch("normalise_kernel (z1)", normalise_kernel, rb, kRowThreads, 0, stream, a.z1, u1, r1, n, d);
  launch("normalise_kernel (z2)", normalise_kernel, rb, kRowThreads, 0, stream, a.z2, u2, r2, n, d);
  launch("normalise_kernel (z0)", normalise_kernel, rb, kRowThreads, 0, stream, a.z0, u0, r0, n, d);

  // K = U0 U0^T / tau.
  sgemm<false, true>(n, n, d, invTau, u0, d, u0, d, 0.0f, k, n, "sgemm_kernel (K = U0 U0^T)", stream);
  launch("positive_kernel", positive_kernel, rb, kRowThreads, 0, stream, u1, u2, pos, n, d, a.posScale, invTau);
  if (n > 0x7fffffff) throw CudaError("offDropoutUnfused: N exceeds the grid limit");
  launch("row_softmax_kernel", row_softmax_kernel, static_cast<unsigned>(n), kSoftmaxThreads, 0, stream, k, pos, lse,
         rowLoss, n, invTau, invN);
  detail::ordered_sum(rowLoss, n, lossSum, stream);

  // dU0 = B U0 + B^T U0 (B already carries 1 / (N tau)).
  if (g.gz0 != nullptr) {
    sgemm<false, false>(n, d, n, 1.0f, k, n, u0, d, 0.0f, gu, d, "sgemm_kernel (B U0)", stream);
    sgemm<true, false>(n, d, n, 1.0f, k, n, u0, d, 1.0f, gu, d, "sgemm_kernel (B^T U0)", stream);
    launch("normalise_backward_kernel (z0)", normalise_backward_kernel, rb, kRowThreads, 0, stream, gu, u0, r0, g.gz0,
           n, d, weight, g.accumulate);
  }
  const int64_t elemBlocks = std::min<int64_t>((static_cast<int64_t>(nd) + kRowThreads - 1) / kRowThreads, 65536);
  const float* others[2] = {u2, u1};
  const float* owns[2] = {u1, u2};
  const float* rinvs[2] = {r1, r2};
  float* outs[2] = {g.gz1, g.gz2};
  for (int s = 0; s < 2; ++s) {
    if (outs[s] == nullptr) continue;
    launch("positive_grad_kernel", positive_grad_kernel, static_cast<unsigned>(elemBlocks), kRowThreads, 0, stream,
           others[s], pos, lse, gu, n, d, a.posScale, invTau, invN);
    launch("normalise_backward_kernel (z1/z2)", normalise_backward_kernel, rb, kRowThreads, 0, stream, gu, owns[s],
           rinvs[s], outs[s], n, d, weight, g.accumulate);
  }

  double total = 0.0;
  SIMCSEPP_CUDA_CHECK(cudaMemcpyAsync(&total, lossSum, sizeof(double), cudaMemcpyDeviceToHost, stream));
  SIMCSEPP_CUDA_CHECK(cudaStreamSynchronize(stream));
  LossResult res;
  res.loss = g.weight * total / static_cast<double>(n);
  return res;  // ~Allocations frees every buffer
}

}  // namespace

LossResult offDropoutUnfused(const OffDropoutArgs& a, const LossGradOut& g, size_t* workspaceBytes) {
  return run_unfused(a, g, workspaceBytes, detail::op_stream());
}

}  // namespace simcsepp::cuda

namespace simcsepp::cuda {

// Everything run_unfused cudaMallocs: N^2 + 4 N D + 5 N floats and the loss accumulator, against the
// free device memory.
std::string offDropoutUnfusedFit(int64_t n, int64_t d) {
  const double nn = static_cast<double>(n) * static_cast<double>(n);
  const double nd = static_cast<double>(n) * static_cast<double>(d);
  const double need = (nn + 4.0 * nd + 5.0 * static_cast<double>(n)) * 4.0 + 8.0;
  const double freeBytes = static_cast<double>(free_device_memory());
  if (need <= freeBytes) return "";
  return "offDropoutUnfused: the N x N logits would not fit in device memory (" +
         std::to_string(static_cast<long long>(need)) + " bytes needed, " +
         std::to_string(static_cast<long long>(freeBytes)) + " free)";
}

}  // namespace simcsepp::cuda
