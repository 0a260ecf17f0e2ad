// The CUDA backend's table (native/backend.h): the ops that have kernels. Every other entry stays
// nullptr, and the binding layer answers "not yet implemented (the CPU backend has it)" for it.
//
// Adding a CUDA op: write its kernel and host launcher (taking a cudaStream_t) in a kernels/*.cu file,
// with an entry point of the op set's signature in namespace simcsepp::cuda (passing detail::op_stream(),
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
    b.cosent = cuda::cosent;
    b.mse = cuda::mse;
    b.dropout = cuda::dropout;
    b.offDropoutUnfused = cuda::offDropoutUnfused;
    b.offDropoutUnfusedFit = cuda::offDropoutUnfusedFit;
    b.embedding_forward = cuda::embedding_forward;
    b.embedding_backward = cuda::embedding_backward;
    b.layernorm_forward = cuda::layernorm_forward;
    b.layernorm_apply = cuda::layernorm_apply;
    b.layernorm_backward = cuda::layernorm_backward;
    b.residual_layernorm_forward = cuda::residual_layernorm_forward;
    b.layernorm_dropout_backward = cuda::layernorm_dropout_backward;
    b.gelu_forward = cuda::gelu_forward;
    b.gelu_backward = cuda::gelu_backward;
    b.geglu_forward = cuda::geglu_forward;
    b.geglu_backward = cuda::geglu_backward;
    b.rope = cuda::rope;
    b.tanh_forward = cuda::tanh_forward;
    b.tanh_backward = cuda::tanh_backward;
    b.add = cuda::add;
    b.add_inplace = cuda::add_inplace;
    b.leading_columns = cuda::leading_columns;
    b.add_leading_columns = cuda::add_leading_columns;
    b.pool_cls_forward = cuda::pool_cls_forward;
    b.pool_cls_backward = cuda::pool_cls_backward;
    b.pool_mean_forward = cuda::pool_mean_forward;
    b.pool_mean_backward = cuda::pool_mean_backward;
    b.pool_max_forward = cuda::pool_max_forward;
    b.pool_max_backward = cuda::pool_max_backward;
    b.adamw_step = cuda::adamw_step;
    b.grad_sum_squares = cuda::grad_sum_squares;
    b.scale_inplace = cuda::scale_inplace;
    b.clip_grad_norm = cuda::clip_grad_norm;
    b.clip_grad_scale = cuda::clip_grad_scale;
    b.sgemm = cuda::sgemm;
    b.linear_forward = cuda::linear_forward;
    b.linear_backward = cuda::linear_backward;
    b.attention_forward = cuda::attention_forward;
    b.attention_backward = cuda::attention_backward;
    b.relative_bias_forward = cuda::relative_bias_forward;
    b.relative_bias_backward = cuda::relative_bias_backward;
    return b;
  }();
  return table;
}

}  // namespace simcsepp
