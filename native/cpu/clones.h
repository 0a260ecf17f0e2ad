// Function multiversioning for the vectorisable loops of the CPU backend: on x86, an AVX-512, an AVX2 and a
// baseline clone of the function, one chosen at load time (GCC's target_clones); elsewhere (aarch64: Grace,
// Graviton, Apple silicon) the one build, whose baseline NEON GCC vectorises for as it is.
#pragma once

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define SIMCSEPP_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define SIMCSEPP_CLONES_AVX2 __attribute__((target_clones("avx2", "default")))
#else
#define SIMCSEPP_CLONES
#define SIMCSEPP_CLONES_AVX2
#endif
