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
//   Rows of C <= 1024 columns, C a multiple of 4, every pointer 16-byte aligned (BERT's 768; a tensor's rows
//     then always are) take the *_vec kernels instead: lane l holds the groups of 4 columns 4 (l + 32 v), v < 8,
//     in registers (one 16-byte load or store each; one Philox call per group, whose 4 words are its 4
//     elements' uniforms), so the row is read from memory once, not once per pass. Their sums add the same
//     terms in another order; the element-wise arithmetic is the scalar kernels'. Every op of one shape takes
//     the same kind, so the fused ops still equal the unfused sequences bit for bit.
//   dweight and dbias: column_sums.cuh's chunked sums of (dout * n, dout) in double2 (grid (ceil(C / 32), chunks
//     of 128 rows) of partials, then one thread per column adding them in chunk order, 16 in flight). Fixed
//     chunks and orders: the result does not depend on scheduling; it is the CPU's double sum (added in another
//     order, so its last bits can differ) rounded to float.
// The parameter kernels run before the dinp kernel (dinp may alias dout).
// Both read dout and inp (as do the two passes of the dyColumnSums path below): they run a slab of rows at a time
// (l2_slab.cuh: whole chunks of the sums, as many as fill half the L2), so the second pass reads each slab from the
// L2 cache rather than memory; the sums' order does not depend on the slabs.
// layernorm_dropout_backward with dyColumnSums (the bias gradient of the linear layer before: column sums of dy, or
// of dres without dropout) runs instead a row-statistics kernel (each row's mg and mgn with the dinp kernel's sums,
// the vec or scalar one as that shape would take: the same bits) and one pass in column_sums.cuh's chunk grid that
// writes dres, dy and the handoff element by element with the dinp kernels' arithmetic and sums (dout * n, dout, dy)
// in the parameter sums' order: the bits of the three ops it replaces (the parameter sums, the dinp kernel, a column
// sum pass over dy); dout and res are read twice as before, dy no longer read back. With bf16Next 'only' dy is
// written only as the handoff. On the vec shapes the chunk pass takes 4 columns a thread (LnBackwardOp<.., 4>: float4
// accesses, one Philox call per 4 columns as the vec kernels draw them; each column's sums in the same order).
// Both forwards also write bf16(out) into this thread's bf16 handoff when the binding asked for one
// (bf16_handoff.cuh): the input of the bf16 product that follows (residual_layernorm_forward with outBf16: into that
// kept copy, which the handoff then hands over, asked or not); layernorm_dropout_backward likewise bf16(dy), or
// bf16(dres) without dropout: the output gradient of the linear layer whose backward follows.
// Fused variants (the same kernels, templated): residual_layernorm_forward computes each row's input
// res = x + dropout(y) in the first pass (dropout_kernel's and add_inplace's float arithmetic, the mask
// element by element with dropout_uniform) and stores it (x read, or recomputed as the output of the LayerNorm
// before from its input and statistics, ln_output: the bits that LayerNorm wrote; with bf16Next 'only' out is
// written only as its bf16 copy); layernorm_dropout_backward's dinp kernel also
// writes dy = dropout(dres). So each equals its unfused sequence on this device bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "bf16_handoff.cuh"
#include "column_sums.cuh"
#include "common/philox.h"
#include "grid.cuh"
#include "host_args.cuh"
#include "l2_slab.cuh"
#include "ln_output.cuh"
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

using detail::ln_output;  // ln_output.cuh: the forward's and the apply kernel's one expression (the same bits)

// The residual's element (row, c): x's, or without x the output of the LayerNorm xin describes, recomputed (the
// apply kernel's expression: the bits that LayerNorm wrote).
__device__ __forceinline__ float residual_x(const float* x, const LayerNormInput& xin, int64_t row, int64_t c,
                                            int64_t C) {
  if (x != nullptr) return x[row * C + c];
  return ln_output(xin.x[row * C + c], xin.mean[row], xin.rstd[row], xin.weight[c], xin.bias[c]);
}

// y's element as a float: TY is float, or __nv_bfloat16 (a sublayer output its product stored in bf16; exact).
__device__ __forceinline__ float y_value(float v) { return v; }
__device__ __forceinline__ float y_value(__nv_bfloat16 v) { return __bfloat162float(v); }

// kResidual: the row's input is res = x + dropout(y) (written to res; y of TY), else inp.
template <bool kResidual, class TY = float>
__global__ void __launch_bounds__(kRowThreads)
    layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                             const float* bias, int64_t R, int64_t C, float eps, float* res, const TY* y, RowDrop drop,
                             __nv_bfloat16* out16, LayerNormInput xin) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= R) return;  // whole warps leave together
  double s = 0.0;
  if constexpr (kResidual) {
    // res = dropout(y) + x in dropout_kernel's then add_inplace's arithmetic; each lane reads back only
    // the columns it wrote, and y (which out may alias) only here.
    const bool drops = row_drops(drop, row);
    const uint64_t base = row_base(drop, row, C);
    const TY* yr = y + row * C;
    float* rr = res + row * C;
    for (int64_t c = lane; c < C; c += 32) {
      const float yv = y_value(yr[c]);
      const float yc = drops ? drop_value(drop, base + static_cast<uint64_t>(c), yv) : yv;
      const float v = yc + residual_x(inp, xin, row, c, C);
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
  float* o = out != nullptr ? out + row * C : nullptr;  // null: the bf16 copy alone (bf16Next 'only')
  __nv_bfloat16* o16 = out16 != nullptr ? out16 + row * C : nullptr;
  for (int64_t c = lane; c < C; c += 32) {
    const float v = ln_output(x[c], m, rs, weight[c], bias[c]);
    if (o != nullptr) o[c] = v;
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

// A row's mg = mean(g * w) and mgn = mean(g * w * n) (g = dout), as the scalar dinp kernel sums them (lane l adds
// columns l, l + 32, ... in float; warp_sum): every lane gets them.
__device__ __forceinline__ float2 row_stats(const float* g, const float* x, const float* weight, float m, float rs,
                                            int64_t C, int lane) {
  float sg = 0.0f, sgn = 0.0f;
  for (int64_t c = lane; c < C; c += 32) {
    const float gw = __fmul_rn(g[c], weight[c]);
    sg += gw;
    sgn += gw * ((x[c] - m) * rs);
  }
  return make_float2(warp_sum(sg) / static_cast<float>(C), warp_sum(sgn) / static_cast<float>(C));
}

// kDropout: also dy = dropout(dinp) with the forward's mask (dropout_kernel's arithmetic).
template <bool kDropout>
__global__ void __launch_bounds__(kRowThreads)
    layernorm_dinp_kernel(float* dinp, const float* dout, const float* inp, const float* weight, const float* mean,
                          const float* rstd, int64_t r0, int64_t r1, int64_t C, float* dy, RowDrop drop,
                          __nv_bfloat16* grad16) {
  const int64_t row = r0 + static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= r1) return;  // rows [r0, r1): a slab
  const float* x = inp + row * C;
  const float* g = dout + row * C;
  const float m = mean[row], rs = rstd[row];
  const float2 st = row_stats(g, x, weight, m, rs, C, lane);
  const float mg = st.x, mgn = st.y;
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

// ---------------------------------------------------------------------------------------------
// The *_vec kernels (rows in registers, 4 columns per load; see the header).

constexpr int kMaxVecs = 8;  // groups of 4 columns per lane: rows of up to 32 * 4 * 8 = 1024 columns

struct alignas(8) Bf16x4 {
  __nv_bfloat16 v[4];
};

__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ void store4(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
__device__ __forceinline__ void store4(__nv_bfloat16* p, float4 v) {
  Bf16x4 b;
  b.v[0] = __float2bfloat16(v.x);
  b.v[1] = __float2bfloat16(v.y);
  b.v[2] = __float2bfloat16(v.z);
  b.v[3] = __float2bfloat16(v.w);
  *reinterpret_cast<Bf16x4*>(p) = b;
}

// dropout_kernel's arithmetic on the group of 4 elements whose first Philox index is `index` (a multiple of 4):
// one Philox call, word k deciding element k (dropout_uniform's words).
__device__ __forceinline__ float4 drop4(const RowDrop& d, uint64_t index, float4 v) {
  const uint64_t offset = detail::dropout_offset(d.offset, d.offsetDelta), block = index >> 2;
  const Philox4 r = philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                                  static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                                  static_cast<uint32_t>(d.seed), static_cast<uint32_t>(d.seed >> 32));
  return make_float4(
      philox_to_unit(r.v[0]) >= d.p ? v.x * d.scale : 0.0f, philox_to_unit(r.v[1]) >= d.p ? v.y * d.scale : 0.0f,
      philox_to_unit(r.v[2]) >= d.p ? v.z * d.scale : 0.0f, philox_to_unit(r.v[3]) >= d.p ? v.w * d.scale : 0.0f);
}

// residual_x for the 4 columns from c of row `row` (at = row * C).
__device__ __forceinline__ float4 residual_x4(const float* x, const LayerNormInput& xin, int64_t row, int64_t at,
                                              int c) {
  if (x != nullptr) return load4(x + at + c);
  const float m = xin.mean[row], rs = xin.rstd[row];
  const float4 v = load4(xin.x + at + c), w = load4(xin.weight + c), b = load4(xin.bias + c);
  return make_float4(ln_output(v.x, m, rs, w.x, b.x), ln_output(v.y, m, rs, w.y, b.y), ln_output(v.z, m, rs, w.z, b.z),
                     ln_output(v.w, m, rs, w.w, b.w));
}

// 4 elements of y from p (16 bytes of floats, or 8 of bf16 values) as floats.
__device__ __forceinline__ float4 load4y(const float* p) { return load4(p); }
__device__ __forceinline__ float4 load4y(const __nv_bfloat16* p) {
  const Bf16x4 b = *reinterpret_cast<const Bf16x4*>(p);
  return make_float4(__bfloat162float(b.v[0]), __bfloat162float(b.v[1]), __bfloat162float(b.v[2]),
                     __bfloat162float(b.v[3]));
}

template <bool kResidual, class TY = float>
__global__ void __launch_bounds__(kRowThreads)
    layernorm_forward_vec_kernel(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                 const float* bias, int64_t R, int64_t C, float eps, float* res, const TY* y,
                                 RowDrop drop, __nv_bfloat16* out16, LayerNormInput xin) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= R) return;
  const int groups = static_cast<int>(C / 4);
  const int64_t at = row * C;
  float4 xv[kMaxVecs];
  double s = 0.0;
  const bool drops = kResidual && row_drops(drop, row);
  const uint64_t base = kResidual ? row_base(drop, row, C) : 0;  // a multiple of 4: C is
#pragma unroll
  for (int v = 0; v < kMaxVecs; ++v) {
    const int c = 4 * (v * 32 + lane);
    if (c >= 4 * groups) continue;
    float4 a;
    if constexpr (kResidual) {  // res = dropout(y) + x, as the scalar kernel (y, which out may alias, read here only)
      const float4 yv = load4y(y + at + c);
      const float4 yc = drops ? drop4(drop, base + static_cast<uint64_t>(c), yv) : yv;
      const float4 xc = residual_x4(inp, xin, row, at, c);
      a = make_float4(yc.x + xc.x, yc.y + xc.y, yc.z + xc.z, yc.w + xc.w);
      store4(res + at + c, a);
    } else {
      a = load4(inp + at + c);
    }
    xv[v] = a;
    s += a.x;
    s += a.y;
    s += a.z;
    s += a.w;
  }
  const double mu = warp_sum(s) / static_cast<double>(C);
  double ss = 0.0;
#pragma unroll
  for (int v = 0; v < kMaxVecs; ++v) {
    if (4 * (v * 32 + lane) >= 4 * groups) continue;
    const double d0 = xv[v].x - mu, d1 = xv[v].y - mu, d2 = xv[v].z - mu, d3 = xv[v].w - mu;
    ss += d0 * d0;
    ss += d1 * d1;
    ss += d2 * d2;
    ss += d3 * d3;
  }
  ss = warp_sum(ss);
  const float m = static_cast<float>(mu);
  const float rs = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(C) + eps));
#pragma unroll
  for (int v = 0; v < kMaxVecs; ++v) {
    const int c = 4 * (v * 32 + lane);
    if (c >= 4 * groups) continue;
    const float4 w = load4(weight + c), b = load4(bias + c), x = xv[v];
    const float4 o = make_float4(ln_output(x.x, m, rs, w.x, b.x), ln_output(x.y, m, rs, w.y, b.y),
                                 ln_output(x.z, m, rs, w.z, b.z), ln_output(x.w, m, rs, w.w, b.w));
    if (out != nullptr) store4(out + at + c, o);  // null: the bf16 copy alone (bf16Next 'only')
    if (out16 != nullptr) store4(out16 + at + c, o);
  }
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = rs;
  }
}

__global__ void __launch_bounds__(kRowThreads)
    layernorm_apply_vec_kernel(float* out, const float* inp, const float* mean, const float* rstd, const float* weight,
                               const float* bias, int64_t R, int64_t C) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= R) return;
  const float m = mean[row], rs = rstd[row];
  for (int64_t c = 4 * lane; c < C; c += 128) {
    const float4 w = load4(weight + c), b = load4(bias + c), x = load4(inp + row * C + c);
    store4(out + row * C + c, make_float4(ln_output(x.x, m, rs, w.x, b.x), ln_output(x.y, m, rs, w.y, b.y),
                                          ln_output(x.z, m, rs, w.z, b.z), ln_output(x.w, m, rs, w.w, b.w)));
  }
}

// row_stats as the vec dinp kernel sums them, its row (at = row * C) loaded into gv (dout) and xv (inp) on the way.
__device__ __forceinline__ float2 row_stats_vec(const float* dout, const float* inp, const float* weight, int64_t at,
                                                float m, float rs, int64_t C, int lane, float4 (&gv)[kMaxVecs],
                                                float4 (&xv)[kMaxVecs]) {
  const int groups = static_cast<int>(C / 4);
  float sg = 0.0f, sgn = 0.0f;
#pragma unroll
  for (int v = 0; v < kMaxVecs; ++v) {
    const int c = 4 * (v * 32 + lane);
    if (c >= 4 * groups) continue;
    gv[v] = load4(dout + at + c);
    xv[v] = load4(inp + at + c);
    const float4 w = load4(weight + c);
    const float g0 = __fmul_rn(gv[v].x, w.x), g1 = __fmul_rn(gv[v].y, w.y), g2 = __fmul_rn(gv[v].z, w.z),
                g3 = __fmul_rn(gv[v].w, w.w);
    sg += g0;
    sgn += g0 * ((xv[v].x - m) * rs);
    sg += g1;
    sgn += g1 * ((xv[v].y - m) * rs);
    sg += g2;
    sgn += g2 * ((xv[v].z - m) * rs);
    sg += g3;
    sgn += g3 * ((xv[v].w - m) * rs);
  }
  return make_float2(warp_sum(sg) / static_cast<float>(C), warp_sum(sgn) / static_cast<float>(C));
}

template <bool kDropout>
__global__ void __launch_bounds__(kRowThreads)
    layernorm_dinp_vec_kernel(float* dinp, const float* dout, const float* inp, const float* weight, const float* mean,
                              const float* rstd, int64_t r0, int64_t r1, int64_t C, float* dy, RowDrop drop,
                              __nv_bfloat16* grad16) {
  const int64_t row = r0 + static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= r1) return;  // rows [r0, r1): a slab
  const int groups = static_cast<int>(C / 4);
  const int64_t at = row * C;
  const float m = mean[row], rs = rstd[row];
  float4 gv[kMaxVecs], xv[kMaxVecs];  // dout and inp (dinp may alias dout: read here, written below)
  const float2 st = row_stats_vec(dout, inp, weight, at, m, rs, C, lane, gv, xv);
  const float mg = st.x, mgn = st.y;
  const bool drops = kDropout && row_drops(drop, row);
  const uint64_t base = kDropout ? row_base(drop, row, C) : 0;
#pragma unroll
  for (int v = 0; v < kMaxVecs; ++v) {
    const int c = 4 * (v * 32 + lane);
    if (c >= 4 * groups) continue;
    const float4 w = load4(weight + c), g = gv[v], x = xv[v];
    const float4 d = make_float4(dinp_value(g.x, w.x, x.x, m, rs, mg, mgn), dinp_value(g.y, w.y, x.y, m, rs, mg, mgn),
                                 dinp_value(g.z, w.z, x.z, m, rs, mg, mgn), dinp_value(g.w, w.w, x.w, m, rs, mg, mgn));
    store4(dinp + at + c, d);
    if constexpr (kDropout) {
      const float4 o = drops ? drop4(drop, base + static_cast<uint64_t>(c), d) : d;
      store4(dy + at + c, o);
      if (grad16 != nullptr) store4(grad16 + at + c, o);
    } else if (grad16 != nullptr) {
      store4(grad16 + at + c, d);
    }
  }
}

// Whether rows of C columns at these pointers (null ones ignored; bf16 ones need 8 bytes) take the *_vec kernels.
// SIMCSEPP_LAYERNORM_ROWS=scalar (read at every call) keeps the scalar kernels, to compare both in one process
// (gpu-check's bench-variants).
bool vec_rows(int64_t C, std::initializer_list<const void*> floats, const void* bf16 = nullptr) {
  const char* rows = std::getenv("SIMCSEPP_LAYERNORM_ROWS");
  if (rows != nullptr && std::strcmp(rows, "scalar") == 0) return false;
  if (C % 4 != 0 || C > 4 * 32 * kMaxVecs) return false;
  for (const void* p : floats)
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  return reinterpret_cast<uintptr_t>(bf16) % 8 == 0;
}

// The rows [r0, r1) of dinp (and dy) by the dinp kernel of this shape.
void launch_dinp(bool vec, float* dinp, const float* dout, const float* inp, const float* weight, const float* mean,
                 const float* rstd, colsum::RowRange rows, int64_t C, float* dy, const RowDrop& drop,
                 __nv_bfloat16* grad16) {
  const unsigned blocks = detail::grid_blocks(rows.r1 - rows.r0, kRowsPerBlock, INT32_MAX);
  if (dy != nullptr)
    launch("layernorm_dinp_dropout", vec ? layernorm_dinp_vec_kernel<true> : layernorm_dinp_kernel<true>, blocks,
           kRowThreads, 0, detail::op_stream(), dinp, dout, inp, weight, mean, rstd, rows.r0, rows.r1, C, dy, drop,
           grad16);
  else
    launch("layernorm_dinp", vec ? layernorm_dinp_vec_kernel<false> : layernorm_dinp_kernel<false>, blocks, kRowThreads,
           0, detail::op_stream(), dinp, dout, inp, weight, mean, rstd, rows.r0, rows.r1, C, dy, drop, grad16);
}

// The parameter gradients of dout at inp (dweight/dbias may be null), then dinp (and dy), a slab of rows at a time
// (l2_slab.cuh: both passes read dout and inp); in stream order, so dinp may alias dout (a slab's parameter sums are
// queued before its dinp, and no pass reads another slab's rows).
void launch_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C, float* dy,
                     const RowDrop& drop, __nv_bfloat16* grad16) {
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);  // held until the kernels are done with the partials
  const bool params = dweight != nullptr || dbias != nullptr;
  const bool vec = vec_rows(C, {dinp, dout, inp, weight, dy}, grad16);
  const ParamTerms terms{dout, inp, mean, rstd, C};
  const cudaStream_t stream = detail::op_stream();
  if (!params) {  // one pass: nothing to cut
    if (dinp != nullptr) launch_dinp(vec, dinp, dout, inp, weight, mean, rstd, {0, R}, C, dy, drop, grad16);
    return;
  }
  auto* partial = static_cast<double2*>(ws.reserve(static_cast<size_t>(colsum::chunks(R) * C) * sizeof(double2)));
  colsum::for_slabs(R, 2 * C * static_cast<int64_t>(sizeof(float)), [&](colsum::Chunks run) {
    colsum::launch_chunks("layernorm_params", partial, terms, R, C, run, stream);
    if (dinp != nullptr)
      launch_dinp(vec, dinp, dout, inp, weight, mean, rstd, colsum::rows_of(R, run), C, dy, drop, grad16);
  });
  colsum::launch_finish<kChunksAhead>("layernorm_params_finish", partial, AddToParams{dweight, dbias},
                                      colsum::chunks(R), C, stream);
}

// ---------------------------------------------------------------------------------------------
// layernorm_dropout_backward with the bias gradient of the layer before (dyColumnSums): one pass in column_sums.cuh's
// chunk grid after a pass of row statistics, instead of the parameter sums, the dinp kernel and a pass summing dy.

// stats[row] = row_stats of the row (kVec: row_stats_vec), the mg and mgn the dinp kernel of this shape would use.
template <bool kVec>
__global__ void __launch_bounds__(kRowThreads)
    layernorm_dinp_stats_kernel(float2* stats, const float* dout, const float* inp, const float* weight,
                                const float* mean, const float* rstd, int64_t r0, int64_t r1, int64_t C) {
  const int64_t row = r0 + static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
  const int lane = static_cast<int>(threadIdx.x % 32);
  if (row >= r1) return;  // rows [r0, r1): a slab
  const float m = mean[row], rs = rstd[row];
  float2 st;
  if constexpr (kVec) {
    float4 gv[kMaxVecs], xv[kMaxVecs];
    st = row_stats_vec(dout, inp, weight, row * C, m, rs, C, lane, gv, xv);
  } else {
    st = row_stats(dout + row * C, inp + row * C, weight, m, rs, C, lane);
  }
  if (lane == 0) stats[row] = st;
}

// The backward's chunk pass (column_sums.cuh's map_chunks_kernel) from each row's statistics: dinp (may alias dout:
// each element is read before the thread that reads it writes it), y's gradient out = dropout(dinp) (kDropout; into dy
// unless dy is null: bf16Next 'only') or dinp itself, grad16 = bf16(out) (a handoff, or null), and the sums
// (dout * n, dout, out): ParamTerms' two and the bias gradient of the layer before. The dinp kernels' element
// arithmetic: the same bits. kCols columns a thread: 1, or 4 on the vec shapes (C a multiple of 4, 16-byte aligned
// rows): float4 accesses, the row's statistics read once per 4 columns, and their dropout from one Philox call (drop4,
// as the vec kernels draw it).
struct LnBackwardArgs {
  float* dinp;
  const float* dout;
  const float* inp;
  const float* weight;
  const float* mean;
  const float* rstd;
  const float2* stats;
  int64_t C;
  float* dy;
  RowDrop drop;
  __nv_bfloat16* grad16;
};

// kCols floats at p (a float4 when 4) and back.
template <int kCols>
__device__ __forceinline__ void load_cols(const float* p, float (&v)[kCols]) {
  if constexpr (kCols == 1) {
    v[0] = *p;
  } else {
    const float4 q = load4(p);
    v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
  }
}
template <int kCols, class T>
__device__ __forceinline__ void store_cols(T* p, const float (&v)[kCols]) {
  if constexpr (kCols == 1)
    *p = static_cast<T>(v[0]);
  else
    store4(p, make_float4(v[0], v[1], v[2], v[3]));
}
__device__ __forceinline__ void store_cols(__nv_bfloat16* p, const float (&v)[1]) { *p = __float2bfloat16(v[0]); }

template <bool kDropout, int kCols>
struct LnBackwardOp : LnBackwardArgs {
  static constexpr int kColumns = kCols;
  using Sum = colsum::Sum3;
  struct Loaded {
    float g[kCols], x[kCols];
  };
  __device__ Loaded load(int64_t r, int64_t c) const {
    Loaded v;
    load_cols(dout + r * C + c, v.g);
    load_cols(inp + r * C + c, v.x);
    return v;
  }
  __device__ void apply(int64_t r, int64_t c, const Loaded& v, Sum (&s)[kCols]) const {
    const int64_t i = r * C + c;
    const float m = mean[r], rs = rstd[r];
    const float2 st = stats[r];
    float w[kCols], d[kCols];
    load_cols(weight + c, w);
#pragma unroll
    for (int k = 0; k < kCols; ++k) d[k] = dinp_value(v.g[k], w[k], v.x[k], m, rs, st.x, st.y);
    store_cols(dinp + i, d);
    float out[kCols];
#pragma unroll
    for (int k = 0; k < kCols; ++k) out[k] = d[k];
    if constexpr (kDropout) {
      const uint64_t at = row_base(drop, r, C) + static_cast<uint64_t>(c);
      if (row_drops(drop, r)) {
        if constexpr (kCols == 1) {
          out[0] = drop_value(drop, at, d[0]);
        } else {
          const float4 o = drop4(drop, at, make_float4(d[0], d[1], d[2], d[3]));
          out[0] = o.x, out[1] = o.y, out[2] = o.z, out[3] = o.w;
        }
      }
      if (dy != nullptr) store_cols(dy + i, out);
    }
    if (grad16 != nullptr) store_cols(grad16 + i, out);
#pragma unroll
    for (int k = 0; k < kCols; ++k) {
      s[k].x += static_cast<double>(v.g[k]) * ((v.x[k] - m) * rs);
      s[k].y += v.g[k];
      s[k].z += out[k];
    }
  }
};

struct AddToParamsAndBias {
  float* dweight;
  float* dbias;
  float* dySums;
  __device__ void operator()(int64_t c, colsum::Sum3 total) const {
    dweight[c] += static_cast<float>(total.x);
    dbias[c] += static_cast<float>(total.y);
    dySums[c] += static_cast<float>(total.z);
  }
};

// launch_backward's work with dySums (dinp, dweight, dbias not null); dyOut: where dy's fp32 values go (null: not
// written), dy itself deciding the dropout as in launch_backward. Same bits as launch_backward followed by the
// column sums of dy (or dinp).
void launch_backward_summing(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C, float* dy,
                             float* dyOut, const RowDrop& drop, __nv_bfloat16* grad16, float* dySums) {
  // Sum3 partials the finishing thread keeps in flight (column_sums.cuh): one memory wait per 16 of the 384 chunks
  // of a B = 512 step (220 registers on sm_90, no spills; 32 would spill).
  constexpr int kSumsAhead = 16;
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);  // held until the kernels are queued
  const auto carve = [&](char* base, float2*& stats, colsum::Sum3*& partial) {
    detail::Carver cv(base);
    stats = cv.take<float2>(static_cast<size_t>(R));
    partial = cv.take<colsum::Sum3>(static_cast<size_t>(colsum::chunks(R) * C));
    return cv.used();
  };
  float2* stats = nullptr;
  colsum::Sum3* partial = nullptr;
  carve(static_cast<char*>(ws.reserve(carve(nullptr, stats, partial))), stats, partial);
  const cudaStream_t stream = detail::op_stream();
  const bool vec = vec_rows(C, {dinp, dout, inp, weight, dy}, grad16);  // the dinp kernel launch_backward would take
  float* const dyArg = dy != nullptr ? dyOut : nullptr;  // dy's fp32 values (dropout only; null: the handoff alone)
  const LnBackwardArgs args{dinp, dout, inp, weight, mean, rstd, stats, C, dyArg, drop, grad16};
  // Both passes read dout and inp: a slab of rows at a time (l2_slab.cuh), the statistics then the chunk pass.
  colsum::for_slabs(R, 2 * C * static_cast<int64_t>(sizeof(float)), [&](colsum::Chunks run) {
    const colsum::RowRange rows = colsum::rows_of(R, run);
    launch("layernorm_dinp_stats", vec ? layernorm_dinp_stats_kernel<true> : layernorm_dinp_stats_kernel<false>,
           detail::grid_blocks(rows.r1 - rows.r0, kRowsPerBlock, INT32_MAX), kRowThreads, 0, stream, stats, dout, inp,
           weight, mean, rstd, rows.r0, rows.r1, C);
    // The chunk pass 4 columns a thread on the vec shapes (the same bits as a column a thread).
    if (vec && dy != nullptr)
      colsum::launch_map_chunks("layernorm_dinp_dropout_sums (4 columns a thread)", partial,
                                LnBackwardOp<true, 4>{args}, R, C, run, stream);
    else if (vec)
      colsum::launch_map_chunks("layernorm_dinp_sums (4 columns a thread)", partial, LnBackwardOp<false, 4>{args}, R, C,
                                run, stream);
    else if (dy != nullptr)
      colsum::launch_map_chunks("layernorm_dinp_dropout_sums", partial, LnBackwardOp<true, 1>{args}, R, C, run, stream);
    else
      colsum::launch_map_chunks("layernorm_dinp_sums", partial, LnBackwardOp<false, 1>{args}, R, C, run, stream);
  });
  colsum::launch_finish<kSumsAhead>("layernorm_sums_finish", partial, AddToParamsAndBias{dweight, dbias, dySums},
                                    colsum::chunks(R), C, stream);
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
  __nv_bfloat16* out16 = bf16handoff::claim(out, R * C);
  const bool vec = vec_rows(C, {out, inp, weight, bias}, out16);
  launch("layernorm_forward", vec ? layernorm_forward_vec_kernel<false> : layernorm_forward_kernel<false>,
         detail::grid_blocks(R, kRowsPerBlock, INT32_MAX), kRowThreads, 0, detail::op_stream(), out, mean, rstd, inp,
         weight, bias, R, C, eps, static_cast<float*>(nullptr), static_cast<const float*>(nullptr), RowDrop{}, out16,
         LayerNormInput{});
  detail::finish_op();
}

void layernorm_apply(float* out, const float* inp, const float* mean, const float* rstd, const float* weight,
                     const float* bias, int64_t R, int64_t C) {
  require();
  if (R <= 0 || C <= 0) return;
  const bool vec = vec_rows(C, {out, inp, weight, bias});
  launch("layernorm_apply", vec ? layernorm_apply_vec_kernel : layernorm_apply_kernel,
         detail::grid_blocks(R, kRowsPerBlock, INT32_MAX), kRowThreads, 0, detail::op_stream(), out, inp, mean, rstd,
         weight, bias, R, C);
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
                                const TokenDropout& drop, const LayerNormInput* xInput, float* outBf16, bool yBf16) {
  require();
  if (R <= 0 || C <= 0) return;
  detail::HostArgs args(detail::op_stream());
  bool copyOnly = false;  // bf16Next 'only': out's fp32 values are left unwritten
  // A kept copy (outBf16) is written whether or not a handoff was asked, and is the handoff when one was.
  auto* kept = reinterpret_cast<__nv_bfloat16*>(outBf16);
  __nv_bfloat16* out16 = bf16handoff::claim(out, R * C, &copyOnly, kept);
  if (kept != nullptr) out16 = kept;
  const LayerNormInput xin = xInput != nullptr ? *xInput : LayerNormInput{};
  // A bf16 y needs 8-byte rows for the vec kernel's loads (out16's check).
  const bool vec = vec_rows(C, {out, res, x, yBf16 ? nullptr : y, weight, bias, xin.x, xin.weight, xin.bias}, out16) &&
                   (!yBf16 || reinterpret_cast<uintptr_t>(y) % 8 == 0);
  const unsigned blocks = detail::grid_blocks(R, kRowsPerBlock, INT32_MAX);
  float* const o = copyOnly ? nullptr : out;
  const float* const xs = xInput != nullptr ? nullptr : x;
  const RowDrop rowDrop = device_drop(drop, R, args);
  if (yBf16) {
    const auto* y16 = reinterpret_cast<const __nv_bfloat16*>(y);
    launch("residual_layernorm_forward (y in bf16)",
           vec ? layernorm_forward_vec_kernel<true, __nv_bfloat16> : layernorm_forward_kernel<true, __nv_bfloat16>,
           blocks, kRowThreads, 0, detail::op_stream(), o, mean, rstd, xs, weight, bias, R, C, eps, res, y16, rowDrop,
           out16, xin);
  } else {
    launch("residual_layernorm_forward", vec ? layernorm_forward_vec_kernel<true> : layernorm_forward_kernel<true>,
           blocks, kRowThreads, 0, detail::op_stream(), o, mean, rstd, xs, weight, bias, R, C, eps, res, y, rowDrop,
           out16, xin);
  }
  detail::finish_op();
}

void layernorm_dropout_backward(float* dres, float* dy, float* dweight, float* dbias, const float* dout,
                                const float* res, const float* weight, const float* mean, const float* rstd, int64_t R,
                                int64_t C, const TokenDropout& drop, float* dyColumnSums) {
  require();
  if (R <= 0 || C <= 0) return;
  detail::HostArgs args(detail::op_stream());
  // The gradient the linear layer before reads next (dy, or dres without dropout) may be handed off to it; with its
  // column sums made here, dy alone may be left unwritten in fp32 (bf16Next 'only').
  bool copyOnly = false;
  __nv_bfloat16* grad16 =
      bf16handoff::claim(dy != nullptr ? dy : dres, R * C, dyColumnSums != nullptr ? &copyOnly : nullptr);
  const RowDrop rowDrop = device_drop(drop, R, args);
  if (dyColumnSums != nullptr)
    launch_backward_summing(dres, dweight, dbias, dout, res, weight, mean, rstd, R, C, dy, copyOnly ? nullptr : dy,
                            rowDrop, grad16, dyColumnSums);
  else
    launch_backward(dres, dweight, dbias, dout, res, weight, mean, rstd, R, C, dy, rowDrop, grad16);
  detail::finish_op();
}

}  // namespace simcsepp::cuda
