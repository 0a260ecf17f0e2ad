// The exact (erf-based) GELU on spans of floats, for the ops (bert_ops.cpp) and for the GEMM epilogue
// (gemm.cpp), which applies it to a tile of C while the tile is in L1. Vectorised, float accuracy: the
// definitions are in bert_ops.cpp, cloned per instruction set.
#pragma once
#include <cstdint>

namespace simcsepp::cpu {

// out[i] = x[i] Φ(x[i]) for i < n (out may alias x).
void gelu_forward_span(float* out, const float* x, int64_t n);

// dinp[i] = dout[i] (Φ(x[i]) + x[i] φ(x[i])) for i < n (dinp may alias dout).
void gelu_backward_span(float* dinp, const float* x, const float* dout, int64_t n);

}  // namespace simcsepp::cpu
