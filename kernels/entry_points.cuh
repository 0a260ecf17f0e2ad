// The CUDA backend's entry points, declared through the op set's signatures (native/ops/*.h), so the
// compiler checks each definition against the op set; kernels/backend.cu puts them in the CUDA table.
// Device pointers (except the host-side index arrays and keepRows); each returns once its outputs are
// written and throws CudaError on a CUDA failure.
#pragma once
#include "backend.h"

namespace simcsepp::cuda {

SimcseFn simcse;                                      // infonce.cu
OffDropoutFn offDropout;                              // infonce.cu
OffDropoutWorkspaceBytesFn offDropoutWorkspaceBytes;  // infonce.cu
DclFn dcl;                                            // dcl.cu
DropoutFn dropout;                                    // dropout.cu
OffDropoutUnfusedFn offDropoutUnfused;                // infonce_unfused.cu
OffDropoutUnfusedFitFn offDropoutUnfusedFit;          // infonce_unfused.cu
SgemmFn sgemm;                                        // gemm.cu
LinearForwardFn linear_forward;                       // gemm.cu
LinearBackwardFn linear_backward;                     // gemm.cu
AttentionForwardFn attention_forward;                 // attention.cu
AttentionBackwardFn attention_backward;               // attention.cu

}  // namespace simcsepp::cuda
