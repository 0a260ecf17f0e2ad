// Embeddings (native/ops/encoder.h):
//   forward:  out[r, c] = word[ids[r], c] + pos[posIds[r], c] + type[typeIds[r], c]   (r < BT, c < H)
//   backward: dword[ids[r]] += dout[r], dpos[posIds[r]] += dout[r], dtype[typeIds[r]] += dout[r], each
//             table row receiving its rows' gradients in row order (any table pointer may be null).
// Forward tiling: grid (ceil(H / 256), min(BT, 65535)), 256 threads; thread = column c of row r =
// blockIdx.y (grid-stride over rows), so a warp reads 32 consecutive floats of each table row.
// Backward: a deterministic scatter-add without atomics. The host, which holds the ids, groups the rows
// of each table by id (a stable sort, so each group lists its rows in increasing order) and copies the
// groups to the device in one buffer (its count first): a group is (table, id, begin, end) into a list of
// row indices. Inside a step graph the session rebuilds that buffer before each replay (graph_capture.cuh).
// One thread owns one (group, column): it loads table[id, c], adds dout[r, c] for the group's rows in
// order and stores the sum once. No two threads write the same element and each element receives the
// same sequence of float additions as in cpu::embedding_backward, so the result is bit-identical to the
// CPU and from run to run. Grid (ceil(H / 128), min(groups, 65535)), 128 threads, grid-stride over
// groups. A group's rows are summed serially: a table with one id for every token (type ids), or the padding
// token's row, costs one thread that many dependent adds per column; in_order_sum.cuh keeps the next 32
// rows' values in flight, so they wait on memory once per 32 rows instead of twice a row (an index, then its
// value). The type group of BERT-base at B = 512, T = 32 (three views) has 49,152 rows.
#include <vector>

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

// One group of rows sharing a table row: rows[begin, end) are added into tables[table] row `id`.
struct Group {
  int32_t table, id, begin, end;
};
static_assert(sizeof(Group) == 4 * sizeof(int32_t), "Group is copied as four int32s");

struct Tables {
  float* t[3];  // dword, dpos, dtype (null ones have no groups)
};

// buf: the group count, the Group records, then the row lists (graph_capture.cuh's layout). The count
// is read here, not passed, so that a captured launch serves any ids (its grid covers the most groups).
__global__ void __launch_bounds__(kBackwardThreads)
    embedding_backward_kernel(Tables tables, const float* dout, const int32_t* buf, int64_t H) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  const int64_t numGroups = buf[0];
  const Group* groups = reinterpret_cast<const Group*>(buf + 1);
  const int32_t* rows = buf + 1 + numGroups * 4;
  for (int64_t g = blockIdx.y; g < numGroups; g += gridDim.y) {
    const Group grp = groups[g];
    float* dst = tables.t[grp.table] + static_cast<int64_t>(grp.id) * H + c;
    const int32_t* rk = rows + grp.begin;  // the group's row indices, in row order
    float acc = *dst;
    detail::add_in_order<kRowBatch>(
        acc, grp.end - grp.begin, [&](int64_t k) { return dout[static_cast<int64_t>(rk[k]) * H + c]; },
        [](float s, float x) { return s + x; });  // in row order, as the CPU
    *dst = acc;
  }
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
  const unsigned gx = detail::grid_blocks(H, kBackwardThreads, H);
  if (detail::capturing()) {
    // The session rebuilds the groups from each replay's ids; the grid covers the most there can be.
    const int32_t* buf = detail::capture_embedding_groups(idArrays[0], idArrays[1], idArrays[2], BT);
    launch("embedding_backward", embedding_backward_kernel, dim3(gx, detail::grid_y(3 * BT)), kBackwardThreads, 0,
           detail::op_stream(), tables, dout, buf, H);
  } else {
    std::vector<int32_t> host;
    detail::build_embedding_groups(host, idArrays, BT);
    detail::HostArgs args(detail::op_stream());
    const int32_t* buf = args.to_device(host.data(), static_cast<int64_t>(host.size()), detail::kSlotEmbeddingGroups);
    launch("embedding_backward", embedding_backward_kernel, dim3(gx, detail::grid_y(host[0])), kBackwardThreads, 0,
           detail::op_stream(), tables, dout, buf, H);
  }
  detail::finish_op();
}

}  // namespace simcsepp::cuda
