// The fused short-sequence attention of attention_small.cu, which attention.cu's entry points call for
// T <= 128 and HS <= 128 unless SIMCSEPP_ATTENTION=tiled.
#pragma once
#include "attention_rows.cuh"

namespace simcsepp::cuda {

// Whether the fused kernels take this shape (their shared-memory tiles hold 128 keys and 128 columns).
bool attention_small_fits(const AttnSizes& s);

// probs = P = masked softmax(q k^T / sqrt(HS)), ctx = (D ⊙ P) v: one kernel (rows: the device copies).
void attention_small_forward(float* ctx, float* probs, const float* q, const float* k, const float* v,
                             const AttnSizes& s, const AttnRows& rows, cudaStream_t stream);

// dq, dk, dv of attention_small_forward from dctx and its probs: one kernel, no workspace.
void attention_small_backward(float* dq, float* dk, float* dv, const float* dctx, const float* q, const float* k,
                              const float* v, const float* probs, const AttnSizes& s, const AttnRows& rows,
                              cudaStream_t stream);

}  // namespace simcsepp::cuda
