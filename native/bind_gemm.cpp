// Node-API entry points of the GEMM (the op set's sgemm), for `simcsepp bench gemm` and its tests:
//   gemm(c, a, b, transA, transB, alpha, beta, useSystemBlas, precision?)   C = alpha op(A) op(B) + beta C
//     (useSystemBlas: the system BLAS instead of ours, CPU only; precision 'bf16': ours as the linear layers'
//     bf16 products, CPU only)
//   gemmInfo() -> { kernel, bf16Kernel, attentionKernel, geluKernel, searchKernel, hammingKernel, threads,
//   systemBlas?: string, systemBlasCore?: string }
//     (about the CPU GEMM; bf16Kernel: how the bf16 products run, 'amx', 'avx512bf16', 'rounded while packed' or
//     'rounded copies'; attentionKernel: the instruction set of attention's per-head products,
//     native/cpu/attention.cpp; geluKernel: the GELU loops' instruction set, native/cpu/bert_ops.cpp; searchKernel:
//     the vector search's dot products', native/cpu/search.cpp; hammingKernel: the binary search's bit counts,
//     native/cpu/hamming_search.cpp;
//     systemBlasCore: OpenBLAS's kernel family, e.g. SkylakeX (AVX-512) or Haswell (AVX2))
#include <napi.h>

#include <cstdlib>
#include <string>

#include "args.h"
#include "cpu/blas_ref.h"
#include "cpu/gemm.h"
#include "cpu/hamming_search.h"
#include "cpu/ops.h"
#include "cpu/parallel.h"
#include "cpu/search.h"
#include "dispatch.h"
#include "register.h"

namespace simcsepp {

namespace {

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  OpTensors ts(info, "gemm");
  NativeTensor* c = ts.matrix(0, "c");
  NativeTensor* a = ts.matrix(1, "a");
  NativeTensor* b = ts.matrix(2, "b");
  SgemmFn* sgemm = ts.entry(&Backend::sgemm);
  const bool ta = arg_bool(info, 3, "transA"), tb = arg_bool(info, 4, "transB");
  const float alpha = static_cast<float>(arg_number(info, 5, "alpha"));
  const float beta = static_cast<float>(arg_number(info, 6, "beta"));
  const bool system = arg_bool(info, 7, "useSystemBlas");
  const int64_t M = ta ? a->shape()[1] : a->shape()[0], K = ta ? a->shape()[0] : a->shape()[1];
  const int64_t K2 = tb ? b->shape()[1] : b->shape()[0], N = tb ? b->shape()[0] : b->shape()[1];
  if (K2 != K)
    throw_arg(env, "Expected b to have " + std::to_string(K) + " rows in op(b) but received " + b->shape_string());
  if (c->shape()[0] != M || c->shape()[1] != N)
    throw_arg(env, "Expected c to be [" + std::to_string(M) + ", " + std::to_string(N) + "] but received " +
                       c->shape_string());
  const bool bf16 =
      info.Length() > 8 && !info[8].IsUndefined() && arg_precision(info, 8, "precision") == Precision::kBf16;
  std::string name;
  if (system && ts.device() != Device::kCpu) throw_arg(env, "gemm: useSystemBlas takes CPU tensors");
  if (bf16 && (system || ts.device() != Device::kCpu))
    throw_arg(env, "gemm: precision 'bf16' is for our CPU GEMM (CPU tensors, not the system BLAS)");
  if (system && !cpu::blas_ref_available(&name))
    throw Napi::Error::New(env, "gemm: no system BLAS with cblas_sgemm was found");
  return guarded(env, [&]() -> Napi::Value {
    SgemmFn* f = system ? cpu::blas_ref_sgemm : bf16 ? cpu::sgemm_bf16 : sgemm;
    f(ta, tb, M, N, K, alpha, a->data(), a->shape()[1], b->data(), b->shape()[1], beta, c->data(), N);
    return env.Undefined();
  });
}

Napi::Value GemmInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("kernel", cpu::sgemm_kernel_name());
  o.Set("bf16Kernel", cpu::sgemm_bf16_kernel_name());
  o.Set("attentionKernel", cpu::attention_kernel_name());
  o.Set("geluKernel", cpu::gelu_kernel_name());
  o.Set("searchKernel", cpu::search_kernel_name());
  o.Set("hammingKernel", cpu::hamming_kernel_name());
  o.Set("threads", cpu::num_threads());
  // OpenBLAS reads its thread count when loaded: match ours so the comparison is like for like.
  if (!std::getenv("OPENBLAS_NUM_THREADS"))
    setenv("OPENBLAS_NUM_THREADS", std::to_string(cpu::num_threads()).c_str(), 0);
  std::string name, core;
  if (cpu::blas_ref_available(&name, &core)) {
    o.Set("systemBlas", name);
    if (!core.empty()) o.Set("systemBlasCore", core);
  }
  return o;
}

}  // namespace

void register_gemm(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", Napi::Function::New<Gemm>(env, "gemm"));
  exports.Set("gemmInfo", Napi::Function::New<GemmInfo>(env, "gemmInfo"));
}

}  // namespace simcsepp
