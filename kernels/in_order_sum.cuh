// One thread's sum of n loaded terms, added in index order (so that every run, and where it matters the
// CPU, get the same bits), with the loads ahead of the adds.
//
// Written as `for k: acc += load(k)`, a chain of adds whose terms are loads waits on memory at every add
// when the compiler keeps each load next to its add (nvcc did, for the embedding backward's row sums):
// about a microsecond a term on a GPU, milliseconds for the chains of a training step (a token type shared
// by 49,152 rows; 6,700 gradient-norm partials; 384 row chunks a column). Here the thread keeps a ring of
// the next kAhead terms in registers: term k + kAhead is loaded as term k is added, a loop-carried value no
// compiler can sink to its use, so memory is waited on at most once per kAhead terms. The adds are the same,
// in the same order: the sum is bit for bit that of the plain loop.
#pragma once
#include <cstdint>

namespace simcsepp::cuda::detail {

// acc = add(... add(add(acc, load(0)), load(1)) ..., load(n - 1)), load(k) issued kAhead terms ahead.
template <int kAhead, class T, class Load, class Add>
__device__ __forceinline__ void add_in_order(T& acc, int64_t n, Load&& load, Add&& add) {
  int64_t k = 0;  // terms [0, k) loaded
  if (n >= kAhead) {
    T ring[kAhead];
#pragma unroll
    for (int u = 0; u < kAhead; ++u) ring[u] = load(static_cast<int64_t>(u));
    for (k = kAhead; k + kAhead <= n; k += kAhead) {
#pragma unroll
      for (int u = 0; u < kAhead; ++u) {
        const T x = ring[u];  // term k - kAhead + u
        ring[u] = load(k + u);
        acc = add(acc, x);
      }
    }
#pragma unroll
    for (int u = 0; u < kAhead; ++u) acc = add(acc, ring[u]);  // terms [k - kAhead, k)
  }
  for (; k < n; ++k) acc = add(acc, load(k));
}

}  // namespace simcsepp::cuda::detail
