// The precision of the matrix products in the linear layers (ops/encoder.h), and in attention for the shapes
// attention_takes_bf16 admits (ops/encoder.h: AttentionForwardFn).
//   kFp32: fp32 operands, fp32 products and sums.
//   kBf16: each operand rounded to bfloat16 (round to nearest even) before the product, products and sums
//          in fp32: the tensor cores' bf16 mode. The CPU backend does the same rounding before its fp32
//          GEMM, so both backends compute the same function and are compared as tightly as in fp32.
// Everything outside the products (bias, LayerNorm statistics, softmax, losses, AdamW) stays fp32.
#pragma once

namespace simcsepp {

enum class Precision : int { kFp32 = 0, kBf16 = 1 };

}  // namespace simcsepp
