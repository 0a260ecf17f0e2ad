// NativeTensor: the addon's float32 tensor, backed by host memory or CUDA device memory.
//
// JavaScript sees it through lib/tensor.ts. A tensor owns a Storage or is a view (offset, shape)
// into another tensor's Storage. The owner decides when the memory goes: its dispose() (or, failing
// that, the garbage collector's finalizer) frees the storage at once, even while views of it exist;
// those views then report disposed and refuse every use (disposed() and data() consult the shared
// storage, and every access path goes through them). A view holds a reference to the tensor it was
// made from, so the collector never finalizes an owner under a live view. Only the owner reports the
// memory to V8 (AdjustExternalMemory), once when allocated and once when freed, so V8's count matches
// what is really held and abandoned tensors are collected under memory pressure.
#pragma once
#include <napi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda_api.h"

namespace simcsepp {

enum class Device { kCpu, kCuda };

const char* device_name(Device d);

// A block of host or device memory, shared by a tensor and its views; freed by its owner (release())
// or, at the latest, with the last tensor that refers to it.
struct Storage {
  Storage(size_t bytes, Device device);
  ~Storage() { release(); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  // Frees the memory now (idempotent); data becomes null and freed true.
  void release() noexcept;
  float* data = nullptr;
  size_t bytes = 0;
  Device device = Device::kCpu;
  bool freed = false;
  // CUDA storages only: the bf16 copy the bf16 products read instead of rounding these floats at every op
  // (kernels/bf16_mirror.cuh; NativeTensor::attachBf16Mirror). Freed with the storage.
  cuda::Bf16Mirror* mirror = nullptr;
};

// Bytes of tensor storage (host and device) allocated now, and bytes reported to V8 as external
// memory now, over every tensor of the process: equal whenever the accounting is right.
struct MemoryStats {
  int64_t heldBytes = 0;
  int64_t reportedBytes = 0;
};
MemoryStats memory_stats();

class NativeTensor : public Napi::ObjectWrap<NativeTensor> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit NativeTensor(const Napi::CallbackInfo& info);
  ~NativeTensor() override;

  // Creates an uninitialised tensor (JS object and storage).
  static Napi::Object Create(Napi::Env env, const std::vector<int64_t>& shape, Device device);
  static bool IsInstance(Napi::Env env, const Napi::Value& v);
  static NativeTensor* Unwrap(const Napi::Object& o) { return Napi::ObjectWrap<NativeTensor>::Unwrap(o); }

  // Null once this tensor, or the owner of the storage it views, was disposed. The caller may write through it,
  // so the storage's bf16 mirror, if any, is marked stale (refreshed by the next product that reads it), and a
  // bf16 handoff of an overlapping range is dropped (kernels/bf16_handoff.cuh).
  float* data() const {
    if (disposed()) return nullptr;
    if (storage_->mirror != nullptr) cuda::bf16_mirror_mark_stale(storage_->mirror);
    if (device_ == Device::kCuda) cuda::bf16_handoff_written(storage_->data + offset_, numel_);  // same for handoffs
    return storage_->data + offset_;
  }
  // For arguments an op only reads (the weights of the encoder's forward and backward ops, the linear layers'
  // inputs): keeps the mirror and the handoff.
  const float* read_data() const { return disposed() ? nullptr : storage_->data + offset_; }
  // For AdamW's params, which it updates together with their mirror (kernels/optim.cu): keeps the mirror.
  float* data_updating_mirror() const { return disposed() ? nullptr : storage_->data + offset_; }
  Device device() const { return device_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const { return numel_; }
  // True once this tensor was disposed or, for a view, once the storage's owner freed it.
  bool disposed() const { return disposed_ || !storage_ || storage_->freed; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }
  std::string shape_string() const;

 private:
  void allocate(const std::vector<int64_t>& shape, Device device);
  void release();
  // Throws "this tensor was disposed" (saying when it is a view of a disposed owner) unless live.
  void require_live(const Napi::Env& env) const;

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
  Napi::Value AttachBf16Mirror(const Napi::CallbackInfo& info);

  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  Device device_ = Device::kCpu;
  std::shared_ptr<Storage> storage_;
  int64_t offset_ = 0;  // in floats, into storage_
  bool owner_ = false;  // allocated storage_ (views share another tensor's)
  bool disposed_ = false;
  int64_t reported_bytes_ = 0;  // external memory reported to V8 by this object (owners only)
  Napi::ObjectReference base_;  // views: the tensor viewed, kept from collection while the view lives
};

}  // namespace simcsepp
