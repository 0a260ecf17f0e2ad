// The dropout arithmetic on a span, shared by cpu::dropout and the fused row ops of bert_ops.cpp.
#pragma once
#include <cstdint>

namespace simcsepp::cpu {

// o[i] = u[i] >= p ? v[i] * scale : 0 for i < n (o may alias v), with scale = 1 / (1 - p) as the caller formed it.
// Cloned per instruction set (dropout.cpp): inlined into the pool's lambdas the loop got the baseline's SSE2.
void dropout_span(float* o, const float* v, const float* u, float p, float scale, int64_t n);

}  // namespace simcsepp::cpu
