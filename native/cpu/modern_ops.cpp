// ModernBERT's two ops that BERT lacks (ops/encoder.h): the GeGLU of its MLP and the rotary position embedding of
// its attention. GeGLU goes a row at a time through the vectorised GELU of the other ops (gelu.h), so its GELU
// has their bits; the rotation reads a table of cos and sin per (position, pair), formed once per call from
// common/rope.h's angles, and turns every head of every token's q and k with it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "common/rope.h"
#include "gelu.h"
#include "ops.h"
#include "parallel.h"

namespace simcsepp::cpu {

namespace {
constexpr int64_t kRowGrainElems = 1 << 14;  // about this many elements per chunk of rows
int64_t row_grain(int64_t rowElems) { return std::max<int64_t>(1, kRowGrainElems / std::max<int64_t>(1, rowElems)); }
}  // namespace

void geglu_forward(float* out, const float* u, int64_t R, int64_t I) {
  parallel_for(R, row_grain(3 * I), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* a = u + r * 2 * I;
      const float* g = a + I;
      float* o = out + r * I;
      gelu_forward_span(o, a, I);
      for (int64_t i = 0; i < I; ++i) o[i] *= g[i];
    }
  });
}

void geglu_backward(float* du, const float* u, const float* dout, int64_t R, int64_t I) {
  parallel_for(R, row_grain(4 * I), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* a = u + r * 2 * I;
      const float* g = a + I;
      const float* d = dout + r * I;
      float* da = du + r * 2 * I;
      float* dg = da + I;
      for (int64_t i = 0; i < I; ++i) da[i] = d[i] * g[i];
      gelu_backward_span(da, a, da, I);  // (dout g) GELU'(a)
      gelu_forward_span(dg, a, I);
      for (int64_t i = 0; i < I; ++i) dg[i] *= d[i];  // dout GELU(a)
    }
  });
}

void rope(float* qkv, int64_t B, int64_t T, int64_t NH, int64_t HS, float theta, bool inverse) {
  const int64_t half = HS / 2, H = NH * HS;
  // cos and sin of every (position, pair): T x HS/2 of each, grown (never shrunk) per calling thread.
  thread_local std::vector<float> table;
  table.resize(static_cast<size_t>(2 * T * half));
  float* cs = table.data();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = rope_angle(t, i, HS, theta);
      cs[2 * (t * half + i)] = static_cast<float>(std::cos(angle));
      cs[2 * (t * half + i) + 1] = static_cast<float>(std::sin(angle));
    }
  parallel_for(B * T, row_grain(2 * H), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const float* rowCs = cs + 2 * (row % T) * half;
      for (int64_t part = 0; part < 2; ++part)  // q, then k
        for (int64_t h = 0; h < NH; ++h) {
          float* x = qkv + row * 3 * H + part * H + h * HS;
          for (int64_t i = 0; i < half; ++i) rope_turn(x + i, x + half + i, rowCs[2 * i], rowCs[2 * i + 1], inverse);
        }
    }
  });
}

}  // namespace simcsepp::cpu
