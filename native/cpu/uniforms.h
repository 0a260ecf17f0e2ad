// Dropout uniforms in bulk on the CPU: the values of dropout_uniform (native/common/philox.h) for a run of
// consecutive element indices, bit for bit, a whole Philox group (4 indices) at a time: 16 groups per
// iteration with AVX-512 where the CPU has it, else in a loop the compiler vectorises (cloned for AVX-512,
// AVX2 and the baseline).
#pragma once
#include <cstdint>

namespace simcsepp::cpu {

// out[i] = dropout_uniform(seed, offset, first + i) for 0 <= i < count.
void bulk_dropout_uniforms(uint64_t seed, uint64_t offset, uint64_t first, int64_t count, float* out);

}  // namespace simcsepp::cpu
