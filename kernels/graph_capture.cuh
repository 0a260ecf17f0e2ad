// What the ops need to know while a step graph is being captured (kernels/graph_capture.cu).
//
// A captured graph replays its kernels with the arguments they had at capture, so nothing that changes
// from step to step may be an argument, and nothing may come from host memory. Three things do change:
//   - the small index arrays the ops receive as host pointers (token, position and type ids, the
//     attention mask, keepRows): a graph session binds them to device buffers it owns, refilled before
//     each replay; while capturing, HostArgs hands out those buffers instead of copying (host_args.cuh);
//   - the dropout masks' Philox offsets (step · sites + site): kernels add *offset_delta() (device memory,
//     the replayed step's offset minus the captured one; null outside graphs) to the offset they were given;
//   - embedding_backward's row groups, built on the host from the ids: the session rebuilds them from
//     the new ids before each replay into a buffer of the largest possible size, and the kernel reads
//     their count from device memory.
#pragma once
#include <cstdint>
#include <vector>

#include "common/adamw.h"
#include "cuda_check.cuh"

namespace simcsepp::cuda::detail {

// The stream ops launch on: the capturing session's stream on the thread that captures, else the
// legacy default stream (which orders itself with the sessions' blocking streams).
cudaStream_t op_stream();

// Whether the calling thread is capturing a step graph.
bool capturing();

// Whether step graph sessions exist: their graphs hold workspace pointers, so the workspace must not
// free a buffer it outgrows while they do (it keeps it until the process ends).
bool graph_sessions_live();

// While capturing: the device copy of host[0, bytes) (a range of one of the session's bound arrays), or
// a CudaError naming `what` when host is not inside one. Null host -> null.
const void* bound_device_copy(const void* host, size_t bytes, const char* what);

// While capturing: the device word the dropout kernels add to their Philox offset; null otherwise.
const uint64_t* offset_delta();

// While capturing: a device group buffer for this embedding_backward (build_embedding_groups' layout, sized for
// any ids of BT rows: embedding_groups_ints), after registering that each replay must rebuild it
// from the bound arrays holding ids, posIds and typeIds (null: that table gets no gradient), at the ids'
// offset in them. A step in micro-batches captures one per pass, each with its own part of the session's
// buffer.
int32_t* capture_embedding_groups(const int32_t* ids, const int32_t* posIds, const int32_t* typeIds, int64_t BT);

// A loss op's result: read from its device header (synchronising), or while capturing, copied into the
// session's next result slot (read after the replay, graph_results) and returned as 0.
LossResult loss_result(const DeviceHeader* hdr, double count, double weight, cudaStream_t stream);

// While capturing: the capture touched bf16 weight mirror `serial` (bf16_mirror.cuh: read by a product,
// written by AdamW, or marked stale); each replay then refreshes it first if stale and restores its flag after.
void capture_note_mirror(uint64_t serial);

// While capturing: the device double the gradient norm's sum of squares goes to (a result slot, read
// after the replay).
double* capture_sum_squares_slot();

// AdamW inside a captured step: its constants live on the device (formed on the host for each replay's
// learning rate and step, with this call's betas, eps and weight decay), and `skip` is set on the device
// when the step's losses or gradient norm are not finite (the eager step throws before its update).
struct CapturedAdamw {
  const AdamwConstants* constants;
  const int* skip;
};
CapturedAdamw capture_adamw(double beta1, double beta2, double eps, double weightDecay);

// Builds embedding_backward's work for the rows of each non-null table into `buf` (embedding.cu's kernels; the
// order is common/embedding_runs.h's): the rows grouped by id, each group cut into runs of kEmbeddingRun rows.
//   buf[0] runs, buf[1] finishes, then per run (table, id, begin, end, slot): rows[begin, end) summed from the
//   first; slot -1 (a group of one run): the sum is added to the table row there, else it goes to run-sum
//   slot `slot`; per finish (table, id, first, count): the table row gets slots [first, first + count) added in
//   order (a group of several runs, whose slots are consecutive); then the row lists that begin/end index.
void build_embedding_groups(std::vector<int32_t>& buf, const int32_t* const ids[3], int64_t BT);
constexpr int kEmbeddingRunInts = 5, kEmbeddingFinishInts = 4, kEmbeddingHeaderInts = 2;

// The most run-sum slots build_embedding_groups can assign for BT rows (groups of more than kEmbeddingRun rows:
// fewer than BT / kEmbeddingRun of them a table, each with at most n / kEmbeddingRun + 1 runs).
int64_t embedding_run_slots(int64_t BT);

// The most finishes build_embedding_groups can write for BT rows (groups of more than kEmbeddingRun rows).
int64_t embedding_max_finishes(int64_t BT);

// The most ints build_embedding_groups can write for BT rows (at most 3·BT runs, the finishes above, 3·BT rows).
size_t embedding_groups_ints(int64_t BT);

// A dropout site's Philox offset on the device: the op's offset, plus the step graph's delta if any.
__device__ __forceinline__ uint64_t dropout_offset(uint64_t offset, const uint64_t* delta) {
  return delta != nullptr ? offset + *delta : offset;
}

}  // namespace simcsepp::cuda::detail
