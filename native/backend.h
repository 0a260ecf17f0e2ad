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
#include "ops/encoder.h"
#include "ops/gemm.h"
#include "ops/losses.h"
#include "ops/optim.h"

namespace simcsepp {

struct Backend {
  const char* name;  // "cpu" or "cuda"

  // Losses and dropout (ops/losses.h). The CUDA ones synchronise before returning.
  SimcseFn* simcse = nullptr;
  OffDropoutFn* offDropout = nullptr;
  DclFn* dcl = nullptr;
  DropoutFn* dropout = nullptr;
  OffDropoutUnfusedFn* offDropoutUnfused = nullptr;
  OffDropoutUnfusedFitFn* offDropoutUnfusedFit = nullptr;
  OffDropoutWorkspaceBytesFn* offDropoutWorkspaceBytes = nullptr;

  // Matrix product (ops/gemm.h).
  SgemmFn* sgemm = nullptr;

  // BERT encoder (ops/encoder.h).
  EmbeddingForwardFn* embedding_forward = nullptr;
  EmbeddingBackwardFn* embedding_backward = nullptr;
  LayerNormForwardFn* layernorm_forward = nullptr;
  LayerNormBackwardFn* layernorm_backward = nullptr;
  LinearForwardFn* linear_forward = nullptr;
  LinearBackwardFn* linear_backward = nullptr;
  GeluForwardFn* gelu_forward = nullptr;
  GeluBackwardFn* gelu_backward = nullptr;
  TanhForwardFn* tanh_forward = nullptr;
  TanhBackwardFn* tanh_backward = nullptr;
  AddFn* add = nullptr;
  AddInplaceFn* add_inplace = nullptr;
  AttentionForwardFn* attention_forward = nullptr;
  AttentionBackwardFn* attention_backward = nullptr;
  PoolClsForwardFn* pool_cls_forward = nullptr;
  PoolClsBackwardFn* pool_cls_backward = nullptr;
  PoolMeanForwardFn* pool_mean_forward = nullptr;
  PoolMeanBackwardFn* pool_mean_backward = nullptr;

  // Optimiser and gradient norm (ops/optim.h).
  AdamwStepFn* adamw_step = nullptr;
  GradSumSquaresFn* grad_sum_squares = nullptr;
  ScaleInplaceFn* scale_inplace = nullptr;
};

const Backend& cpu_backend();
const Backend& cuda_backend();

}  // namespace simcsepp
