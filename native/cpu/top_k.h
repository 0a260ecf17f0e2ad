// The top-k engine of the corpus searches (search.cpp's cosine, hamming_search.cpp's Hamming distance): rows
// [row_begin, row_end) of a corpus are scored against every query a block of rows at a time, in parts run in
// parallel, each part keeping its own k best per query, then the parts' hits and the hits already in top_* are
// merged. The ranking is a total order (a higher score first, equal scores the lower row first, NaN as -Infinity),
// so the k best are unique: the result depends neither on the thread count nor on how the rows were split, and a
// corpus may be searched in several calls, each merging into top_* (index -1 marks a slot without a hit).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "parallel.h"

namespace simcsepp::cpu::top_k {

// Rows scored before their scores are offered to the heaps.
constexpr int64_t kBlockRows = 16;
// Candidates held at once over all parts (heaps of k per query per part): 32 MB; more queries than fit
// are searched a group at a time.
constexpr int64_t kMaxCandidates = int64_t{1} << 22;
// A part (the rows one heap set covers) has at least this many rows.
constexpr int64_t kMinPartRows = 256;

struct Hit {
  float score;
  int32_t index;
};

// The ranking: a higher score first, equal scores the lower index first.
inline bool better(const Hit& a, const Hit& b) {
  return a.score > b.score || (a.score == b.score && a.index < b.index);
}

// The k best hits offered, as a min-heap whose root is the worst kept. Offers come in ascending index
// order, so an equal score never displaces a kept hit and one comparison with the root rejects most.
struct TopK {
  Hit* h;
  int64_t k, n;

  void offer(float score, int32_t index) {
    if (n == k) {
      if (!(score > h[0].score)) return;  // also rejects NaN
      h[0] = {score, index};
      sift_down();
      return;
    }
    if (std::isnan(score)) score = -INFINITY;  // NaN ranks as -Infinity (a total order for the heap)
    int64_t c = n++;
    h[c] = {score, index};
    while (c > 0) {
      const int64_t p = (c - 1) / 2;
      if (!better(h[p], h[c])) break;
      std::swap(h[p], h[c]);
      c = p;
    }
  }

  void sift_down() {
    for (int64_t c = 0;;) {
      const int64_t l = 2 * c + 1, r = l + 1;
      int64_t m = c;
      if (l < n && better(h[m], h[l])) m = l;
      if (r < n && better(h[m], h[r])) m = r;
      if (m == c) return;
      std::swap(h[c], h[m]);
      c = m;
    }
  }
};

// Queries [q0, q0 + nq) (score_block's `q0`) over rows [row_begin, row_end): each part of the rows fills its own
// heaps, then the parts' hits and the hits already in top_* are merged in the total order.
// score_block(float* s, int64_t r0, int64_t m, int64_t q0, int64_t nq): s[r * nq + q] = the score of row r0 + r
// against query q0 + q, for r < m <= kBlockRows, q < nq.
template <class ScoreBlock>
void search_group(float* top_scores, int32_t* top_indices, int64_t row_begin, int64_t row_end, int64_t q0, int64_t nq,
                  int64_t k, int64_t parts, int64_t part_rows, const ScoreBlock& score_block) {
  const int64_t cap = std::min(k, part_rows);  // a part's heap never holds more than its rows
  std::vector<Hit> heaps(static_cast<size_t>(parts * nq * cap));
  std::vector<int64_t> counts(static_cast<size_t>(parts * nq), 0);
  std::vector<float> scores(static_cast<size_t>(parts * kBlockRows * nq));
  parallel_for(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t b = row_begin + p * part_rows, e = std::min(row_end, b + part_rows);
      Hit* hits = heaps.data() + p * nq * cap;
      int64_t* n = counts.data() + p * nq;
      float* s = scores.data() + p * kBlockRows * nq;
      for (int64_t r0 = b; r0 < e; r0 += kBlockRows) {
        const int64_t m = std::min(kBlockRows, e - r0);
        score_block(s, r0, m, q0, nq);
        for (int64_t q = 0; q < nq; ++q) {
          TopK top{hits + q * cap, cap, n[q]};
          for (int64_t r = 0; r < m; ++r) top.offer(s[r * nq + q], static_cast<int32_t>(r0 + r));
          n[q] = top.n;
        }
      }
    }
  });
  std::vector<Hit> all;
  for (int64_t q = 0; q < nq; ++q) {
    all.clear();
    for (int64_t j = 0; j < k; ++j) {
      const int32_t i = top_indices[q * k + j];
      const float s = top_scores[q * k + j];
      if (i >= 0) all.push_back({std::isnan(s) ? -INFINITY : s, i});
    }
    for (int64_t p = 0; p < parts; ++p) {
      const Hit* hits = heaps.data() + (p * nq + q) * cap;
      all.insert(all.end(), hits, hits + counts[p * nq + q]);
    }
    const int64_t kept = std::min<int64_t>(k, static_cast<int64_t>(all.size()));
    std::partial_sort(all.begin(), all.begin() + kept, all.end(), better);
    for (int64_t j = 0; j < k; ++j) {
      top_scores[q * k + j] = j < kept ? all[j].score : -INFINITY;
      top_indices[q * k + j] = j < kept ? all[j].index : -1;
    }
  }
}

// Every query (nq) over rows [row_begin, row_end), merged into top_scores / top_indices ([nq, k] each).
template <class ScoreBlock>
void search(float* top_scores, int32_t* top_indices, int64_t row_begin, int64_t row_end, int64_t nq, int64_t k,
            const ScoreBlock& score_block) {
  const int64_t rows = row_end - row_begin;
  if (rows <= 0 || nq <= 0 || k <= 0) return;
  // A few parts per thread balance a machine shared with other work; small ranges stay in one part.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(4 * num_threads(), rows / kMinPartRows));
  const int64_t part_rows = (rows + parts - 1) / parts;
  const int64_t cap = std::min(k, part_rows);
  const int64_t group = std::max<int64_t>(1, std::min<int64_t>(nq, kMaxCandidates / (parts * cap)));
  for (int64_t q0 = 0; q0 < nq; q0 += group) {
    const int64_t g = std::min(group, nq - q0);
    search_group(top_scores + q0 * k, top_indices + q0 * k, row_begin, row_end, q0, g, k, parts, part_rows,
                 score_block);
  }
}

}  // namespace simcsepp::cpu::top_k
