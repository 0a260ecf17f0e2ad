// The CUDA backend's entry points, declared through the op set's signatures (native/ops/*.h), so the
// compiler checks each definition against the op set; kernels/backend.cu puts them in the CUDA table.
// Device pointers (except the host-side index arrays and keepRows). The ops that return a value to the
// host (the losses, the gradient norm) wait for it; the others only issue their kernels on the default
// stream and return (cuda_check.cuh's end_op; SIMCSEPP_CUDA_SYNC=1 makes them wait). Each throws
// CudaError on a CUDA failure.
#pragma once
#include "backend.h"

namespace simcsepp::cuda {

SimcseFn simcse;                                        // infonce.cu
OffDropoutFn offDropout;                                // infonce.cu
OffDropoutWorkspaceBytesFn offDropoutWorkspaceBytes;    // infonce.cu
DclFn dcl;                                              // dcl.cu
CosentFn cosent;                                        // cosent.cu
MseFn mse;                                              // mse.cu
DropoutFn dropout;                                      // dropout.cu
OffDropoutUnfusedFn offDropoutUnfused;                  // infonce_unfused.cu
OffDropoutUnfusedFitFn offDropoutUnfusedFit;            // infonce_unfused.cu
EmbeddingForwardFn embedding_forward;                   // embedding.cu
EmbeddingBackwardFn embedding_backward;                 // embedding.cu
LayerNormForwardFn layernorm_forward;                   // layernorm.cu
LayerNormApplyFn layernorm_apply;                       // layernorm.cu
LayerNormBackwardFn layernorm_backward;                 // layernorm.cu
ResidualLayerNormForwardFn residual_layernorm_forward;  // layernorm.cu
LayerNormDropoutBackwardFn layernorm_dropout_backward;  // layernorm.cu
GeluForwardFn gelu_forward;                             // elementwise.cu
GeluBackwardFn gelu_backward;                           // elementwise.cu
GegluForwardFn geglu_forward;                           // modern.cu
GegluBackwardFn geglu_backward;                         // modern.cu
RopeFn rope;                                            // modern.cu
TanhForwardFn tanh_forward;                             // elementwise.cu
TanhBackwardFn tanh_backward;                           // elementwise.cu
AddFn add;                                              // elementwise.cu
AddInplaceFn add_inplace;                               // elementwise.cu
LeadingColumnsFn leading_columns;                       // columns.cu
AddLeadingColumnsFn add_leading_columns;                // columns.cu
PoolClsForwardFn pool_cls_forward;                      // pooling.cu
PoolClsBackwardFn pool_cls_backward;                    // pooling.cu
PoolMeanForwardFn pool_mean_forward;                    // pooling.cu
PoolMeanBackwardFn pool_mean_backward;                  // pooling.cu
PoolMaxForwardFn pool_max_forward;                      // pooling.cu
PoolMaxBackwardFn pool_max_backward;                    // pooling.cu
AdamwStepFn adamw_step;                                 // optim.cu
GradSumSquaresFn grad_sum_squares;                      // optim.cu
ScaleInplaceFn scale_inplace;                           // elementwise.cu
ClipGradNormFn clip_grad_norm;                          // optim.cu
ClipGradScaleFn clip_grad_scale;                        // optim.cu
SgemmFn sgemm;                                          // gemm.cu
LinearForwardFn linear_forward;                         // gemm.cu
LinearBackwardFn linear_backward;                       // gemm.cu
AttentionForwardFn attention_forward;                   // attention.cu
AttentionBackwardFn attention_backward;                 // attention.cu
RelativeBiasForwardFn relative_bias_forward;            // relative_bias.cu
RelativeBiasBackwardFn relative_bias_backward;          // relative_bias.cu

}  // namespace simcsepp::cuda
