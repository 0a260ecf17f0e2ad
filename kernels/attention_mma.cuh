// The tensor-core attention: attention.cu's entry points call it at Precision::kBf16 for the shapes
// attention_takes_bf16 admits (T <= 128, HS <= 64; ops/encoder.h): attention_mma.cu's kernels hold a head whole
// for T <= 64, attention_mma_long.cu's take its queries 64 rows at a time for 64 < T <= 128.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

#include "attention_rows.cuh"
#include "ops/encoder.h"

namespace simcsepp::cuda {

// An array the kernels read (q, k, v, dctx): fp32 values, or bf16 values (bf16Storage, ops/encoder.h), which they
// stage as they are (the same values as the fp32 ones rounded). Offsets count elements of its type.
struct MmaIn {
  const void* p = nullptr;
  bool bf16 = false;
  MmaIn operator+(int64_t o) const {
    return bf16 ? MmaIn{static_cast<const __nv_bfloat16*>(p) + o, true}
                : MmaIn{static_cast<const float*>(p) + o, false};
  }
  template <class T>
  const T* as() const {
    return static_cast<const T*>(p);
  }
};

// The longest sentences attention_mma.cu's kernels hold whole; longer ones (up to 128 tokens) take
// attention_mma_long.cu's, whose backward needs a scratch of B NH T^2 floats (attention_mma_scratch_floats).
constexpr int64_t kMmaWholeMaxT = 64;
// The shapes whose backward forms P itself, in the block, when it gets no probs (T <= 32: one 32-row block holds q,
// k and P beside its other arrays); longer ones take P formed again by the forward kernel into a workspace first.
constexpr int64_t kMmaFormsProbsMaxT = kAttentionFormsProbsMaxT;
inline int64_t attention_mma_scratch_floats(const AttnSizes& s) {
  return s.T > kMmaWholeMaxT ? s.B * s.NH * s.T * s.T : 0;
}

// ctx = bf16(Pd) bf16(v), P = masked softmax(bf16(q) bf16(k)^T / sqrt(HS)) (probs may be null), one kernel.
// ctx16 (may be null): receives bf16(ctx), [B, T, H] as ctx (a bf16 handoff, bf16_handoff.cuh, or ctx's bf16 storage
// with ctx null). ctx and ctx16 null: only probs is written (P formed again for a backward; v is not read).
// q, k, v: all fp32 or all bf16.
void attention_mma_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, MmaIn q, MmaIn k, MmaIn v,
                           const AttnSizes& s, const AttnRows& rows, cudaStream_t stream);

// dq, dk, dv of attention_mma_forward from dctx and its probs (null only for T <= kMmaFormsProbsMaxT: P formed in
// the block with the forward's bits), one kernel; dqkv16 as
// attention_small_backward's (the packed gradient's bf16 copy, or null). write32 false: only that copy is written.
// colSums (may be null; the gradient packed, ld = 3H): row b of [B, 3H] receives sentence b's column sums of the
// packed gradient (rows in order, in double). dctx, q, k, v: all fp32 or all bf16. scratch:
// attention_mma_scratch_floats(s) floats (none for T <= 64).
void attention_mma_backward(float* dq, float* dk, float* dv, __nv_bfloat16* dqkv16, MmaIn dctx, MmaIn q, MmaIn k,
                            MmaIn v, const float* probs, const AttnSizes& s, const AttnRows& rows, bool write32,
                            double* colSums, float* scratch, cudaStream_t stream);

// attention_mma_long.cu's (64 < T <= 128), called by the two above.
void attention_mma_long_forward(float* ctx, __nv_bfloat16* ctx16, float* probs, MmaIn q, MmaIn k, MmaIn v,
                                const AttnSizes& s, const AttnRows& rows, cudaStream_t stream);
void attention_mma_long_backward(float* dq, float* dk, float* dv, __nv_bfloat16* dqkv16, MmaIn dctx, MmaIn q, MmaIn k,
                                 MmaIn v, const float* probs, const AttnSizes& s, const AttnRows& rows, bool write32,
                                 double* colSums, float* scratch, cudaStream_t stream);

}  // namespace simcsepp::cuda
