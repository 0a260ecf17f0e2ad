// The order in which embedding_backward adds the token gradients into a table row, on both backends
// (ops/encoder.h, EmbeddingBackwardFn):
//
//   the rows r with id[r] == i, in increasing r, are cut into runs of kEmbeddingRun consecutive ones (the last
//   may be shorter); each run is summed left to right from its first term, s_j = (...(g_a + g_a+1) + ...) + g_b;
//   the table element then gets the runs' sums in run order: t = (...((t + s_0) + s_1) ...) + s_last.
//
// Why runs: a table row shared by every token (the token type of BERT's single-segment inputs: 49,152 rows at
// B = 512, T = 32 and three views) was one chain of 49,152 dependent adds per column on the GPU (4.4 ms of the
// training step on an H200); in runs it is 192 chains of 256 that run side by side, then one of 192. A row with
// at most kEmbeddingRun tokens gets t + s_0, which for a gradient starting at 0 (zeroGrad) is bit for bit the
// plain left-to-right sum of before.
//
// group_rows_by_id lists a table's rows grouped by id (ascending), each group in increasing row order: the CPU
// walks the groups directly; kernels/embedding.cu's host code turns them into run records for the device.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

namespace simcsepp {

constexpr int64_t kEmbeddingRun = 256;

// The number of runs of a group of n rows.
constexpr int64_t embedding_runs(int64_t n) { return (n + kEmbeddingRun - 1) / kEmbeddingRun; }

// order = the rows [0, BT) stably sorted by id[r]; calls group(id, begin, end) for each id's slice
// order[begin, end), in increasing id. keys: scratch (sorted as (id, row) pairs in one 64-bit integer each, which
// are distinct, so a plain sort is stable; ids are non-negative, as the ops check).
template <class Group>
void group_rows_by_id(const int32_t* id, int64_t BT, std::vector<uint64_t>& keys, std::vector<int32_t>& order,
                      Group&& group) {
  keys.resize(static_cast<size_t>(BT));
  for (int64_t r = 0; r < BT; ++r)
    keys[static_cast<size_t>(r)] = static_cast<uint64_t>(static_cast<uint32_t>(id[r])) << 32 | static_cast<uint64_t>(r);
  std::sort(keys.begin(), keys.end());
  order.resize(static_cast<size_t>(BT));
  for (size_t i = 0; i < keys.size(); ++i) order[i] = static_cast<int32_t>(keys[i] & 0xffffffffu);
  for (int64_t i = 0; i < BT;) {
    const uint64_t key = keys[static_cast<size_t>(i)] >> 32;
    int64_t j = i + 1;
    while (j < BT && keys[static_cast<size_t>(j)] >> 32 == key) ++j;
    group(static_cast<int32_t>(key), i, j);
    i = j;
  }
}

}  // namespace simcsepp
