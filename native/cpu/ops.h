// The CPU backend's ops, declared through the op set's signatures (ops/*.h holds each op's formula
// and contract); cpu/backend.cpp puts them in the CPU table. Host buffers throughout. Every op is
// multi-threaded on the pool in parallel.h; matrix products go through sgemm (gemm.h). Reductions are
// deterministic (fixed partition independent of scheduling).
#pragma once
#include "ops/encoder.h"
#include "ops/losses.h"
#include "ops/optim.h"

namespace simcsepp::cpu {

// Losses and dropout: infonce.cpp, dcl.cpp, cosent.cpp, mse.cpp, dropout.cpp, infonce_unfused.cpp.
SimcseFn simcse;
OffDropoutFn offDropout;
DclFn dcl;
CosentFn cosent;
MseFn mse;
DropoutFn dropout;
OffDropoutUnfusedFn offDropoutUnfused;
OffDropoutUnfusedFitFn offDropoutUnfusedFit;
OffDropoutWorkspaceBytesFn offDropoutWorkspaceBytes;

// BERT encoder and optimiser: bert_ops.cpp (attention: attention.cpp).
EmbeddingForwardFn embedding_forward;
EmbeddingBackwardFn embedding_backward;
LayerNormForwardFn layernorm_forward;
LayerNormApplyFn layernorm_apply;
LayerNormBackwardFn layernorm_backward;
ResidualLayerNormForwardFn residual_layernorm_forward;
LayerNormDropoutBackwardFn layernorm_dropout_backward;
LinearForwardFn linear_forward;
LinearBackwardFn linear_backward;
GeluForwardFn gelu_forward;
GeluBackwardFn gelu_backward;
// The GELU loops in use (the ops and the GEMM epilogue's): "avx512", "avx2" (with FMA) or "baseline"
// (SIMCSEPP_GELU_KERNEL picks one); all compute the same bits.
const char* gelu_kernel_name();
// ModernBERT's GeGLU and rotary embedding: modern_ops.cpp.
GegluForwardFn geglu_forward;
GegluBackwardFn geglu_backward;
RopeFn rope;
TanhForwardFn tanh_forward;
TanhBackwardFn tanh_backward;
AddFn add;
AddInplaceFn add_inplace;
LeadingColumnsFn leading_columns;         // columns.cpp
AddLeadingColumnsFn add_leading_columns;  // columns.cpp
AttentionForwardFn attention_forward;
AttentionBackwardFn attention_backward;
// The attention kernels in use: "avx512", "avx2" or "generic" (SIMCSEPP_ATTENTION_KERNEL picks one).
const char* attention_kernel_name();
RelativeBiasForwardFn relative_bias_forward;
RelativeBiasBackwardFn relative_bias_backward;
PoolClsForwardFn pool_cls_forward;
PoolClsBackwardFn pool_cls_backward;
PoolMeanForwardFn pool_mean_forward;
PoolMeanBackwardFn pool_mean_backward;
PoolMaxForwardFn pool_max_forward;
PoolMaxBackwardFn pool_max_backward;
AdamwStepFn adamw_step;
GradSumSquaresFn grad_sum_squares;
ScaleInplaceFn scale_inplace;
ClipGradNormFn clip_grad_norm;    // clip.cpp
ClipGradScaleFn clip_grad_scale;  // clip.cpp

}  // namespace simcsepp::cpu
