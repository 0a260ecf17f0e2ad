// Node-API entry points of the CPU's int8 linear layer (cpu/linear_int8.h), SentenceEncoder's precision 'int8':
//   int8PackedFloats(OC, C) -> number    the floats of a tensor that holds an [OC, C] weight's packed form
//   int8PackWeight(packed, weight)       weight [OC, C] quantized into packed (a CPU tensor of at least
//                                        int8PackedFloats(OC, C) elements: bytes, not floats)
//   linearInt8Forward(out, inp, packed, bias|null, geluOut|null)   out [R, OC] from inp [R, C] (geluOut: out itself
//                                        for the GELU in place, else apart from it)
//   int8Kernel(force?) -> 'avx512vnni' | 'avxvnni' | 'dotprod' | 'generic'   the tile kernel in use (force: a name, for
//   tests
//                                        and benchmarks; an Error when this CPU cannot run it)
// CPU tensors only: the CUDA backend's inference runs in bf16 on the tensor cores instead.
#include <napi.h>

#include <string>

#include "args.h"
#include "cpu/linear_int8.h"
#include "register.h"

namespace simcsepp {

namespace {

NativeTensor* cpu_tensor(const Napi::CallbackInfo& info, size_t index, const char* name, const char* op,
                         bool optional = false) {
  NativeTensor* t = optional ? arg_optional_tensor(info, index, name) : arg_tensor(info, index, name);
  if (t != nullptr && t->device() != Device::kCpu)
    throw_arg(info.Env(), std::string(op) + ": expected " + name + " to be a CPU tensor but received a " +
                              device_name(t->device()) + " tensor (int8 runs on the CPU)");
  return t;
}

// Validating a later argument can run JavaScript (a Proxy's trap) that disposes an earlier tensor.
void require_live(const Napi::Env& env, std::initializer_list<std::pair<const NativeTensor*, const char*>> ts) {
  for (const auto& [t, name] : ts)
    if (t != nullptr && t->disposed())
      throw_arg(env, std::string("Expected ") + name + " to be a live tensor but it was disposed");
}

int64_t packed_floats(int64_t OC, int64_t C) { return (cpu::int8_packed_bytes(OC, C) + 3) / 4; }

Napi::Value Int8PackedFloats(const Napi::CallbackInfo& info) {
  const int64_t OC = arg_positive_int(info, 0, "OC"), C = arg_positive_int(info, 1, "C");
  return Napi::Number::New(info.Env(), static_cast<double>(packed_floats(OC, C)));
}

Napi::Value Int8PackWeight(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  NativeTensor* packed = cpu_tensor(info, 0, "packed", "int8PackWeight");
  NativeTensor* weight = cpu_tensor(info, 1, "weight", "int8PackWeight");
  expect_rank(env, weight, "weight", 2, "[OC, C]");
  const int64_t OC = weight->shape()[0], C = weight->shape()[1];
  if (packed->numel() < packed_floats(OC, C))
    throw_arg(env, "Expected packed to hold at least " + std::to_string(packed_floats(OC, C)) +
                       " elements (int8PackedFloats(" + std::to_string(OC) + ", " + std::to_string(C) +
                       ")) but received " + packed->shape_string());
  require_live(env, {{packed, "packed"}, {weight, "weight"}});
  require_disjoint(env, packed, "packed", weight, "weight");
  return guarded_void(env, [&] {
    const int64_t bad = cpu::int8_pack_weight(packed->data(), weight->read_data(), OC, C);
    if (bad >= 0)
      throw std::invalid_argument("Expected weight to hold finite values but element " + std::to_string(bad) +
                                  " (row " + std::to_string(bad / C) + ") is " + number_text(weight->read_data()[bad]));
  });
}

Napi::Value LinearInt8Forward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* op = "linearInt8Forward";
  NativeTensor* out = cpu_tensor(info, 0, "out", op);
  NativeTensor* inp = cpu_tensor(info, 1, "inp", op);
  NativeTensor* packed = cpu_tensor(info, 2, "packed", op);
  NativeTensor* bias = cpu_tensor(info, 3, "bias", op, true);
  NativeTensor* geluOut = cpu_tensor(info, 4, "geluOut", op, true);
  int64_t OC = 0, C = 0;
  if (!cpu::int8_packed_shape(packed->read_data(), packed->numel() * 4, &OC, &C))
    throw_arg(env, "Expected packed to hold a weight packed by int8PackWeight");
  if (last_dim(env, inp, "inp") != C)
    throw_arg(env, "Expected inp's last dimension to be C = " + std::to_string(C) + " (packed holds an [" +
                       std::to_string(OC) + ", " + std::to_string(C) + "] weight) but received " + inp->shape_string());
  const int64_t R = inp->numel() / C;
  expect_rows(env, out, "out", R * OC, OC);
  if (bias) expect_shape(env, bias, "bias", {OC});
  if (geluOut) {
    expect_rows(env, geluOut, "geluOut", R * OC, OC);
    if (geluOut->read_data() != out->read_data()) require_disjoint(env, geluOut, "geluOut", out, "out");
    require_disjoint(env, geluOut, "geluOut", inp, "inp");
    require_disjoint(env, geluOut, "geluOut", packed, "packed");
  }
  require_disjoint(env, out, "out", inp, "inp");
  require_disjoint(env, out, "out", packed, "packed");
  require_live(env, {{out, "out"}, {inp, "inp"}, {packed, "packed"}, {bias, "bias"}, {geluOut, "geluOut"}});
  return guarded_void(env, [&] {
    cpu::linear_int8_forward(out->data(), inp->read_data(), packed->read_data(), bias ? bias->read_data() : nullptr, R,
                             geluOut ? geluOut->data() : nullptr);
  });
}

Napi::Value Int8Kernel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsString()) throw_arg(env, "Expected force to be a kernel name but received " + describe(info[0]));
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    if (!cpu::int8_force_kernel(name.c_str()))
      throw_arg(
          env,
          "Expected force to be 'avx512vnni', 'avxvnni', 'dotprod' or 'generic', one this CPU runs, but received '" +
              name + "'");
  }
  return Napi::String::New(env, cpu::int8_kernel_name());
}

}  // namespace

void register_int8(Napi::Env env, Napi::Object exports) {
  export_functions(env, exports,
                   {{"int8PackedFloats", Int8PackedFloats},
                    {"int8PackWeight", Int8PackWeight},
                    {"linearInt8Forward", LinearInt8Forward},
                    {"int8Kernel", Int8Kernel}});
}

}  // namespace simcsepp
