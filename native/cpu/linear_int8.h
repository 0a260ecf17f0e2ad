// The int8 linear layer of the CPU encoder's inference (SentenceEncoder's precision 'int8'): y = x Wᵀ + b with
// the weight quantized once per output channel and the input per row, both symmetric int8, and the products
// summed exactly in int32:
//
//   s_w[o] = max_k |W[o, k]| / 127    Wq[o, k] = rint(W[o, k] · (127 / max_k |W[o, k]|))   (0 for a zero row)
//   s_x[r] = max_k |x[r, k]| / 127    xq[r, k] = rint(x[r, k] · (127 / max_k |x[r, k]|))   (0 for a zero row)
//   y[r, o] = float(Σ_k xq[r, k] Wq[o, k]) · (s_x[r] · s_w[o]) + b[o]        then GELU where asked
//
// (float32 throughout, rint to nearest even, each operation rounded once: -ffp-contract=off.) One scale per row of
// x, where onnxruntime's dynamic quantization takes one per tensor, so a row's outlier does not coarsen the others.
// The sums are exact integers, so every kernel (VNNI on 512- or 256-bit vectors, aarch64's SDOT, portable C++) gives
// the same bits.
//
// Packed weight (int8_pack_weight): a 64-byte header (magic, OC, C), s_w and 128 · Σ_k Wq[o, k] for OCp =
// ceil(OC / 64) · 64 outputs, then Wq in panels of 64 outputs: per group of 4 k (zero past C), 64 × 4 bytes, output
// j's 4 bytes together, VPDPBUSD's operand layout. x is quantized at each call into xq + 128 (VPDPBUSD multiplies
// unsigned by signed bytes), and the correction term is subtracted from the sums.
#pragma once
#include <cstdint>

namespace simcsepp::cpu {

// Bytes of the packed form of an [OC, C] weight.
int64_t int8_packed_bytes(int64_t OC, int64_t C);

// Quantizes weight [OC, C] into dst (int8_packed_bytes(OC, C) bytes). Returns -1, or the flat index of the first
// weight that is not finite (dst then holds no valid header).
int64_t int8_pack_weight(void* dst, const float* weight, int64_t OC, int64_t C);

// True when p (of `bytes` bytes) starts with a packed weight's header whose size fits; sets OC and C.
bool int8_packed_shape(const void* p, int64_t bytes, int64_t* OC, int64_t* C);

// out [R, OC] = the formula above for inp [R, C]; bias [OC] may be null; geluOut (may be out itself, else apart
// from it) gets GELU(out) when not null. A row of inp with a non-finite value gives a row of NaN.
void linear_int8_forward(float* out, const float* inp, const void* packed, const float* bias, int64_t R,
                         float* geluOut);

// The kernel in use: "avx512vnni", "avxvnni" (x86), "dotprod" (aarch64's SDOT) or "generic".
const char* int8_kernel_name();

// Testing/benchmark hook, as sgemm_force_kernel: false (nothing changed) when unknown or not runnable here.
// SIMCSEPP_INT8_KERNEL does the same at first use.
bool int8_force_kernel(const char* name);

}  // namespace simcsepp::cpu
