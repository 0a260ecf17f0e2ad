// The op set's matrix products on CUDA: sgemm (ops/gemm.h) and the linear layer (ops/encoder.h), on
// cuBLASLt when cublaslt.cuh found and checked it, else on the tile SGEMM of tile_gemm.cuh (a 256-thread block computes
// one 64 x 64 tile of C, 4 x 4 outputs per thread, the reduction staged 16 at a time through shared memory; fp32 FMA,
// no tensor cores).
//
//   sgemm:            C = alpha op(A) op(B) + beta C, the four transpose combinations (sgemm_kernel<tA, tB>).
//                     alpha == 0 or K == 0: C = beta C, run as the kernel with K = 0 (A and B are not read;
//                     beta == 1 launches nothing); beta == 0 never reads C.
//   linear_forward:   out[R, OC] = inp[R, C] W[OC, C]^T + bias   sgemm_kernel<false, true>, the bias added in
//                                                                  its epilogue (acc + bias, as the CPU's beta = 1)
//   (at Precision::kBf16 the three products of the linear layer take bf16 operands: bf16_copy.cuh rounds inp,
//    W and dout into bf16 copies in the op workspace, one launch per op (W comes from its bf16 mirror instead
//    when it has one: bf16_mirror.cuh; inp from the op that produced it, when it wrote a copy: bf16_handoff.cuh),
//    and the products run on cuBLASLt's
//    bf16 x bf16 -> fp32 kernels or on gemm_bf16_kernel (gemm_bf16.cuh: tensor cores, fp32 sums); the bias
//    stays fp32. SIMCSEPP_BF16_OPERANDS=fp32 instead hands the fp32 operands to the GEMM, which rounds them
//    as it reads them: the same bits on the kernels)
//                     geluOut = GELU(out): elementwise.cu's gelu_forward after the product (not yet an epilogue:
//                     cuBLASLt's GELU epilogue is the tanh approximation, not the exact GELU of the op set); a bf16
//                     geluOut (geluOutBf16) receives only bf16(GELU(out)), kept for the weight gradient
//   linear_backward:  dinp (= or +=) dout W                       sgemm_kernel<false, false> (beta 0 or 1)
//                     geluInput: dinp *= GELU'(geluInput) by gelu_backward in place after the product (at bf16
//                     of the product rounded to bf16: gelu_backward_of_bf16; the fused pass below reads it so, and
//                     with bf16Next 'only' the product is stored in bf16, in dinp's memory, as cuBLASLt's bf16 output;
//                     SIMCSEPP_BF16_OUTPUT=0 writes it in fp32 there, for comparisons)
//                     dweight += dout^T inp                        sgemm_kernel<true, false>, beta = 1
//                     inp null (then geluInput is given): the layer's input is GELU(geluInput), recomputed
//                     (gelu.cuh, the forward's bits): at bf16 by the copy of the operand itself (one GELU
//                     segment: no pass of its own), or with dinp too by gelu_backward's pass, which then also
//                     rounds GELU(geluInput) (geluInput read once; the weight gradient's product after it), else
//                     into the op workspace first; inp given with geluInput (the GELU's output the forward kept in
//                     bf16: geluOutBf16): the same pass without that rounding, the weight gradient reading inp
//                     layerNormInput (inp null): the layer's input is that LayerNorm's output (ln_output.cuh, the
//                     apply's bits), recomputed the same ways: at bf16 by the copy itself (a LayerNorm segment:
//                     no fp32 pass, no fp32 buffer), else by layernorm_apply into the op workspace
//                     dbias += column sums of dout                 column_sums.cuh (below)
//                     dinpColumnSums += column sums of dinp as left: the fused GELU pass adds them as it writes dinp
//                     (column_sums.cuh's map pass, in the chunks' grid and order), else the chunked sums after
//                     (bf16Next 'only' with the fused pass: only dinp's bf16 copy is written, the sums then being
//                     the bias gradient of the layer before, which can no longer read dinp)
// bf16 arrays (LinearBf16, ops/encoder.h: values two a float, at Precision::kBf16): a bf16 inp is the product's operand
// as it is (no copy; the fp32-operand paths unpack it into the workspace); a bf16 out without geluOut, and a bf16 dinp,
// are stored by cuBLASLt's bf16 output (with the bias, or without and beta 0), or by gemm_bf16_kernel when there is
// no cuBLASLt for bf16 operands, else written in fp32 into the workspace and rounded from there (bf16_copy.cuh's pass).
// dbias: column_sums.cuh's chunked sums (grid (ceil(OC / 32), chunks of 128 rows) of double partials, then one
// thread per column adding them in chunk order): fixed orders, no atomics, the same bits on every run.
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <string>

#include "bf16_copy.cuh"
#include "bf16_handoff.cuh"
#include "bf16_mirror.cuh"
#include "column_sums.cuh"
#include "cublaslt.cuh"
#include "cuda_check.cuh"
#include "gelu.cuh"
#include "gemm_bf16.cuh"
#include "grid.cuh"
#include "launch.cuh"
#include "tile_gemm.cuh"

namespace simcsepp::cuda {

namespace {

constexpr int kChunksAhead = 32;  // chunk sums the finishing thread keeps in flight (column_sums.cuh)

// The bias gradient's terms (column_sums.cuh): the sum over rows of x[r, c], in double.
struct ColumnTerm {
  const float* x;
  int64_t C;
  __device__ void operator()(double& s, int64_t r, int64_t c) const { s += static_cast<double>(x[r * C + c]); }
};

using colsum::add_column_sums;
using AddToBias = colsum::AddTo;

// sgemm_kernel<transA, transB> on `stream` (tile::sgemm's arguments, the transposes chosen at run time).
void launch_sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const char* what,
                  cudaStream_t stream) {
  if (transA && transB)
    tile::sgemm<true, true>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, what, stream);
  else if (transA)
    tile::sgemm<true, false>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, what, stream);
  else if (transB)
    tile::sgemm<false, true>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, what, stream);
  else
    tile::sgemm<false, false>(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, what, stream);
}

void finish(cudaStream_t stream) { detail::end_op(stream); }

// Whether a product that only bf16 readers read is stored in bf16 (SIMCSEPP_BF16_OUTPUT, read at every op so that a
// benchmark compares both in one process: "0" writes it in fp32, the reader rounding it: the same bits).
bool bf16_outputs() {
  const char* v = std::getenv("SIMCSEPP_BF16_OUTPUT");
  return v == nullptr || std::string(v) != "0";
}

// Whether a product for a bf16 array (with a bias or without) is stored in bf16 by the GEMM itself: cuBLASLt's bf16
// output, or gemm_bf16_kernel's when there is no cuBLASLt for bf16 operands; otherwise (or with SIMCSEPP_BF16_OUTPUT=0)
// it is written in fp32 and rounded after.
bool stores_bf16_output(bool bias) {
  return bf16_outputs() && (lt::serves_bf16_output(bias) || !lt::serves_bf16_operands());
}

// x[i] = the bf16 value x16[i] as a float (exact), i < n: a bf16 array for products that read fp32 operands.
struct Bf16ToFloatOp {
  float* x;
  const __nv_bfloat16* x16;
  __device__ void operator()(int64_t i) const { x[i] = __bfloat162float(x16[i]); }
};

void unpack_bf16(float* x, const __nv_bfloat16* x16, int64_t n, cudaStream_t stream) {
  if (n > 0)
    launch("bf16_to_float (a bf16 operand for fp32 operands)", detail::map_kernel<Bf16ToFloatOp>,
           detail::grid_blocks(n, detail::kMapThreads), detail::kMapThreads, 0, stream, Bf16ToFloatOp{x, x16}, n);
}

}  // namespace

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  require();
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {  // C = beta C: the kernel with K = 0 reads neither A nor B
    if (beta == 1.0f) return;
    K = 0;
    alpha = 0.0f;
  }
  if (K == 0 || !lt::gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr, Precision::kFp32,
                          detail::op_stream()))
    launch_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, "sgemm_kernel (sgemm)",
                 detail::op_stream());
  finish(detail::op_stream());
}

namespace {

// linear_forward at Precision::kBf16 on bf16 copies of inp and weight (caller checked R, C, OC > 0). The weight's
// copy comes from its bf16 mirror when it has one (bf16_mirror.cuh), else is made here; inp16 (bf16.inp: inp's own
// bf16 values) is read as it is. out16 not null (bf16.out): the product is stored in bf16 there by cuBLASLt, or by
// gemm_bf16_kernel when there is no cuBLASLt for bf16 operands, and the function returns true; else it is written in
// fp32 into out, or, when out is null (no GELU's memory to hold it), into the workspace and rounded into out16 from
// there (true too).
bool linear_forward_bf16_copies(float* out, __nv_bfloat16* out16, const float* inp, const __nv_bfloat16* inp16,
                                const float* weight, const float* bias, int64_t R, int64_t C, int64_t OC,
                                cudaStream_t stream) {
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);  // the copies live in the workspace until the product is queued
  const __nv_bfloat16* mirrored = bf16mirror::weights(weight, OC * C, stream);
  // The producer's copy of inp, if it made one (a bf16 inp is its own).
  const __nv_bfloat16* handed = inp16 != nullptr ? inp16 : bf16handoff::take(inp, R * C);
  if (handed == nullptr) bf16handoff::require_written(inp, R * C);
  const bool storable = stores_bf16_output(bias != nullptr);
  const bool scratch = out16 != nullptr && out == nullptr && !storable;  // the fp32 product's memory
  float* product = out;
  const auto carve = [&](char* base, __nv_bfloat16*& x16, __nv_bfloat16*& w16) {
    detail::Carver c(base);
    if (scratch) product = c.take<float>(static_cast<size_t>(R * OC));
    x16 = handed == nullptr ? c.take<__nv_bfloat16>(static_cast<size_t>(R * C)) : nullptr;
    w16 = mirrored == nullptr ? c.take<__nv_bfloat16>(static_cast<size_t>(OC * C)) : nullptr;
    return c.used();
  };
  __nv_bfloat16 *x16 = nullptr, *w16 = nullptr;
  carve(static_cast<char*>(ws.reserve(carve(nullptr, x16, w16))), x16, w16);
  const bf16copy::Segment copies[2] = {{inp, x16, handed == nullptr ? R * C : 0},
                                       {weight, w16, mirrored == nullptr ? OC * C : 0}};
  bf16copy::convert(copies, 2, stream);
  const __nv_bfloat16* w = mirrored != nullptr ? mirrored : w16;
  const __nv_bfloat16* x = handed != nullptr ? handed : x16;
  if (out16 != nullptr && storable) {
    if (lt::gemm_bf16_out(false, true, R, OC, C, 1.0f, x, C, w, C, out16, OC, bias, stream)) return true;
    // No cuBLASLt for bf16 operands, or it refused these pointers and there is no fp32 memory to write to.
    if (!lt::serves_bf16_operands() || product == nullptr) {
      bf16gemm::gemm<false, true>(R, OC, C, 1.0f, x, C, w, C, 0.0f, out16, OC,
                                  "gemm_bf16_kernel (linear out = inp W^T + b, bf16 copies, bf16 output)", stream,
                                  bias);
      return true;
    }
  }
  if (!lt::gemm_bf16(false, true, R, OC, C, 1.0f, x, C, w, C, 0.0f, product, OC, bias, stream))
    bf16gemm::gemm<false, true>(R, OC, C, 1.0f, x, C, w, C, 0.0f, product, OC,
                                "gemm_bf16_kernel (linear out = inp W^T + b, bf16 copies)", stream, bias);
  if (!scratch) return false;
  const bf16copy::Segment rounded{product, out16, R * OC};  // queued while the workspace is held
  bf16copy::convert(&rounded, 1, stream);
  return true;
}

// The fused pass of linear_backward_bf16_copies (Op: detail::GeluBackwardActOp over an fp32 or a bf16 product); with
// dinpSums (then partial is the chunks' workspace), in the column sums' grid, adding dinp's column sums to them.
template <class Op>
void gelu_backward_act(const Op& op, double* partial, float* dinpSums, int64_t R, int64_t C, cudaStream_t stream) {
  if (dinpSums != nullptr)
    colsum::launch_map_sums<kChunksAhead>("gelu_backward_act_sums (linear backward through a GELU, column sums)",
                                          "column_sum_finish (the bias gradient of the layer before)", partial,
                                          colsum::FlatSum<Op>{op, C}, AddToBias{dinpSums}, R, C, stream);
  else
    launch("gelu_backward_act (linear backward through a GELU)", detail::map_kernel<Op>,
           detail::grid_blocks(R * C, detail::kMapThreads), detail::kMapThreads, 0, stream, op, R * C);
}

// linear_backward's two products at Precision::kBf16 on bf16 copies of dout (one, for both), weight and inp
// (caller checked R, C, OC > 0); inpIsGeluInput: the weight gradient's input is GELU(inp), rounded as it is made;
// ln (not null: inp is its x): the weight gradient's input is that LayerNorm's output, rounded as it is made.
// With inpIsGeluInput (then geluInput is inp) and both gradients, the pass after the input gradient's product that
// multiplies it by GELU'(inp) also rounds GELU(inp) for the weight gradient (GeluBackwardActOp: inp read once), the
// weight gradient's product then following it, and adds the column sums of its result into dinpSums when not null
// (column_sums.cuh's map pass: the bits of add_column_sums over the values written); returns true when it did (the
// caller then runs no gelu_backward, nor sums). When the binding said only the next product reads dinp (bf16Next
// 'only') and that product takes the copy, the pass writes the copy alone.
// With keptGelu (the GELU's input, inp then being GELU(keptGelu) as the forward kept it: geluOutBf16) and both
// gradients the same pass runs without rounding GELU(inp): the weight gradient reads inp as it is.
// bf16 (LinearBf16): the GELU's input (inp, or keptGelu) holds bf16 values; inp (the weight gradient's input, not a
// GELU's) holds bf16 values, which the weight gradient reads as they are; out: dinp receives the product in bf16
// (stored by the GEMM, else written in fp32 into the workspace and rounded from there).
bool linear_backward_bf16_copies(float* dinp, float* dweight, const float* dout, const float* inp, bool inpIsGeluInput,
                                 const float* keptGelu, LinearBf16 bf16, const LayerNormInput* ln, const float* weight,
                                 int64_t R, int64_t C, int64_t OC, bool accumulateInput, float* dinpSums,
                                 cudaStream_t stream) {
  const bool wantDinp = dinp != nullptr, wantDweight = dweight != nullptr;
  if (!wantDinp && !wantDweight) return false;
  const bool fused = (inpIsGeluInput || keptGelu != nullptr) && wantDinp && wantDweight && !accumulateInput;
  const bool actByPass = fused && inpIsGeluInput;  // the pass rounds GELU(inp) for the weight gradient
  const float* geluX = inpIsGeluInput ? inp : keptGelu;
  const bool inpBf16 = bf16.geluInput;
  // A GELU input kept in bf16 is read by the fused pass only (the binding gives it dinp and dweight).
  if (inpBf16 && !fused) throw CudaError("linear backward: a bf16 GELU input needs dinp and dweight");
  const bool inpStored = bf16.inp && !inpIsGeluInput && ln == nullptr;  // the weight gradient reads inp itself
  auto* dinpOut16 = bf16.out && wantDinp ? reinterpret_cast<__nv_bfloat16*>(dinp) : nullptr;
  const bool storable = stores_bf16_output(false);
  const bool dinpScratch = dinpOut16 != nullptr && !storable;  // the fp32 product, rounded into dinp after
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);
  const __nv_bfloat16* mirrored = wantDinp ? bf16mirror::weights(weight, OC * C, stream) : nullptr;
  const bool copyWeight = wantDinp && mirrored == nullptr;
  const __nv_bfloat16* handed = bf16handoff::take(dout, R * OC);  // the producer's copy of dout, if it made one
  if (handed == nullptr) bf16handoff::require_written(dout, R * OC);
  const bool sums = fused && dinpSums != nullptr;
  float* dinp32 = nullptr;
  const auto carve = [&](char* base, __nv_bfloat16*& dout16, __nv_bfloat16*& w16, __nv_bfloat16*& inp16,
                         double*& partial) {
    detail::Carver c(base);
    partial = sums ? c.take<double>(static_cast<size_t>(colsum::chunks(R) * C)) : nullptr;
    if (dinpScratch) dinp32 = c.take<float>(static_cast<size_t>(R * C));
    dout16 = handed == nullptr ? c.take<__nv_bfloat16>(static_cast<size_t>(R * OC)) : nullptr;
    w16 = copyWeight ? c.take<__nv_bfloat16>(static_cast<size_t>(OC * C)) : nullptr;
    inp16 = wantDweight && !inpStored ? c.take<__nv_bfloat16>(static_cast<size_t>(R * C)) : nullptr;
    return c.used();
  };
  __nv_bfloat16 *dout16 = nullptr, *w16 = nullptr, *inp16 = nullptr;
  double* partial = nullptr;
  carve(static_cast<char*>(ws.reserve(carve(nullptr, dout16, w16, inp16, partial))), dout16, w16, inp16, partial);
  if (inpStored) inp16 = const_cast<__nv_bfloat16*>(reinterpret_cast<const __nv_bfloat16*>(inp));  // read only
  bf16copy::Segment input{inp, inp16, wantDweight && !actByPass && !inpStored ? R * C : 0, inpIsGeluInput};
  if (ln != nullptr) {
    input.mean = ln->mean;
    input.rstd = ln->rstd;
    input.lnWeight = ln->weight;
    input.lnBias = ln->bias;
    input.C = C;
  }
  const bf16copy::Segment copies[3] = {
      {dout, dout16, handed == nullptr ? R * OC : 0}, {weight, w16, copyWeight ? OC * C : 0}, input};
  bf16copy::convert(copies, 3, stream);
  const __nv_bfloat16* w = mirrored != nullptr ? mirrored : w16;
  const __nv_bfloat16* g = handed != nullptr ? handed : dout16;
  const float beta = accumulateInput ? 1.0f : 0.0f;
  // The fused pass's handoff is claimed before the product (a claim writes the handoff buffer g does not sit in): with
  // bf16Next 'only' dinp's fp32 values are never written, and the product, which GELU' multiplies rounded to bf16,
  // is stored as bf16 in the first half of dinp's own memory (half the bytes written and read again), by cuBLASLt, or
  // by gemm_bf16_kernel when there is no cuBLASLt for bf16 operands; a cuBLASLt that serves bf16 operands but not a
  // bf16 output writes it in fp32 (faster than the kernel), and the pass rounds it.
  bool copyOnly = false;
  __nv_bfloat16* dinp16 = fused ? bf16handoff::claim(dinp, R * C, &copyOnly) : nullptr;
  __nv_bfloat16* g16 = nullptr;
  if (fused && copyOnly && bf16_outputs()) {
    g16 = reinterpret_cast<__nv_bfloat16*>(dinp);
    if (!lt::gemm_bf16_out(false, false, R, C, OC, 1.0f, g, OC, w, C, g16, C, nullptr, stream)) {
      if (lt::serves_bf16_operands())
        g16 = nullptr;
      else
        bf16gemm::gemm<false, false>(R, C, OC, 1.0f, g, OC, w, C, 0.0f, g16, C,
                                     "gemm_bf16_kernel (linear dinp = dout W, bf16 copies, bf16 output)", stream);
    }
  }
  // A bf16 dinp (bf16.out) stored by the GEMM where it can (beta 0: the binding gives it no accumulateInput).
  if (dinpOut16 != nullptr && storable &&
      !lt::gemm_bf16_out(false, false, R, C, OC, 1.0f, g, OC, w, C, dinpOut16, C, nullptr, stream))
    bf16gemm::gemm<false, false>(R, C, OC, 1.0f, g, OC, w, C, 0.0f, dinpOut16, C,
                                 "gemm_bf16_kernel (linear dinp = dout W, bf16 copies, bf16 output)", stream);
  float* product = dinpScratch ? dinp32 : dinp;
  if (wantDinp && g16 == nullptr && (dinpOut16 == nullptr || dinpScratch) &&
      !lt::gemm_bf16(false, false, R, C, OC, 1.0f, g, OC, w, C, beta, product, C, nullptr, stream))
    bf16gemm::gemm<false, false>(R, C, OC, 1.0f, g, OC, w, C, beta, product, C,
                                 "gemm_bf16_kernel (linear dinp = dout W, bf16 copies)", stream);
  if (dinpScratch) {  // queued while the workspace is held
    const bf16copy::Segment rounded{dinp32, dinpOut16, R * C};
    bf16copy::convert(&rounded, 1, stream);
  }
  if (fused) {
    // dinp = GELU'(x) * bf16(product), its bf16 handoff if asked, and (actByPass) inp16 = bf16(GELU(x)); with dinpSums,
    // in the column sums' grid, adding them. x: inp, or keptGelu.
    const auto* x16 = reinterpret_cast<const __nv_bfloat16*>(geluX);
    float* written = copyOnly ? nullptr : dinp;
    __nv_bfloat16* act16 = actByPass ? inp16 : nullptr;
    if (g16 != nullptr && inpBf16)
      gelu_backward_act(detail::GeluBackwardActOp<__nv_bfloat16, __nv_bfloat16>{g16, nullptr, x16, dinp16, act16},
                        partial, dinpSums, R, C, stream);
    else if (g16 != nullptr)
      gelu_backward_act(detail::GeluBackwardActOp<__nv_bfloat16>{g16, nullptr, geluX, dinp16, act16}, partial, dinpSums,
                        R, C, stream);
    else if (inpBf16)
      gelu_backward_act(detail::GeluBackwardActOp<float, __nv_bfloat16>{dinp, written, x16, dinp16, act16}, partial,
                        dinpSums, R, C, stream);
    else
      gelu_backward_act(detail::GeluBackwardActOp<float>{dinp, written, geluX, dinp16, act16}, partial, dinpSums, R, C,
                        stream);
  }
  if (wantDweight && !lt::gemm_bf16(true, false, OC, C, R, 1.0f, g, OC, inp16, C, 1.0f, dweight, C, nullptr, stream))
    bf16gemm::gemm<true, false>(OC, C, R, 1.0f, g, OC, inp16, C, 1.0f, dweight, C,
                                "gemm_bf16_kernel (linear dweight += dout^T inp, bf16 copies)", stream);
  return fused;
}

// The copies unless SIMCSEPP_BF16_OPERANDS=fp32, or cuBLASLt failed its self-check for bf16 operands but passed
// it for fp32 operands with bf16 math: its fp32-operand kernels then beat gemm_bf16_kernel on the copies.
bool use_bf16_copies(Precision precision) {
  if (precision != Precision::kBf16 || bf16copy::operands() != bf16copy::Operands::kCopies) return false;
  return lt::serves_bf16_operands() || !lt::serves_fp32_operands_bf16();
}

}  // namespace

void colsum::add_column_sums(float* out, const float* x, int64_t R, int64_t C, cudaStream_t stream) {
  detail::Workspace& ws = detail::workspace();
  std::lock_guard<std::mutex> lock(ws.mu);  // held until both kernels are queued: the partials live there
  auto* partial = static_cast<double*>(ws.reserve(static_cast<size_t>(colsum::chunks(R) * C) * sizeof(double)));
  colsum::launch_sums<kChunksAhead>("column_sum_chunks (dbias)", "column_sum_finish (dbias)", partial, ColumnTerm{x, C},
                                    colsum::AddTo{out}, R, C, stream);
}

bool linear_takes_bf16_copies() { return use_bf16_copies(Precision::kBf16); }

void linear_forward(float* out, const float* inp, const float* weight, const float* bias, int64_t R, int64_t C,
                    int64_t OC, Precision precision, float* geluOut, LinearBf16 bf16) {
  require();
  const cudaStream_t stream = detail::op_stream();
  const bool copies = R > 0 && C > 0 && OC > 0 && use_bf16_copies(precision);
  if (!copies && !bf16.inp) bf16handoff::require_written(inp, R * C);
  // bf16.out with geluOut: the product stored in bf16 into out where the GEMM can (stored), else written in fp32 into
  // geluOut's memory, which the GELU's pass rounds into out (the same values) before it writes the GELU. Without
  // geluOut the copies' path stores it (or rounds it from the workspace); the other paths below round it from there.
  // A bf16 geluOut (bf16.geluOut) has no room for an fp32 product: the paths below then store it or round it from the
  // workspace, as without geluOut.
  auto* out16 = bf16.out ? reinterpret_cast<__nv_bfloat16*>(out) : nullptr;
  float* product = bf16.out ? (bf16.geluOut ? nullptr : geluOut) : out;
  bool stored = false;
  if (copies) {
    stored = linear_forward_bf16_copies(product, out16, inp,
                                        bf16.inp ? reinterpret_cast<const __nv_bfloat16*>(inp) : nullptr, weight, bias,
                                        R, C, OC, stream);
  } else {
    // fp32 operands (rounded by the GEMM at bf16): a bf16 inp unpacked into the workspace (exact), a bf16 output
    // without geluOut's memory written there in fp32 and rounded after, the workspace held until both are queued.
    std::unique_lock<std::mutex> held;
    float* product32 = product;
    if ((bf16.inp || product == nullptr) && R > 0 && OC > 0) {
      detail::Workspace& ws = detail::workspace();
      held = std::unique_lock<std::mutex>(ws.mu);
      float* x32 = nullptr;
      const auto carve = [&](char* base) {
        detail::Carver c(base);
        if (bf16.inp) x32 = c.take<float>(static_cast<size_t>(R * C));
        if (product == nullptr) product32 = c.take<float>(static_cast<size_t>(R * OC));
        return c.used();
      };
      carve(static_cast<char*>(ws.reserve(carve(nullptr))));
      if (bf16.inp) {
        unpack_bf16(x32, reinterpret_cast<const __nv_bfloat16*>(inp), R * C, stream);
        inp = x32;
      }
    }
    if (C > 0 &&
        lt::gemm(false, true, R, OC, C, 1.0f, inp, C, weight, C, 0.0f, product32, OC, bias, precision, stream)) {
      // cuBLASLt (cublaslt.cuh)
    } else if (precision == Precision::kBf16) {
      bf16gemm::gemm<false, true>(R, OC, C, 1.0f, inp, C, weight, C, 0.0f, product32, OC,
                                  "gemm_bf16_kernel (linear out = inp W^T + b)", stream, bias);
    } else {
      tile::sgemm<false, true>(R, OC, C, 1.0f, inp, C, weight, C, 0.0f, product32, OC,
                               "sgemm_kernel (linear out = inp W^T + b)", stream, bias);
    }
    if (product == nullptr && R > 0 && OC > 0) {
      const bf16copy::Segment rounded{product32, out16, R * OC};
      bf16copy::convert(&rounded, 1, stream);
      stored = true;
    }
  }
  finish(stream);
  if (!bf16.out) {
    if (geluOut != nullptr) gelu_forward(geluOut, out, R * OC);
    return;
  }
  if (geluOut == nullptr) return;  // stored above
  if (bf16.geluOut) {              // the GELU kept in bf16 alone, which the next product reads as it is
    bf16handoff::decline();
    gelu_forward_of_bf16(nullptr, out16, reinterpret_cast<__nv_bfloat16*>(geluOut), R * OC);
    return;
  }
  bool only = false;  // bf16Next 'only': the GELU's fp32 values are left unwritten, the handoff alone
  __nv_bfloat16* act16 = bf16handoff::claim(geluOut, R * OC, &only);
  float* act = only ? nullptr : geluOut;
  if (stored)
    gelu_forward_of_bf16(act, out16, act16, R * OC);
  else
    detail::run_map("gelu_forward (a pre-activation rounded into bf16)",
                    detail::PreActivationGeluOp{act, geluOut, out16, act16}, R * OC);
}

void linear_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int64_t R, int64_t C, int64_t OC, bool accumulateInput, Precision precision,
                     const float* geluInput, const LayerNormInput* layerNormInput, float* dinpColumnSums,
                     LinearBf16 bf16Arrays) {
  require();
  const cudaStream_t stream = detail::op_stream();
  const bool bf16 = precision == Precision::kBf16;
  const bool geluInputBf16 = bf16Arrays.geluInput;
  const bool copies = R > 0 && C > 0 && OC > 0 && use_bf16_copies(precision);
  if (inp != nullptr && !bf16Arrays.inp) bf16handoff::require_written(inp, R * C);
  // dout read as fp32 (the bias gradient; the products without copies) must have been written (bf16Next 'only').
  if (dbias != nullptr || !copies) bf16handoff::require_written(dout, R * OC);
  bool geluDone = false;  // the fused pass of linear_backward_bf16_copies ran (and added dinpColumnSums)
  if (copies) {
    const float* x = inp != nullptr ? inp : layerNormInput != nullptr ? layerNormInput->x : geluInput;
    geluDone = linear_backward_bf16_copies(dinp, dweight, dout, x, inp == nullptr && layerNormInput == nullptr,
                                           inp != nullptr ? geluInput : nullptr, bf16Arrays,
                                           inp == nullptr ? layerNormInput : nullptr, weight, R, C, OC, accumulateInput,
                                           dinpColumnSums, stream);
  } else {
    // Without inp, the weight gradient reads GELU(geluInput) or the LayerNorm's output from the workspace; a bf16 inp
    // is read unpacked from there (exact), and a bf16 dinp is written there in fp32 and rounded after: the workspace
    // held until the products are queued.
    std::unique_lock<std::mutex> recomputed;
    const bool unpackInp = bf16Arrays.inp && inp != nullptr && dweight != nullptr && R > 0 && C > 0;
    const bool recompute = inp == nullptr && dweight != nullptr && R > 0 && C > 0;
    float* dinp32 = nullptr;
    auto* dinp16 = bf16Arrays.out && dinp != nullptr ? reinterpret_cast<__nv_bfloat16*>(dinp) : nullptr;
    if (recompute || unpackInp || (dinp16 != nullptr && R > 0 && C > 0)) {
      detail::Workspace& ws = detail::workspace();
      recomputed = std::unique_lock<std::mutex>(ws.mu);
      float* act = nullptr;
      const auto carve = [&](char* base) {
        detail::Carver c(base);
        if (recompute || unpackInp) act = c.take<float>(static_cast<size_t>(R * C));
        if (dinp16 != nullptr) dinp32 = c.take<float>(static_cast<size_t>(R * C));
        return c.used();
      };
      carve(static_cast<char*>(ws.reserve(carve(nullptr))));
      if (dinp16 != nullptr) dinp = dinp32;
      if (unpackInp) {
        unpack_bf16(act, reinterpret_cast<const __nv_bfloat16*>(inp), R * C, stream);
      } else if (!recompute) {
        // a bf16 dinp only
      } else if (layerNormInput != nullptr) {
        const LayerNormInput& ln = *layerNormInput;
        layernorm_apply(act, ln.x, ln.mean, ln.rstd, ln.weight, ln.bias, R, C);
      } else if (geluInputBf16) {
        launch("gelu_forward (the weight gradient's input, recomputed)",
               detail::map_kernel<detail::GeluForwardOp<__nv_bfloat16>>,
               detail::grid_blocks(R * C, detail::kMapThreads), detail::kMapThreads, 0, stream,
               detail::GeluForwardOp<__nv_bfloat16>{act, reinterpret_cast<const __nv_bfloat16*>(geluInput), nullptr},
               R * C);
      } else {
        launch("gelu_forward (the weight gradient's input, recomputed)", detail::map_kernel<detail::GeluForwardOp<>>,
               detail::grid_blocks(R * C, detail::kMapThreads), detail::kMapThreads, 0, stream,
               detail::GeluForwardOp<>{act, geluInput, nullptr}, R * C);
      }
      if (act != nullptr) inp = act;
    }
    if (dinp != nullptr && OC > 0 &&
        lt::gemm(false, false, R, C, OC, 1.0f, dout, OC, weight, C, accumulateInput ? 1.0f : 0.0f, dinp, C, nullptr,
                 precision, stream)) {
      // cuBLASLt
    } else if (dinp != nullptr) {
      if (bf16)
        bf16gemm::gemm<false, false>(R, C, OC, 1.0f, dout, OC, weight, C, accumulateInput ? 1.0f : 0.0f, dinp, C,
                                     "gemm_bf16_kernel (linear dinp = dout W)", stream);
      else
        tile::sgemm<false, false>(R, C, OC, 1.0f, dout, OC, weight, C, accumulateInput ? 1.0f : 0.0f, dinp, C,
                                  "sgemm_kernel (linear dinp = dout W)", stream);
    }
    if (dinp16 != nullptr && dinp32 != nullptr) {  // the bf16 dinp, rounded while the workspace is held
      const bf16copy::Segment rounded{dinp32, dinp16, R * C};
      bf16copy::convert(&rounded, 1, stream);
      dinp = reinterpret_cast<float*>(dinp16);
    }
    if (dweight != nullptr && R > 0 &&
        lt::gemm(true, false, OC, C, R, 1.0f, dout, OC, inp, C, 1.0f, dweight, C, nullptr, precision, stream)) {
      // cuBLASLt
    } else if (dweight != nullptr && R > 0) {
      if (bf16)
        bf16gemm::gemm<true, false>(OC, C, R, 1.0f, dout, OC, inp, C, 1.0f, dweight, C,
                                    "gemm_bf16_kernel (linear dweight += dout^T inp)", stream);
      else
        tile::sgemm<true, false>(OC, C, R, 1.0f, dout, OC, inp, C, 1.0f, dweight, C,
                                 "sgemm_kernel (linear dweight += dout^T inp)", stream);
    }
  }  // the workspace's recomputed GELU (if any) is released only now, its product queued
  if (dbias != nullptr && R > 0 && OC > 0) add_column_sums(dbias, dout, R, OC, stream);
  finish(stream);
  // At bf16 GELU' multiplies the product rounded to bf16 (the fused pass's arithmetic).
  if (dinp != nullptr && geluInput != nullptr && !geluDone) {
    if (geluInputBf16)  // at bf16 only (the binding)
      gelu_backward_of_bf16(dinp, reinterpret_cast<const __nv_bfloat16*>(geluInput), dinp, R * C);
    else if (bf16)
      gelu_backward_of_bf16(dinp, geluInput, dinp, R * C);
    else
      gelu_backward(dinp, geluInput, dinp, R * C);
  }
  if (dinpColumnSums != nullptr && !geluDone && R > 0 && C > 0) {  // the sums of dinp as this op leaves it
    add_column_sums(dinpColumnSums, dinp, R, C, stream);
    finish(stream);
  }
}

}  // namespace simcsepp::cuda
