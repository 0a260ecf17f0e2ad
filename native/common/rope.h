// ModernBERT's rotary position embedding (RoFormer; transformers' ModernBertRotaryEmbedding and
// apply_rotary_pos_emb with rotate_half), on the host and on the device. Position t and frequency pair i < HS/2
// turn by the angle a = t * invFreq(i), invFreq(i) = 1 / theta^(2i / HS), each step rounded to float32 as
// transformers computes it (a float32 power, reciprocal and product); cos a and sin a are taken of that float.
// The pair is the element i and the element i + HS/2 of a head (rotate_half's halves, not adjacent elements):
//   y[i] = x[i] cos a - x[i + HS/2] sin a,   y[i + HS/2] = x[i + HS/2] cos a + x[i] sin a,
// and its inverse (the transpose, the rotation by -a) is the backward: dx[i] = dy[i] cos a + dy[i + HS/2] sin a,
// dx[i + HS/2] = dy[i + HS/2] cos a - dy[i] sin a.
#pragma once
#include <cmath>
#include <cstdint>

#include "common/philox.h"  // SIMCSEPP_HD

namespace simcsepp {

// The float32 power is formed in double and rounded once (the correctly rounded float32 power, bar ties), so the
// host and the device form the same angle whatever their powf's last ulp; the reciprocal and the product are IEEE
// float32 operations on both. Callers take cos and sin of the angle in double, rounded to float32, for the same
// reason.
SIMCSEPP_HD float rope_angle(int64_t t, int64_t i, int64_t HS, float theta) {
  const float exponent = static_cast<float>(2 * i) / static_cast<float>(HS);
  const float power = static_cast<float>(pow(static_cast<double>(theta), static_cast<double>(exponent)));
  const float invFreq = 1.0f / power;
  return static_cast<float>(t) * invFreq;
}

// The pair (x1, x2) = (x[i], x[i + HS/2]) turned by the angle whose cosine and sine are c and s (by -angle with
// inverse).
SIMCSEPP_HD void rope_turn(float* x1, float* x2, float c, float s, bool inverse) {
  const float a = *x1, b = *x2;
  if (inverse) {
    *x1 = a * c + b * s;
    *x2 = b * c - a * s;
  } else {
    *x1 = a * c - b * s;
    *x2 = b * c + a * s;
  }
}

}  // namespace simcsepp
