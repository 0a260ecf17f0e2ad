// Node-API entry points of the BERT encoder ops (ops/encoder.h): validate, then run on the tensors'
// device through dispatch.h (the CPU backend has them all; CUDA those kernels/backend.cu registers).
//
//   embeddingForward(out, ids, posIds, typeIds, word, pos, type)
//   embeddingBackward(dword|null, dpos|null, dtype|null, dout, ids, posIds, typeIds)
//   layerNormForward(out, mean, rstd, inp, weight, bias, eps, bf16Next?)
//   layerNormApply(out, inp, mean, rstd, weight, bias)   (out may be inp)
//   layerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd)
//   residualLayerNormForward(out, res, mean, rstd, y, x|null, weight, bias, eps, sentences, p, seed, offset,
//                            keepRows|null, firstRow, bf16Next?, xX?, xMean?, xRstd?, xWeight?, xBias?, outBf16?,
//                            yBf16?)   (x null: x is the output of the LayerNorm xX.. describe, recomputed; bf16Next
//                            'only': out's fp32 values may stay unwritten, as linearForward's; outBf16: ceil(R * C / 2)
//                            floats that also receive bf16(out), a copy kept for the next layer's weight gradient;
//                            yBf16: y holds R * C bf16 values, as linearForward's outBf16 stores them)
//   layerNormDropoutBackward(dres, dy|null, dweight, dbias, dout, res, weight, mean, rstd, sentences, p, seed,
//                            offset, keepRows|null, firstRow, bf16Next?, dyColumnSums?)   (bf16Next 'only': dy's
//                            fp32 values may stay unwritten; dyColumnSums [C]: += dy's (or dres's) column sums)
//   linearForward(out, inp, weight, bias|null, precision, geluOut?, bf16Next?, outBf16?, inpBf16?, rows?,
//                geluOutBf16?)
//                precision: 'fp32' | 'bf16' (outBf16: out holds the product in bf16, two values a float; inpBf16: inp
//                holds bf16 values; both: rows says R; at bf16 only; bf16Next needs geluOut)
//                (geluOut: apart from out, or out itself for the GELU in place; bf16Next may also be 'only': the
//                next op's product is geluOut's only reader, and on CUDA its fp32 values may stay unwritten;
//                geluOutBf16, with outBf16 and no bf16Next: geluOut holds the GELU's R * OC bf16 values, kept)
//   (bf16Next: the output, geluOut for linearForward, dy (or dres) for layerNormDropoutBackward, dinp for
//    linearBackward with geluInput, is an operand of the bf16 product(s) of the next op; see request_bf16_handoff)
//   linearBackward(dinp|null, dweight, dbias|null, dout, inp|null, weight, accumulateInput, precision, geluInput?,
//                  bf16Next?, lnX?, lnMean?, lnRstd?, lnWeight?, lnBias?, dinpColumnSums?, geluInputBf16?, inpBf16?,
//                  dinpBf16?)   (inp null
//                  only with geluInput: the input is GELU(geluInput), or with the ln* arguments: the input is that
//                  LayerNorm's output; each recomputed. bf16Next may be 'only' as linearForward's, for dinp.
//                  dinpColumnSums [C]:
//                  += dinp's column sums, the bias gradient of the layer before; geluInputBf16: geluInput holds bf16
//                  values as linearForward's outBf16 stores them, at bf16, without inp or with a bf16 inp (GELU of
//                  them, as linearForward's geluOutBf16 keeps it); inpBf16: inp holds bf16 values;
//                  dinpBf16: dinp receives the product in bf16, without accumulateInput, geluInput, dinpColumnSums)
//   geluForward(out, inp)             geluBackward(dinp, inp, dout)
//   tanhForward(out, inp)             tanhBackward(dinp, out, dout)
//   gegluForward(out, u)              gegluBackward(du, u, dout)   (ModernBERT's MLP: u [R, 2I] = [a | g])
//   rope(qkv, numHeads, theta, inverse)   (ModernBERT's rotary embedding, in place on the q, k blocks of [B, T, 3H])
//   add(out, a, b)                    addInplace(dst, src)
//   leadingColumns(out, inp)          addLeadingColumns(dinp, dout, scale)   (out, dout [R, d]; inp, dinp [R, H];
//                                     d <= H: Matryoshka training's truncated vectors and their gradient)
//   attentionForward(ctx, probs|null, q, k|null, v|null, mask, numHeads, p, seed, offset, keepRows|null[, firstRow,
//                    bf16Next, relBias|null, precision, bf16Shape])   (probs null: the softmax is not kept, for
//                    inference; relBias [2T - 1, NH]: MPNet's relative-position bias, ops/encoder.h; precision 'fp32'
//                    (the default) or 'bf16': the products' operands rounded, attention_takes_bf16; bf16Shape [B, T,
//                    H]: the packed q (k, v null) and ctx hold bf16 values, two a float, at those shapes only)
//   attentionBackward(dq, dk|null, dv|null, dctx, q, k|null, v|null, probs|null, mask, numHeads, p, seed, offset,
//                     keepRows|null[, firstRow, bf16Next, relBias|null, dRelBias|null, precision, dqkvColumnSums,
//                     bf16Shape])   (bf16Shape: as the forward's, for q and dctx; dq stays fp32)
//                     (dRelBias [B, 2T - 1, NH]: each sentence's bias gradient; k, v null: q is the packed [B, T, 3H]
//                     projection; bf16Next there: the packed dq, as ctx in the forward, is the next product's
//                     operand ('only': its only reader); dqkvColumnSums [3H] (packed only): += dq's column sums;
//                     probs null: the softmax is formed again from q and k, with the forward's bits)
//   attentionTakesBf16(T, headSize) -> boolean   (the shapes whose attention at bf16 takes bf16 operands)
//   attentionFormsProbs(T, headSize) -> boolean  (the shapes whose CUDA backward at bf16 forms P itself)
//   relativeBiasForward(out, table)   relativeBiasBackward(dtable, dRel)   (MPNet's relative-position bias: out
//                     [2T - 1, NH] from the bucket table [32, NH]; dtable += its gradient from dRel [B, 2T - 1, NH])
//   poolClsForward(out, hidden)       poolClsBackward(dhidden, dout, accumulate)
//   poolMeanForward(out, hidden, mask[, sqrtLen]) poolMeanBackward(dhidden, dout, mask, accumulate[, sqrtLen])
//                     (sqrtLen: the sum over sqrt(count), sentence-transformers' mean_sqrt_len_tokens)
//   poolMaxForward(out, hidden, mask) poolMaxBackward(dhidden, dout, hidden, mask, accumulate)
//                     (the backward finds each column's token again from hidden, which must not share dhidden's memory)
// Tensors are float32 NativeTensors; sizes are derived from their shapes and every tensor's size is
// checked. ids/mask are Int32Arrays, keepRows a Uint8Array (one byte per sentence) or null. firstRow places
// the sentences in the whole batch whose dropout masks they draw: a row index or { first, block, stride,
// skip? } (common/row_index.h, args.h arg_row_index).
#include <napi.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "args.h"
#include "common/relative_bucket.h"
#include "dispatch.h"
#include "register.h"

namespace simcsepp {

namespace {

// ---------------------------------------------------------------------------------------------
// Embeddings

struct EmbeddingTables {
  NativeTensor* t[3];  // word, pos, type (or their gradients); null for a skipped gradient table
  int64_t H;
  float* data(int k) const { return t[k] ? t[k]->data() : nullptr; }
  const float* read(int k) const { return t[k] ? t[k]->read_data() : nullptr; }  // the tables (parameters)
};

// Three [rows, H] tables at info[i..i+2] with a common H. Without `H` they are required and the first
// sets H; with it (the gradient's columns, named `hFrom`) any of them may be null, to be skipped.
EmbeddingTables tables(const Napi::CallbackInfo& info, OpTensors& ts, size_t i, const char* const names[3],
                       int64_t H = 0, const char* hFrom = nullptr) {
  Napi::Env env = info.Env();
  EmbeddingTables t{};
  for (int k = 0; k < 3; ++k) {
    t.t[k] = H > 0 ? ts.optional(i + k, names[k]) : ts.tensor(i + k, names[k]);
    if (t.t[k]) expect_rank(env, t.t[k], names[k], 2, "[rows, H]");
  }
  if (H <= 0) {
    H = t.t[0]->shape()[1];
    hFrom = names[0];
  }
  t.H = H;
  for (int k = 0; k < 3; ++k)
    if (t.t[k] && t.t[k]->shape()[1] != H)
      throw_arg(env, std::string("Expected ") + names[k] + " to have H = " + std::to_string(H) + " columns (as " +
                         hFrom + ") but received " + t.t[k]->shape_string());
  return t;
}

struct TokenIds {
  const int32_t *ids, *pos, *type;
  int64_t BT;
};

// ids, posIds, typeIds at info[i..i+2], each checked against its table's rows (when the table is there).
TokenIds token_ids(const Napi::CallbackInfo& info, size_t i, const EmbeddingTables& t,
                   const char* const tableNames[3]) {
  Napi::Env env = info.Env();
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_arg(env, "Expected ids to be an Int32Array but received " + describe(info[i]));
  const int64_t BT = static_cast<int64_t>(info[i].As<Napi::Int32Array>().ElementLength());
  if (BT < 1) throw_arg(env, "Expected ids to hold at least one token");
  TokenIds r{arg_i32(info, i, "ids", BT), arg_i32(info, i + 1, "posIds", BT), arg_i32(info, i + 2, "typeIds", BT), BT};
  const int32_t* const arrays[3] = {r.ids, r.pos, r.type};
  static const char* const idNames[3] = {"ids", "posIds", "typeIds"};
  for (int k = 0; k < 3; ++k)
    if (t.t[k]) {
      check_indices(env, arrays[k], BT, t.t[k]->shape()[0], idNames[k], tableNames[k]);
      // (a step graph being captured checks its replays' ids the same way)
      cuda::capture_index_limit(arrays[k], BT, t.t[k]->shape()[0], idNames[k], tableNames[k]);
    }
  return r;
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "embeddingForward");
  static const char* const names[3] = {"word", "pos", "type"};
  Napi::Env env = info.Env();
  NativeTensor* out = ts.tensor(0, "out");
  const EmbeddingTables t = tables(info, ts, 4, names);
  const TokenIds ids = token_ids(info, 1, t, names);
  expect_rows(env, out, "out", ids.BT * t.H, t.H);
  EmbeddingForwardFn* embedding_forward = ts.entry(&Backend::embedding_forward);
  return guarded_void(env, [&] {
    embedding_forward(out->data(), ids.ids, ids.pos, ids.type, t.read(0), t.read(1), t.read(2), ids.BT, t.H);
  });
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "embeddingBackward");
  static const char* const names[3] = {"dword", "dpos", "dtype"};
  Napi::Env env = info.Env();
  NativeTensor* dout = ts.tensor(3, "dout");
  const EmbeddingTables t = tables(info, ts, 0, names, last_dim(env, dout, "dout"), "dout");
  const TokenIds ids = token_ids(info, 4, t, names);
  expect_rows(env, dout, "dout", ids.BT * t.H, t.H);
  EmbeddingBackwardFn* embedding_backward = ts.entry(&Backend::embedding_backward);
  return guarded_void(env, [&] {
    embedding_backward(t.data(0), t.data(1), t.data(2), dout->data(), ids.ids, ids.pos, ids.type, ids.BT, t.H);
  });
}

// The optional bf16Next argument at `index` of the LayerNorm forwards, linearForward with geluOut,
// layerNormDropoutBackward, linearBackward with geluInput and the attention ops: true when the op's output
// (out, geluOut, dy or dres, dinp, ctx, the packed dq) is an operand of the bf16 product(s) of the next op. On CUDA the
// op then also writes the output's bf16 copy for that product (cuda_api.h: bf16_handoff_request); elsewhere it changes
// nothing (the CPU's products round their operands as they pack them).
bool arg_bf16_next(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() > index && !info[index].IsUndefined() && arg_bool(info, index, "bf16Next");
}

// linearForward's bf16Next (with geluOut): also 'only', when the next op's product is the only reader of geluOut,
// which a CUDA op may then leave unwritten in fp32 (it writes the bf16 copy alone; cuda_api.h).
enum class Bf16Next { kNo, kYes, kOnly };
Bf16Next arg_bf16_next_or_only(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || info[index].IsUndefined()) return Bf16Next::kNo;
  if (info[index].IsString() && info[index].As<Napi::String>().Utf8Value() == "only") return Bf16Next::kOnly;
  if (!info[index].IsBoolean())
    throw_arg(info.Env(), "Expected bf16Next to be a boolean or 'only' but received " + describe(info[index]));
  return info[index].As<Napi::Boolean>().Value() ? Bf16Next::kYes : Bf16Next::kNo;
}

// Called as the op runs (the request is for the op's own output).
void request_bf16_handoff(bool bf16Next, const NativeTensor* out, bool fp32Unused = false) {
  if (bf16Next && out->device() == Device::kCuda)
    cuda::bf16_handoff_request(out->read_data(), out->numel(), fp32Unused);
}

// a and b are the same R x C rows (checked by the caller's shapes) or apart.
void require_same_or_disjoint(const Napi::Env& env, const NativeTensor* a, const char* aName, const NativeTensor* b,
                              const char* bName) {
  if (a->read_data() != b->read_data()) require_disjoint(env, a, aName, b, bName);
}

// ---------------------------------------------------------------------------------------------
// Layer norm

// A layer norm's rows: out and inp [R, C], mean and rstd one per row, weight and bias [C] (at info[4], info[5]),
// the others at the positions given; checked.
struct LayerNormTensors {
  NativeTensor *out, *inp, *mean, *rstd, *weight, *bias;
  int64_t R, C;
};
LayerNormTensors layernorm_tensors(OpTensors& ts, const Napi::Env& env, size_t out, size_t inp, size_t mean,
                                   size_t rstd) {
  LayerNormTensors t{ts.tensor(out, "out"),
                     ts.tensor(inp, "inp"),
                     ts.tensor(mean, "mean"),
                     ts.tensor(rstd, "rstd"),
                     ts.tensor(4, "weight"),
                     ts.tensor(5, "bias"),
                     0,
                     0};
  t.C = last_dim(env, t.inp, "inp");
  t.R = t.inp->numel() / t.C;
  expect_rows(env, t.out, "out", t.R * t.C, t.C);
  expect_shape(env, t.weight, "weight", {t.C});
  expect_shape(env, t.bias, "bias", {t.C});
  expect_numel(env, t.mean, "mean", t.R, "the rows of inp");
  expect_numel(env, t.rstd, "rstd", t.R, "the rows of inp");
  return t;
}

Napi::Value LayerNormForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "layerNormForward");
  Napi::Env env = info.Env();
  const LayerNormTensors t = layernorm_tensors(ts, env, 0, 3, 1, 2);
  const float eps = static_cast<float>(arg_positive(info, 6, "eps"));
  const bool bf16Next = arg_bf16_next(info, 7);
  LayerNormForwardFn* layernorm_forward = ts.entry(&Backend::layernorm_forward);
  return guarded_void(env, [&] {
    request_bf16_handoff(bf16Next, t.out);
    layernorm_forward(t.out->data(), t.mean->data(), t.rstd->data(), t.inp->data(), t.weight->read_data(),
                      t.bias->read_data(), t.R, t.C, eps);
  });
}

Napi::Value LayerNormApply(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "layerNormApply");
  Napi::Env env = info.Env();
  const LayerNormTensors t = layernorm_tensors(ts, env, 0, 1, 2, 3);
  require_same_or_disjoint(env, t.out, "out", t.inp, "inp");
  LayerNormApplyFn* layernorm_apply = ts.entry(&Backend::layernorm_apply);
  return guarded_void(env, [&] {
    layernorm_apply(t.out->data(), t.inp->read_data(), t.mean->read_data(), t.rstd->read_data(), t.weight->read_data(),
                    t.bias->read_data(), t.R, t.C);
  });
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "layerNormBackward");
  Napi::Env env = info.Env();
  NativeTensor* dinp = ts.tensor(0, "dinp");
  NativeTensor* dweight = ts.tensor(1, "dweight");
  NativeTensor* dbias = ts.tensor(2, "dbias");
  NativeTensor* dout = ts.tensor(3, "dout");
  NativeTensor* inp = ts.tensor(4, "inp");
  NativeTensor* weight = ts.tensor(5, "weight");
  NativeTensor* mean = ts.tensor(6, "mean");
  NativeTensor* rstd = ts.tensor(7, "rstd");
  const int64_t C = last_dim(env, inp, "inp"), R = inp->numel() / C;
  expect_rows(env, dinp, "dinp", R * C, C);
  expect_rows(env, dout, "dout", R * C, C);
  expect_shape(env, weight, "weight", {C});
  expect_shape(env, dweight, "dweight", {C});
  expect_shape(env, dbias, "dbias", {C});
  expect_numel(env, mean, "mean", R, "the rows of inp");
  expect_numel(env, rstd, "rstd", R, "the rows of inp");
  LayerNormBackwardFn* layernorm_backward = ts.entry(&Backend::layernorm_backward);
  return guarded_void(env, [&] {
    layernorm_backward(dinp->data(), dweight->data(), dbias->data(), dout->data(), inp->data(), weight->read_data(),
                       mean->data(), rstd->data(), R, C);
  });
}

// The TokenDropout of a fused op over R rows of C at info[i..i+5]: sentences (the rows R split into
// sentences of R / sentences rows), p, seed, offset, keepRows (one byte per sentence, or null), firstRow
// (the sentences' places in the whole batch: arg_row_index).
TokenDropout token_dropout(const Napi::CallbackInfo& info, size_t i, int64_t R, int64_t C) {
  Napi::Env env = info.Env();
  const int64_t B = arg_positive_int(info, i, "sentences");
  if (R % B != 0)
    throw_arg(env, "Expected sentences to divide the " + std::to_string(R) + " rows but received " + std::to_string(B));
  return TokenDropout{arg_probability(info, i + 1, "p"),
                      arg_u64(info, i + 2, "seed"),
                      arg_u64(info, i + 3, "offset"),
                      arg_keep_rows(info, i + 4, B, "sentence"),
                      R / B,
                      arg_row_index(info, i + 5, "firstRow", B, R / B * C)};
}

Napi::Value ResidualLayerNormForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "residualLayerNormForward");
  Napi::Env env = info.Env();
  NativeTensor* out = ts.tensor(0, "out");
  NativeTensor* res = ts.tensor(1, "res");
  NativeTensor* mean = ts.tensor(2, "mean");
  NativeTensor* rstd = ts.tensor(3, "rstd");
  NativeTensor* y = ts.tensor(4, "y");
  // x, or (x null) xInput at 16..20: the LayerNorm (input, mean, rstd, weight, bias) whose output x is, recomputed.
  NativeTensor* x = ts.optional(5, "x");
  NativeTensor* xIn = ts.optional(16, "xInput.x");
  if ((x == nullptr) == (xIn == nullptr))
    throw_arg(env, x ? "x cannot be used with xInput" : "Expected x, or xInput (the LayerNorm whose output x is)");
  NativeTensor* weight = ts.tensor(6, "weight");
  NativeTensor* bias = ts.tensor(7, "bias");
  NativeTensor* const xs = x ? x : xIn;
  const char* xName = x ? "x" : "xInput.x";
  const int64_t C = last_dim(env, xs, xName), R = xs->numel() / C;
  // yBf16 (22): y holds R * C bf16 values (ceil(R * C / 2) floats), apart from out and res.
  const bool yBf16 = info.Length() > 22 && !info[22].IsUndefined() && arg_bool(info, 22, "yBf16");
  if (yBf16) {
    expect_numel(env, y, "y", (R * C + 1) / 2, "ceil(R * C / 2) floats: R * C bf16 values (yBf16)");
    require_disjoint(env, y, "y", out, "out");
    require_disjoint(env, y, "y", res, "res");
  } else {
    expect_rows(env, y, "y", R * C, C);
  }
  expect_rows(env, res, "res", R * C, C);
  expect_rows(env, out, "out", R * C, C);
  expect_shape(env, weight, "weight", {C});
  expect_shape(env, bias, "bias", {C});
  expect_numel(env, mean, "mean", R, "the rows of x");
  expect_numel(env, rstd, "rstd", R, "the rows of x");
  // res, out and y may be one tensor (a lane reads each of its columns before writing it: inference keeps no
  // LayerNorm input) but not partly overlap; x must be apart from both (other rows write them while it is read).
  require_same_or_disjoint(env, res, "res", y, "y");
  require_same_or_disjoint(env, res, "res", out, "out");
  require_same_or_disjoint(env, out, "out", y, "y");
  require_disjoint(env, res, "res", xs, xName);
  require_disjoint(env, out, "out", xs, xName);
  LayerNormInput ln{};
  NativeTensor* lnT[4] = {};
  if (xIn) {
    lnT[0] = ts.tensor(17, "xInput.mean");
    lnT[1] = ts.tensor(18, "xInput.rstd");
    lnT[2] = ts.tensor(19, "xInput.weight");
    lnT[3] = ts.tensor(20, "xInput.bias");
    expect_shape(env, lnT[0], "xInput.mean", {R});
    expect_shape(env, lnT[1], "xInput.rstd", {R});
    expect_shape(env, lnT[2], "xInput.weight", {C});
    expect_shape(env, lnT[3], "xInput.bias", {C});
    for (int i = 0; i < 2; ++i) {  // read as the row's statistics are written
      const char* name = i == 0 ? "xInput.mean" : "xInput.rstd";
      require_disjoint(env, mean, "mean", lnT[i], name);
      require_disjoint(env, rstd, "rstd", lnT[i], name);
    }
    ln = LayerNormInput{xIn->read_data(), lnT[0]->read_data(), lnT[1]->read_data(), lnT[2]->read_data(),
                        lnT[3]->read_data()};
  }
  const float eps = static_cast<float>(arg_positive(info, 8, "eps"));
  const TokenDropout drop = token_dropout(info, 9, R, C);
  const Bf16Next bf16Next = arg_bf16_next_or_only(info, 15);
  // outBf16 (21): bf16(out) kept there too (R * C bf16 values), written while every other array is in use.
  NativeTensor* outBf16 = ts.optional(21, "outBf16");
  if (outBf16) {
    expect_numel(env, outBf16, "outBf16", (R * C + 1) / 2, "ceil(R * C / 2) floats: R * C bf16 values");
    const std::pair<NativeTensor*, const char*> others[] = {{out, "out"},
                                                            {res, "res"},
                                                            {y, "y"},
                                                            {xs, xName},
                                                            {mean, "mean"},
                                                            {rstd, "rstd"},
                                                            {weight, "weight"},
                                                            {bias, "bias"},
                                                            {lnT[0], "xInput.mean"},
                                                            {lnT[1], "xInput.rstd"},
                                                            {lnT[2], "xInput.weight"},
                                                            {lnT[3], "xInput.bias"}};
    for (const auto& [t, name] : others)
      if (t != nullptr) require_disjoint(env, outBf16, "outBf16", t, name);
  }
  ResidualLayerNormForwardFn* fused = ts.entry(&Backend::residual_layernorm_forward);
  return guarded_void(env, [&] {
    request_bf16_handoff(bf16Next != Bf16Next::kNo, out, bf16Next == Bf16Next::kOnly);
    fused(out->data(), res->data(), mean->data(), rstd->data(), y->data(), x ? x->data() : nullptr, weight->read_data(),
          bias->read_data(), R, C, eps, drop, xIn ? &ln : nullptr, outBf16 ? outBf16->data() : nullptr, yBf16);
  });
}

Napi::Value LayerNormDropoutBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "layerNormDropoutBackward");
  Napi::Env env = info.Env();
  NativeTensor* dres = ts.tensor(0, "dres");
  NativeTensor* dy = ts.optional(1, "dy");
  NativeTensor* dweight = ts.tensor(2, "dweight");
  NativeTensor* dbias = ts.tensor(3, "dbias");
  NativeTensor* dout = ts.tensor(4, "dout");
  NativeTensor* res = ts.tensor(5, "res");
  NativeTensor* weight = ts.tensor(6, "weight");
  NativeTensor* mean = ts.tensor(7, "mean");
  NativeTensor* rstd = ts.tensor(8, "rstd");
  const int64_t C = last_dim(env, res, "res"), R = res->numel() / C;
  expect_rows(env, dres, "dres", R * C, C);
  expect_rows(env, dout, "dout", R * C, C);
  if (dy) {
    expect_rows(env, dy, "dy", R * C, C);
    require_disjoint(env, dy, "dy", dres, "dres");
    require_disjoint(env, dy, "dy", dout, "dout");
  }
  expect_shape(env, weight, "weight", {C});
  expect_shape(env, dweight, "dweight", {C});
  expect_shape(env, dbias, "dbias", {C});
  expect_numel(env, mean, "mean", R, "the rows of res");
  expect_numel(env, rstd, "rstd", R, "the rows of res");
  const TokenDropout drop = token_dropout(info, 9, R, C);
  if (!dy && drop.p > 0.0f) throw_arg(env, "Expected dy (the gradient through the dropout) when p > 0");
  const Bf16Next bf16Next = arg_bf16_next_or_only(info, 15);
  // dyColumnSums (16): += the column sums of dy (dres without dy), the bias gradient of the linear layer before.
  NativeTensor* dySums = ts.optional(16, "dyColumnSums");
  if (dySums) {
    expect_shape(env, dySums, "dyColumnSums", {C});
    const std::pair<NativeTensor*, const char*> written[4] = {
        {dres, "dres"}, {dy, "dy"}, {dweight, "dweight"}, {dbias, "dbias"}};
    for (const auto& [t, name] : written)
      if (t != nullptr) require_disjoint(env, dySums, "dyColumnSums", t, name);
  }
  LayerNormDropoutBackwardFn* fused = ts.entry(&Backend::layernorm_dropout_backward);
  return guarded_void(env, [&] {
    // The gradient the linear layer before reads; 'only' (with dy: dres is the residual's gradient, read in fp32).
    request_bf16_handoff(bf16Next != Bf16Next::kNo, dy != nullptr ? dy : dres, bf16Next == Bf16Next::kOnly && dy);
    fused(dres->data(), dy ? dy->data() : nullptr, dweight->data(), dbias->data(), dout->data(), res->data(),
          weight->read_data(), mean->data(), rstd->data(), R, C, drop, dySums ? dySums->data() : nullptr);
  });
}

// ---------------------------------------------------------------------------------------------
// Linear

Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "linearForward");
  Napi::Env env = info.Env();
  NativeTensor* out = ts.tensor(0, "out");
  NativeTensor* inp = ts.tensor(1, "inp");
  NativeTensor* weight = ts.tensor(2, "weight");
  NativeTensor* bias = ts.optional(3, "bias");
  expect_rank(env, weight, "weight", 2, "[OC, C]");
  const int64_t OC = weight->shape()[0], C = weight->shape()[1];
  // outBf16 (7): out holds the product in bf16, two values a float (ceil(R * OC / 2) floats, any shape); inpBf16 (8):
  // inp holds bf16 values (ceil(R * C / 2) floats). R comes from the one in fp32, or with both from rows (9).
  LinearBf16 bf16;
  bf16.out = info.Length() > 7 && !info[7].IsUndefined() && arg_bool(info, 7, "outBf16");
  bf16.inp = info.Length() > 8 && !info[8].IsUndefined() && arg_bool(info, 8, "inpBf16");
  bf16.geluOut = info.Length() > 10 && !info[10].IsUndefined() && arg_bool(info, 10, "geluOutBf16");
  int64_t R = 0;
  if (bf16.out && bf16.inp) {
    if (info.Length() <= 9 || info[9].IsUndefined())
      throw_arg(env, "outBf16 with inpBf16 needs rows (R: neither out nor inp holds fp32 rows)");
    R = arg_positive_int(info, 9, "rows");
    expect_numel(env, inp, "inp", (R * C + 1) / 2, "ceil(R * C / 2) floats: R * C bf16 values (inpBf16)");
  } else if (bf16.inp) {
    R = last_dim(env, out, "out") == OC ? out->numel() / OC : -1;
    if (R < 0)
      throw_arg(env, "Expected out's last dimension to be OC = " + std::to_string(OC) +
                         " (weight is [OC, C] = " + weight->shape_string() + ") but received " + out->shape_string());
    expect_numel(env, inp, "inp", (R * C + 1) / 2, "ceil(R * C / 2) floats: R * C bf16 values (inpBf16)");
  } else {
    if (last_dim(env, inp, "inp") != C)
      throw_arg(env, "Expected inp's last dimension to be C = " + std::to_string(C) +
                         " (weight is [OC, C] = " + weight->shape_string() + ") but received " + inp->shape_string());
    R = inp->numel() / C;
  }
  if (bf16.out)
    expect_numel(env, out, "out", (R * OC + 1) / 2, "ceil(R * OC / 2) floats: R * OC bf16 values (outBf16)");
  else
    expect_rows(env, out, "out", R * OC, OC);
  if (bias) expect_shape(env, bias, "bias", {OC});
  const Precision precision = arg_precision(info, 4, "precision");
  NativeTensor* geluOut = ts.optional(5, "geluOut");
  if (bf16.out && precision != Precision::kBf16) throw_arg(env, "outBf16 needs precision 'bf16'");
  if (bf16.inp && precision != Precision::kBf16) throw_arg(env, "inpBf16 needs precision 'bf16'");
  if (bf16.inp && geluOut) throw_arg(env, "inpBf16 cannot be used with geluOut");
  require_disjoint(env, out, "out", inp, "inp");
  if (bf16.geluOut && (!geluOut || !bf16.out))
    throw_arg(env, "geluOutBf16 needs geluOut and outBf16 (the GELU of the pre-activation kept in bf16)");
  if (geluOut) {  // written tile by tile while out and inp are still in use
    if (bf16.geluOut)
      expect_numel(env, geluOut, "geluOut", (R * OC + 1) / 2,
                   "ceil(R * OC / 2) floats: R * OC bf16 values (geluOutBf16)");
    else
      expect_rows(env, geluOut, "geluOut", R * OC, OC);
    require_same_device(env, out, "out", geluOut, "geluOut");
    // geluOut may be out itself: the GELU in place (inference, which keeps no pre-activation); else apart from it.
    if (bf16.out || geluOut->read_data() != out->read_data()) require_disjoint(env, geluOut, "geluOut", out, "out");
    require_disjoint(env, geluOut, "geluOut", inp, "inp");
  }
  const Bf16Next bf16Next = arg_bf16_next_or_only(info, 6);
  if (bf16Next != Bf16Next::kNo && !geluOut)
    throw_arg(env, "bf16Next needs geluOut (the output whose bf16 copy the next product reads)");
  if (bf16Next != Bf16Next::kNo && bf16.geluOut)
    throw_arg(env,
              "bf16Next cannot be used with geluOutBf16 (the next product reads geluOut's bf16 values as they are)");
  LinearForwardFn* linear_forward = ts.entry(&Backend::linear_forward);
  return guarded_void(env, [&] {
    if (geluOut != nullptr) request_bf16_handoff(bf16Next != Bf16Next::kNo, geluOut, bf16Next == Bf16Next::kOnly);
    // inp is only read: read_data() keeps a bf16 handoff of it (bf16_handoff.cuh) for the product.
    linear_forward(out->data(), inp->read_data(), weight->read_data(), bias ? bias->read_data() : nullptr, R, C, OC,
                   precision, geluOut ? geluOut->data() : nullptr, bf16);
  });
}

Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "linearBackward");
  Napi::Env env = info.Env();
  NativeTensor* dinp = ts.optional(0, "dinp");
  NativeTensor* dweight = ts.tensor(1, "dweight");
  NativeTensor* dbias = ts.optional(2, "dbias");
  NativeTensor* dout = ts.tensor(3, "dout");
  NativeTensor* inp = ts.optional(4, "inp");
  NativeTensor* weight = ts.tensor(5, "weight");
  NativeTensor* geluInput = ts.optional(8, "geluInput");
  // layerNormInput: the LayerNorm whose output the layer's input is (x, mean, rstd, weight, bias at 10..14).
  NativeTensor* lnX = ts.optional(10, "layerNormInput.x");
  if (!inp && !geluInput && !lnX)
    throw_arg(env,
              "inp may be null only with geluInput or layerNormInput (the layer's input is then recomputed from them)");
  if (lnX && (inp || geluInput))
    throw_arg(env, std::string("layerNormInput cannot be used with ") + (inp ? "inp" : "geluInput"));
  // geluInputBf16 (16): geluInput holds bf16 values, as linearForward's outBf16 stores them; inpBf16 (17): inp holds
  // bf16 values; dinpBf16 (18): dinp receives the product in bf16 (ceil(R * C / 2) floats each). R then comes from
  // dout, which is always fp32.
  LinearBf16 bf16;
  const auto flag = [&](size_t i, const char* name) {
    return info.Length() > i && !info[i].IsUndefined() && arg_bool(info, i, name);
  };
  bf16.geluInput = flag(16, "geluInputBf16");
  bf16.inp = flag(17, "inpBf16");
  bf16.out = flag(18, "dinpBf16");
  if (bf16.geluInput && (!geluInput || (inp && !bf16.inp)))
    throw_arg(env,
              "geluInputBf16 needs geluInput, and no inp or a bf16 one (the GELU's input kept in bf16, its output "
              "recomputed or kept in bf16)");
  if (bf16.inp && !inp) throw_arg(env, "inpBf16 needs inp");
  if (bf16.out && !dinp) throw_arg(env, "dinpBf16 needs dinp");
  const bool anyBf16 = bf16.geluInput || bf16.inp || bf16.out;
  // Without inp, geluInput or the LayerNorm's input has its shape (bf16 values: dout's rows).
  NativeTensor* x = inp ? inp : geluInput ? geluInput : lnX;
  const char* xName = inp ? "inp" : geluInput ? "geluInput" : "layerNormInput.x";
  expect_rank(env, weight, "weight", 2, "[OC, C]");
  const int64_t OC = weight->shape()[0], C = weight->shape()[1];
  if (anyBf16 && last_dim(env, dout, "dout") != OC)
    throw_arg(env, "Expected dout's last dimension to be OC = " + std::to_string(OC) +
                       " (weight is [OC, C] = " + weight->shape_string() + ") but received " + dout->shape_string());
  if (!anyBf16 && last_dim(env, x, xName) != C)
    throw_arg(env, std::string("Expected ") + xName + "'s last dimension to be C = " + std::to_string(C) +
                       " (weight is [OC, C] = " + weight->shape_string() + ") but received " + x->shape_string());
  const int64_t R = anyBf16 ? dout->numel() / OC : x->numel() / C;
  const auto expect_bf16 = [&](NativeTensor* t, const char* name, const char* what) {
    expect_numel(env, t, name, (R * C + 1) / 2, what);
  };
  if (inp && bf16.inp)
    expect_bf16(inp, "inp", "ceil(R * C / 2) floats: R * C bf16 values (inpBf16)");
  else if (inp && anyBf16)
    expect_rows(env, inp, "inp", R * C, C);
  if (dinp && bf16.out)
    expect_bf16(dinp, "dinp", "ceil(R * C / 2) floats: R * C bf16 values (dinpBf16)");
  else if (dinp)
    expect_rows(env, dinp, "dinp", R * C, C);
  require_same(env, weight, "weight", dweight, "dweight");
  if (dbias) expect_shape(env, dbias, "dbias", {OC});
  expect_rows(env, dout, "dout", R * OC, OC);
  const bool accumulateInput = arg_bool(info, 6, "accumulateInput");
  const Precision precision = arg_precision(info, 7, "precision");
  if (anyBf16 && precision != Precision::kBf16)
    throw_arg(env, std::string(bf16.geluInput ? "geluInputBf16"
                               : bf16.inp     ? "inpBf16"
                                              : "dinpBf16") +
                       " needs precision 'bf16'");
  if (bf16.out && (accumulateInput || geluInput))
    throw_arg(env, std::string("dinpBf16 cannot be used with ") + (geluInput ? "geluInput" : "accumulateInput"));
  if (dinp && inp) require_disjoint(env, dinp, "dinp", inp, "inp");
  if (geluInput) {
    if (!dinp) throw_arg(env, "geluInput needs dinp (the GELU's derivative multiplies the input gradient)");
    if (accumulateInput) throw_arg(env, "geluInput cannot be used with accumulateInput");
    if (bf16.geluInput)
      expect_numel(env, geluInput, "geluInput", (R * C + 1) / 2,
                   "ceil(R * C / 2) floats: R * C bf16 values (geluInputBf16)");
    else
      expect_rows(env, geluInput, "geluInput", R * C, C);
    require_same_device(env, dinp, "dinp", geluInput, "geluInput");
    require_disjoint(env, geluInput, "geluInput", dinp, "dinp");  // read after dinp's tiles are written
  }
  const Bf16Next bf16Next = arg_bf16_next_or_only(info, 9);
  // dinpColumnSums (15): += dinp's column sums, the bias gradient of the layer before (read after dinp is written).
  NativeTensor* dinpSums = ts.optional(15, "dinpColumnSums");
  if (dinpSums) {
    if (!dinp) throw_arg(env, "dinpColumnSums needs dinp (they are its column sums)");
    if (bf16.out) throw_arg(env, "dinpColumnSums cannot be used with dinpBf16");
    expect_shape(env, dinpSums, "dinpColumnSums", {C});
    require_disjoint(env, dinpSums, "dinpColumnSums", dinp, "dinp");
    if (dbias) require_disjoint(env, dinpSums, "dinpColumnSums", dbias, "dbias");
  }
  LayerNormInput ln{};
  if (lnX) {
    NativeTensor* lnT[4] = {ts.tensor(11, "layerNormInput.mean"), ts.tensor(12, "layerNormInput.rstd"),
                            ts.tensor(13, "layerNormInput.weight"), ts.tensor(14, "layerNormInput.bias")};
    expect_rows(env, lnX, "layerNormInput.x", R * C, C);
    expect_shape(env, lnT[0], "layerNormInput.mean", {R});
    expect_shape(env, lnT[1], "layerNormInput.rstd", {R});
    expect_shape(env, lnT[2], "layerNormInput.weight", {C});
    expect_shape(env, lnT[3], "layerNormInput.bias", {C});
    if (dinp) require_disjoint(env, lnX, "layerNormInput.x", dinp, "dinp");  // read after dinp is written
    ln = LayerNormInput{lnX->read_data(), lnT[0]->read_data(), lnT[1]->read_data(), lnT[2]->read_data(),
                        lnT[3]->read_data()};
  }
  LinearBackwardFn* linear_backward = ts.entry(&Backend::linear_backward);
  return guarded_void(env, [&] {
    if (geluInput != nullptr) request_bf16_handoff(bf16Next != Bf16Next::kNo, dinp, bf16Next == Bf16Next::kOnly);
    // dout and inp are only read: read_data() keeps a bf16 handoff of dout (bf16_handoff.cuh) for the products.
    linear_backward(dinp ? dinp->data() : nullptr, dweight->data(), dbias ? dbias->data() : nullptr, dout->read_data(),
                    inp ? inp->read_data() : nullptr, weight->read_data(), R, C, OC, accumulateInput, precision,
                    geluInput ? geluInput->read_data() : nullptr, lnX ? &ln : nullptr,
                    dinpSums ? dinpSums->data() : nullptr, bf16);
  });
}

// ---------------------------------------------------------------------------------------------
// Element-wise: every tensor holds as many elements as the first (outputs first, then inputs).

void call(void (*fn)(float*, const float*, int64_t), const std::vector<NativeTensor*>& t) {
  fn(t[0]->data(), t[1]->data(), t[0]->numel());
}

void call(void (*fn)(float*, const float*, const float*, int64_t), const std::vector<NativeTensor*>& t) {
  fn(t[0]->data(), t[1]->data(), t[2]->data(), t[0]->numel());
}

template <class Fn>
Napi::Value elementwise(const Napi::CallbackInfo& info, const char* op, const std::vector<const char*>& names,
                        Fn* Backend::*member) {
  OpTensors ts(info, op);
  const std::vector<NativeTensor*> t = ts.same_size(names);
  Fn* fn = ts.entry(member);
  return guarded_void(info.Env(), [&] { call(fn, t); });
}

// attentionTakesBf16(T, headSize): whether attention at bf16 rounds its operands (ops/encoder.h, attention_takes_bf16),
// so that a bf16 model may keep q | k | v, ctx and ctx's gradient in bf16 (lib/model/activations.ts asks here rather
// than repeat the limits).
Napi::Value AttentionTakesBf16(const Napi::CallbackInfo& info) {
  const int64_t T = arg_positive_int(info, 0, "T"), HS = arg_positive_int(info, 1, "headSize");
  return Napi::Boolean::New(info.Env(), attention_takes_bf16(Precision::kBf16, T, HS));
}

// attentionFormsProbs(T, headSize): whether CUDA's attention backward at bf16 forms P in its own kernel without probs
// (ops/encoder.h, attention_forms_probs), so that a bf16 model on CUDA need not keep them (lib/model/activations.ts).
Napi::Value AttentionFormsProbs(const Napi::CallbackInfo& info) {
  const int64_t T = arg_positive_int(info, 0, "T"), HS = arg_positive_int(info, 1, "headSize");
  return Napi::Boolean::New(info.Env(), attention_forms_probs(Precision::kBf16, T, HS));
}

Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  return elementwise(info, "geluForward", {"out", "inp"}, &Backend::gelu_forward);
}
Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  return elementwise(info, "geluBackward", {"dinp", "inp", "dout"}, &Backend::gelu_backward);
}
Napi::Value TanhForward(const Napi::CallbackInfo& info) {
  return elementwise(info, "tanhForward", {"out", "inp"}, &Backend::tanh_forward);
}
Napi::Value TanhBackward(const Napi::CallbackInfo& info) {
  return elementwise(info, "tanhBackward", {"dinp", "out", "dout"}, &Backend::tanh_backward);
}
Napi::Value Add(const Napi::CallbackInfo& info) { return elementwise(info, "add", {"out", "a", "b"}, &Backend::add); }
Napi::Value AddInplace(const Napi::CallbackInfo& info) {
  return elementwise(info, "addInplace", {"dst", "src"}, &Backend::add_inplace);
}

// The first d columns of [R, H] rows: `narrow` [R, d] (its last dimension is d) and `wide` (R rows of H >= d).
struct ColumnsDims {
  int64_t R, d, H;
};

ColumnsDims columns_dims(const Napi::Env& env, const NativeTensor* narrow, const char* narrowName,
                         const NativeTensor* wide, const char* wideName) {
  const int64_t d = last_dim(env, narrow, narrowName), R = narrow->numel() / d;
  const int64_t H = last_dim(env, wide, wideName);
  expect_rows(env, wide, wideName, R * H, H);
  if (d > H)
    throw_arg(env, std::string("Expected ") + narrowName + "'s last dimension (" + std::to_string(d) +
                       ") to be at most " + wideName + "'s (" + std::to_string(H) + ")");
  require_disjoint(env, narrow, narrowName, wide, wideName);
  return {R, d, H};
}

Napi::Value LeadingColumns(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "leadingColumns");
  NativeTensor* out = ts.tensor(0, "out");
  NativeTensor* inp = ts.tensor(1, "inp");
  const ColumnsDims c = columns_dims(info.Env(), out, "out", inp, "inp");
  LeadingColumnsFn* leading_columns = ts.entry(&Backend::leading_columns);
  return guarded_void(info.Env(), [&] { leading_columns(out->data(), inp->data(), c.R, c.d, c.H); });
}

Napi::Value AddLeadingColumns(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "addLeadingColumns");
  NativeTensor* dinp = ts.tensor(0, "dinp");
  NativeTensor* dout = ts.tensor(1, "dout");
  const ColumnsDims c = columns_dims(info.Env(), dout, "dout", dinp, "dinp");
  const float scale = static_cast<float>(arg_scale(info, 2, "scale"));
  AddLeadingColumnsFn* add_leading_columns = ts.entry(&Backend::add_leading_columns);
  return guarded_void(info.Env(), [&] { add_leading_columns(dinp->data(), dout->data(), scale, c.R, c.d, c.H); });
}

// ---------------------------------------------------------------------------------------------
// ModernBERT: the GeGLU of its MLP and its rotary position embedding

Napi::Value GegluForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "gegluForward");
  Napi::Env env = info.Env();
  NativeTensor* out = ts.tensor(0, "out");
  NativeTensor* u = ts.tensor(1, "u");
  const int64_t I = last_dim(env, out, "out"), R = out->numel() / I;
  expect_rows(env, u, "u", 2 * R * I, 2 * I);
  require_disjoint(env, out, "out", u, "u");
  GegluForwardFn* geglu_forward = ts.entry(&Backend::geglu_forward);
  return guarded_void(env, [&] { geglu_forward(out->data(), u->data(), R, I); });
}

Napi::Value GegluBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "gegluBackward");
  Napi::Env env = info.Env();
  NativeTensor* du = ts.tensor(0, "du");
  NativeTensor* u = ts.tensor(1, "u");
  NativeTensor* dout = ts.tensor(2, "dout");
  const int64_t I = last_dim(env, dout, "dout"), R = dout->numel() / I;
  expect_rows(env, u, "u", 2 * R * I, 2 * I);
  expect_rows(env, du, "du", 2 * R * I, 2 * I);
  require_disjoint(env, du, "du", u, "u");
  require_disjoint(env, du, "du", dout, "dout");
  GegluBackwardFn* geglu_backward = ts.entry(&Backend::geglu_backward);
  return guarded_void(env, [&] { geglu_backward(du->data(), u->data(), dout->data(), R, I); });
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "rope");
  Napi::Env env = info.Env();
  NativeTensor* qkv = ts.tensor(0, "qkv");
  expect_rank(env, qkv, "qkv", 3, "[B, T, 3H]");
  const int64_t B = qkv->shape()[0], T = qkv->shape()[1], H3 = qkv->shape()[2];
  const int64_t NH = arg_positive_int(info, 1, "numHeads");
  if (H3 % (3 * NH) != 0)
    throw_arg(env, "Expected qkv's last dimension (" + std::to_string(H3) + ") to be 3H with numHeads (" +
                       std::to_string(NH) + ") dividing H");
  const int64_t HS = H3 / (3 * NH);
  if (HS % 2 != 0) throw_arg(env, "Expected an even head size for the rotary embedding, got " + std::to_string(HS));
  const double theta = arg_positive(info, 2, "theta");
  if (!std::isfinite(theta) || theta > 3.0e38)
    throw_arg(env, "Expected theta to be a finite float32, got " + number_text(theta));
  const bool inverse = arg_bool(info, 3, "inverse");
  RopeFn* rope = ts.entry(&Backend::rope);
  return guarded_void(env, [&] { rope(qkv->data(), B, T, NH, HS, static_cast<float>(theta), inverse); });
}

// ---------------------------------------------------------------------------------------------
// Attention

struct AttentionDims {
  int64_t B, T, NH, HS;
  int64_t ld;  // row stride of q, k, v (and dq, dk, dv): H, or 3H when packed
};

// The dims from the output side `o` ([B, T, H]: ctx, or dctx) and numHeads (which divides H). q, k, v
// (`names`) are each [B, T, H], or, when k and v are null, q is the packed [B, T, 3H] projection whose
// column blocks are q, k and v.
AttentionDims attention_dims(const Napi::CallbackInfo& info, const NativeTensor* o, const char* oName,
                             NativeTensor* const qkv[3], const char* const names[3], size_t headsIndex) {
  Napi::Env env = info.Env();
  expect_rank(env, o, oName, 3, "[B, T, H]");
  const int64_t B = o->shape()[0], T = o->shape()[1], H = o->shape()[2];
  const int64_t NH = arg_positive_int(info, headsIndex, "numHeads");
  if (H % NH != 0)
    throw Napi::RangeError::New(
        env, "Expected numHeads (" + std::to_string(NH) + ") to divide the hidden size H = " + std::to_string(H));
  const bool packed = qkv[1] == nullptr && qkv[2] == nullptr;
  if (packed) {
    expect_shape(env, qkv[0], names[0], {B, T, 3 * H});
  } else {
    for (int i = 1; i < 3; ++i)
      if (qkv[i] == nullptr)
        throw_arg(env, std::string("Expected ") + names[i] + " to be a Tensor (or " + names[1] + " and " + names[2] +
                           " both null, with " + names[0] + " the packed [B, T, 3H] projection)");
    for (int i = 0; i < 3; ++i) expect_shape(env, qkv[i], names[i], {B, T, H});
  }
  return {B, T, NH, H / NH, packed ? 3 * H : H};
}

// Pointers to q, k, v (packed: column blocks of one tensor).
struct Qkv {
  float *q, *k, *v;
};
Qkv qkv_pointers(NativeTensor* const t[3], const AttentionDims& d) {
  if (t[1] == nullptr) {
    float* base = t[0]->data();
    const int64_t H = d.NH * d.HS;
    return {base, base + H, base + 2 * H};
  }
  return {t[0]->data(), t[1]->data(), t[2]->data()};
}

// The logical [B, T, H] at argument i (attentionForward's bf16Shape 15, attentionBackward's 20), or empty when absent:
// the packed q | k | v and ctx (dctx) then hold bf16 values (ops/encoder.h, bf16Storage).
std::vector<int64_t> bf16_shape(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return {};
  std::vector<int64_t> s = arg_shape(info, i, "bf16Shape");
  if (s.size() != 3) throw_arg(info.Env(), "Expected bf16Shape to be [B, T, H]");
  return s;
}

// attention_dims for q | k | v (packed) and ctx or dctx (`o`) holding bf16 values of the logical shape [B, T, H]:
// the storage sizes, the packing and the shapes and precision whose attention takes bf16 operands, checked.
AttentionDims bf16_attention_dims(const Napi::CallbackInfo& info, const std::vector<int64_t>& shape,
                                  const NativeTensor* o, const char* oName, NativeTensor* const qkv[3],
                                  const char* const names[3], size_t headsIndex, Precision precision) {
  Napi::Env env = info.Env();
  const int64_t B = shape[0], T = shape[1], H = shape[2];
  const int64_t NH = arg_positive_int(info, headsIndex, "numHeads");
  if (H % NH != 0)
    throw Napi::RangeError::New(
        env, "Expected numHeads (" + std::to_string(NH) + ") to divide the hidden size H = " + std::to_string(H));
  if (qkv[1] != nullptr || qkv[2] != nullptr)
    throw_arg(env, std::string("bf16Shape needs the packed projection: ") + names[1] + " and " + names[2] + " null");
  if (!attention_takes_bf16(precision, T, H / NH))
    throw_arg(env, "bf16Shape needs precision 'bf16', T <= " + std::to_string(kAttentionBf16MaxT) +
                       " and a head size <= " + std::to_string(kAttentionBf16MaxHS) +
                       " (the shapes whose attention takes bf16 operands)");
  expect_numel(env, qkv[0], names[0], (B * T * 3 * H + 1) / 2, "ceil(B * T * 3H / 2) floats: q | k | v in bf16");
  expect_numel(env, o, oName, (B * T * H + 1) / 2, "ceil(B * T * H / 2) floats: bf16 values (bf16Shape)");
  require_disjoint(env, o, oName, qkv[0], names[0]);
  return {B, T, NH, H / NH, 3 * H};
}

struct AttentionDropout {
  float p;
  uint64_t seed, offset;
  const uint8_t* keepRows;
  RowIndex rowIndex;
};

AttentionDropout attention_dropout(const Napi::CallbackInfo& info, size_t i, const AttentionDims& d) {
  return {arg_probability(info, i, "p"), arg_u64(info, i + 1, "seed"), arg_u64(info, i + 2, "offset"),
          arg_keep_rows(info, i + 3, d.B, "sentence"), arg_row_index(info, i + 4, "firstRow", d.B, d.NH * d.T * d.T)};
}

// The optional relative-position bias [2T - 1, NH] at argument i (MPNet's; ops/encoder.h), or nullptr.
const float* relative_bias(const Napi::CallbackInfo& info, OpTensors& ts, size_t i, const AttentionDims& d) {
  NativeTensor* t = ts.optional(i, "relBias");
  if (t == nullptr) return nullptr;
  expect_shape(info.Env(), t, "relBias", {2 * d.T - 1, d.NH});
  return t->data();
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "attentionForward");
  Napi::Env env = info.Env();
  NativeTensor* ctx = ts.tensor(0, "ctx");
  NativeTensor* probs = ts.optional(1, "probs");  // null: nothing kept for a backward (inference)
  static const char* const names[3] = {"q", "k", "v"};
  NativeTensor* const in[3] = {ts.tensor(2, "q"), ts.optional(3, "k"), ts.optional(4, "v")};
  const Precision precision = arg_optional_precision(info, 14, "precision");
  // bf16Shape (15): [B, T, H] of q | k | v (packed) and ctx held in bf16.
  const std::vector<int64_t> bf16Shape = bf16_shape(info, 15);
  const bool bf16Storage = !bf16Shape.empty();
  const AttentionDims d = bf16Storage ? bf16_attention_dims(info, bf16Shape, ctx, "ctx", in, names, 6, precision)
                                      : attention_dims(info, ctx, "ctx", in, names, 6);
  if (probs != nullptr) expect_shape(env, probs, "probs", {d.B, d.NH, d.T, d.T});
  const int32_t* mask = arg_i32(info, 5, "mask", d.B * d.T);
  const AttentionDropout dr = attention_dropout(info, 7, d);
  const bool bf16Next = arg_bf16_next(info, 12);
  if (bf16Next && bf16Storage) throw_arg(env, "bf16Next cannot be used with bf16Shape (ctx is stored in bf16)");
  const float* relBias = relative_bias(info, ts, 13, d);
  const Qkv x = bf16Storage ? Qkv{in[0]->data(), nullptr, nullptr} : qkv_pointers(in, d);
  AttentionForwardFn* attention_forward = ts.entry(&Backend::attention_forward);
  return guarded_void(env, [&] {
    request_bf16_handoff(bf16Next, ctx);
    attention_forward(ctx->data(), probs != nullptr ? probs->data() : nullptr, x.q, x.k, x.v, mask, relBias, d.B, d.T,
                      d.NH, d.HS, d.ld, dr.p, dr.seed, dr.offset, dr.keepRows, dr.rowIndex, precision, bf16Storage);
  });
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "attentionBackward");
  Napi::Env env = info.Env();
  static const char* const gradNames[3] = {"dq", "dk", "dv"};
  static const char* const names[3] = {"q", "k", "v"};
  NativeTensor* const grads[3] = {ts.tensor(0, "dq"), ts.optional(1, "dk"), ts.optional(2, "dv")};
  NativeTensor* dctx = ts.tensor(3, "dctx");
  NativeTensor* const in[3] = {ts.tensor(4, "q"), ts.optional(5, "k"), ts.optional(6, "v")};
  NativeTensor* probs = ts.optional(7, "probs");  // null: the backward forms P again
  const Precision precision = arg_optional_precision(info, 18, "precision");
  // bf16Shape (20): [B, T, H] of q | k | v (packed) and dctx held in bf16; the packed gradient stays fp32.
  const std::vector<int64_t> bf16Shape = bf16_shape(info, 20);
  const bool bf16Storage = !bf16Shape.empty();
  const AttentionDims d = bf16Storage ? bf16_attention_dims(info, bf16Shape, dctx, "dctx", in, names, 9, precision)
                                      : attention_dims(info, dctx, "dctx", in, names, 9);
  if (bf16Storage) {
    if (grads[1] != nullptr || grads[2] != nullptr)
      throw_arg(env, "Expected dq, dk, dv to be packed exactly when q, k, v are (dk and dv null with a [B, T, 3H] dq)");
    expect_shape(env, grads[0], "dq", {d.B, d.T, d.ld});
  } else if (attention_dims(info, dctx, "dctx", grads, gradNames, 9).ld != d.ld) {
    throw_arg(env, "Expected dq, dk, dv to be packed exactly when q, k, v are (dk and dv null with a [B, T, 3H] dq)");
  }
  if (probs != nullptr) expect_shape(env, probs, "probs", {d.B, d.NH, d.T, d.T});
  const int32_t* mask = arg_i32(info, 8, "mask", d.B * d.T);
  const AttentionDropout dr = attention_dropout(info, 10, d);
  const Bf16Next bf16Next = arg_bf16_next_or_only(info, 15);
  const float* relBias = relative_bias(info, ts, 16, d);
  NativeTensor* dRelBias = ts.optional(17, "dRelBias");
  if (dRelBias != nullptr) {
    if (relBias == nullptr) throw_arg(env, "Expected relBias with dRelBias (the gradient of the forward's bias)");
    expect_shape(env, dRelBias, "dRelBias", {d.B, 2 * d.T - 1, d.NH});
  }
  // dqkvColumnSums (19): += the packed gradient's column sums, the q/k/v projection's bias gradient.
  NativeTensor* dqkvSums = ts.optional(19, "dqkvColumnSums");
  if (dqkvSums != nullptr) {
    if (grads[1] != nullptr) throw_arg(env, "dqkvColumnSums needs the packed gradient (dk and dv null)");
    expect_shape(env, dqkvSums, "dqkvColumnSums", {3 * d.NH * d.HS});
    require_disjoint(env, dqkvSums, "dqkvColumnSums", grads[0], "dq");
  }
  if (bf16Storage) require_disjoint(env, grads[0], "dq", in[0], "q");
  const Qkv x = bf16Storage ? Qkv{in[0]->data(), nullptr, nullptr} : qkv_pointers(in, d), g = qkv_pointers(grads, d);
  AttentionBackwardFn* attention_backward = ts.entry(&Backend::attention_backward);
  return guarded_void(env, [&] {
    // Only the packed gradient is one operand; 'only': the next op's products are its only readers.
    if (grads[1] == nullptr) request_bf16_handoff(bf16Next != Bf16Next::kNo, grads[0], bf16Next == Bf16Next::kOnly);
    attention_backward(g.q, g.k, g.v, dRelBias != nullptr ? dRelBias->data() : nullptr, dctx->data(), x.q, x.k, x.v,
                       probs != nullptr ? probs->data() : nullptr, mask, relBias, d.B, d.T, d.NH, d.HS, d.ld, dr.p,
                       dr.seed, dr.offset, dr.keepRows, dr.rowIndex, precision,
                       dqkvSums != nullptr ? dqkvSums->data() : nullptr, bf16Storage);
  });
}

// ---------------------------------------------------------------------------------------------
// Pooling

struct PoolDims {
  int64_t B, T, H;
};

// hidden [B, T, H] and pooled [B, H].
// An optional boolean argument: false when absent or undefined.
bool optional_bool(const Napi::CallbackInfo& info, size_t index, const char* name) {
  return info.Length() > index && !info[index].IsUndefined() && arg_bool(info, index, name);
}

PoolDims pool_dims(const Napi::Env& env, const NativeTensor* hidden, const char* hiddenName, const NativeTensor* pooled,
                   const char* pooledName) {
  expect_rank(env, hidden, hiddenName, 3, "[B, T, H]");
  const PoolDims d{hidden->shape()[0], hidden->shape()[1], hidden->shape()[2]};
  expect_shape(env, pooled, pooledName, {d.B, d.H});
  return d;
}

// The relative-position bias table [rows >= 32, NH] (rows past the 32 buckets unused, as in transformers).
void expect_bucket_table(const Napi::Env& env, const NativeTensor* t, const char* name, int64_t NH) {
  expect_rank(env, t, name, 2, "[buckets, NH]");
  if (t->shape()[0] < kRelativeBuckets || t->shape()[1] != NH)
    throw_arg(env, std::string("Expected ") + name + " to be [buckets >= " + std::to_string(kRelativeBuckets) + ", " +
                       std::to_string(NH) + "]");
}

Napi::Value RelativeBiasForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "relativeBiasForward");
  Napi::Env env = info.Env();
  NativeTensor* out = ts.tensor(0, "out");
  NativeTensor* table = ts.tensor(1, "table");
  expect_rank(env, out, "out", 2, "[2T - 1, NH]");
  const int64_t D = out->shape()[0], NH = out->shape()[1];
  if (D % 2 == 0) throw_arg(env, "Expected out to have 2T - 1 rows (an odd number), got " + std::to_string(D));
  expect_bucket_table(env, table, "table", NH);
  RelativeBiasForwardFn* relative_bias_forward = ts.entry(&Backend::relative_bias_forward);
  return guarded_void(env, [&] { relative_bias_forward(out->data(), table->data(), (D + 1) / 2, NH); });
}

Napi::Value RelativeBiasBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "relativeBiasBackward");
  Napi::Env env = info.Env();
  NativeTensor* dtable = ts.tensor(0, "dtable");
  NativeTensor* dRel = ts.tensor(1, "dRel");
  expect_rank(env, dRel, "dRel", 3, "[B, 2T - 1, NH]");
  const int64_t B = dRel->shape()[0], D = dRel->shape()[1], NH = dRel->shape()[2];
  if (D % 2 == 0)
    throw_arg(env, "Expected dRel to have 2T - 1 rows per sentence (an odd number), got " + std::to_string(D));
  expect_bucket_table(env, dtable, "dtable", NH);
  RelativeBiasBackwardFn* relative_bias_backward = ts.entry(&Backend::relative_bias_backward);
  return guarded_void(env, [&] { relative_bias_backward(dtable->data(), dRel->data(), B, (D + 1) / 2, NH); });
}

Napi::Value PoolClsForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "poolClsForward");
  NativeTensor* out = ts.tensor(0, "out");
  NativeTensor* hidden = ts.tensor(1, "hidden");
  const PoolDims d = pool_dims(info.Env(), hidden, "hidden", out, "out");
  PoolClsForwardFn* pool_cls_forward = ts.entry(&Backend::pool_cls_forward);
  return guarded_void(info.Env(), [&] { pool_cls_forward(out->data(), hidden->data(), d.B, d.T, d.H); });
}

Napi::Value PoolClsBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "poolClsBackward");
  NativeTensor* dhidden = ts.tensor(0, "dhidden");
  NativeTensor* dout = ts.tensor(1, "dout");
  const PoolDims d = pool_dims(info.Env(), dhidden, "dhidden", dout, "dout");
  const bool accumulate = arg_bool(info, 2, "accumulate");
  PoolClsBackwardFn* pool_cls_backward = ts.entry(&Backend::pool_cls_backward);
  return guarded_void(info.Env(), [&] { pool_cls_backward(dhidden->data(), dout->data(), d.B, d.T, d.H, accumulate); });
}

Napi::Value PoolMeanForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "poolMeanForward");
  NativeTensor* out = ts.tensor(0, "out");
  NativeTensor* hidden = ts.tensor(1, "hidden");
  const PoolDims d = pool_dims(info.Env(), hidden, "hidden", out, "out");
  const int32_t* mask = arg_i32(info, 2, "mask", d.B * d.T);
  const bool sqrtLen = optional_bool(info, 3, "sqrtLen");
  PoolMeanForwardFn* pool_mean_forward = ts.entry(&Backend::pool_mean_forward);
  return guarded_void(info.Env(),
                      [&] { pool_mean_forward(out->data(), hidden->data(), mask, d.B, d.T, d.H, sqrtLen); });
}

Napi::Value PoolMeanBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "poolMeanBackward");
  NativeTensor* dhidden = ts.tensor(0, "dhidden");
  NativeTensor* dout = ts.tensor(1, "dout");
  const PoolDims d = pool_dims(info.Env(), dhidden, "dhidden", dout, "dout");
  const int32_t* mask = arg_i32(info, 2, "mask", d.B * d.T);
  const bool accumulate = arg_bool(info, 3, "accumulate");
  const bool sqrtLen = optional_bool(info, 4, "sqrtLen");
  PoolMeanBackwardFn* pool_mean_backward = ts.entry(&Backend::pool_mean_backward);
  return guarded_void(
      info.Env(), [&] { pool_mean_backward(dhidden->data(), dout->data(), mask, d.B, d.T, d.H, accumulate, sqrtLen); });
}

Napi::Value PoolMaxForward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "poolMaxForward");
  NativeTensor* out = ts.tensor(0, "out");
  NativeTensor* hidden = ts.tensor(1, "hidden");
  const PoolDims d = pool_dims(info.Env(), hidden, "hidden", out, "out");
  const int32_t* mask = arg_i32(info, 2, "mask", d.B * d.T);
  PoolMaxForwardFn* pool_max_forward = ts.entry(&Backend::pool_max_forward);
  return guarded_void(info.Env(), [&] { pool_max_forward(out->data(), hidden->data(), mask, d.B, d.T, d.H); });
}

Napi::Value PoolMaxBackward(const Napi::CallbackInfo& info) {
  OpTensors ts(info, "poolMaxBackward");
  Napi::Env env = info.Env();
  NativeTensor* dhidden = ts.tensor(0, "dhidden");
  NativeTensor* dout = ts.tensor(1, "dout");
  NativeTensor* hidden = ts.tensor(2, "hidden");
  const PoolDims d = pool_dims(env, dhidden, "dhidden", dout, "dout");
  expect_shape(env, hidden, "hidden", {d.B, d.T, d.H});
  // dhidden is written while hidden is read (the zeroing of a sentence before its columns' tokens are found).
  require_disjoint(env, dhidden, "dhidden", hidden, "hidden");
  const int32_t* mask = arg_i32(info, 3, "mask", d.B * d.T);
  const bool accumulate = arg_bool(info, 4, "accumulate");
  PoolMaxBackwardFn* pool_max_backward = ts.entry(&Backend::pool_max_backward);
  return guarded_void(
      env, [&] { pool_max_backward(dhidden->data(), dout->data(), hidden->data(), mask, d.B, d.T, d.H, accumulate); });
}

}  // namespace

void register_encoder(Napi::Env env, Napi::Object exports) {
  export_functions(env, exports,
                   {
                       {"embeddingForward", EmbeddingForward},
                       {"embeddingBackward", EmbeddingBackward},
                       {"layerNormForward", LayerNormForward},
                       {"layerNormApply", LayerNormApply},
                       {"layerNormBackward", LayerNormBackward},
                       {"residualLayerNormForward", ResidualLayerNormForward},
                       {"layerNormDropoutBackward", LayerNormDropoutBackward},
                       {"linearForward", LinearForward},
                       {"linearBackward", LinearBackward},
                       {"geluForward", GeluForward},
                       {"geluBackward", GeluBackward},
                       {"gegluForward", GegluForward},
                       {"gegluBackward", GegluBackward},
                       {"rope", Rope},
                       {"tanhForward", TanhForward},
                       {"tanhBackward", TanhBackward},
                       {"add", Add},
                       {"addInplace", AddInplace},
                       {"leadingColumns", LeadingColumns},
                       {"addLeadingColumns", AddLeadingColumns},
                       {"attentionTakesBf16", AttentionTakesBf16},
                       {"attentionFormsProbs", AttentionFormsProbs},
                       {"attentionForward", AttentionForward},
                       {"attentionBackward", AttentionBackward},
                       {"relativeBiasForward", RelativeBiasForward},
                       {"relativeBiasBackward", RelativeBiasBackward},
                       {"poolClsForward", PoolClsForward},
                       {"poolClsBackward", PoolClsBackward},
                       {"poolMeanForward", PoolMeanForward},
                       {"poolMeanBackward", PoolMeanBackward},
                       {"poolMaxForward", PoolMaxForward},
                       {"poolMaxBackward", PoolMaxBackward},
                   });
}

}  // namespace simcsepp
