// The CUDA backend's table (native/backend.h): the ops that have kernels. Every other entry stays
// nullptr, and the binding layer answers "not yet implemented (the CPU backend has it)" for it.
//
// Adding a CUDA op: write its kernel and host launcher (taking a cudaStream_t) in a kernels/*.cu file,
// with an entry point of the op set's signature in namespace simcsepp::cuda (passing kDefaultStream,
// returning once its outputs are written), declare it in entry_points.cuh and fill its entry below.
#include "entry_points.cuh"

namespace simcsepp {

const Backend& cuda_backend() {
  static const Backend table = [] {
    Backend b{"cuda"};
    b.simcse = cuda::simcse;
    b.offDropout = cuda::offDropout;
    b.offDropoutWorkspaceBytes = cuda::offDropoutWorkspaceBytes;
    b.dcl = cuda::dcl;
    b.dropout = cuda::dropout;
    b.offDropoutUnfused = cuda::offDropoutUnfused;
    b.offDropoutUnfusedFit = cuda::offDropoutUnfusedFit;
    b.sgemm = cuda::sgemm;
    b.linear_forward = cuda::linear_forward;
    b.linear_backward = cuda::linear_backward;
    b.attention_forward = cuda::attention_forward;
    b.attention_backward = cuda::attention_backward;
    return b;
  }();
  return table;
}

}  // namespace simcsepp
