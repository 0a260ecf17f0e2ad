// NativeTensor: the addon's float32 tensor, backed by host memory or CUDA device memory.
//
// JavaScript sees it through lib/tensor.ts. A tensor owns a Storage or is a view (offset, shape)
// into another tensor's Storage; the storage lives while any of them does. Memory is freed by
// dispose() or, failing that, by the garbage collector (ObjectWrap finalizer); the external-memory
// counter is adjusted both ways so V8 collects abandoned tensors under memory pressure.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace simcsepp {

enum class Device { kCpu, kCuda };

const char* device_name(Device d);

// A block of host or device memory, shared by a tensor and its views; freed with the last owner.
struct Storage {
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  float* data = nullptr;
  size_t bytes = 0;
  Device device = Device::kCpu;
};

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeTensor(const Napi::CallbackInfo& info);
  ~NativeTensor() override;

  // Creates an uninitialised tensor (JS object and storage).
  static Napi::Object Create(Napi::Env env, const std::vector<int64_t>& shape, Device device);
  static bool IsInstance(Napi::Env env, const Napi::Value& v);
  static NativeTensor* Unwrap(const Napi::Object& o) { return Napi::ObjectWrap<NativeTensor>::Unwrap(o); }

  float* data() const { return storage_ ? storage_->data + offset_ : nullptr; }
  Device device() const { return device_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const { return numel_; }
  bool disposed() const { return disposed_; }
  std::string shape_string() const;

 private:
  void allocate(const std::vector<int64_t>& shape, Device device);
  void release();

  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value ToFloat32Array(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value View(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value CopyTensor(const Napi::CallbackInfo& info);

  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  Device device_ = Device::kCpu;
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in floats, into storage_
  bool disposed_ = false;
  int64_t reported_bytes_ = 0;  // external memory reported to V8 by this object (owners only)
};

}  // namespace simcsepp
