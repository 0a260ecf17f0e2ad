// The op set every backend implements: one table of function pointers, one entry per op.
//
// Each op's signature and formula is declared once, backend-neutrally, in ops/*.h (raw row-major
// float32 buffers; pointers are host pointers for the CPU and device pointers for CUDA, except the
// small index arrays and keepRows, which are host pointers for every backend). A backend is a
// Backend table:
//   cpu_backend()   native/cpu/backend.cpp, complete (the reference implementation of every op);
//   cuda_backend()  kernels/backend.cu when the build compiles CUDA, with the ops that have kernels
//                   and nullptr for the rest (native/cuda_stub.cpp, all nullptr, otherwise).
// The Node-API layer (native/bind_*.cpp) validates the arguments, then takes the entry of the
// tensors' device through dispatch.h, which says why an op cannot run there (CUDA not compiled, no
// driver or device, or not yet implemented). Adding a CUDA op = writing its kernel and filling its
// entry in kernels/backend.cu. Formulas: docs/method.md.
#pragma once
#include <vector>

#include "ops/encoder.h"
#include "ops/gemm.h"
#include "ops/losses.h"
#include "ops/optim.h"

namespace simcsepp {

// Every op of the op set, once: (signature type, table member). Backend's members and the list of
// what a backend implements (implemented_ops, for the addon's backendOps) are both made from it.
#define SIMCSEPP_BACKEND_OPS(X)                                                        \
  /* Losses and dropout (ops/losses.h). The CUDA ones synchronise before returning. */ \
  X(SimcseFn, simcse)                                                                  \
  X(OffDropoutFn, offDropout)                                                          \
  X(DclFn, dcl)                                                                        \
  X(CosentFn, cosent)                                                                  \
  X(MseFn, mse)                                                                        \
  X(DropoutFn, dropout)                                                                \
  X(OffDropoutUnfusedFn, offDropoutUnfused)                                            \
  X(OffDropoutUnfusedFitFn, offDropoutUnfusedFit)                                      \
  X(OffDropoutWorkspaceBytesFn, offDropoutWorkspaceBytes)                              \
  /* Matrix product (ops/gemm.h). */                                                   \
  X(SgemmFn, sgemm)                                                                    \
  /* BERT encoder (ops/encoder.h). */                                                  \
  X(EmbeddingForwardFn, embedding_forward)                                             \
  X(EmbeddingBackwardFn, embedding_backward)                                           \
  X(LayerNormForwardFn, layernorm_forward)                                             \
  X(LayerNormApplyFn, layernorm_apply)                                                 \
  X(LayerNormBackwardFn, layernorm_backward)                                           \
  X(ResidualLayerNormForwardFn, residual_layernorm_forward)                            \
  X(LayerNormDropoutBackwardFn, layernorm_dropout_backward)                            \
  X(LinearForwardFn, linear_forward)                                                   \
  X(LinearBackwardFn, linear_backward)                                                 \
  X(GeluForwardFn, gelu_forward)                                                       \
  X(GeluBackwardFn, gelu_backward)                                                     \
  X(GegluForwardFn, geglu_forward)                                                     \
  X(GegluBackwardFn, geglu_backward)                                                   \
  X(RopeFn, rope)                                                                      \
  X(TanhForwardFn, tanh_forward)                                                       \
  X(TanhBackwardFn, tanh_backward)                                                     \
  X(AddFn, add)                                                                        \
  X(AddInplaceFn, add_inplace)                                                         \
  X(LeadingColumnsFn, leading_columns)                                                 \
  X(AddLeadingColumnsFn, add_leading_columns)                                          \
  X(AttentionForwardFn, attention_forward)                                             \
  X(AttentionBackwardFn, attention_backward)                                           \
  X(RelativeBiasForwardFn, relative_bias_forward)                                      \
  X(RelativeBiasBackwardFn, relative_bias_backward)                                    \
  X(PoolClsForwardFn, pool_cls_forward)                                                \
  X(PoolClsBackwardFn, pool_cls_backward)                                              \
  X(PoolMeanForwardFn, pool_mean_forward)                                              \
  X(PoolMeanBackwardFn, pool_mean_backward)                                            \
  X(PoolMaxForwardFn, pool_max_forward)                                                \
  X(PoolMaxBackwardFn, pool_max_backward)                                              \
  /* Optimiser and gradient norm (ops/optim.h). */                                     \
  X(AdamwStepFn, adamw_step)                                                           \
  X(GradSumSquaresFn, grad_sum_squares)                                                \
  X(ScaleInplaceFn, scale_inplace)                                                     \
  X(ClipGradNormFn, clip_grad_norm)                                                    \
  X(ClipGradScaleFn, clip_grad_scale)

struct Backend {
  const char* name;  // "cpu" or "cuda"
#define SIMCSEPP_BACKEND_MEMBER(Type, member) Type* member = nullptr;
  SIMCSEPP_BACKEND_OPS(SIMCSEPP_BACKEND_MEMBER)
#undef SIMCSEPP_BACKEND_MEMBER
};

// The members of `b` that are filled (the ops this backend implements), by member name.
inline std::vector<const char*> implemented_ops(const Backend& b) {
  std::vector<const char*> ops;
#define SIMCSEPP_BACKEND_FILLED(Type, member) \
  if (b.member != nullptr) ops.push_back(#member);
  SIMCSEPP_BACKEND_OPS(SIMCSEPP_BACKEND_FILLED)
#undef SIMCSEPP_BACKEND_FILLED
  return ops;
}

const Backend& cpu_backend();
const Backend& cuda_backend();

}  // namespace simcsepp
