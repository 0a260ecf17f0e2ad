// Row slabs that fit the L2 cache, for an op that reads the same rows in two passes: layernorm.cu's backward reads
// dout and its input once for each row's statistics (a warp per row) and again in column_sums.cuh's chunk grid (the
// element-wise results and the parameter sums). Over all of BERT-base's 49,152 rows of a B = 512 step those are
// 302 MB, six times an H200's 50 MB L2, so the second pass read them from memory again. Run over slabs of rows
// instead (both passes over one slab, then the next), the second pass finds each slab's rows in L2. A slab is a
// whole number of column_sums.cuh's chunks and every chunk's sum keeps its own row of the partials, so the sums are
// the same bits however the rows are cut (a single slab when they fit).
// SIMCSEPP_L2_SLABS (read at every call): 'off' runs each pass over all rows at once, as before (gpu-check's
// bench-variants times the step both ways); n, a positive whole number, makes slabs of n chunks (tests cut small
// shapes into many slabs).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "column_sums.cuh"
#include "cuda_check.cuh"

namespace simcsepp::cuda::detail {

// Device 0's L2 cache in bytes (cudaDeviceProp::l2CacheSize, read once; 0 when the device does not say).
int64_t l2_cache_bytes();

}  // namespace simcsepp::cuda::detail

namespace simcsepp::cuda::colsum {

// A slab's rows take at most 1 / kSlabsPerL2 of the L2: half, the rest for what the passes write and what else stays
// cached.
constexpr int64_t kSlabsPerL2 = 2;

// Chunks of R rows per slab when the passes read bytesPerRow bytes of each row: as many as fill the L2's share, at
// least one; all of them when the device does not say its L2 size.
inline int64_t slab_chunks(int64_t R, int64_t bytesPerRow) {
  const int64_t all = chunks(R);
  const char* env = std::getenv("SIMCSEPP_L2_SLABS");
  if (env != nullptr && *env != '\0') {
    if (std::strcmp(env, "off") == 0) return all;
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (*end != '\0' || v < 1)
      throw CudaError(std::string("SIMCSEPP_L2_SLABS must be 'off' or a positive whole number of row chunks, not '") +
                      env + "'");
    return std::min<int64_t>(v, all);
  }
  const int64_t l2 = detail::l2_cache_bytes();
  if (l2 <= 0) return all;
  const int64_t slabBytes = l2 / kSlabsPerL2, chunkBytes = chunk_rows(R) * std::max<int64_t>(bytesPerRow, 1);
  return std::clamp<int64_t>(slabBytes / chunkBytes, 1, all);
}

// pass(run) for each slab's run of chunks, in row order.
template <class Pass>
void for_slabs(int64_t R, int64_t bytesPerRow, Pass&& pass) {
  const int64_t all = chunks(R), per = slab_chunks(R, bytesPerRow);
  for (int64_t first = 0; first < all; first += per) pass(Chunks{first, std::min(per, all - first)});
}

// The rows [r0, r1) of a run of chunks of R rows.
struct RowRange {
  int64_t r0, r1;
};
inline RowRange rows_of(int64_t R, Chunks run) {
  const int64_t n = chunk_rows(R);
  return RowRange{run.first * n, std::min(R, (run.first + run.count) * n)};
}

}  // namespace simcsepp::cuda::colsum
