// The tensor-core attention of attention_mma.cu: attention.cu's entry points call it at Precision::kBf16 for
// the shapes attention_takes_bf16 admits (T <= 64, HS <= 64; ops/encoder.h), unless SIMCSEPP_ATTENTION says
// otherwise.
#pragma once
#include <cuda_bf16.h>

#include "attention_rows.cuh"

namespace simcsepp::cuda {

// ctx = bf16(Pd) bf16(v), P = masked softmax(bf16(q) bf16(k)^T / sqrt(HS)) (probs may be null), one kernel.
// ctx16 (may be null): receives bf16(ctx), [B, T, H] as ctx (a bf16 handoff, bf16_handoff.cuh). ctx null: only
// probs is written (P formed again for a backward; v is not read).
void attention_mma_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, const float* q, const float* k,
                           const float* v, const AttnSizes& s, const AttnRows& rows, cudaStream_t stream);

// dq, dk, dv of attention_mma_forward from dctx and its probs (not null), one kernel; dqkv16 as
// attention_small_backward's (the packed gradient's bf16 copy, or null). write32 false: only that copy is written.
// colSums (may be null; the gradient packed, ld = 3H): row b of [B, 3H] receives sentence b's column sums of the
// packed gradient (rows in order, in double).
void attention_mma_backward(float* dq, float* dk, float* dv, __nv_bfloat16* dqkv16, const float* dctx, const float* q,
                            const float* k, const float* v, const float* probs, const AttnSizes& s,
                            const AttnRows& rows, bool write32, double* colSums, cudaStream_t stream);

}  // namespace simcsepp::cuda
