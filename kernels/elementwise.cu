// Element-wise ops (native/ops/encoder.h and ops/optim.h), one float32 element at a time:
//   gelu_forward:  out = x * Φ(x), Φ(x) = erfc(-x / sqrt(2)) / 2             (exact GELU)
//   gelu_backward: dinp = dout * (Φ(x) + x * exp(-x^2 / 2) / sqrt(2 pi))
//   (Φ through erfc, not 1 + erf, which cancels in the left tail: the CPU's normal_cdf avoids it too)
//   tanh_forward:  out = tanh(x);   tanh_backward: dinp = dout * (1 - out^2)
//   add:           out = a + b (out may alias a or b);   add_inplace: dst += src
//   scale_inplace: x *= s
// The same formulas as native/cpu/bert_ops.cpp (the CPU evaluates Φ with its own vectorised erfc; on a
// GPU nvcc may contract a multiply-add into an FMA and erfcf/expf/tanhf differ from libm by a few ulps).
// gelu_forward and gelu_backward also write bf16(out) / bf16(dinp) into this thread's bf16 handoff when the
// binding asked for one (bf16_handoff.cuh: the MLP's second product reads the former in the forward, its first
// product's backward the latter as its output gradient); gelu_forward writes the copy alone when the binding said
// only that product reads out (linearForward's bf16Next 'only').
// Tiling: one grid-stride loop over [0, n), 256 threads a block, at most 4096 blocks; thread i
// handles elements i, i + stride, ...: consecutive threads touch consecutive floats (coalesced). An
// element is read and written by the same thread, so in-place and aliased calls are safe.
// gelu_forward_of_bf16 (a bf16 step's forward GELU pass) takes groups of 8 elements a thread from 16-byte loads
// (bf16x8.cuh), kGeluAhead groups in flight, where n is a multiple of 8 and the arrays 16-byte aligned.
#include "bf16_handoff.cuh"
#include "bf16x8.cuh"
#include "gelu.cuh"
#include "grid.cuh"

namespace simcsepp::cuda {

namespace {

// Each op is a functor applied to every element index by detail::run_map (grid.cuh); GELU's is gelu.cuh's.
// kRound: dout rounded to bf16 first (gelu_backward_of_bf16). TX: the GELU input's type.
template <bool kRound, class TX = float>
struct GeluBackwardOp {
  float* dinp;
  const TX* inp;
  const float* dout;
  __nv_bfloat16* dinp16;  // bf16(dinp) for the next product (bf16_handoff.cuh), or null
  __device__ void operator()(int64_t i) const {
    const float g = dout[i];
    const float d = detail::gelu_grad(detail::gelu_input(inp[i]), kRound ? detail::bf16_gradient(g) : g);
    dinp[i] = d;
    if (dinp16 != nullptr) dinp16[i] = __float2bfloat16(d);
  }
};

struct TanhForwardOp {
  float* out;
  const float* inp;
  __device__ void operator()(int64_t i) const { out[i] = tanhf(inp[i]); }
};

struct TanhBackwardOp {
  float* dinp;
  const float* out;
  const float* dout;
  __device__ void operator()(int64_t i) const {
    const float y = out[i];
    dinp[i] = dout[i] * (1.0f - __fmul_rn(y, y));  // y * y rounded, as on the CPU: fma(-y, y, 1) differs where y ~ ±1
  }
};

struct AddOp {
  float* out;
  const float* a;
  const float* b;
  __device__ void operator()(int64_t i) const { out[i] = a[i] + b[i]; }
};

struct AddInplaceOp {
  float* dst;
  const float* src;
  __device__ void operator()(int64_t i) const { dst[i] += src[i]; }
};

struct ScaleOp {
  float* x;
  float s;
  __device__ void operator()(int64_t i) const { x[i] *= s; }
};

// GeluForwardOp<__nv_bfloat16> on groups of 8 (bf16x8.cuh): each thread loads kAhead groups before it computes any,
// so 64 bytes of pre-activations are in flight per thread instead of 2 (one element at a time, the map kernel's
// grid-stride loop waited on memory for every element: the pass ran at about a third of an H200's bandwidth,
// estimated). Group v holds elements [8v, 8v + 8).
constexpr int kGeluAhead = 4;
__global__ void __launch_bounds__(detail::kMapThreads)
    gelu_forward_bf16x8_kernel(float* act, const __nv_bfloat16* pre, __nv_bfloat16* act16, int64_t groups) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t v = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; v < groups; v += kGeluAhead * stride) {
    int4 g[kGeluAhead];
#pragma unroll
    for (int u = 0; u < kGeluAhead; ++u)
      if (v + u * stride < groups) g[u] = detail::load_bf16x8(pre + 8 * (v + u * stride));
#pragma unroll
    for (int u = 0; u < kGeluAhead; ++u) {
      const int64_t e = 8 * (v + u * stride);
      if (e >= 8 * groups) continue;
      float y[8];
      detail::unpack_bf16x8(g[u], y);
#pragma unroll
      for (int k = 0; k < 8; ++k) y[k] = detail::gelu(y[k]);
      if (act16 != nullptr) detail::store_bf16x8(act16 + e, y);
      if (act != nullptr) detail::store_floatx8(act + e, y);
    }
  }
}

}  // namespace

using detail::run_map;

void gelu_forward_of_bf16(float* act, const __nv_bfloat16* pre, __nv_bfloat16* act16, int64_t n) {
  require();
  if (n <= 0) return;
  if (n % 8 != 0 || !detail::aligned16(act) || !detail::aligned16(pre) || !detail::aligned16(act16)) {
    run_map("gelu_forward (of a pre-activation in bf16)", detail::GeluForwardOp<__nv_bfloat16>{act, pre, act16}, n);
    return;
  }
  const int64_t groups = n / 8;
  launch("gelu_forward (of a pre-activation in bf16, 8 a thread)", gelu_forward_bf16x8_kernel,
         detail::grid_blocks(groups, detail::kMapThreads * kGeluAhead, INT32_MAX), detail::kMapThreads, 0,
         detail::op_stream(), act, pre, act16, groups);
  detail::finish_op();
}

void gelu_forward(float* out, const float* inp, int64_t n) {
  bool fp32Unused = false;  // bf16Next 'only': the product after this op is the only reader of out
  __nv_bfloat16* out16 = bf16handoff::claim(out, n, &fp32Unused);
  run_map("gelu_forward", detail::GeluForwardOp<>{fp32Unused ? nullptr : out, inp, out16}, n);
}

void gelu_backward(float* dinp, const float* inp, const float* dout, int64_t n) {
  run_map("gelu_backward", GeluBackwardOp<false>{dinp, inp, dout, bf16handoff::claim(dinp, n)}, n);
}

void gelu_backward_of_bf16(float* dinp, const float* inp, const float* dout, int64_t n) {
  run_map("gelu_backward (of a bf16 product)", GeluBackwardOp<true>{dinp, inp, dout, bf16handoff::claim(dinp, n)}, n);
}

void gelu_backward_of_bf16(float* dinp, const __nv_bfloat16* inp, const float* dout, int64_t n) {
  run_map("gelu_backward (of a bf16 product, the GELU's input in bf16)",
          GeluBackwardOp<true, __nv_bfloat16>{dinp, inp, dout, bf16handoff::claim(dinp, n)}, n);
}

void tanh_forward(float* out, const float* inp, int64_t n) { run_map("tanh_forward", TanhForwardOp{out, inp}, n); }

void tanh_backward(float* dinp, const float* out, const float* dout, int64_t n) {
  run_map("tanh_backward", TanhBackwardOp{dinp, out, dout}, n);
}

void add(float* out, const float* a, const float* b, int64_t n) { run_map("add", AddOp{out, a, b}, n); }

void add_inplace(float* dst, const float* src, int64_t n) { run_map("add_inplace", AddInplaceOp{dst, src}, n); }

void scale_inplace(float* x, float s, int64_t n) { run_map("scale_inplace", ScaleOp{x, s}, n); }

}  // namespace simcsepp::cuda
