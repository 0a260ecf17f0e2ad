// Layer norm over the last dimension (native/ops/encoder.h), R rows of C floats:
//   forward:  mean = E[x], rstd = 1 / sqrt(Var[x] + eps) (biased), out = (x - mean) * rstd * weight + bias.
//             As cpu::layernorm_forward: both moments in double, the variance two-pass (sum of
//             (x - mean)^2, no E[x^2] - mean^2 cancellation), then rounded to float.
//   apply:    out = (x - mean) * rstd * weight + bias from saved statistics (the forward's expression,
//             ln_output, so its bits): a backward that reads the output recomputes it instead of keeping it.
//   backward: n = (x - mean) * rstd, g = dout * weight,
//             dinp = rstd * (g - mean(g) - n * mean(g * n))   (overwritten; dinp may alias dout),
//             dweight += sum_r dout * n, dbias += sum_r dout   (reduced in double).
// Tiling:
//   layernorm_forward_kernel, layernorm_apply_kernel, layernorm_dinp_kernel: one warp per row, 8 rows per
//     256-thread block; lane l handles columns l, l + 32, ...; row sums by warp shuffles (warp_reduce.cuh).
//     out may alias inp (and dinp dout): a lane writes only its own columns, after the row's sums are complete.
//   dweight and dbias: column_sums.cuh's chunked sums of (dout * n, dout) in double2 (grid (ceil(C / 32), chunks
//     of 128 rows) of partials, then one thread per column adding them in chunk order, 16 in flight). Fixed
//     chunks and orders: the result does not depend on scheduling; it is the CPU's double sum (added in another
//     order, so its last bits can differ) rounded to float.
// The parameter kernels run before the dinp kernel (dinp may alias dout).
// Both forwards also write bf16(out) into this thread's bf16 handoff when the binding asked for one
// (bf16_handoff.cuh): the input of the bf16 product that follows; layernorm_dropout_backward likewise bf16(dy),
// or bf16(dres) without dropout: the output gradient of the linear layer whose backward follows.
// Fused variants (the same kernels, templated): residual_layernorm_forward computes each row's input
// res = x + dropout(y) in the first pass (dropout_kernel's and add_inplace's float arithmetic, the mask
// element by element with dropout_uniform) and stores it; layernorm_dropout_backward's dinp kernel also
// writes dy = dropout(dres). So each equals its unfused sequence on this device bit for bit.
#include <algorithm>
#include <cmath>

#include "bf16_handoff.cuh"
#include "column_sums.cuh"
#include "common/philox.h"
#include "grid.cuh"
#include "host_args.cuh"
#include "warp_reduce.cuh"

namespace simcsepp::cuda {

namespace {

constexpr int kRowThreads = 256;
constexpr int kRowsPerBlock = kRowThreads / 32;
constexpr int kChunksAhead = 16;  // chunk sums the finish kernel keeps in flight (column_sums.cuh; double2 terms)

// The hidden dropout on device (TokenDropout with keepRows a device pointer, scale = 1/(1-p)).
struct RowDrop {
  float p, scale;
  uint64_t seed, offset;
  const uint8_t* keepRows;
  int64_t T;
  RowIndex rowIndex;            // where the sentences sit in the whole batch (ops/encoder.h)
  const uint64_t* offsetDelta;  // added to offset inside a step graph (graph_capture.cuh), else null
};

// Whether row `row` (a token of sentence row / T) gets dropout, and its Philox index of column 0.
__device__ __forceinline__ bool row_drops(const RowDrop& d, int64_t row) {
  return d.p > 0.0f && !(d.keepRows != nullptr && d.keepRows[row / d.T] == 0);
}
__device__ __forceinline__ uint64_t row_base(const RowDrop& d, int64_t row, int64_t C) {
  return static_cast<uint64_t>(d.rowIndex.at(row / d.T) * d.T + row % d.T) * static_cast<uint64_t>(C);
}
// dropout_kernel's arithmetic: v * scale when kept, else 0.
__device__ __forceinline__ float drop_value(const RowDrop& d, uint64_t index, float v) {
  return dropout_uniform(d.seed, detail::dropout_offset(d.offset, d.offsetDelta), index) >= d.p ? v * d.scale : 0.0f;
}

// One output element of a layer norm: the forward's and the apply kernel's one expression (the same bits).
__device__ __forceinline__ float ln_output(float x, float m, float rs, float w, float b) {
  return (x - m) * rs * w + b;
}

// kResidual: the row's input is res = x + dropout(y) (written to res), else inp.
template <bool kResidual>
__global__ void __launch_bounds__(kRowThreads)
    layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                             const float* bias, int64_t R, int64_t C, float eps, float* res, const float* y,
                             RowDrop drop, __nv_bfloat16* out16) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= R) return;  // whole warps leave together
  double s = 0.0;
  if constexpr (kResidual) {
    // res = dropout(y) + x in dropout_kernel's then add_inplace's arithmetic; each lane reads back only
    // the columns it wrote, and y (which out may alias) only here.
    const bool drops = row_drops(drop, row);
    const uint64_t base = row_base(drop, row, C);
    const float* yr = y + row * C;
    const float* xr = inp + row * C;
    float* rr = res + row * C;
    for (int64_t c = lane; c < C; c += 32) {
      const float yc = drops ? drop_value(drop, base + static_cast<uint64_t>(c), yr[c]) : yr[c];
      const float v = yc + xr[c];
      rr[c] = v;
      s += v;
    }
  } else {
    const float* x = inp + row * C;
    for (int64_t c = lane; c < C; c += 32) s += x[c];
  }
  const float* x = (kResidual ? res : inp) + row * C;
  const double mu = warp_sum(s) / static_cast<double>(C);
  double ss = 0.0;
  for (int64_t c = lane; c < C; c += 32) {
    const double d = x[c] - mu;
    ss += d * d;
  }
  ss = warp_sum(ss);
  const float m = static_cast<float>(mu);
  const float rs = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(C) + eps));
  float* o = out + row * C;
  __nv_bfloat16* o16 = out16 != nullptr ? out16 + row * C : nullptr;
  for (int64_t c = lane; c < C; c += 32) {
    const float v = ln_output(x[c], m, rs, weight[c], bias[c]);
    o[c] = v;
    if (o16 != nullptr) o16[c] = __float2bfloat16(v);
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = rs;
  }
}

__global__ void __launch_bounds__(kRowThreads)
    layernorm_apply_kernel(float* out, const float* inp, const float* mean, const float* rstd, const float* weight,
                           const float* bias, int64_t R, int64_t C) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= R) return;
  const float m = mean[row], rs = rstd[row];
  const float* x = inp + row * C;
  float* o = out + row * C;
  for (int64_t c = lane; c < C; c += 32) o[c] = ln_output(x[c], m, rs, weight[c], bias[c]);
}

// One element of dinp, rounded as the CPU's expression rs * (g * w - mg - (x - m) * rs * mgn) is (no FMA
// contraction: with one column, g * w - mg is exactly 0 on the CPU, while fma(g, w, -mg) would leave g * w's rounding
// error, which rs = 1 / sqrt(eps) then magnifies to ~1e-2).
__device__ __forceinline__ float dinp_value(float g, float w, float x, float m, float rs, float mg, float mgn) {
  const float n = __fmul_rn(__fsub_rn(x, m), rs);
  return __fmul_rn(rs, __fsub_rn(__fsub_rn(__fmul_rn(g, w), mg), __fmul_rn(n, mgn)));
}

// kDropout: also dy = dropout(dinp) with the forward's mask (dropout_kernel's arithmetic).
template <bool kDropout>
__global__ void __launch_bounds__(kRowThreads)
    layernorm_dinp_kernel(float* dinp, const float* dout, const float* inp, const float* weight, const float* mean,
                          const float* rstd, int64_t R, int64_t C, float* dy, RowDrop drop, __nv_bfloat16* grad16) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= R) return;
  const float* x = inp + row * C;
  const float* g = dout + row * C;
  const float m = mean[row], rs = rstd[row];
  float sg = 0.0f, sgn = 0.0f;
  for (int64_t c = lane; c < C; c += 32) {
    const float gw = __fmul_rn(g[c], weight[c]);
    sg += gw;
    sgn += gw * ((x[c] - m) * rs);
  }
  const float mg = warp_sum(sg) / static_cast<float>(C), mgn = warp_sum(sgn) / static_cast<float>(C);
  float* d = dinp + row * C;
  __nv_bfloat16* g16 = grad16 != nullptr ? grad16 + row * C : nullptr;  // bf16 of dy (kDropout) or dinp
  if constexpr (kDropout) {
    const bool drops = row_drops(drop, row);
    const uint64_t base = row_base(drop, row, C);
    float* dyr = dy + row * C;
    for (int64_t c = lane; c < C; c += 32) {
      const float v = dinp_value(g[c], weight[c], x[c], m, rs, mg, mgn);
      d[c] = v;
      const float w = drops ? drop_value(drop, base + static_cast<uint64_t>(c), v) : v;
      dyr[c] = w;
      if (g16 != nullptr) g16[c] = __float2bfloat16(w);
    }
  } else {
    for (int64_t c = lane; c < C; c += 32) {
      const float v = dinp_value(g[c], weight[c], x[c], m, rs, mg, mgn);
      d[c] = v;
      if (g16 != nullptr) g16[c] = __float2bfloat16(v);
    }
  }
}

// LayerNorm's parameter gradients as column sums (column_sums.cuh): the terms (dout * n, dout) of row r, column c,
// in double; the totals added into dweight and dbias (either may be null).
struct ParamTerms {
  const float* dout;
  const float* inp;
  const float* mean;
  const float* rstd;
  int64_t C;
  __device__ void operator()(double2& s, int64_t r, int64_t c) const {
    const float g = dout[r * C + c];
    s.x += static_cast<double>(g) * ((inp[r * C + c] - mean[r]) * rstd[r]);
    s.y += g;
  }
};
struct AddToParams {
  float* dweight;
  float* dbias;
  __device__ void operator()(int64_t c, double2 total) const {
    if (dweight != nullptr) dweight[c] += static_cast<float>(total.x);
    if (dbias != nullptr) dbias[c] += static_cast<float>(total.y);
  }
};

// The parameter gradients of dout at inp (dweight/dbias may be null), then dinp (and dy): in stream
// order, so dinp may alias dout.
void launch_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C, float* dy,
                     const RowDrop& drop, __nv_bfloat16* grad16) {
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);  // held until the kernels are done with the partials
  if (dweight != nullptr || dbias != nullptr) {
    auto* partial = static_cast<double2*>(ws.reserve(static_cast<size_t>(colsum::chunks(R) * C) * sizeof(double2)));
    colsum::launch_sums<kChunksAhead>("layernorm_params", "layernorm_params_finish", partial,
                                      ParamTerms{dout, inp, mean, rstd, C}, AddToParams{dweight, dbias}, R, C,
                                      detail::op_stream());
  }
  const unsigned blocks = detail::grid_blocks(R, kRowsPerBlock, INT32_MAX);
  if (dinp == nullptr) return;
  if (dy != nullptr)
    launch("layernorm_dinp_dropout", layernorm_dinp_kernel<true>, blocks, kRowThreads, 0, detail::op_stream(), dinp,
           dout, inp, weight, mean, rstd, R, C, dy, drop, grad16);
  else
    launch("layernorm_dinp", layernorm_dinp_kernel<false>, blocks, kRowThreads, 0, detail::op_stream(), dinp, dout, inp,
           weight, mean, rstd, R, C, dy, drop, grad16);
}

// TokenDropout on device: keepRows copied through the host-argument buffer of `args`.
RowDrop device_drop(const TokenDropout& d, int64_t R, detail::HostArgs& args) {
  return RowDrop{d.p,
                 d.p < 1.0f ? 1.0f / (1.0f - d.p) : 0.0f,
                 d.seed,
                 d.offset,
                 d.p > 0.0f ? args.to_device(d.keepRows, R / d.T, detail::kSlotKeepRows) : nullptr,
                 d.T,
                 d.rowIndex,
                 detail::offset_delta()};
}

}  // namespace

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight, const float* bias,
                       int64_t R, int64_t C, float eps) {
  require();
  if (R <= 0 || C <= 0) return;
  launch("layernorm_forward", layernorm_forward_kernel<false>, detail::grid_blocks(R, kRowsPerBlock, INT32_MAX),
         kRowThreads, 0, detail::op_stream(), out, mean, rstd, inp, weight, bias, R, C, eps,
         static_cast<float*>(nullptr), static_cast<const float*>(nullptr), RowDrop{}, bf16handoff::claim(out, R * C));
  detail::finish_op();
}

void layernorm_apply(float* out, const float* inp, const float* mean, const float* rstd, const float* weight,
                     const float* bias, int64_t R, int64_t C) {
  require();
  if (R <= 0 || C <= 0) return;
  launch("layernorm_apply", layernorm_apply_kernel, detail::grid_blocks(R, kRowsPerBlock, INT32_MAX), kRowThreads, 0,
         detail::op_stream(), out, inp, mean, rstd, weight, bias, R, C);
  detail::finish_op();
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C) {
  require();
  if (R <= 0 || C <= 0) return;
  launch_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, R, C, nullptr, RowDrop{}, nullptr);
  detail::finish_op();
}

void residual_layernorm_forward(float* out, float* res, float* mean, float* rstd, const float* y, const float* x,
                                const float* weight, const float* bias, int64_t R, int64_t C, float eps,
                                const TokenDropout& drop) {
  require();
  if (R <= 0 || C <= 0) return;
  detail::HostArgs args(detail::op_stream());
  launch("residual_layernorm_forward", layernorm_forward_kernel<true>, detail::grid_blocks(R, kRowsPerBlock, INT32_MAX),
         kRowThreads, 0, detail::op_stream(), out, mean, rstd, x, weight, bias, R, C, eps, res, y,
         device_drop(drop, R, args), bf16handoff::claim(out, R * C));
  detail::finish_op();
}

void layernorm_dropout_backward(float* dres, float* dy, float* dweight, float* dbias, const float* dout,
                                const float* res, const float* weight, const float* mean, const float* rstd, int64_t R,
                                int64_t C, const TokenDropout& drop) {
  require();
  if (R <= 0 || C <= 0) return;
  detail::HostArgs args(detail::op_stream());
  // The gradient the linear layer before reads next (dy, or dres without dropout) may be handed off to it.
  launch_backward(dres, dweight, dbias, dout, res, weight, mean, rstd, R, C, dy, device_drop(drop, R, args),
                  bf16handoff::claim(dy != nullptr ? dy : dres, R * C));
  detail::finish_op();
}

}  // namespace simcsepp::cuda
