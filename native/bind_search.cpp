// Node-API entry point of the fused CPU search (cpu/search.h), lib/embed/search.ts's scorer for CPU
// indexes:
//   searchTopK(corpus, queries, k, rowBegin, rowEnd, topScores, topIndices)
//     corpus: a [N, D] CPU tensor; queries: a Float32Array of Q·D floats; rows [rowBegin, rowEnd) of the
//     corpus are searched and their hits merged into topScores (Float32Array) / topIndices (Int32Array),
//     [Q, k] each, best first, -1 marking a slot without a hit (fill topIndices with -1 to start).
//   hammingTopK(corpus, bytesPerRow, queries, k, rowBegin, rowEnd, topScores, topIndices)
//     corpus, queries: Uint8Arrays (or Int8Arrays) of bit-packed rows of bytesPerRow bytes (cpu/hamming_search.h);
//     as searchTopK, with minus the Hamming distance as the score.
//   unitRows(t) -> number
//     t: a [N, D] CPU tensor, each row scaled to unit length in place (cpu/unit_rows.h); -1, or the flat index of
//     the first element that is not finite.
#include <napi.h>

#include <string>

#include "args.h"
#include "cpu/hamming_search.h"
#include "cpu/search.h"
#include "cpu/unit_rows.h"
#include "register.h"

namespace simcsepp {

namespace {

int64_t arg_row(const Napi::CallbackInfo& info, size_t index, const char* name, int64_t rows) {
  const int64_t r = arg_first_row(info, index, name);
  if (info[index].IsUndefined()) throw_arg(info.Env(), std::string("Expected ") + name + " to be a row index");
  if (r > rows)
    throw Napi::RangeError::New(info.Env(), std::string("Expected ") + name + " to be at most the corpus's " +
                                                std::to_string(rows) + " rows but received " + std::to_string(r));
  return r;
}

// The arguments both searches share, from `at` on: k, rowBegin, rowEnd (within the corpus's rows), topScores and
// topIndices ([nq, k] each).
struct TopKArgs {
  int64_t k, begin, end;
  float* scores;
  int32_t* indices;
};

TopKArgs arg_top_k(const Napi::CallbackInfo& info, size_t at, const char* op, int64_t rows, int64_t nq) {
  Napi::Env env = info.Env();
  TopKArgs a{};
  a.k = arg_positive_int(info, at, "k");
  a.begin = arg_row(info, at + 1, "rowBegin", rows);
  a.end = arg_row(info, at + 2, "rowEnd", rows);
  if (a.end < a.begin)
    throw Napi::RangeError::New(env, "Expected rowEnd to be at least rowBegin " + std::to_string(a.begin) +
                                         " but received " + std::to_string(a.end));
  if (static_cast<double>(nq) * static_cast<double>(a.k) > 4294967295.0)
    throw Napi::RangeError::New(env, std::string(op) + ": queries × k is too large for a typed array");
  const Napi::Value s = info[at + 3];
  if (!s.IsTypedArray() || s.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_arg(env, "Expected topScores to be a Float32Array but received " + describe(s));
  auto scores = s.As<Napi::Float32Array>();
  if (static_cast<int64_t>(scores.ElementLength()) != nq * a.k)
    throw_arg(env, "Expected topScores to have " + std::to_string(nq * a.k) + " entries (queries × k) but it has " +
                       std::to_string(scores.ElementLength()));
  a.scores = scores.Data();
  a.indices = const_cast<int32_t*>(arg_i32(info, at + 4, "topIndices", nq * a.k));
  return a;
}

Napi::Value SearchTopK(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* corpus = arg_matrix(info, 0, "corpus");
  if (corpus->device() != Device::kCpu)
    throw_arg(env, "searchTopK: expected corpus to be a CPU tensor but received a " +
                       std::string(device_name(corpus->device())) + " tensor");
  const int64_t rows = corpus->shape()[0], dim = corpus->shape()[1];
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_arg(env, "Expected queries to be a Float32Array but received " + describe(info[1]));
  auto queries = info[1].As<Napi::Float32Array>();
  const int64_t qlen = static_cast<int64_t>(queries.ElementLength());
  if (qlen == 0 || qlen % dim != 0)
    throw_arg(env, "Expected queries to hold a positive multiple of the corpus's dimension " + std::to_string(dim) +
                       " floats but it holds " + std::to_string(qlen));
  const TopKArgs a = arg_top_k(info, 2, "searchTopK", rows, qlen / dim);
  // Checked last: validating the other arguments may have run JavaScript that disposed the corpus.
  const float* data = corpus->data();
  if (data == nullptr) throw_arg(env, "Expected corpus to be a live tensor but it was disposed");
  return guarded_void(
      env, [&] { cpu::search_top_k(a.scores, a.indices, data, a.begin, a.end, queries.Data(), qlen / dim, dim, a.k); });
}

// A Uint8Array or Int8Array (bit-packed rows: the bytes are what count).
Napi::TypedArray arg_bytes(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const Napi::Value v = info[index];
  if (v.IsTypedArray()) {
    const napi_typedarray_type t = v.As<Napi::TypedArray>().TypedArrayType();
    if (t == napi_uint8_array || t == napi_int8_array) return v.As<Napi::TypedArray>();
  }
  throw_arg(info.Env(),
            std::string("Expected ") + name + " to be a Uint8Array or Int8Array but received " + describe(v));
}

const uint8_t* bytes_of(const Napi::TypedArray& a) {
  return static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
}

Napi::Value HammingTopK(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Napi::TypedArray corpus = arg_bytes(info, 0, "corpus");
  const int64_t bytes = arg_positive_int(info, 1, "bytesPerRow");
  const int64_t clen = static_cast<int64_t>(corpus.ByteLength());
  if (clen % bytes != 0)
    throw_arg(env, "Expected corpus to hold whole rows of bytesPerRow " + std::to_string(bytes) +
                       " bytes but it holds " + std::to_string(clen));
  const int64_t rows = clen / bytes;
  if (rows > 2147483647)
    throw Napi::RangeError::New(env, "hammingTopK: the corpus has more rows than an Int32Array indexes");
  const Napi::TypedArray queries = arg_bytes(info, 2, "queries");
  const int64_t qlen = static_cast<int64_t>(queries.ByteLength());
  if (qlen == 0 || qlen % bytes != 0)
    throw_arg(env, "Expected queries to hold a positive multiple of bytesPerRow " + std::to_string(bytes) +
                       " bytes but it holds " + std::to_string(qlen));
  const int64_t nq = qlen / bytes;
  const TopKArgs a = arg_top_k(info, 3, "hammingTopK", rows, nq);
  const uint8_t* c = bytes_of(corpus);
  const uint8_t* q = bytes_of(queries);
  return guarded_void(env, [&] { cpu::hamming_top_k(a.scores, a.indices, c, a.begin, a.end, q, nq, bytes, a.k); });
}

Napi::Value UnitRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* t = arg_matrix(info, 0, "t");
  if (t->device() != Device::kCpu)
    throw_arg(env, "unitRows: expected t to be a CPU tensor but received a " + std::string(device_name(t->device())) +
                       " tensor");
  float* data = t->data();
  if (data == nullptr) throw_arg(env, "Expected t to be a live tensor but it was disposed");
  return guarded(env, [&]() -> Napi::Value {
    return Napi::Number::New(env, static_cast<double>(cpu::unit_rows(data, t->shape()[0], t->shape()[1])));
  });
}

}  // namespace

void register_search(Napi::Env env, Napi::Object exports) {
  export_functions(env, exports, {{"searchTopK", SearchTopK}, {"hammingTopK", HammingTopK}, {"unitRows", UnitRows}});
}

}  // namespace simcsepp
