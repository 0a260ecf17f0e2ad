// ModernBERT's two ops that BERT lacks (native/ops/encoder.h):
//   geglu_forward:  out[r, i] = GELU(a) * g, with u[r] = [a | g] (2I floats: a = u[r, i], g = u[r, I + i])
//   geglu_backward: du[r, i] = dout * g * GELU'(a);  du[r, I + i] = dout * GELU(a)
//   rope:           the q and k blocks of a packed [B, T, 3H] projection turned in place by common/rope.h's
//                   angles (pairs i, i + HS/2 of each head; inverse: turned back, the backward)
// GELU and GELU' as elementwise.cu's (gelu.cuh; erfc, not 1 + erf). The angle is common/rope.h's, its cos and sin
// taken in double and rounded, as the CPU does: the same rotation as the CPU's, bar a last-ulp tie.
// Tiling: element-wise maps (grid.cuh's run_map: 256 threads a block, a grid-stride loop): one thread per
// (row, i) of GeGLU and per (token, pair) of the rotation, which turns that pair in every head of q and k with the
// one cos and sin it forms; consecutive threads take consecutive i, so their reads and writes are coalesced. Each
// element is read and written by one thread.
#include "common/rope.h"
#include "entry_points.cuh"
#include "gelu.cuh"
#include "grid.cuh"

namespace simcsepp::cuda {

namespace {

constexpr float kInvSqrt2Pi = 0.39894228040143268f;

struct GegluForwardOp {
  float* out;
  const float* u;
  int64_t I;
  __device__ void operator()(int64_t k) const {
    const int64_t r = k / I, i = k - r * I;
    const float* row = u + r * 2 * I;
    out[k] = detail::gelu(row[i]) * row[I + i];
  }
};

struct GegluBackwardOp {
  float* du;
  const float* u;
  const float* dout;
  int64_t I;
  __device__ void operator()(int64_t k) const {
    const int64_t r = k / I, i = k - r * I;
    const float* row = u + r * 2 * I;
    const float a = row[i], g = row[I + i], d = dout[k];
    const float cdf = 0.5f * erfcf(-a * detail::kInvSqrt2);
    const float pdf = kInvSqrt2Pi * expf(-0.5f * a * a);
    du[r * 2 * I + i] = (d * g) * (cdf + a * pdf);
    du[r * 2 * I + I + i] = detail::gelu(a) * d;
  }
};

// Thread k: pair i = k % half of token row = k / half, in every head of q and of k (one angle, 2 NH turns).
struct RopeOp {
  float* qkv;
  int64_t T, NH, HS;
  float theta;
  bool inverse;
  __device__ void operator()(int64_t k) const {
    const int64_t half = HS / 2, H = NH * HS;
    const int64_t i = k % half, row = k / half;
    double s, c;
    sincos(static_cast<double>(rope_angle(row % T, i, HS, theta)), &s, &c);
    const float cf = static_cast<float>(c), sf = static_cast<float>(s);
    for (int64_t part = 0; part < 2; ++part)
      for (int64_t h = 0; h < NH; ++h) {
        float* x = qkv + row * 3 * H + part * H + h * HS;
        rope_turn(x + i, x + half + i, cf, sf, inverse);
      }
  }
};

}  // namespace

void geglu_forward(float* out, const float* u, int64_t R, int64_t I) {
  detail::run_map("geglu_forward", GegluForwardOp{out, u, I}, R * I);
}

void geglu_backward(float* du, const float* u, const float* dout, int64_t R, int64_t I) {
  detail::run_map("geglu_backward", GegluBackwardOp{du, u, dout, I}, R * I);
}

void rope(float* qkv, int64_t B, int64_t T, int64_t NH, int64_t HS, float theta, bool inverse) {
  detail::run_map("rope", RopeOp{qkv, T, NH, HS, theta, inverse}, B * T * (HS / 2));
}

}  // namespace simcsepp::cuda
