// bf16 weight mirrors: a bf16 copy of a whole parameter buffer, kept on the device next to the fp32 master
// weights, so that the bf16 products (bf16_copy.cuh) read their weight operand from it instead of rounding
// the weight again at every linear op (forward, and backward's dinp) and in every micro-batch.
//
// A mirror is made for one tensor storage (cuda_api.h: bf16_mirror_create; the model attaches one to its
// parameters on CUDA at bf16). It is either fresh (element i == bf16(base[i])) or stale:
//   - the addon marks it stale whenever a binding takes a writable pointer into the storage (NativeTensor::
//     data(); the ops that only read the weights take read_data()), so a write we do not know about can only
//     cost a refresh, never a stale operand;
//   - AdamW writes bf16(p) into the mirror as it updates p, which keeps a fresh mirror fresh;
//   - a product that finds its mirror stale refreshes all of it first (one conversion; counted, see stats()).
// Rounding is __float2bfloat16 (nearest even) everywhere: a product reads the same bits from the mirror as
// from a per-op copy.
//
// Step graphs replay kernels without running host code, so a graph remembers, per mirror its capture
// touched, whether that mirror was stale when the capture ended (a capture starts with this thread's mirrors
// fresh: before_capture). Before a replay, before_replay refreshes the
// stale ones it reads; after it, after_replay restores their flags to the end of the capture, and marks stale
// the mirrors of this thread made after the capture (the graph may write their storage without them).
//
// SIMCSEPP_BF16_WEIGHT_MIRROR=0 (read at every op, so a benchmark compares both in one process) makes the
// products round their weights per op again; mirrors are still kept.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "cuda_check.cuh"

namespace simcsepp::cuda::bf16mirror {

// Whether products read mirrors now (SIMCSEPP_BF16_WEIGHT_MIRROR is not "0").
bool enabled();

// For a product on `stream`: the bf16 copy of w[0, n) from the mirror that covers it, refreshed first when
// stale; nullptr when no mirror covers the range or mirrors are off.
const __nv_bfloat16* weights(const float* w, int64_t n, cudaStream_t stream);

// For AdamW updating p[0, n): where bf16(p[i]) goes (mirror element i), or nullptr. Does not change the flag.
__nv_bfloat16* updated_by_adamw(const float* p, int64_t n);

// What a captured graph knows of the mirrors its capture touched.
struct GraphRecord {
  std::vector<std::pair<uint64_t, bool>> touched;  // (mirror serial, stale at the end of the capture)
  uint64_t lastSerial = 0;                         // the newest mirror's serial when the capture ended
};
// Before a capture begins: refreshes this thread's stale mirrors on `stream`, eagerly, so that the graph does
// not hold (and replay every time) a refresh that only the capture's moment needed.
void before_capture(cudaStream_t stream);
// At the end of a capture, from the serials it touched (detail::capture_note_mirror, graph_capture.cuh).
GraphRecord record_capture(const std::vector<uint64_t>& touched);
void before_replay(const GraphRecord& r, cudaStream_t stream);
void after_replay(const GraphRecord& r);

}  // namespace simcsepp::cuda::bf16mirror
