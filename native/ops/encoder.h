// The BERT encoder ops of the op set (backend.h), forward and backward, on raw row-major float32
// buffers: one signature per op, shared by every backend (cpu:: implements them all today).
//
// Conventions (as llm.c): outputs first, then inputs, then sizes; gradients are prefixed d; the
// forward saves what the backward needs (layer-norm mean/rstd, attention probabilities).
// Parameter gradients (dweight, dbias, dword, ...) always accumulate (+=); activation gradients
// (dinp, dq, ...) are overwritten unless an `accumulate` flag says otherwise.
// Sizes: B batch, T tokens, H hidden, NH heads, HS = H / NH, R rows, C columns, OC out columns.
// Index arrays (ids, mask) and keepRows are host pointers for every backend.
#pragma once
#include <cstdint>

#include "common/row_index.h"
#include "ops/precision.h"

namespace simcsepp {

// out[r] = word[ids[r]] + pos[posIds[r]] + type[typeIds[r]]   (r < BT; rows of H floats)
using EmbeddingForwardFn = void(float* out, const int32_t* ids, const int32_t* posIds, const int32_t* typeIds,
                                const float* word, const float* pos, const float* type, int64_t BT, int64_t H);
// dword[ids[r]] += dout[r], dpos[posIds[r]] += dout[r], dtype[typeIds[r]] += dout[r]
// (any table pointer may be null to skip it). A table row's rows are added in runs of kEmbeddingRun in row order,
// each run's sum then added to the row (common/embedding_runs.h): the same bits on both backends and every run.
using EmbeddingBackwardFn = void(float* dword, float* dpos, float* dtype, const float* dout, const int32_t* ids,
                                 const int32_t* posIds, const int32_t* typeIds, int64_t BT, int64_t H);

// MPNet's relative-position bias of a length T (common/relative_bucket.h): out[d, h] = table[bucket(d - (T - 1)), h]
// for d < 2T - 1 (d = j - i + T - 1, the layout AttentionForwardFn's relBias reads); table [32, NH].
using RelativeBiasForwardFn = void(float* out, const float* table, int64_t T, int64_t NH);
// dtable[k, h] += sum over d ascending with bucket(d - (T - 1)) = k of (sum over b ascending of dRel[b, d, h]),
// dRel [B, 2T - 1, NH] (AttentionBackwardFn's dRelBias).
using RelativeBiasBackwardFn = void(float* dtable, const float* dRel, int64_t B, int64_t T, int64_t NH);

// The hidden dropout of an [R, C] activation whose rows are the tokens of sentences of T rows each:
// element (r, c) is element (r % T)*C + c of sentence r / T in DropoutArgs' [R/T, T*C] view (ops/losses.h),
// i.e. it is kept iff dropout_uniform(seed, offset, (rowIndex.at(r / T)*T + r % T)*C + c) >= p and scaled by
// 1/(1-p); sentences with keepRows[r / T] == 0 (keepRows may be null) are not dropped; p == 0: no dropout.
// rowIndex places the sentences in the whole batch (common/row_index.h: a micro-batch's or a rank's rows).
struct TokenDropout {
  float p;
  uint64_t seed, offset;
  const uint8_t* keepRows;
  int64_t T;
  RowIndex rowIndex;
};

// out = (x - mean) * rstd * weight + bias per row, mean = E[x], rstd = 1/sqrt(Var[x] + eps) (biased).
using LayerNormForwardFn = void(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                const float* bias, int64_t R, int64_t C, float eps);
// The output of a LayerNormForwardFn recomputed from its input and the statistics it saved: out = (inp -
// mean) * rstd * weight + bias, the forward's float operations, so its bits. A backward that reads a LayerNorm's
// output (the weight gradient of the linear layer after it) recomputes it instead of keeping it. out may alias
// inp.
using LayerNormApplyFn = void(float* out, const float* inp, const float* mean, const float* rstd, const float* weight,
                              const float* bias, int64_t R, int64_t C);
// n = (x - mean) * rstd, g = dout * weight:
// dinp = rstd * (g - mean(g) - n * mean(g * n))   (overwritten)
// dweight += sum_r dout * n, dbias += sum_r dout
using LayerNormBackwardFn = void(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                 const float* weight, const float* mean, const float* rstd, int64_t R, int64_t C);

// A LayerNorm's input and saved statistics, from which an op recomputes the LayerNorm's output with
// LayerNormApplyFn's bits instead of reading it (a model then need not keep it: LinearBackwardFn's layerNormInput,
// ResidualLayerNormForwardFn's xInput).
struct LayerNormInput {
  const float* x;     // [R, C] the LayerNorm's input
  const float* mean;  // [R]
  const float* rstd;  // [R]
  const float* weight;
  const float* bias;  // [C] each
};

// The sublayer output of BERT, fused: res = x + dropout(y) (TokenDropout), out = LayerNorm(res) as
// LayerNormForwardFn; res is saved for the backward. Equals dropout, add_inplace and layernorm_forward in
// sequence (bit for bit on the CPU, which computes it that way). out, res and y may be one buffer (inference
// keeps no LayerNorm input), or apart; x is apart from out and res. xInput not null (then x is null): x is that
// LayerNorm's output, recomputed row by row (the layer's input when the LayerNorm before it kept its input and
// statistics: its output need not be kept). outBf16 not null: also bf16(out) there (element i in bytes [2i, 2i + 2)
// of its storage, common/bf16.h's rounding, as LinearBf16's arrays): a copy the model keeps for the weight gradient of
// the linear layer that reads out (LinearBackwardFn's bf16.inp), which then neither recomputes the LayerNorm's output
// nor rounds it again; apart from every other array. yBf16: y holds R * C bf16 values (the same storage layout): a
// sublayer output its bf16 product stored rounded, as autocast's linear layers return it; then apart from out and res.
using ResidualLayerNormForwardFn = void(float* out, float* res, float* mean, float* rstd, const float* y,
                                        const float* x, const float* weight, const float* bias, int64_t R, int64_t C,
                                        float eps, const TokenDropout& drop, const LayerNormInput* xInput,
                                        float* outBf16, bool yBf16);
// Its backward: dres = LayerNormBackwardFn's dinp for dout at res (dweight, dbias accumulate as there), the
// gradient of x; dy = dropout(dres) with the forward's mask, the gradient of y. dy may be null when
// drop.p == 0 (it would equal dres). dyColumnSums (may be null): += the column sums of dy (dres when dy is null),
// fp32 totals of double sums: the bias gradient of the linear layer whose output y was, summed where dy is made.
using LayerNormDropoutBackwardFn = void(float* dres, float* dy, float* dweight, float* dbias, const float* dout,
                                        const float* res, const float* weight, const float* mean, const float* rstd,
                                        int64_t R, int64_t C, const TokenDropout& drop, float* dyColumnSums);

// Which of a linear layer's arrays hold bfloat16 values instead of fp32, at Precision::kBf16 only, where the products
// read them rounded to bf16 anyway (or, for an output, where its readers do): element i in bytes [2i, 2i + 2) of the
// array's storage (ceil(n / 2) floats; common/bf16.h's rounding). Half the bytes written and read again.
struct LinearBf16 {
  bool out = false;        // the forward's out (then inp is fp32); the backward's dinp (no accumulateInput, no GELU)
  bool inp = false;        // the layer's input (the forward's out is then fp32)
  bool geluInput = false;  // the backward's geluInput (inp then null, or GELU(geluInput) in bf16: inp too)
  bool geluOut = false;    // the forward's geluOut: GELU of out's bf16 values, rounded (then out is bf16 too)
};

// out[R, OC] = inp[R, C] · weight[OC, C]^T + bias[OC]   (bias may be null; products at `precision`)
// geluOut[R, OC] = GELU(out) when geluOut is not null (GeluForwardFn's GELU; out keeps the pre-activation):
// the MLP's first layer, which a backend may fuse into the product's epilogue. geluOut may be out itself (the
// GELU in place, out then ending as GELU of the product).
// bf16.out: out holds the product (with its bias) rounded to bf16, and geluOut (apart from out) = GELU of those
// values: a pre-activation kept in half the memory, as autocast keeps it (LinearBackwardFn's bf16.geluInput reads
// it); without geluOut, an output only bf16 products read (attention's q | k | v at the shapes attention_takes_bf16
// admits). bf16.inp: inp holds bf16 values (the product reads them as they are). bf16.geluOut (with bf16.out):
// geluOut holds bf16(GELU(out)), the values a bf16 product reads (the next layer's input, kept for its weight
// gradient: LinearBackwardFn's bf16 inp beside a bf16 geluInput).
using LinearForwardFn = void(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                             int64_t OC, Precision precision, float* geluOut, LinearBf16 bf16);
// dinp (= or, with accumulateInput, +=) dout · weight   (dinp may be null to skip it)
// dweight += dout^T · inp;  dbias += column sums of dout (dbias may be null; always fp32)
// The two products at `precision` (ops/precision.h).
// geluInput[R, C] not null (then accumulateInput is false): dinp = (dout · weight) ⊙ GELU'(geluInput), the
// gradient through a GELU whose output was inp (GeluBackwardFn's derivative), fused into the product; at
// Precision::kBf16 the product is rounded to bf16 before GELU' multiplies it (as autocast keeps it: a backend may
// store it in bf16 between the product and the pass that applies GELU', half the bytes of fp32). inp may then
// be null: the weight gradient reads GELU(geluInput), recomputed with GeluForwardFn's bits (so a model need not keep
// the GELU's output for its backward: it holds as many floats as the GELU's input).
// layerNormInput not null (then inp and geluInput are null): the layer's input is a LayerNorm's output, which the
// weight gradient reads recomputed from the LayerNorm's input and saved statistics with LayerNormApplyFn's bits
// (a model need not keep it, nor recompute it in a pass of its own: at bf16 a backend may round it as it makes it).
// dinpColumnSums not null (then dinp is given): dinpColumnSums += the column sums of dinp as the op leaves it (after
// the GELU's derivative), fp32 totals of double sums: the bias gradient of the linear layer that produced this
// layer's input (through the GELU), summed where dinp is made rather than by a pass over it in that layer's backward.
// bf16 (LinearBf16): geluInput holds bf16 values, as LinearForwardFn's bf16.out stores them (inp then null, or a bf16
// inp: GELU(geluInput) as LinearForwardFn's bf16.geluOut kept it, which the weight gradient reads instead of
// recomputing it); inp holds bf16 values (the weight gradient reads them as they are); dinp (bf16.out; no
// accumulateInput, geluInput or dinpColumnSums) receives the product rounded to bf16, for bf16 readers only.
using LinearBackwardFn = void(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                              const float* weight, int64_t R, int64_t C, int64_t OC, bool accumulateInput,
                              Precision precision, const float* geluInput, const LayerNormInput* layerNormInput,
                              float* dinpColumnSums, LinearBf16 bf16);

// out = x * 0.5 * (1 + erf(x / sqrt(2)))   (exact GELU)
using GeluForwardFn = void(float* out, const float* inp, int64_t n);
// dinp = dout * (0.5 * (1 + erf(x / sqrt(2))) + x * exp(-x^2 / 2) / sqrt(2 pi))
using GeluBackwardFn = void(float* dinp, const float* inp, const float* dout, int64_t n);

// GeGLU, ModernBERT's gated MLP activation: u [R, 2I] holds the column blocks [a | g] of one product, and
// out[r, i] = GELU(a[r, i]) * g[r, i] (GeluForwardFn's GELU), out [R, I].
using GegluForwardFn = void(float* out, const float* u, int64_t R, int64_t I);
// du[r, i] = dout[r, i] * g[r, i] * GELU'(a[r, i]);  du[r, I + i] = dout[r, i] * GELU(a[r, i])   (overwritten)
using GegluBackwardFn = void(float* du, const float* u, const float* dout, int64_t R, int64_t I);

// ModernBERT's rotary position embedding (common/rope.h), in place on the q and k column blocks of a packed
// [B, T, 3H] q/k/v projection (v untouched): token t of every sentence is at position t, each head's pairs
// (i, i + HS/2) turned by rope_angle(t, i, HS, theta). inverse: turned back (the transpose), which is the
// backward of the forward when applied to the packed gradient dq | dk | dv. HS is even.
using RopeFn = void(float* qkv, int64_t B, int64_t T, int64_t NH, int64_t HS, float theta, bool inverse);

// out = tanh(x)
using TanhForwardFn = void(float* out, const float* inp, int64_t n);
// dinp = dout * (1 - out^2)
using TanhBackwardFn = void(float* dinp, const float* out, const float* dout, int64_t n);

// out = a + b (out may alias a or b)
using AddFn = void(float* out, const float* a, const float* b, int64_t n);
// dst += src
using AddInplaceFn = void(float* dst, const float* src, int64_t n);

// The first d of the H columns of [R, H] rows, as [R, d] rows (Matryoshka training's truncated vectors, whose
// losses read contiguous rows): out[r, c] = inp[r * H + c] for c < d, d <= H.
using LeadingColumnsFn = void(float* out, const float* inp, int64_t R, int64_t d, int64_t H);
// Its backward, accumulated (the wider vectors' losses have written dinp already): dinp[r * H + c] +=
// scale * dout[r, c] for c < d; the columns from d on are untouched.
using AddLeadingColumnsFn = void(float* dinp, const float* dout, float scale, int64_t R, int64_t d, int64_t H);

// Multi-head self-attention core (after the q/k/v projections). q, k, v, ctx are [B, T, H]; head h
// is the column slice [h*HS, (h+1)*HS) (BERT's transpose_for_scores).
//   S = q_h k_h^T / sqrt(HS); keys with mask[b*T + j] == 0 get probability 0;
//   P = softmax over the real keys (a row with no real key is all zeros); probs saves P for the backward
//       (probs may be null: inference keeps nothing, and a forward without probs has no backward);
//   Pd = dropout(P) with the probs viewed as [B, NH*T*T]: element e = rowIndex.at(b)*NH*T*T + h*T*T +
//        i*T + j is kept iff dropout_uniform(seed, offset, e) >= p and scaled by 1/(1-p); sentences with
//        keepRows[b] == 0 (keepRows may be null) are not dropped (exactly cpu::dropout's rule); rowIndex
//        places the sentences in a larger batch (a micro-batch or a rank draws that batch's masks);
//   ctx_h = Pd v_h.
// ld is the row stride of q, k, v (and of dq, dk, dv in the backward): H for three [B, T, H] tensors, 3H
// when they are the column blocks [0, H), [H, 2H), [2H, 3H) of one [B, T, 3H] projection (q = qkv,
// k = qkv + H, v = qkv + 2H). ctx and dctx are always [B, T, H].
// relBias (may be null) adds a relative-position bias to the scores, after the scaling and before the mask
// (MPNet's): S[b, h, i, j] += relBias[(j - i + T - 1) * NH + h], relBias [2T - 1, NH].
// precision (ops/precision.h): at kBf16, for the shapes attention_takes_bf16 admits, every operand of the
// products is rounded to bfloat16 first (round_bf16) and the sums stay fp32: q, k and v; Pd (after the
// dropout, so probs keeps the fp32 P); in the backward dctx, Pd, v, q, k and dS / sqrt(HS) (dS scaled, then
// rounded: dq = bf16(dS / sqrt(HS)) bf16(k), dk = bf16(dS / sqrt(HS))^T bf16(q)). The softmax, the mask, the
// dropout and the relative bias (and dRelBias) stay fp32. Other shapes run at fp32 at either precision.
// bf16Storage (only where attention_takes_bf16, packed: ld = 3H): the packed q | k | v and ctx (the backward's dctx)
// hold bf16 values (element i in bytes [2i, 2i + 2) of the storage; q is the packed storage, k and v are null):
// the products read them as they are, ctx is written rounded (the next product reads it so). The same
// values as fp32 arrays rounded by the op; half the bytes (q | k | v written once, read by both directions).
using AttentionForwardFn = void(float* ctx, float* probs, const float* q, const float* k, const float* v,
                                const int32_t* mask, const float* relBias, int64_t B, int64_t T, int64_t NH, int64_t HS,
                                int64_t ld, float p, uint64_t seed, uint64_t offset, const uint8_t* keepRows,
                                const RowIndex& rowIndex, Precision precision, bool bf16Storage);
// Regenerates the dropout mask D (Pd = D ⊙ P), and P itself when probs is null (with the forward's bits: the
// same products and softmax). With G = dctx_h:
//   dv_h = Pd^T G;  dP = D ⊙ (G v_h^T);  dS = P ⊙ (dP - rowsum(dP ⊙ P));
//   dq_h = dS k_h / sqrt(HS);  dk_h = dS^T q_h / sqrt(HS).   dq, dk, dv are overwritten.
// relBias: the forward's (P formed again includes it). dRelBias (may be null; [B, 2T - 1, NH], overwritten): the
// gradient of each sentence's bias, dRelBias[(b (2T - 1) + d) NH + h] = sum over i (ascending) of dS[b, h, i, j]
// with j - i + T - 1 = d, dS the gradient at the scores S (before the 1/sqrt(HS) that dq and dk carry).
// dqkvColumnSums (may be null; then ld = 3H and dk = dq + H, dv = dq + 2H: one packed [B, T, 3H] gradient):
// dqkvColumnSums[3H] += the column sums of that gradient, fp32 totals of double sums (the q/k/v projection's bias
// gradient, summed where the gradient is made; the order of the additions is the backend's).
using AttentionBackwardFn = void(float* dq, float* dk, float* dv, float* dRelBias, const float* dctx, const float* q,
                                 const float* k, const float* v, const float* probs, const int32_t* mask,
                                 const float* relBias, int64_t B, int64_t T, int64_t NH, int64_t HS, int64_t ld,
                                 float p, uint64_t seed, uint64_t offset, const uint8_t* keepRows,
                                 const RowIndex& rowIndex, Precision precision, float* dqkvColumnSums,
                                 bool bf16Storage);

// Whether attention at Precision::kBf16 rounds its operands for this shape (both backends apply this rule):
// sentences of up to 128 tokens and heads of up to 64 columns, the shapes of CUDA's tensor-core kernels
// (kernels/attention_mma.cu, attention_mma_long.cu above 64 tokens). Longer ones run at fp32.
constexpr int64_t kAttentionBf16MaxT = 128, kAttentionBf16MaxHS = 64;
inline bool attention_takes_bf16(Precision precision, int64_t T, int64_t HS) {
  return precision == Precision::kBf16 && T <= kAttentionBf16MaxT && HS <= kAttentionBf16MaxHS;
}
// Whether CUDA's attention backward at bf16 forms P (the softmax) in its own kernel when it gets no probs, at no pass
// of its own: up to 32 tokens (kernels/attention_mma.cu, one 32-row block per head). Training on CUDA keeps no probs
// there.
constexpr int64_t kAttentionFormsProbsMaxT = 32;
inline bool attention_forms_probs(Precision precision, int64_t T, int64_t HS) {
  return attention_takes_bf16(precision, T, HS) && T <= kAttentionFormsProbsMaxT;
}

// out[b] = hidden[b, 0]
using PoolClsForwardFn = void(float* out, const float* hidden, int64_t B, int64_t T, int64_t H);
// dhidden[b, 0] (= or +=) dout[b]; without accumulate the other rows are zeroed.
using PoolClsBackwardFn = void(float* dhidden, const float* dout, int64_t B, int64_t T, int64_t H, bool accumulate);

// out[b] = sum_{t: mask[b*T+t] != 0} hidden[b, t] / count_b   (0 when count_b == 0); with sqrt_len the sum is
// divided by sqrt(count_b) instead (sentence-transformers' mean_sqrt_len_tokens).
using PoolMeanForwardFn = void(float* out, const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H,
                               bool sqrt_len);
// dhidden[b, t] (= or +=) mask ? dout[b] / count_b : 0   (/ sqrt(count_b) with sqrt_len)
using PoolMeanBackwardFn = void(float* dhidden, const float* dout, const int32_t* mask, int64_t B, int64_t T, int64_t H,
                                bool accumulate, bool sqrt_len);

// out[b, c] = max_{t: mask[b*T+t] != 0} hidden[b, t, c]   (0 when count_b == 0; sentence-transformers'
// max_tokens). argmax_{b,c}: the first real token holding the maximum; a NaN is the maximum (as torch.max).
using PoolMaxForwardFn = void(float* out, const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H);
// dhidden[b, argmax_{b,c}, c] (= or +=) dout[b, c], the argmax found again from hidden (the forward's input, which
// training keeps); without accumulate every other element is zeroed, with it they are left as they are.
using PoolMaxBackwardFn = void(float* dhidden, const float* dout, const float* hidden, const int32_t* mask, int64_t B,
                               int64_t T, int64_t H, bool accumulate);

}  // namespace simcsepp
