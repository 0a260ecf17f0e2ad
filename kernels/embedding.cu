// Embeddings (native/ops/encoder.h):
//   forward:  out[r, c] = word[ids[r], c] + pos[posIds[r], c] + type[typeIds[r], c]   (r < BT, c < H)
//   backward: dword[ids[r]] += dout[r], dpos[posIds[r]] += dout[r], dtype[typeIds[r]] += dout[r], each
//             table row receiving its rows' gradients in runs (common/embedding_runs.h; any table may be null).
// Forward tiling: grid (ceil(H / 256), min(BT, 65535)), 256 threads; thread = column c of row r =
// blockIdx.y (grid-stride over rows), so a warp reads 32 consecutive floats of each table row.
// Backward: a deterministic scatter-add without atomics, in common/embedding_runs.h's order (the CPU's). The
// host, which holds the ids, groups the rows of each table by id (a stable sort: each group lists its rows in
// increasing order), cuts each group into runs of kEmbeddingRun rows and copies the records to the device in
// one buffer (graph_capture.cuh: build_embedding_groups); inside a step graph the session rebuilds that buffer
// before each replay. Two kernels, one thread per (record, column), 128 threads, grid (ceil(H / 128),
// min(records, 65535)), grid-stride over records:
//   embedding_runs_kernel: a run's rows summed in order from its first (in_order_sum.cuh keeps the next 32
//     rows' values in flight, so a thread waits on memory once per 32 rows instead of twice a row: an index,
//     then its value); a group of one run adds its sum to the table element, a longer group's runs store
//     theirs in run-sum slots (the op workspace);
//   embedding_finish_kernel: a longer group's table element gets its slots added in order.
// No two threads write the same element and each element receives the CPU's float additions in the CPU's
// order: bit for bit the CPU's result, on every run. The token-type row of BERT-base at B = 512, T = 32 (three
// views: 49,152 rows) is 192 runs side by side, then 192 adds, instead of one chain of 49,152 adds a column.
#include <mutex>
#include <vector>

#include "common/embedding_runs.h"
#include "cuda_check.cuh"
#include "graph_capture.cuh"
#include "grid.cuh"
#include "host_args.cuh"
#include "in_order_sum.cuh"

namespace simcsepp::cuda {

namespace {

constexpr int kForwardThreads = 256;
constexpr int kBackwardThreads = 128;
constexpr int kRowBatch = 32;  // rows whose values a backward thread keeps in flight

__global__ void __launch_bounds__(kForwardThreads)
    embedding_forward_kernel(float* out, const int32_t* ids, const int32_t* posIds, const int32_t* typeIds,
                             const float* word, const float* pos, const float* type, int64_t BT, int64_t H) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  for (int64_t r = blockIdx.y; r < BT; r += gridDim.y) {
    const float w = word[static_cast<int64_t>(ids[r]) * H + c];
    const float p = pos[static_cast<int64_t>(posIds[r]) * H + c];
    const float t = type[static_cast<int64_t>(typeIds[r]) * H + c];
    out[r * H + c] = w + p + t;
  }
}

struct Tables {
  float* t[3];  // dword, dpos, dtype (null ones have no records)
};

// buf: build_embedding_groups' layout. The counts are read here, not passed, so that a captured launch serves
// any ids (its grid covers the most records there can be).
__global__ void __launch_bounds__(kBackwardThreads)
    embedding_runs_kernel(Tables tables, const float* dout, const int32_t* buf, float* runSums, int64_t H) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  const int64_t numRuns = buf[0], numFinishes = buf[1];
  const int32_t* runs = buf + detail::kEmbeddingHeaderInts;
  const int32_t* rows = runs + numRuns * detail::kEmbeddingRunInts + numFinishes * detail::kEmbeddingFinishInts;
  for (int64_t g = blockIdx.y; g < numRuns; g += gridDim.y) {
    const int32_t* run = runs + g * detail::kEmbeddingRunInts;  // table, id, begin, end, slot
    const int32_t* rk = rows + run[2];                          // the run's row indices, in row order
    float s = dout[static_cast<int64_t>(rk[0]) * H + c];
    detail::add_in_order<kRowBatch>(
        s, run[3] - run[2] - 1, [&](int64_t k) { return dout[static_cast<int64_t>(rk[k + 1]) * H + c]; },
        [](float a, float x) { return a + x; });  // in row order from the first, as the CPU
    if (run[4] < 0) {
      float* dst = tables.t[run[0]] + static_cast<int64_t>(run[1]) * H + c;
      *dst = *dst + s;
    } else {
      runSums[static_cast<int64_t>(run[4]) * H + c] = s;
    }
  }
}

__global__ void __launch_bounds__(kBackwardThreads)
    embedding_finish_kernel(Tables tables, const int32_t* buf, const float* runSums, int64_t H) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  const int64_t numRuns = buf[0], numFinishes = buf[1];
  const int32_t* finishes = buf + detail::kEmbeddingHeaderInts + numRuns * detail::kEmbeddingRunInts;
  for (int64_t g = blockIdx.y; g < numFinishes; g += gridDim.y) {
    const int32_t* f = finishes + g * detail::kEmbeddingFinishInts;  // table, id, first slot, count
    float* dst = tables.t[f[0]] + static_cast<int64_t>(f[1]) * H + c;
    const float* sums = runSums + static_cast<int64_t>(f[2]) * H + c;
    float acc = *dst;
    detail::add_in_order<kRowBatch>(
        acc, f[3], [&](int64_t k) { return sums[k * H]; },
        [](float a, float x) { return a + x; });  // the runs in order, as the CPU
    *dst = acc;
  }
}

// Both kernels over `buf` (device) for BT rows; maxRuns, maxFinishes: the grids' y extents.
void launch_backward(const Tables& tables, const float* dout, const int32_t* buf, int64_t BT, int64_t H,
                     int64_t maxRuns, int64_t maxFinishes, cudaStream_t stream) {
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);  // the run sums live there until the finish is queued
  // Reserved for the most slots any ids of BT rows can need, so that a step graph's capture never grows it.
  const int64_t slots = detail::embedding_run_slots(BT);
  auto* runSums = static_cast<float*>(slots > 0 ? ws.reserve(static_cast<size_t>(slots * H) * sizeof(float)) : nullptr);
  const unsigned gx = detail::grid_blocks(H, kBackwardThreads, H);
  launch("embedding_runs_kernel (backward)", embedding_runs_kernel, dim3(gx, detail::grid_y(maxRuns)), kBackwardThreads,
         0, stream, tables, dout, buf, runSums, H);
  if (maxFinishes > 0)
    launch("embedding_finish_kernel (backward)", embedding_finish_kernel, dim3(gx, detail::grid_y(maxFinishes)),
           kBackwardThreads, 0, stream, tables, buf, runSums, H);
}

}  // namespace

void embedding_forward(float* out, const int32_t* ids, const int32_t* posIds, const int32_t* typeIds, const float* word,
                       const float* pos, const float* type, int64_t BT, int64_t H) {
  require();
  if (BT <= 0 || H <= 0) return;
  detail::HostArgs args(detail::op_stream());
  const int32_t* dIds = args.to_device(ids, BT, detail::kSlotIds);
  const int32_t* dPos = args.to_device(posIds, BT, detail::kSlotPosIds);
  const int32_t* dType = args.to_device(typeIds, BT, detail::kSlotTypeIds);
  const dim3 grid(detail::grid_blocks(H, kForwardThreads, H), detail::grid_y(BT));
  launch("embedding_forward", embedding_forward_kernel, grid, kForwardThreads, 0, detail::op_stream(), out, dIds, dPos,
         dType, word, pos, type, BT, H);
  detail::finish_op();
}

void embedding_backward(float* dword, float* dpos, float* dtype, const float* dout, const int32_t* ids,
                        const int32_t* posIds, const int32_t* typeIds, int64_t BT, int64_t H) {
  require();
  if (BT <= 0 || H <= 0) return;
  if (dword == nullptr && dpos == nullptr && dtype == nullptr) return;
  // A table without a gradient gets no groups.
  const int32_t* const idArrays[3] = {dword != nullptr ? ids : nullptr, dpos != nullptr ? posIds : nullptr,
                                      dtype != nullptr ? typeIds : nullptr};
  const Tables tables{{dword, dpos, dtype}};
  if (detail::capturing()) {
    // The session rebuilds the records from each replay's ids; the grids cover the most there can be.
    const int32_t* buf = detail::capture_embedding_groups(idArrays[0], idArrays[1], idArrays[2], BT);
    launch_backward(tables, dout, buf, BT, H, 3 * BT, detail::embedding_max_finishes(BT), detail::op_stream());
  } else {
    thread_local std::vector<int32_t> host;  // grow-only
    detail::build_embedding_groups(host, idArrays, BT);
    detail::HostArgs args(detail::op_stream());
    const int32_t* buf = args.to_device(host.data(), static_cast<int64_t>(host.size()), detail::kSlotEmbeddingGroups);
    launch_backward(tables, dout, buf, BT, H, host[0], host[1], detail::op_stream());
  }
  detail::finish_op();
}

}  // namespace simcsepp::cuda
