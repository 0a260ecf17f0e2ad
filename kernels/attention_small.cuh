// The fused short-sequence attention of attention_small.cu, which attention.cu's entry points call for
// T <= 128 and HS <= 128 unless SIMCSEPP_ATTENTION=tiled.
#pragma once
#include <cuda_bf16.h>

#include "attention_rows.cuh"

namespace simcsepp::cuda {

// Whether the fused kernels take this shape (their shared-memory tiles hold 128 keys and 128 columns).
bool attention_small_fits(const AttnSizes& s);

// probs = P = masked softmax(q k^T / sqrt(HS)), ctx = (D ⊙ P) v: one kernel (rows: the device copies).
// ctx16 (may be null): receives bf16(ctx), [B, T, H] as ctx (a bf16 handoff, bf16_handoff.cuh). probs may
// be null (nothing kept for a backward).
void attention_small_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, const float* q, const float* k,
                             const float* v, const AttnSizes& s, const AttnRows& rows, cudaStream_t stream);

// dq, dk, dv of attention_small_forward from dctx and its probs: one kernel, no workspace. dqkv16 (may be
// null; only when the gradients are packed: dk = dq + H, dv = dq + 2H, ld = 3H) receives bf16 of the packed
// [B, T, 3H] gradient, element for element.
void attention_small_backward(float* dq, float* dk, float* dv, __nv_bfloat16* dqkv16, const float* dctx, const float* q,
                              const float* k, const float* v, const float* probs, const AttnSizes& s,
                              const AttnRows& rows, cudaStream_t stream);

}  // namespace simcsepp::cuda
