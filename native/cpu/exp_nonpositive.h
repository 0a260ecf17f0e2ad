// e^a for a <= 0, shared by the element-wise ops (GELU, bert_ops.cpp) and the attention softmax (attention.cpp).
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace simcsepp::cpu {

// Branch-free, so that the loops around it vectorise (std::exp does not): a = n ln2 + r with |r| <= ln2/2 (n
// rounded by the 1.5 * 2^23 trick, ln2 split so n * ln2_hi is exact), e^r by its degree-7 Taylor polynomial
// (truncation below 2e-9 relative), times 2^n made from its bits. Below e^-87 (n < -126) the result is 0: what
// it feeds is then negligible.
// Written once for a float (F = float, I = int32_t) and for GCC vectors of floats (I the int32_t vector of as
// many lanes): every lane goes through the scalar's operations, so it gets the scalar's bits. Always inlined, so
// that a vector instance takes its caller's instruction set (and GCC's note that a vector's calling convention
// differs between instruction sets, -Wpsabi, never applies).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
template <class F, class I>
inline __attribute__((always_inline)) F exp_nonpositive_lanes(const F& x) {
  const F a = x < -104.0f ? F{} - 104.0f : x;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23
  const F n = (a * 1.44269504088896341f + kRound) - kRound;
  const F r = (a - n * 0.693145751953125f) - n * 1.42860682030941723e-06f;
  F p = F{} + 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  I e;
  if constexpr (std::is_same_v<F, float>)
    e = static_cast<int32_t>(n) + 127;
  else
    e = __builtin_convertvector(n, I) + 127;
  const I bits = (e > 0 ? e : I{}) << 23;
  F scale;
  static_assert(sizeof scale == sizeof bits);
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}
#pragma GCC diagnostic pop

inline float exp_nonpositive(float a) { return exp_nonpositive_lanes<float, int32_t>(a); }

}  // namespace simcsepp::cpu
