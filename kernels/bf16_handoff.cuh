// bf16 handoffs: the op that produces a bf16 product's input writes the input's bf16 copy as it writes the
// fp32 values, so that the product (the next op on the thread) reads it instead of making one
// (bf16_copy.cuh): a 2-byte write in the producer instead of a 4-byte read and a 2-byte write in a
// conversion pass of its own.
//
// The binding of a producer asks for it (cuda_api.h: bf16_handoff_request, for the output range the model
// will hand to a bf16 linear layer next: in the forward the LayerNorms', the MLP's GELU's and the attention's
// outputs; in the backward the gradients the LayerNorm, GELU and attention backwards write); the producer
// claims it (claim: the request must name exactly its output), writes bf16(out[i]) into this thread's handoff
// buffer and makes the handoff valid; the product takes it when its input is exactly that range (take).
// A handoff is dropped, so a product never reads a stale copy, when:
//   - a binding takes a writable pointer overlapping its range (NativeTensor::data() ->
//     bf16_handoff_written; products read their input through read_data());
//   - a step graph is launched (a replay may rewrite the buffer), a capture begins or ends (a copy claimed
//     inside one is only written when the graph runs), or another handoff is claimed;
//   - it was taken (one product per handoff).
// A claim writes one of two buffers, not the one the last take returned: an op may take a handoff for its products
// and claim one for its output (gemm.cu's fused GELU backward) while those products are still queued.
// The buffer is per thread (Node worker threads run ops of their own at the same time), grows only outside
// a capture and is kept, not freed, when it grows while step graphs may address it (as the workspace).
// Rounding is __float2bfloat16, as the copies': the product reads the same bits.
// SIMCSEPP_BF16_HANDOFF=0 (read at each request) turns it off, to compare both in one process.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "cuda_check.cuh"

namespace simcsepp::cuda {

// Whether a bf16 linear layer reads bf16 copies of its input, so takes a handoff (gemm.cu).
bool linear_takes_bf16_copies();

}  // namespace simcsepp::cuda

namespace simcsepp::cuda::bf16handoff {

// For a producer about to write out[0, n): where bf16(out[i]) goes when a handoff of exactly this range was
// requested (the handoff is then valid), else nullptr. fp32Unused (may be null: a producer that always writes
// out): set to true when the request said only the product reads out, so the producer writes the copy alone; out's
// range is then owed (require_written).
// into (may be null): memory of n bf16 values the producer writes the copy into anyway (a copy the model keeps:
// residual_layernorm_forward's outBf16); a handoff then hands that memory to the product instead of this thread's
// buffer (the copy is not written twice).
__nv_bfloat16* claim(const float* out, int64_t n, bool* fp32Unused = nullptr, __nv_bfloat16* into = nullptr);

// For a product that reads inp[0, n) as fp32 (no handoff taken): throws CudaError when some of it was never written
// because its producer wrote only a bf16 copy that was then dropped (bf16Next 'only', below).
void require_written(const float* inp, int64_t n);

// For a producer that writes no bf16 copy (a path without one): clears the request and drops the handoff, as a
// claim that was not asked would.
void decline();

// For a bf16 product reading inp[0, n): the producer's copy when the valid handoff holds exactly this range,
// else nullptr. The handoff is used up either way.
const __nv_bfloat16* take(const float* inp, int64_t n);

// Drops this thread's handoff (a step graph launch, a capture's beginning and end).
void forget();

// Elements written by producers into handoffs since the process started (cuda_api.h: bf16_counters).
int64_t handed_off_elements();

}  // namespace simcsepp::cuda::bf16handoff
