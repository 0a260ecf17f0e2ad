// Node-API entry point of the fused CPU search (cpu/search.h), lib/embed/search.ts's scorer for CPU
// indexes:
//   searchTopK(corpus, queries, k, rowBegin, rowEnd, topScores, topIndices)
//     corpus: a [N, D] CPU tensor; queries: a Float32Array of Q·D floats; rows [rowBegin, rowEnd) of the
//     corpus are searched and their hits merged into topScores (Float32Array) / topIndices (Int32Array),
//     [Q, k] each, best first, -1 marking a slot without a hit (fill topIndices with -1 to start).
//   unitRows(t) -> number
//     t: a [N, D] CPU tensor, each row scaled to unit length in place (cpu/unit_rows.h); -1, or the flat index of
//     the first element that is not finite.
#include <napi.h>

#include <string>

#include "args.h"
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
  const int64_t nq = qlen / dim;
  const int64_t k = arg_positive_int(info, 2, "k");
  const int64_t begin = arg_row(info, 3, "rowBegin", rows), end = arg_row(info, 4, "rowEnd", rows);
  if (end < begin)
    throw Napi::RangeError::New(env, "Expected rowEnd to be at least rowBegin " + std::to_string(begin) +
                                         " but received " + std::to_string(end));
  if (static_cast<double>(nq) * static_cast<double>(k) > 4294967295.0)
    throw Napi::RangeError::New(env, "searchTopK: queries × k is too large for a typed array");
  if (!info[5].IsTypedArray() || info[5].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_arg(env, "Expected topScores to be a Float32Array but received " + describe(info[5]));
  auto scores = info[5].As<Napi::Float32Array>();
  if (static_cast<int64_t>(scores.ElementLength()) != nq * k)
    throw_arg(env, "Expected topScores to have " + std::to_string(nq * k) + " entries (queries × k) but it has " +
                       std::to_string(scores.ElementLength()));
  int32_t* indices = const_cast<int32_t*>(arg_i32(info, 6, "topIndices", nq * k));
  // Checked last: validating the other arguments may have run JavaScript that disposed the corpus.
  const float* data = corpus->data();
  if (data == nullptr) throw_arg(env, "Expected corpus to be a live tensor but it was disposed");
  return guarded_void(env,
                      [&] { cpu::search_top_k(scores.Data(), indices, data, begin, end, queries.Data(), nq, dim, k); });
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
  export_functions(env, exports, {{"searchTopK", SearchTopK}, {"unitRows", UnitRows}});
}

}  // namespace simcsepp
