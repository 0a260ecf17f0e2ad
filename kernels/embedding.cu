// Embeddings (native/ops/encoder.h):
//   forward:  out[r, c] = word[ids[r], c] + pos[posIds[r], c] + type[typeIds[r], c]   (r < BT, c < H)
//   backward: dword[ids[r]] += dout[r], dpos[posIds[r]] += dout[r], dtype[typeIds[r]] += dout[r], each
//             table row receiving its rows' gradients in row order (any table pointer may be null).
// Forward tiling: grid (ceil(H / 256), min(BT, 65535)), 256 threads; thread = column c of row r =
// blockIdx.y (grid-stride over rows), so a warp reads 32 consecutive floats of each table row.
// Backward: a deterministic scatter-add without atomics. The host, which holds the ids, groups the rows
// of each table by id (a stable sort, so each group lists its rows in increasing order) and copies the
// groups to the device in one buffer: a group is (table, id, begin, end) into a list of row indices.
// One thread owns one (group, column): it loads table[id, c], adds dout[r, c] for the group's rows in
// order and stores the sum once. No two threads write the same element and each element receives the
// same sequence of float additions as in cpu::embedding_backward, so the result is bit-identical to the
// CPU and from run to run. Grid (ceil(H / 128), min(groups, 65535)), 128 threads, grid-stride over
// groups. A group's rows are summed serially: a table with one id for every token (type ids) costs one
// thread BT dependent adds per column.
#include <algorithm>
#include <numeric>
#include <vector>

#include "grid.cuh"
#include "host_args.cuh"

namespace simcsepp::cuda {

namespace {

constexpr int kForwardThreads = 256;
constexpr int kBackwardThreads = 128;

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

__global__ void __launch_bounds__(kBackwardThreads)
    embedding_backward_kernel(Tables tables, const float* dout, const Group* groups, const int32_t* rows,
                              int64_t numGroups, int64_t H) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  for (int64_t g = blockIdx.y; g < numGroups; g += gridDim.y) {
    const Group grp = groups[g];
    float* dst = tables.t[grp.table] + static_cast<int64_t>(grp.id) * H + c;
    float acc = *dst;
    for (int32_t k = grp.begin; k < grp.end; ++k) acc += dout[static_cast<int64_t>(rows[k]) * H + c];
    *dst = acc;
  }
}

// The groups of every non-null table, then the row lists they index, as one int32 buffer (Group
// records first). Returns the number of groups.
int64_t group_rows(std::vector<int32_t>& buf, const float* const tables[3], const int32_t* const ids[3], int64_t BT) {
  std::vector<Group> groups;
  std::vector<int32_t> rows;
  std::vector<int32_t> order(static_cast<size_t>(BT));
  for (int32_t k = 0; k < 3; ++k) {
    if (tables[k] == nullptr) continue;
    const int32_t* id = ids[k];
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [id](int32_t a, int32_t b) { return id[a] < id[b]; });
    for (int64_t i = 0; i < BT;) {
      int64_t j = i;
      while (j < BT && id[order[j]] == id[order[i]]) ++j;
      const auto base = static_cast<int32_t>(rows.size());
      groups.push_back(Group{k, id[order[i]], base + static_cast<int32_t>(i), base + static_cast<int32_t>(j)});
      i = j;
    }
    rows.insert(rows.end(), order.begin(), order.end());
  }
  // begin/end index the row list, which the kernel addresses from just after the records.
  buf.resize(groups.size() * 4 + rows.size());
  std::copy(reinterpret_cast<const int32_t*>(groups.data()),
            reinterpret_cast<const int32_t*>(groups.data() + groups.size()), buf.begin());
  std::copy(rows.begin(), rows.end(), buf.begin() + static_cast<std::ptrdiff_t>(groups.size() * 4));
  return static_cast<int64_t>(groups.size());
}

}  // namespace

void embedding_forward(float* out, const int32_t* ids, const int32_t* posIds, const int32_t* typeIds, const float* word,
                       const float* pos, const float* type, int64_t BT, int64_t H) {
  require();
  if (BT <= 0 || H <= 0) return;
  detail::HostArgs args(kDefaultStream);
  const int32_t* dIds = args.to_device(ids, BT, detail::kSlotIds);
  const int32_t* dPos = args.to_device(posIds, BT, detail::kSlotPosIds);
  const int32_t* dType = args.to_device(typeIds, BT, detail::kSlotTypeIds);
  const dim3 grid(detail::grid_blocks(H, kForwardThreads, H), detail::grid_y(BT));
  launch("embedding_forward", embedding_forward_kernel, grid, kForwardThreads, 0, kDefaultStream, out, dIds, dPos,
         dType, word, pos, type, BT, H);
  detail::finish_op();
}

void embedding_backward(float* dword, float* dpos, float* dtype, const float* dout, const int32_t* ids,
                        const int32_t* posIds, const int32_t* typeIds, int64_t BT, int64_t H) {
  require();
  if (BT <= 0 || H <= 0) return;
  const float* const tables[3] = {dword, dpos, dtype};
  const int32_t* const idArrays[3] = {ids, posIds, typeIds};
  std::vector<int32_t> buf;
  const int64_t numGroups = group_rows(buf, tables, idArrays, BT);
  if (numGroups == 0) return;  // every table is null
  detail::HostArgs args(kDefaultStream);
  const int32_t* dBuf = args.to_device(buf.data(), static_cast<int64_t>(buf.size()), detail::kSlotEmbeddingGroups);
  const Group* groups = reinterpret_cast<const Group*>(dBuf);
  const int32_t* rows = dBuf + numGroups * 4;
  const dim3 grid(detail::grid_blocks(H, kBackwardThreads, H), detail::grid_y(numGroups));
  launch("embedding_backward", embedding_backward_kernel, grid, kBackwardThreads, 0, kDefaultStream,
         Tables{{dword, dpos, dtype}}, dout, groups, rows, numGroups, H);
  detail::finish_op();
}

}  // namespace simcsepp::cuda
