// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a counter-based
// RNG usable from host and device code, so the CPU and CUDA backends draw bit-identical dropout masks.
//
// One call maps (key = 64-bit seed, counter = 128 bits) to four 32-bit words. simcsepp's dropout uses
// counter = (element_index / 4 as 64 bits, offset as 64 bits) and takes word element_index % 4; the
// uniform is the top 24 bits times 2^-24, exact in float32 and in [0, 1).
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define SIMCSEPP_HD __host__ __device__ __forceinline__
#else
#define SIMCSEPP_HD inline
#endif

namespace simcsepp {

struct Philox4 {
  uint32_t v[4];
};

SIMCSEPP_HD uint32_t philox_mulhi(uint32_t a, uint32_t b, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *lo = static_cast<uint32_t>(p);
  return static_cast<uint32_t>(p >> 32);
}

// Ten rounds with the Weyl key schedule; constants from the Random123 reference.
SIMCSEPP_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  const uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  const uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    uint32_t lo0, lo1;
    const uint32_t hi0 = philox_mulhi(kM0, c0, &lo0);
    const uint32_t hi1 = philox_mulhi(kM1, c2, &lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

SIMCSEPP_HD float philox_to_unit(uint32_t x) { return static_cast<float>(x >> 8) * (1.0f / 16777216.0f); }

// The uniform in [0, 1) that decides element `index` of a dropout call with (seed, offset).
SIMCSEPP_HD float dropout_uniform(uint64_t seed, uint64_t offset, uint64_t index) {
  const uint64_t block = index >> 2;
  const Philox4 r = philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                                  static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                                  static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  return philox_to_unit(r.v[index & 3]);
}

// Uniforms for the consecutive indices [first, first + count) into out: one Philox call per group of
// four indices instead of one per index (the CPU hot path; the values equal dropout_uniform's).
inline void dropout_uniforms(uint64_t seed, uint64_t offset, uint64_t first, int64_t count, float* out) {
  uint64_t index = first;
  const uint64_t end = first + static_cast<uint64_t>(count);
  while (index < end) {
    const uint64_t block = index >> 2;
    const Philox4 r = philox4x32_10(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                                    static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32),
                                    static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    for (unsigned k = static_cast<unsigned>(index & 3); k < 4 && index < end; ++k, ++index)
      *out++ = philox_to_unit(r.v[k]);
  }
}

}  // namespace simcsepp
