// See uniforms.h. The groups wholly inside [first, first + count) go through philox_groups, a plain loop
// over group counters whose 32 x 32 -> 64-bit products vectorise (vpmuludq); the partial groups at the
// two ends are drawn one index at a time.
#include "uniforms.h"

#include "common/philox.h"

namespace simcsepp::cpu {

namespace {

// out[4g + k] = word k of Philox(counter = (block0 + g, offset), key = seed), as units, for g < groups.
__attribute__((target_clones("avx512f", "avx2", "default"))) void philox_groups(uint64_t seed, uint64_t offset,
                                                                                uint64_t block0, int64_t groups,
                                                                                float* out) {
  const uint32_t o0 = static_cast<uint32_t>(offset), o1 = static_cast<uint32_t>(offset >> 32);
  const uint32_t s0 = static_cast<uint32_t>(seed), s1 = static_cast<uint32_t>(seed >> 32);
  for (int64_t g = 0; g < groups; ++g) {
    const uint64_t block = block0 + static_cast<uint64_t>(g);
    const Philox4 r = philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), o0, o1, s0, s1);
    for (int k = 0; k < 4; ++k) out[4 * g + k] = philox_to_unit(r.v[k]);
  }
}

}  // namespace

void bulk_dropout_uniforms(uint64_t seed, uint64_t offset, uint64_t first, int64_t count, float* out) {
  int64_t i = 0;
  for (; i < count && ((first + static_cast<uint64_t>(i)) & 3) != 0; ++i)
    out[i] = dropout_uniform(seed, offset, first + static_cast<uint64_t>(i));
  const int64_t groups = (count - i) / 4;
  philox_groups(seed, offset, (first + static_cast<uint64_t>(i)) >> 2, groups, out + i);
  for (i += 4 * groups; i < count; ++i) out[i] = dropout_uniform(seed, offset, first + static_cast<uint64_t>(i));
}

}  // namespace simcsepp::cpu
