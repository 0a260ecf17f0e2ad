// NativeTensor storage and its JS methods (see tensor.h).
#include "tensor.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <new>
#include <sstream>

#include "addon_data.h"
#include "args.h"
#include "cpu/parallel.h"
#include "cuda_api.h"

namespace simcsepp {

const char* device_name(Device d) { return d == Device::kCpu ? "cpu" : "cuda"; }

namespace {
std::atomic<int64_t> heldBytes{0}, reportedBytes{0};    // see memory_stats()
constexpr size_t kHugePageBytes = size_t{2} << 20;      // x86-64's transparent huge page
constexpr size_t kHugePageMinBytes = size_t{32} << 20;  // the smallest buffer that asks for them
}  // namespace

MemoryStats memory_stats() { return {heldBytes.load(), reportedBytes.load()}; }

Storage::Storage(size_t n, Device dev) : bytes(n), device(dev) {
  if (bytes == 0) return;
  if (device == Device::kCpu) {
    // 64-byte alignment for vector loads; zeroed so no caller ever reads stale memory. Large buffers (the
    // activation arena, parameters, gradients, moments) start on a 2 MiB boundary and ask Linux for
    // transparent huge pages (which this kind of machine grants only on request: "madvise"): the GEMMs and
    // the row passes then walk matrices of 4 KiB rows without a TLB miss per row (measured: a 6144 x 1024
    // product with its GELU epilogue 5-15% faster, mini's training step 6-15%). Only from 32 MiB: huge pages
    // can take much longer to allocate (500 MiB in 25 MiB tensors: 300-400 ms on ordinary pages, 140-1,530
    // ms on huge ones, which the kernel at times compacts memory to find), a cost the once-allocated
    // buffers of training repay and a per-call output tensor (forward's hidden states) would not.
    const bool huge = bytes >= kHugePageMinBytes;
    void* p = nullptr;
    if (posix_memalign(&p, huge ? kHugePageBytes : 64, (bytes + 63) / 64 * 64) != 0) p = nullptr;
    if (!p) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    if (huge) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure leaves ordinary pages
#endif
    std::memset(p, 0, bytes);
    data = static_cast<float*>(p);
  } else {
    data = static_cast<float*>(cuda::malloc_device(bytes));
    try {
      cuda::memset_device(data, 0, bytes);
    } catch (...) {
      cuda::free_device(data);
      throw;
    }
  }
  heldBytes += static_cast<int64_t>(bytes);
}

void Storage::release() noexcept {
  freed = true;
  if (mirror != nullptr) {
    heldBytes -= static_cast<int64_t>(cuda::bf16_mirror_bytes(static_cast<int64_t>(bytes / sizeof(float))));
    cuda::bf16_mirror_destroy(mirror);
    mirror = nullptr;
  }
  if (!data) return;
  if (device == Device::kCpu) {
    std::free(data);
  } else {
    // A handoff of this memory, or a range owed by a bf16-only producer, must not outlive it (the next allocation
    // there is another tensor).
    cuda::bf16_handoff_written(data, static_cast<int64_t>(bytes / sizeof(float)));
    cuda::free_device(data);
  }
  data = nullptr;
  heldBytes -= static_cast<int64_t>(bytes);
}

namespace {

// Host allocations at least this large are checked against the memory the machine has free: the
// zero-fill would otherwise touch more pages than exist and the kernel would kill the process.
constexpr size_t kCheckedHostBytes = size_t{1} << 30;

// Bytes the kernel can still hand out (Linux: MemAvailable + SwapFree; elsewhere physical memory).
size_t available_host_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  size_t availableKb = 0, swapKb = 0;
  bool found = false;
  for (std::string line; std::getline(meminfo, line);) {
    std::istringstream fields(line);
    std::string key;
    size_t kb = 0;
    fields >> key >> kb;
    if (key == "MemAvailable:") {
      availableKb = kb;
      found = true;
    } else if (key == "SwapFree:") {
      swapKb = kb;
    }
  }
  if (found) return (availableKb + swapKb) * 1024;
  const long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || pageSize <= 0) return std::numeric_limits<size_t>::max();
  return static_cast<size_t>(pages) * static_cast<size_t>(pageSize);
}

std::string gib_text(size_t bytes) {  // "16 GiB", "4 TiB"
  const double gib = static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0);
  char buf[32];
  if (gib >= 1024)
    std::snprintf(buf, sizeof buf, "%.3g TiB", gib / 1024);
  else
    std::snprintf(buf, sizeof buf, "%.3g GiB", gib);
  return buf;
}

}  // namespace

Napi::Function NativeTensor::Define(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         InstanceAccessor<&NativeTensor::GetShape>("shape"),
                         InstanceAccessor<&NativeTensor::GetDevice>("device"),
                         InstanceAccessor<&NativeTensor::GetDisposed>("disposed"),
                         InstanceMethod<&NativeTensor::ToFloat32Array>("toFloat32Array"),
                         InstanceMethod<&NativeTensor::CopyFrom>("copyFrom"),
                         InstanceMethod<&NativeTensor::To>("to"),
                         InstanceMethod<&NativeTensor::Dispose>("dispose"),
                         InstanceMethod<&NativeTensor::View>("view"),
                         InstanceMethod<&NativeTensor::Fill>("fill"),
                         InstanceMethod<&NativeTensor::CopyTensor>("copyTensor"),
                         InstanceMethod<&NativeTensor::AttachBf16Mirror>("attachBf16Mirror"),
                     });
}

// new NativeTensor(shape: number[], device: 'cpu' | 'cuda'): zero-filled.
NativeTensor::NativeTensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeTensor>(info) {
  const auto shape = arg_shape(info, 0, "shape");
  const Device device = arg_device(info, 1, "device");
  guarded(info.Env(), [&] {
    allocate(shape, device);
    return info.Env().Undefined();
  });
}

NativeTensor::~NativeTensor() { release(); }

void NativeTensor::allocate(const std::vector<int64_t>& shape, Device device) {
  shape_ = shape;
  device_ = device;
  numel_ = 1;
  for (int64_t s : shape) numel_ *= s;  // arg_shape bounds the product (no overflow)
  const size_t bytes = static_cast<size_t>(numel_) * sizeof(float);
  if (device == Device::kCpu && bytes >= kCheckedHostBytes) {
    const size_t available = available_host_bytes();
    if (bytes > available)
      throw Napi::RangeError::New(Env(), "A tensor of shape " + shape_text(shape) + " needs " + gib_text(bytes) +
                                             " but only " + gib_text(available) +
                                             " of memory is available: use a smaller shape or free memory");
  }
  storage_ = std::make_shared<Storage>(bytes, device);
  owner_ = true;
  // Device memory is reported too: a leak of either is equally fatal for a long training run and
  // only GC pressure frees abandoned tensors.
  reported_bytes_ = static_cast<int64_t>(bytes);
  if (reported_bytes_) Napi::MemoryManagement::AdjustExternalMemory(Env(), reported_bytes_);
  reportedBytes += reported_bytes_;
}

void NativeTensor::release() {
  // The owner frees the memory now, whoever else still refers to the Storage (its views then see
  // storage_->freed); a view only lets go of it.
  if (owner_ && storage_) storage_->release();
  storage_.reset();
  base_.Reset();
  if (reported_bytes_) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_bytes_);
    reportedBytes -= reported_bytes_;
    reported_bytes_ = 0;
  }
  disposed_ = true;
}

Napi::Object NativeTensor::Create(Napi::Env env, const std::vector<int64_t>& shape, Device device) {
  Napi::Array s = Napi::Array::New(env, shape.size());
  for (size_t i = 0; i < shape.size(); ++i)
    s.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(shape[i])));
  return addon_data(env).tensorConstructor.New({s, Napi::String::New(env, device_name(device))});
}

bool NativeTensor::IsInstance(Napi::Env env, const Napi::Value& v) {
  if (!v.IsObject()) return false;
  return v.As<Napi::Object>().InstanceOf(addon_data(env).tensorConstructor.Value());
}

std::string NativeTensor::shape_string() const { return shape_text(shape_); }

Napi::Value NativeTensor::GetShape(const Napi::CallbackInfo& info) {
  Napi::Array s = Napi::Array::New(info.Env(), shape_.size());
  for (size_t i = 0; i < shape_.size(); ++i)
    s.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(shape_[i])));
  return s;
}

Napi::Value NativeTensor::GetDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), device_name(device_));
}

Napi::Value NativeTensor::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}

void NativeTensor::require_live(const Napi::Env& env) const {
  if (disposed_ || !storage_) throw_arg(env, "tensor: this tensor was disposed");
  if (disposed()) throw_arg(env, "tensor: this tensor was disposed (it views a tensor that was disposed)");
}

Napi::Value NativeTensor::ToFloat32Array(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_live(env);
  // toFloat32Array(out?): into `out` when given (exactly numel elements), so that a writer streaming a large
  // tensor to disk reuses one buffer instead of paying a fresh array's page faults per chunk.
  const bool into = info.Length() > 0 && !info[0].IsUndefined();
  if (into) {
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw_arg(env, "Expected out to be a Float32Array but received " + describe(info[0]));
    if (static_cast<int64_t>(info[0].As<Napi::Float32Array>().ElementLength()) != numel_)
      throw_arg(env, "Expected out to hold " + std::to_string(numel_) + " elements (shape " + shape_string() +
                         ") but it holds " + std::to_string(info[0].As<Napi::Float32Array>().ElementLength()));
  }
  return guarded(env, [&]() -> Napi::Value {
    auto out = into ? info[0].As<Napi::Float32Array>() : Napi::Float32Array::New(env, static_cast<size_t>(numel_));
    const size_t bytes = static_cast<size_t>(numel_) * sizeof(float);
    if (bytes == 0) return out;
    if (device_ == Device::kCpu)
      std::memcpy(out.Data(), read_data(), bytes);
    else
      cuda::copy_to_host(out.Data(), read_data(), bytes);
    return out;
  });
}

// copyFrom(data: Float32Array): fills this tensor from host memory (length must match).
Napi::Value NativeTensor::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_live(env);
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_arg(env, "Expected data to be a Float32Array but received " + describe(info[0]));
  auto src = info[0].As<Napi::Float32Array>();
  if (static_cast<int64_t>(src.ElementLength()) != numel_)
    throw_arg(env, "Expected data to hold " + std::to_string(numel_) + " elements (shape " + shape_string() +
                       ") but it holds " + std::to_string(src.ElementLength()));
  return guarded(env, [&]() -> Napi::Value {
    const size_t bytes = static_cast<size_t>(numel_) * sizeof(float);
    if (bytes == 0) return env.Undefined();
    if (device_ == Device::kCpu)
      std::memcpy(data(), src.Data(), bytes);
    else
      cuda::copy_to_device(data(), src.Data(), bytes);
    return env.Undefined();
  });
}

// to(device): a copy on the given device (always a new tensor, so ownership stays simple).
Napi::Value NativeTensor::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_live(env);
  const Device target = arg_device(info, 0, "device");
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object out = Create(env, shape_, target);
    NativeTensor* t = Unwrap(out);
    const size_t bytes = static_cast<size_t>(numel_) * sizeof(float);
    if (bytes == 0) return out;
    if (device_ == Device::kCpu && target == Device::kCpu)
      std::memcpy(t->data(), read_data(), bytes);
    else if (device_ == Device::kCpu)
      cuda::copy_to_device(t->data(), read_data(), bytes);
    else if (target == Device::kCpu)
      cuda::copy_to_host(t->data(), read_data(), bytes);
    else
      cuda::copy_device_to_device(t->data(), read_data(), bytes);
    return out;
  });
}

Napi::Value NativeTensor::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

// view(offset, shape): a tensor sharing this one's storage, `offset` floats from this tensor's
// start. Disposing a view frees nothing; disposing the storage's owner disposes its views too.
Napi::Value NativeTensor::View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_live(env);
  const double off = arg_number(info, 0, "offset");
  const auto shape = arg_shape(info, 1, "shape");
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (off < 0 || off != static_cast<double>(static_cast<int64_t>(off)) || static_cast<int64_t>(off) + n > numel_)
    throw Napi::RangeError::New(env, "Expected view offset " + std::to_string(static_cast<int64_t>(off)) + " + " +
                                         std::to_string(n) + " elements to lie within the tensor's " +
                                         std::to_string(numel_));
  require_live(env);  // reading shape may have run JavaScript (a getter) that disposed this tensor
  return guarded(env, [&]() -> Napi::Value {
    Napi::Object out = Create(env, {0}, device_);
    NativeTensor* t = Unwrap(out);
    t->owner_ = false;
    t->base_ = Napi::Persistent(info.This().As<Napi::Object>());
    t->storage_ = storage_;
    t->offset_ = offset_ + static_cast<int64_t>(off);
    t->shape_ = shape;
    t->numel_ = n;
    return out;
  });
}

// copyTensor(src): copies another tensor of the same element count (any devices) into this one.
Napi::Value NativeTensor::CopyTensor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_live(env);
  NativeTensor* src = arg_tensor(info, 0, "src");
  require_live(env);  // checking src (instanceof) may have run JavaScript that disposed this tensor
  if (src->numel() != numel_)
    throw_arg(env, "Expected src to hold " + std::to_string(numel_) + " elements but it holds " +
                       std::to_string(src->numel()));
  return guarded(env, [&]() -> Napi::Value {
    const size_t bytes = static_cast<size_t>(numel_) * sizeof(float);
    if (bytes == 0 || src->read_data() == read_data()) return env.Undefined();
    if (device_ == Device::kCpu && src->device() == Device::kCpu)
      std::memmove(data(), src->read_data(), bytes);
    else if (device_ == Device::kCpu)
      cuda::copy_to_host(data(), src->read_data(), bytes);
    else if (src->device() == Device::kCpu)
      cuda::copy_to_device(data(), src->read_data(), bytes);
    else
      cuda::copy_device_to_device(data(), src->read_data(), bytes);
    return env.Undefined();
  });
}

// attachBf16Mirror(): on a CUDA tensor that owns its storage, keeps a bf16 copy of it for the bf16 products
// (kernels/bf16_mirror.cuh): true once it has one. False on the CPU, where products round as they pack.
Napi::Value NativeTensor::AttachBf16Mirror(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_live(env);
  if (!owner_) throw_arg(env, "attachBf16Mirror: this tensor is a view; attach the mirror to the tensor it views");
  if (device_ == Device::kCpu) return Napi::Boolean::New(env, false);
  return guarded(env, [&]() -> Napi::Value {
    if (storage_->mirror == nullptr && numel_ > 0) {
      storage_->mirror = cuda::bf16_mirror_create(storage_->data, numel_);
      const auto bytes = static_cast<int64_t>(cuda::bf16_mirror_bytes(numel_));
      heldBytes += bytes;
      reported_bytes_ += bytes;
      reportedBytes += bytes;
      Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
    }
    return Napi::Boolean::New(env, storage_->mirror != nullptr);
  });
}

// fill(value): sets every element (zeroing gradients and moments between steps).
Napi::Value NativeTensor::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  require_live(env);
  const float v = static_cast<float>(arg_number(info, 0, "value"));
  return guarded(env, [&]() -> Napi::Value {
    if (numel_ == 0) return env.Undefined();
    if (device_ == Device::kCpu) {
      // On the pool's threads in chunks of 1 Mi floats: zeroing the gradients of BERT-base (440 MB) each step
      // on one thread would take ~40 ms.
      float* p = data();
      cpu::parallel_for(numel_, int64_t{1} << 20, [&](int64_t b, int64_t e) { std::fill(p + b, p + e, v); });
    } else if (v == 0.0f) {
      cuda::memset_device(data(), 0, static_cast<size_t>(numel_) * sizeof(float));
    } else {
      std::vector<float> host(static_cast<size_t>(numel_), v);
      cuda::copy_to_device(data(), host.data(), host.size() * sizeof(float));
    }
    return env.Undefined();
  });
}

}  // namespace simcsepp
