// The CPU backend's table (backend.h): every op of the op set, implemented in native/cpu/.
#include "../backend.h"

#include "gemm.h"
#include "ops.h"

namespace simcsepp {

const Backend& cpu_backend() {
  static const Backend table = [] {
    Backend b{"cpu"};
    b.simcse = cpu::simcse;
    b.offDropout = cpu::offDropout;
    b.dcl = cpu::dcl;
    b.cosent = cpu::cosent;
    b.mse = cpu::mse;
    b.dropout = cpu::dropout;
    b.offDropoutUnfused = cpu::offDropoutUnfused;
    b.offDropoutUnfusedFit = cpu::offDropoutUnfusedFit;
    b.offDropoutWorkspaceBytes = cpu::offDropoutWorkspaceBytes;
    b.sgemm = cpu::sgemm;
    b.embedding_forward = cpu::embedding_forward;
    b.embedding_backward = cpu::embedding_backward;
    b.layernorm_forward = cpu::layernorm_forward;
    b.layernorm_apply = cpu::layernorm_apply;
    b.layernorm_backward = cpu::layernorm_backward;
    b.residual_layernorm_forward = cpu::residual_layernorm_forward;
    b.layernorm_dropout_backward = cpu::layernorm_dropout_backward;
    b.linear_forward = cpu::linear_forward;
    b.linear_backward = cpu::linear_backward;
    b.gelu_forward = cpu::gelu_forward;
    b.gelu_backward = cpu::gelu_backward;
    b.geglu_forward = cpu::geglu_forward;
    b.geglu_backward = cpu::geglu_backward;
    b.rope = cpu::rope;
    b.tanh_forward = cpu::tanh_forward;
    b.tanh_backward = cpu::tanh_backward;
    b.add = cpu::add;
    b.add_inplace = cpu::add_inplace;
    b.leading_columns = cpu::leading_columns;
    b.add_leading_columns = cpu::add_leading_columns;
    b.attention_forward = cpu::attention_forward;
    b.attention_backward = cpu::attention_backward;
    b.relative_bias_forward = cpu::relative_bias_forward;
    b.relative_bias_backward = cpu::relative_bias_backward;
    b.pool_cls_forward = cpu::pool_cls_forward;
    b.pool_cls_backward = cpu::pool_cls_backward;
    b.pool_mean_forward = cpu::pool_mean_forward;
    b.pool_mean_backward = cpu::pool_mean_backward;
    b.pool_max_forward = cpu::pool_max_forward;
    b.pool_max_backward = cpu::pool_max_backward;
    b.adamw_step = cpu::adamw_step;
    b.grad_sum_squares = cpu::grad_sum_squares;
    b.scale_inplace = cpu::scale_inplace;
    b.clip_grad_norm = cpu::clip_grad_norm;
    b.clip_grad_scale = cpu::clip_grad_scale;
    return b;
  }();
  return table;
}

}  // namespace simcsepp
