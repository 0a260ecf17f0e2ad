// Node-API entry points of the BERT encoder ops (native/cpu/bert_ops.h): validate, then run.
//
//   embeddingForward(out, ids, posIds, typeIds, word, pos, type)
//   embeddingBackward(dword, dpos, dtype, dout, ids, posIds, typeIds)
//   layerNormForward(out, mean, rstd, inp, weight, bias, eps)
//   layerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd)
//   linearForward(out, inp, weight, bias|null)
//   linearBackward(dinp|null, dweight, dbias|null, dout, inp, weight, accumulateInput)
//   geluForward(out, inp)             geluBackward(dinp, inp, dout)
//   tanhForward(out, inp)             tanhBackward(dinp, out, dout)
//   add(out, a, b)                    addInplace(dst, src)
//   attentionForward(ctx, probs, q, k, v, mask, numHeads, p, seed, offset, keepRows|null)
//   attentionBackward(dq, dk, dv, dctx, q, k, v, probs, mask, numHeads, p, seed, offset, keepRows|null)
//   poolClsForward(out, hidden)       poolClsBackward(dhidden, dout, accumulate)
//   poolMeanForward(out, hidden, mask) poolMeanBackward(dhidden, dout, mask, accumulate)
//   adamwStep(params, grads, m, v, lr, beta1, beta2, eps, weightDecay, step)
//   gradSumSquares(g) -> number       scaleInplace(x, s)
// Tensors are float32 NativeTensors; sizes are derived from their shapes and every tensor's size is
// checked. ids/mask are Int32Arrays, keepRows a Uint8Array (one byte per sentence) or null.
// Only the CPU backend exists for these ops: a CUDA tensor is refused with an Error.
#include <napi.h>

#include <cmath>
#include <string>
#include <vector>

#include "args.h"
#include "cpu/bert_ops.h"
#include "register.h"

namespace simcsepp {

namespace {

// ---------------------------------------------------------------------------------------------
// Validation helpers

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// A live CPU tensor; a CUDA tensor throws (these ops have no CUDA kernels yet).
NativeTensor* cpu_tensor(const Napi::CallbackInfo& info, size_t i, const char* name, const char* op) {
  NativeTensor* t = arg_tensor(info, i, name);
  if (t->device() != Device::kCpu)
    throw Napi::Error::New(info.Env(), std::string(op) + " has no CUDA implementation yet (" + name + " is on 'cuda')");
  return t;
}

NativeTensor* optional_cpu_tensor(const Napi::CallbackInfo& info, size_t i, const char* name, const char* op) {
  if (info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  return cpu_tensor(info, i, name, op);
}

void expect_shape(const Napi::Env& env, const NativeTensor* t, const char* name, const std::vector<int64_t>& shape) {
  if (t->shape() != shape)
    throw_arg(env, std::string("Expected ") + name + " to have shape " + shape_text(shape) + " but received " + t->shape_string());
}

// t holds `n` elements whose last dimension is `last` (any leading shape).
void expect_rows(const Napi::Env& env, const NativeTensor* t, const char* name, int64_t n, int64_t last) {
  if (t->numel() != n || t->shape().empty() || t->shape().back() != last)
    throw_arg(env, std::string("Expected ") + name + " to hold " + std::to_string(n / last) + " rows of " + std::to_string(last) +
                       " (last dimension " + std::to_string(last) + ") but received " + t->shape_string());
}

void expect_numel(const Napi::Env& env, const NativeTensor* t, const char* name, int64_t n, const char* ofName) {
  if (t->numel() != n)
    throw_arg(env, std::string("Expected ") + name + " to hold " + std::to_string(n) + " elements (as " + ofName + ") but received " +
                       t->shape_string());
}

// The last dimension of a non-empty tensor (the feature size C).
int64_t last_dim(const Napi::Env& env, const NativeTensor* t, const char* name) {
  if (t->shape().empty() || t->numel() < 1)
    throw_arg(env, std::string("Expected ") + name + " to be a non-empty tensor but received " + t->shape_string());
  return t->shape().back();
}

// A tensor of exactly `rank` dimensions, each >= 1.
void expect_rank(const Napi::Env& env, const NativeTensor* t, const char* name, size_t rank, const char* layout) {
  bool ok = t->shape().size() == rank;
  for (int64_t d : t->shape()) ok = ok && d >= 1;
  if (!ok) throw_arg(env, std::string("Expected ") + name + " to be a " + layout + " float32 tensor (every size >= 1) but received " + t->shape_string());
}

const int32_t* arg_i32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t length) {
  Napi::Env env = info.Env();
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_arg(env, std::string("Expected ") + name + " to be an Int32Array but received " + describe(info[i]));
  auto a = info[i].As<Napi::Int32Array>();
  if (static_cast<int64_t>(a.ElementLength()) != length)
    throw_arg(env, std::string("Expected ") + name + " to have " + std::to_string(length) + " entries but it has " +
                       std::to_string(a.ElementLength()));
  return a.Data();
}

// Every entry of ids in [0, rows): the row indices of table `tableName`.
void check_indices(const Napi::Env& env, const int32_t* ids, int64_t n, int64_t rows, const char* name, const char* tableName) {
  for (int64_t r = 0; r < n; ++r)
    if (ids[r] < 0 || ids[r] >= rows)
      throw Napi::RangeError::New(env, std::string(name) + "[" + std::to_string(r) + "] = " + std::to_string(ids[r]) +
                                           " is out of range for " + tableName + " (" + std::to_string(rows) + " rows)");
}

const uint8_t* arg_keep_rows(const Napi::CallbackInfo& info, size_t i, int64_t rows) {
  Napi::Env env = info.Env();
  if (info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw_arg(env, "Expected keepRows to be a Uint8Array or null but received " + describe(info[i]));
  auto k = info[i].As<Napi::Uint8Array>();
  if (static_cast<int64_t>(k.ElementLength()) != rows)
    throw_arg(env, "Expected keepRows to have one entry per sentence (" + std::to_string(rows) + ") but it has " +
                       std::to_string(k.ElementLength()));
  return k.Data();
}

float arg_probability(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const double p = arg_number(info, i, name);
  if (p < 0 || p > 1)
    throw Napi::RangeError::New(info.Env(), std::string("Expected ") + name + " to be in [0, 1] but received " + std::to_string(p));
  return static_cast<float>(p);
}

double arg_positive(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const double v = arg_number(info, i, name);
  if (!(v > 0))
    throw Napi::RangeError::New(info.Env(), std::string("Expected ") + name + " to be > 0 but received " + std::to_string(v));
  return v;
}

double arg_non_negative(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const double v = arg_number(info, i, name);
  if (!(v >= 0))
    throw Napi::RangeError::New(info.Env(), std::string("Expected ") + name + " to be >= 0 but received " + std::to_string(v));
  return v;
}

int64_t arg_positive_int(const Napi::CallbackInfo& info, size_t i, const char* name) {
  const double v = arg_number(info, i, name);
  if (!(v >= 1) || v != std::floor(v) || v > 9007199254740991.0)
    throw Napi::RangeError::New(info.Env(), std::string("Expected ") + name + " to be an integer >= 1 but received " + describe(info[i]));
  return static_cast<int64_t>(v);
}

// Runs fn under guarded() and returns undefined.
template <class F>
Napi::Value run(const Napi::Env& env, F&& fn) {
  return guarded(env, [&]() -> Napi::Value {
    fn();
    return env.Undefined();
  });
}

// ---------------------------------------------------------------------------------------------
// Embeddings

struct EmbeddingTables {
  NativeTensor *word, *pos, *type;
  int64_t H;
};

// Three [rows, H] tables at info[i..i+2] with a common H.
EmbeddingTables tables(const Napi::CallbackInfo& info, size_t i, const char* const names[3], const char* op) {
  Napi::Env env = info.Env();
  EmbeddingTables t{};
  NativeTensor* ts[3];
  for (int k = 0; k < 3; ++k) {
    ts[k] = cpu_tensor(info, i + k, names[k], op);
    expect_rank(env, ts[k], names[k], 2, "[rows, H]");
  }
  t.word = ts[0], t.pos = ts[1], t.type = ts[2];
  t.H = t.word->shape()[1];
  for (int k = 1; k < 3; ++k)
    if (ts[k]->shape()[1] != t.H)
      throw_arg(env, std::string("Expected ") + names[k] + " to have H = " + std::to_string(t.H) + " columns (as " + names[0] +
                         ") but received " + ts[k]->shape_string());
  return t;
}

struct TokenIds {
  const int32_t *ids, *pos, *type;
  int64_t BT;
};

TokenIds token_ids(const Napi::CallbackInfo& info, size_t i, const EmbeddingTables& t, const char* const tableNames[3]) {
  Napi::Env env = info.Env();
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw_arg(env, "Expected ids to be an Int32Array but received " + describe(info[i]));
  const int64_t BT = static_cast<int64_t>(info[i].As<Napi::Int32Array>().ElementLength());
  if (BT < 1) throw_arg(env, "Expected ids to hold at least one token");
  TokenIds r{arg_i32(info, i, "ids", BT), arg_i32(info, i + 1, "posIds", BT), arg_i32(info, i + 2, "typeIds", BT), BT};
  check_indices(env, r.ids, BT, t.word->shape()[0], "ids", tableNames[0]);
  check_indices(env, r.pos, BT, t.pos->shape()[0], "posIds", tableNames[1]);
  check_indices(env, r.type, BT, t.type->shape()[0], "typeIds", tableNames[2]);
  return r;
}

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  static const char* const op = "embeddingForward";
  static const char* const names[3] = {"word", "pos", "type"};
  Napi::Env env = info.Env();
  NativeTensor* out = cpu_tensor(info, 0, "out", op);
  const EmbeddingTables t = tables(info, 4, names, op);
  const TokenIds ids = token_ids(info, 1, t, names);
  expect_rows(env, out, "out", ids.BT * t.H, t.H);
  return run(env, [&] {
    cpu::embedding_forward(out->data(), ids.ids, ids.pos, ids.type, t.word->data(), t.pos->data(), t.type->data(), ids.BT, t.H);
  });
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  static const char* const op = "embeddingBackward";
  static const char* const names[3] = {"dword", "dpos", "dtype"};
  Napi::Env env = info.Env();
  const EmbeddingTables t = tables(info, 0, names, op);
  NativeTensor* dout = cpu_tensor(info, 3, "dout", op);
  const TokenIds ids = token_ids(info, 4, t, names);
  expect_rows(env, dout, "dout", ids.BT * t.H, t.H);
  return run(env, [&] {
    cpu::embedding_backward(t.word->data(), t.pos->data(), t.type->data(), dout->data(), ids.ids, ids.pos, ids.type, ids.BT, t.H);
  });
}

// ---------------------------------------------------------------------------------------------
// Layer norm

Napi::Value LayerNormForward(const Napi::CallbackInfo& info) {
  static const char* const op = "layerNormForward";
  Napi::Env env = info.Env();
  NativeTensor* out = cpu_tensor(info, 0, "out", op);
  NativeTensor* mean = cpu_tensor(info, 1, "mean", op);
  NativeTensor* rstd = cpu_tensor(info, 2, "rstd", op);
  NativeTensor* inp = cpu_tensor(info, 3, "inp", op);
  NativeTensor* weight = cpu_tensor(info, 4, "weight", op);
  NativeTensor* bias = cpu_tensor(info, 5, "bias", op);
  const int64_t C = last_dim(env, inp, "inp"), R = inp->numel() / C;
  expect_rows(env, out, "out", R * C, C);
  expect_shape(env, weight, "weight", {C});
  expect_shape(env, bias, "bias", {C});
  expect_numel(env, mean, "mean", R, "the rows of inp");
  expect_numel(env, rstd, "rstd", R, "the rows of inp");
  const float eps = static_cast<float>(arg_positive(info, 6, "eps"));
  return run(env, [&] {
    cpu::layernorm_forward(out->data(), mean->data(), rstd->data(), inp->data(), weight->data(), bias->data(), R, C, eps);
  });
}

Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  static const char* const op = "layerNormBackward";
  Napi::Env env = info.Env();
  NativeTensor* dinp = cpu_tensor(info, 0, "dinp", op);
  NativeTensor* dweight = cpu_tensor(info, 1, "dweight", op);
  NativeTensor* dbias = cpu_tensor(info, 2, "dbias", op);
  NativeTensor* dout = cpu_tensor(info, 3, "dout", op);
  NativeTensor* inp = cpu_tensor(info, 4, "inp", op);
  NativeTensor* weight = cpu_tensor(info, 5, "weight", op);
  NativeTensor* mean = cpu_tensor(info, 6, "mean", op);
  NativeTensor* rstd = cpu_tensor(info, 7, "rstd", op);
  const int64_t C = last_dim(env, inp, "inp"), R = inp->numel() / C;
  expect_rows(env, dinp, "dinp", R * C, C);
  expect_rows(env, dout, "dout", R * C, C);
  expect_shape(env, weight, "weight", {C});
  expect_shape(env, dweight, "dweight", {C});
  expect_shape(env, dbias, "dbias", {C});
  expect_numel(env, mean, "mean", R, "the rows of inp");
  expect_numel(env, rstd, "rstd", R, "the rows of inp");
  return run(env, [&] {
    cpu::layernorm_backward(dinp->data(), dweight->data(), dbias->data(), dout->data(), inp->data(), weight->data(),
                            mean->data(), rstd->data(), R, C);
  });
}

// ---------------------------------------------------------------------------------------------
// Linear

Napi::Value LinearForward(const Napi::CallbackInfo& info) {
  static const char* const op = "linearForward";
  Napi::Env env = info.Env();
  NativeTensor* out = cpu_tensor(info, 0, "out", op);
  NativeTensor* inp = cpu_tensor(info, 1, "inp", op);
  NativeTensor* weight = cpu_tensor(info, 2, "weight", op);
  NativeTensor* bias = optional_cpu_tensor(info, 3, "bias", op);
  expect_rank(env, weight, "weight", 2, "[OC, C]");
  const int64_t OC = weight->shape()[0], C = weight->shape()[1];
  if (last_dim(env, inp, "inp") != C)
    throw_arg(env, "Expected inp's last dimension to be C = " + std::to_string(C) + " (weight is [OC, C] = " + weight->shape_string() +
                       ") but received " + inp->shape_string());
  const int64_t R = inp->numel() / C;
  expect_rows(env, out, "out", R * OC, OC);
  if (bias) expect_shape(env, bias, "bias", {OC});
  return run(env, [&] {
    cpu::linear_forward(out->data(), inp->data(), weight->data(), bias ? bias->data() : nullptr, R, C, OC);
  });
}

Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  static const char* const op = "linearBackward";
  Napi::Env env = info.Env();
  NativeTensor* dinp = optional_cpu_tensor(info, 0, "dinp", op);
  NativeTensor* dweight = cpu_tensor(info, 1, "dweight", op);
  NativeTensor* dbias = optional_cpu_tensor(info, 2, "dbias", op);
  NativeTensor* dout = cpu_tensor(info, 3, "dout", op);
  NativeTensor* inp = cpu_tensor(info, 4, "inp", op);
  NativeTensor* weight = cpu_tensor(info, 5, "weight", op);
  expect_rank(env, weight, "weight", 2, "[OC, C]");
  const int64_t OC = weight->shape()[0], C = weight->shape()[1];
  if (last_dim(env, inp, "inp") != C)
    throw_arg(env, "Expected inp's last dimension to be C = " + std::to_string(C) + " (weight is [OC, C] = " + weight->shape_string() +
                       ") but received " + inp->shape_string());
  const int64_t R = inp->numel() / C;
  if (dinp) expect_rows(env, dinp, "dinp", R * C, C);
  require_same(env, weight, "weight", dweight, "dweight");
  if (dbias) expect_shape(env, dbias, "dbias", {OC});
  expect_rows(env, dout, "dout", R * OC, OC);
  const bool accumulateInput = arg_bool(info, 6, "accumulateInput");
  return run(env, [&] {
    cpu::linear_backward(dinp ? dinp->data() : nullptr, dweight->data(), dbias ? dbias->data() : nullptr, dout->data(), inp->data(),
                         weight->data(), R, C, OC, accumulateInput);
  });
}

// ---------------------------------------------------------------------------------------------
// Element-wise: every tensor holds as many elements as the first.

std::vector<NativeTensor*> same_size_tensors(const Napi::CallbackInfo& info, const std::vector<const char*>& names, const char* op) {
  std::vector<NativeTensor*> ts;
  for (size_t i = 0; i < names.size(); ++i) {
    ts.push_back(cpu_tensor(info, i, names[i], op));
    if (i > 0) expect_numel(info.Env(), ts[i], names[i], ts[0]->numel(), names[0]);
  }
  return ts;
}

Napi::Value GeluForward(const Napi::CallbackInfo& info) {
  auto t = same_size_tensors(info, {"out", "inp"}, "geluForward");
  return run(info.Env(), [&] { cpu::gelu_forward(t[0]->data(), t[1]->data(), t[0]->numel()); });
}

Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  auto t = same_size_tensors(info, {"dinp", "inp", "dout"}, "geluBackward");
  return run(info.Env(), [&] { cpu::gelu_backward(t[0]->data(), t[1]->data(), t[2]->data(), t[0]->numel()); });
}

Napi::Value TanhForward(const Napi::CallbackInfo& info) {
  auto t = same_size_tensors(info, {"out", "inp"}, "tanhForward");
  return run(info.Env(), [&] { cpu::tanh_forward(t[0]->data(), t[1]->data(), t[0]->numel()); });
}

Napi::Value TanhBackward(const Napi::CallbackInfo& info) {
  auto t = same_size_tensors(info, {"dinp", "out", "dout"}, "tanhBackward");
  return run(info.Env(), [&] { cpu::tanh_backward(t[0]->data(), t[1]->data(), t[2]->data(), t[0]->numel()); });
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  auto t = same_size_tensors(info, {"out", "a", "b"}, "add");
  return run(info.Env(), [&] { cpu::add(t[0]->data(), t[1]->data(), t[2]->data(), t[0]->numel()); });
}

Napi::Value AddInplace(const Napi::CallbackInfo& info) {
  auto t = same_size_tensors(info, {"dst", "src"}, "addInplace");
  return run(info.Env(), [&] { cpu::add_inplace(t[0]->data(), t[1]->data(), t[0]->numel()); });
}

Napi::Value ScaleInplace(const Napi::CallbackInfo& info) {
  auto t = same_size_tensors(info, {"x"}, "scaleInplace");
  const float s = static_cast<float>(arg_number(info, 1, "s"));
  return run(info.Env(), [&] { cpu::scale_inplace(t[0]->data(), s, t[0]->numel()); });
}

// ---------------------------------------------------------------------------------------------
// Attention

struct AttentionDims {
  int64_t B, T, NH, HS;
};

// q is [B, T, H]; numHeads divides H; probs is [B, NH, T, T]; mask has B*T entries.
AttentionDims attention_dims(const Napi::CallbackInfo& info, const NativeTensor* q, size_t headsIndex) {
  Napi::Env env = info.Env();
  expect_rank(env, q, "q", 3, "[B, T, H]");
  const int64_t B = q->shape()[0], T = q->shape()[1], H = q->shape()[2];
  const int64_t NH = arg_positive_int(info, headsIndex, "numHeads");
  if (H % NH != 0)
    throw Napi::RangeError::New(env, "Expected numHeads (" + std::to_string(NH) + ") to divide the hidden size H = " + std::to_string(H));
  return {B, T, NH, H / NH};
}

struct AttentionDropout {
  float p;
  uint64_t seed, offset;
  const uint8_t* keepRows;
};

AttentionDropout attention_dropout(const Napi::CallbackInfo& info, size_t i, int64_t B) {
  return {arg_probability(info, i, "p"), arg_u64(info, i + 1, "seed"), arg_u64(info, i + 2, "offset"), arg_keep_rows(info, i + 3, B)};
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  static const char* const op = "attentionForward";
  Napi::Env env = info.Env();
  NativeTensor* ctx = cpu_tensor(info, 0, "ctx", op);
  NativeTensor* probs = cpu_tensor(info, 1, "probs", op);
  NativeTensor* q = cpu_tensor(info, 2, "q", op);
  NativeTensor* k = cpu_tensor(info, 3, "k", op);
  NativeTensor* v = cpu_tensor(info, 4, "v", op);
  const AttentionDims d = attention_dims(info, q, 6);
  require_same(env, q, "q", k, "k");
  require_same(env, q, "q", v, "v");
  require_same(env, q, "q", ctx, "ctx");
  expect_shape(env, probs, "probs", {d.B, d.NH, d.T, d.T});
  const int32_t* mask = arg_i32(info, 5, "mask", d.B * d.T);
  const AttentionDropout dr = attention_dropout(info, 7, d.B);
  return run(env, [&] {
    cpu::attention_forward(ctx->data(), probs->data(), q->data(), k->data(), v->data(), mask, d.B, d.T, d.NH, d.HS, dr.p, dr.seed,
                           dr.offset, dr.keepRows);
  });
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  static const char* const op = "attentionBackward";
  Napi::Env env = info.Env();
  NativeTensor* dq = cpu_tensor(info, 0, "dq", op);
  NativeTensor* dk = cpu_tensor(info, 1, "dk", op);
  NativeTensor* dv = cpu_tensor(info, 2, "dv", op);
  NativeTensor* dctx = cpu_tensor(info, 3, "dctx", op);
  NativeTensor* q = cpu_tensor(info, 4, "q", op);
  NativeTensor* k = cpu_tensor(info, 5, "k", op);
  NativeTensor* v = cpu_tensor(info, 6, "v", op);
  NativeTensor* probs = cpu_tensor(info, 7, "probs", op);
  const AttentionDims d = attention_dims(info, q, 9);
  require_same(env, q, "q", k, "k");
  require_same(env, q, "q", v, "v");
  require_same(env, q, "q", dq, "dq");
  require_same(env, q, "q", dk, "dk");
  require_same(env, q, "q", dv, "dv");
  require_same(env, q, "q", dctx, "dctx");
  expect_shape(env, probs, "probs", {d.B, d.NH, d.T, d.T});
  const int32_t* mask = arg_i32(info, 8, "mask", d.B * d.T);
  const AttentionDropout dr = attention_dropout(info, 10, d.B);
  return run(env, [&] {
    cpu::attention_backward(dq->data(), dk->data(), dv->data(), dctx->data(), q->data(), k->data(), v->data(), probs->data(), mask,
                            d.B, d.T, d.NH, d.HS, dr.p, dr.seed, dr.offset, dr.keepRows);
  });
}

// ---------------------------------------------------------------------------------------------
// Pooling

struct PoolDims {
  int64_t B, T, H;
};

// hidden [B, T, H] and pooled [B, H].
PoolDims pool_dims(const Napi::Env& env, const NativeTensor* hidden, const char* hiddenName, const NativeTensor* pooled,
                   const char* pooledName) {
  expect_rank(env, hidden, hiddenName, 3, "[B, T, H]");
  const PoolDims d{hidden->shape()[0], hidden->shape()[1], hidden->shape()[2]};
  expect_shape(env, pooled, pooledName, {d.B, d.H});
  return d;
}

Napi::Value PoolClsForward(const Napi::CallbackInfo& info) {
  static const char* const op = "poolClsForward";
  NativeTensor* out = cpu_tensor(info, 0, "out", op);
  NativeTensor* hidden = cpu_tensor(info, 1, "hidden", op);
  const PoolDims d = pool_dims(info.Env(), hidden, "hidden", out, "out");
  return run(info.Env(), [&] { cpu::pool_cls_forward(out->data(), hidden->data(), d.B, d.T, d.H); });
}

Napi::Value PoolClsBackward(const Napi::CallbackInfo& info) {
  static const char* const op = "poolClsBackward";
  NativeTensor* dhidden = cpu_tensor(info, 0, "dhidden", op);
  NativeTensor* dout = cpu_tensor(info, 1, "dout", op);
  const PoolDims d = pool_dims(info.Env(), dhidden, "dhidden", dout, "dout");
  const bool accumulate = arg_bool(info, 2, "accumulate");
  return run(info.Env(), [&] { cpu::pool_cls_backward(dhidden->data(), dout->data(), d.B, d.T, d.H, accumulate); });
}

Napi::Value PoolMeanForward(const Napi::CallbackInfo& info) {
  static const char* const op = "poolMeanForward";
  NativeTensor* out = cpu_tensor(info, 0, "out", op);
  NativeTensor* hidden = cpu_tensor(info, 1, "hidden", op);
  const PoolDims d = pool_dims(info.Env(), hidden, "hidden", out, "out");
  const int32_t* mask = arg_i32(info, 2, "mask", d.B * d.T);
  return run(info.Env(), [&] { cpu::pool_mean_forward(out->data(), hidden->data(), mask, d.B, d.T, d.H); });
}

Napi::Value PoolMeanBackward(const Napi::CallbackInfo& info) {
  static const char* const op = "poolMeanBackward";
  NativeTensor* dhidden = cpu_tensor(info, 0, "dhidden", op);
  NativeTensor* dout = cpu_tensor(info, 1, "dout", op);
  const PoolDims d = pool_dims(info.Env(), dhidden, "dhidden", dout, "dout");
  const int32_t* mask = arg_i32(info, 2, "mask", d.B * d.T);
  const bool accumulate = arg_bool(info, 3, "accumulate");
  return run(info.Env(), [&] { cpu::pool_mean_backward(dhidden->data(), dout->data(), mask, d.B, d.T, d.H, accumulate); });
}

// ---------------------------------------------------------------------------------------------
// Optimiser

Napi::Value AdamwStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto t = same_size_tensors(info, {"params", "grads", "m", "v"}, "adamwStep");
  const double lr = arg_non_negative(info, 4, "lr");
  const double beta1 = arg_non_negative(info, 5, "beta1");
  const double beta2 = arg_non_negative(info, 6, "beta2");
  if (beta1 >= 1) throw Napi::RangeError::New(env, "Expected beta1 to be in [0, 1) but received " + std::to_string(beta1));
  if (beta2 >= 1) throw Napi::RangeError::New(env, "Expected beta2 to be in [0, 1) but received " + std::to_string(beta2));
  const double eps = arg_positive(info, 7, "eps");
  const double wd = arg_non_negative(info, 8, "weightDecay");
  const int64_t step = arg_positive_int(info, 9, "step");
  return run(env, [&] {
    cpu::adamw_step(t[0]->data(), t[1]->data(), t[2]->data(), t[3]->data(), t[0]->numel(), lr, beta1, beta2, eps, wd, step);
  });
}

Napi::Value GradSumSquares(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* g = cpu_tensor(info, 0, "g", "gradSumSquares");
  return guarded(env, [&]() -> Napi::Value { return Napi::Number::New(env, cpu::grad_sum_squares(g->data(), g->numel())); });
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  const struct {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  } ops[] = {
      {"embeddingForward", EmbeddingForward}, {"embeddingBackward", EmbeddingBackward},
      {"layerNormForward", LayerNormForward}, {"layerNormBackward", LayerNormBackward},
      {"linearForward", LinearForward},       {"linearBackward", LinearBackward},
      {"geluForward", GeluForward},           {"geluBackward", GeluBackward},
      {"tanhForward", TanhForward},           {"tanhBackward", TanhBackward},
      {"add", Add},                           {"addInplace", AddInplace},
      {"scaleInplace", ScaleInplace},         {"attentionForward", AttentionForward},
      {"attentionBackward", AttentionBackward}, {"poolClsForward", PoolClsForward},
      {"poolClsBackward", PoolClsBackward},   {"poolMeanForward", PoolMeanForward},
      {"poolMeanBackward", PoolMeanBackward}, {"adamwStep", AdamwStep},
      {"gradSumSquares", GradSumSquares},
  };
  for (const auto& o : ops) exports.Set(o.name, Napi::Function::New(env, o.fn, o.name));
}

}  // namespace simcsepp
