// Node-API entry points of the CUDA step graphs (cuda_api.h): a session per padded batch shape, the
// capture of what a JS function launches, and replays. lib/model/step-graphs.ts is their one caller.
//
//   graphSession(bytes: number[], maxRows, peer?: session) -> session (an opaque object; freed by
//       graphSessionFree or GC); with a peer, it joins the peer's group (stream, divergence flag, launches)
//   graphCapture(session, arrays: (Int32Array | Uint8Array | Float32Array)[], record: () => void) -> graph index
//   graphLaunch(session, index, arrays, offsetDelta: bigint, lr, step, readback?: Tensor[], clearSkip?: boolean)
//       -> ticket (does not wait for the GPU; clearSkip defaults to true)
//   graphResults(session, ticket) -> { results: { kind: 'loss' | 'sumSquares', value, nonFinite }[],
//       readback: Float32Array[] } (waits for that launch)
//   graphSessionFree(session)
// All but graphCapture are refused from a record function (while a capture runs on this thread).
#include <napi.h>

#include <algorithm>
#include <string>
#include <vector>

#include "args.h"
#include "captured_tensors.h"
#include "cuda_api.h"
#include "register.h"

namespace simcsepp {

namespace {

struct SessionHolder {
  cuda::GraphSession* session = nullptr;
  std::vector<CapturedTensors> tensors;  // each graph's, by index: a launch refuses a graph whose tensor is disposed
};

// A tag that tells our sessions from any other object (napi_type_tag_object, Node-API 8).
constexpr napi_type_tag kSessionTag = {0x5f1c0a3e2b7d4c91ULL, 0x8e6a1f0d3c2b5a47ULL};

SessionHolder* arg_session(const Napi::CallbackInfo& info, size_t index, const char* name = "session") {
  Napi::Env env = info.Env();
  const Napi::Value v = info[index];
  bool tagged = false;
  if (v.IsExternal()) napi_check_object_type_tag(env, v, &kSessionTag, &tagged);
  if (!tagged)
    throw_arg(env, std::string("Expected ") + name + " to be a step graph session but received " + describe(v));
  auto* h = v.As<Napi::External<SessionHolder>>().Data();
  if (h->session == nullptr) throw_arg(env, std::string(name) + ": this step graph session was freed");
  return h;
}

// Optional CUDA tensors whose contents a launch copies back to the host after its replay.
std::vector<cuda::HostArray> arg_readback(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  std::vector<cuda::HostArray> out;
  if (info[index].IsUndefined() || info[index].IsNull()) return out;
  if (!info[index].IsArray())
    throw_arg(env, "Expected readback to be an array of CUDA tensors but received " + describe(info[index]));
  const Napi::Array a = info[index].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value v = a.Get(i);
    const std::string name = "readback[" + std::to_string(i) + "]";
    if (!NativeTensor::IsInstance(env, v))
      throw_arg(env, "Expected " + name + " to be a Tensor but received " + describe(v));
    const NativeTensor* t = NativeTensor::Unwrap(v.As<Napi::Object>());
    if (t->disposed()) throw_arg(env, name + " is a disposed Tensor");
    if (t->device() != Device::kCuda)
      throw_arg(env, name + " must be a CUDA tensor, not a " + device_name(t->device()) + " one");
    out.push_back({t->read_data(), static_cast<size_t>(t->numel()) * sizeof(float)});
  }
  return out;
}

// The graph functions are not for record functions: a session freed, made or replayed while a step graph is being
// captured on this thread would be captured half-way or pulled from under the capture.
void refuse_in_record(Napi::Env env, const char* what) {
  if (cuda::capturing())
    throw_arg(env, std::string(what) + " was called while a step graph is being captured (from a record function)");
}

std::vector<cuda::HostArray> arg_arrays(const Napi::CallbackInfo& info, size_t index) {
  Napi::Env env = info.Env();
  const char* kinds = "an Int32Array, Uint8Array or Float32Array";
  if (!info[index].IsArray()) throw_arg(env, std::string("Expected arrays to be an array, each ") + kinds);
  const Napi::Array a = info[index].As<Napi::Array>();
  std::vector<cuda::HostArray> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value v = a.Get(i);
    const bool typed = v.IsTypedArray();
    const napi_typedarray_type type = typed ? v.As<Napi::TypedArray>().TypedArrayType() : napi_int8_array;
    // Float32Array: cosent's scores (the bound arrays are bytes copied before a replay, whatever they hold).
    if (type != napi_int32_array && type != napi_uint8_array && type != napi_float32_array)
      throw_arg(env, "arrays[" + std::to_string(i) + "] must be " + kinds);
    const Napi::TypedArray t = v.As<Napi::TypedArray>();
    const auto* base = static_cast<const char*>(t.ArrayBuffer().Data()) + t.ByteOffset();
    out.push_back({base, t.ByteLength()});
  }
  return out;
}

Napi::Value GraphSession(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  refuse_in_record(env, "graphSession");
  if (!info[0].IsArray()) throw_arg(env, "Expected bytes to be an array of byte counts");
  const Napi::Array a = info[0].As<Napi::Array>();
  std::vector<size_t> bytes;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    const Napi::Value v = a.Get(i);
    const double b = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(b >= 0 && b <= 9007199254740991.0 && b == static_cast<double>(static_cast<int64_t>(b))))
      throw_arg(env, "bytes[" + std::to_string(i) + "] must be a non-negative integer but received " + describe(v));
    bytes.push_back(static_cast<size_t>(b));
  }
  const int64_t maxRows = arg_positive_int(info, 1, "maxRows");
  cuda::GraphSession* peer = nullptr;
  if (!info[2].IsUndefined() && !info[2].IsNull()) peer = arg_session(info, 2, "peer")->session;
  return guarded(env, [&]() -> Napi::Value {
    auto* h = new SessionHolder{cuda::graph_session_create(bytes, maxRows, peer), {}};
    auto ext = Napi::External<SessionHolder>::New(env, h, [](Napi::Env, SessionHolder* p) {
      cuda::graph_session_destroy(p->session);
      delete p;
    });
    napi_type_tag_object(env, ext, &kSessionTag);
    return ext;
  });
}

Napi::Value GraphCapture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SessionHolder* h = arg_session(info, 0);
  const std::vector<cuda::HostArray> arrays = arg_arrays(info, 1);
  if (!info[2].IsFunction()) throw_arg(env, "Expected record to be a function but received " + describe(info[2]));
  const Napi::Function record = info[2].As<Napi::Function>();
  return guarded(env, [&]() -> Napi::Value {
    CapturedTensors used;
    int index = 0;
    {
      CaptureNotes noting(&used);
      index = cuda::graph_capture(h->session, arrays, [&] { record.Call({}); });
    }
    used.seen.clear();
    if (h->tensors.size() <= static_cast<size_t>(index)) h->tensors.resize(static_cast<size_t>(index) + 1);
    h->tensors[static_cast<size_t>(index)] = std::move(used);
    return Napi::Number::New(env, index);
  });
}

Napi::Value GraphLaunch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  refuse_in_record(env, "graphLaunch");
  SessionHolder* h = arg_session(info, 0);
  const int64_t index = static_cast<int64_t>(arg_non_negative(info, 1, "index"));
  const std::vector<cuda::HostArray> arrays = arg_arrays(info, 2);
  const uint64_t delta = arg_u64(info, 3, "offsetDelta");
  const double lr = arg_non_negative(info, 4, "lr");
  const int64_t step = arg_positive_int(info, 5, "step");
  const std::vector<cuda::HostArray> readback = arg_readback(info, 6);
  const bool clearSkip = info[7].IsUndefined() ? true : arg_bool(info, 7, "clearSkip");
  if (static_cast<size_t>(index) < h->tensors.size()) {
    const CapturedTensors& used = h->tensors[static_cast<size_t>(index)];
    if (const std::string* name = used.first_freed())
      throw_arg(env, "step graph " + std::to_string(index) + " was captured with a tensor (" + *name +
                         ") that has since been disposed: its replay would run on freed memory; capture it again");
    if (used.communicator != nullptr && !nccl_communicator_live(used.communicator))
      throw_arg(env, "step graph " + std::to_string(index) +
                         " holds NCCL collectives of a process group that has since ended (distFinalize)");
  }
  return guarded(env, [&]() -> Napi::Value {
    const int64_t ticket =
        cuda::graph_launch(h->session, static_cast<int>(index), arrays, delta, lr, step, readback, clearSkip);
    return Napi::Number::New(env, static_cast<double>(ticket));
  });
}

Napi::Value GraphResults(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  refuse_in_record(env, "graphResults");
  SessionHolder* h = arg_session(info, 0);
  const double t = arg_non_negative(info, 1, "ticket");
  if (t != static_cast<double>(static_cast<int64_t>(t)))
    throw_arg(env, "ticket must be an integer but received " + describe(info[1]));
  return guarded(env, [&]() -> Napi::Value {
    const cuda::GraphReadback got = cuda::graph_results(h->session, static_cast<int64_t>(t));
    const std::vector<cuda::GraphResult>& r = got.results;
    Napi::Array a = Napi::Array::New(env, r.size());
    for (uint32_t i = 0; i < r.size(); ++i) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("kind", r[i].kind == cuda::ResultKind::kLoss ? "loss" : "sumSquares");
      o.Set("value", r[i].value);
      o.Set("nonFinite", r[i].nonFinite);
      a.Set(i, o);
    }
    Napi::Array rb = Napi::Array::New(env, got.readback.size());
    for (uint32_t i = 0; i < got.readback.size(); ++i) {
      Napi::Float32Array f = Napi::Float32Array::New(env, got.readback[i].size());
      std::copy(got.readback[i].begin(), got.readback[i].end(), f.Data());
      rb.Set(i, f);
    }
    Napi::Object out = Napi::Object::New(env);
    out.Set("results", a);
    out.Set("readback", rb);
    return out;
  });
}

Napi::Value GraphSessionFree(const Napi::CallbackInfo& info) {
  SessionHolder* h = arg_session(info, 0);
  // (the capture in progress would go on with a freed session, its own, or with its group's stream synchronised under
  // it, a peer's)
  refuse_in_record(info.Env(), "graphSessionFree");
  cuda::graph_session_destroy(h->session);
  h->session = nullptr;
  h->tensors.clear();
  return info.Env().Undefined();
}

}  // namespace

void register_graph(Napi::Env env, Napi::Object exports) {
  export_functions(env, exports,
                   {{"graphSession", GraphSession},
                    {"graphCapture", GraphCapture},
                    {"graphLaunch", GraphLaunch},
                    {"graphResults", GraphResults},
                    {"graphSessionFree", GraphSessionFree}});
}

}  // namespace simcsepp
