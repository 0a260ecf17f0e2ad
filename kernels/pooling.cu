// Sentence pooling of hidden [B, T, H] into [B, H] (native/ops/encoder.h):
//   pool_cls_forward:   out[b] = hidden[b, 0]
//   pool_cls_backward:  dhidden[b, 0] (= or +=) dout[b]; without accumulate dhidden[b, t > 0] = 0
//   pool_mean_forward:  out[b] = sum_{t: mask[b*T+t] != 0} hidden[b, t] / count_b   (0 when count_b == 0;
//                       / sqrt(count_b) with sqrt_len, sentence-transformers' mean_sqrt_len_tokens)
//   pool_mean_backward: dhidden[b, t] (= or +=) mask ? dout[b] / count_b : 0 (with accumulate the padded
//                       rows are left as they are; / sqrt(count_b) with sqrt_len)
//   pool_max_forward:   out[b, c] = hidden[b, t*, c], t* = argmax over real tokens t of hidden[b, t, c], the first
//                       of equal values (0 when count_b == 0)
//   pool_max_backward:  dhidden[b, t*, c] (= or +=) dout[b, c], t* found again from hidden; without accumulate
//                       every other element is zeroed
// The mask is a host pointer (copied to the device through host_args.cuh).
// Tiling: the CLS ops are grid-stride loops over the elements they write (256 threads a block), read
// and written coalesced. The mean ops use grid (ceil(H / 128), min(B, 65535)), 128 threads: a thread
// owns column c of sentence b (grid-stride over sentences), counts the sentence's real tokens (the
// warp reads the same mask words) and walks t = 0 .. T-1 in order, so the forward adds the same float
// terms in the same order as cpu::pool_mean_forward (then multiplies by 1 / count); consecutive
// threads touch consecutive columns of a token row. The max ops use the same grid: a thread walks its
// column's real tokens in order and takes a value only when strictly greater or the first NaN
// (torch.max's choice), cpu::pool_max_forward's (so the backward's token is the CPU's, bit for bit), and the backward's
// thread writes every element of its column (one writer each: no atomics, deterministic).

#include "grid.cuh"
#include "host_args.cuh"

namespace simcsepp::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kColThreads = 128;

__global__ void __launch_bounds__(kThreads)
    pool_cls_forward_kernel(float* out, const float* hidden, int64_t B, int64_t T, int64_t H) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < B * H; i += stride) {
    const int64_t b = i / H, c = i % H;
    out[i] = hidden[b * T * H + c];
  }
}

__global__ void __launch_bounds__(kThreads)
    pool_cls_accumulate_kernel(float* dhidden, const float* dout, int64_t B, int64_t T, int64_t H) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < B * H; i += stride) {
    const int64_t b = i / H, c = i % H;
    dhidden[b * T * H + c] += dout[i];
  }
}

// Writes every element of dhidden: dout[b] in token 0, zeros elsewhere.
__global__ void __launch_bounds__(kThreads)
    pool_cls_assign_kernel(float* dhidden, const float* dout, int64_t B, int64_t T, int64_t H) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t TH = T * H;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < B * TH; e += stride) {
    const int64_t b = e / TH, rem = e % TH;
    dhidden[e] = rem < H ? dout[b * H + rem] : 0.0f;
  }
}

__device__ __forceinline__ int64_t real_tokens(const int32_t* mask, int64_t T) {
  int64_t n = 0;
  for (int64_t t = 0; t < T; ++t) n += mask[t] != 0;
  return n;
}

// 1/n, or 1/sqrt(n) with sqrt_len (IEEE-rounded division and square root, as the CPU's); 0 when n == 0.
__device__ __forceinline__ float mean_scale(int64_t n, bool sqrt_len) {
  if (n == 0) return 0.0f;
  const float count = static_cast<float>(n);
  return 1.0f / (sqrt_len ? sqrtf(count) : count);
}

// The first real token of a sentence (mask row m, hidden rows h) holding column c's maximum, or -1 when none.
__device__ __forceinline__ int64_t max_token(const float* h, const int32_t* m, int64_t T, int64_t H, int64_t c) {
  int64_t best = -1;
  float top = 0.0f;
  for (int64_t t = 0; t < T; ++t) {
    if (m[t] == 0) continue;
    const float x = h[t * H + c];
    if (best < 0 || x > top || (x != x && top == top)) {  // cpu::beats(): ties keep the first, a NaN propagates
      best = t;
      top = x;
    }
  }
  return best;
}

__global__ void __launch_bounds__(kColThreads)
    pool_mean_forward_kernel(float* out, const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H,
                             bool sqrt_len) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const int32_t* m = mask + b * T;
    const int64_t n = real_tokens(m, T);
    float s = 0.0f;
    if (n > 0) {
      for (int64_t t = 0; t < T; ++t)
        if (m[t] != 0) s += hidden[(b * T + t) * H + c];
      s *= mean_scale(n, sqrt_len);
    }
    out[b * H + c] = s;
  }
}

__global__ void __launch_bounds__(kColThreads)
    pool_mean_backward_kernel(float* dhidden, const float* dout, const int32_t* mask, int64_t B, int64_t T, int64_t H,
                              bool accumulate, bool sqrt_len) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const int32_t* m = mask + b * T;
    const int64_t n = real_tokens(m, T);
    const float g = dout[b * H + c] * mean_scale(n, sqrt_len);
    for (int64_t t = 0; t < T; ++t) {
      float* dh = dhidden + (b * T + t) * H + c;
      if (accumulate) {
        if (m[t] != 0) *dh += g;
      } else {
        *dh = m[t] != 0 ? g : 0.0f;
      }
    }
  }
}

__global__ void __launch_bounds__(kColThreads)
    pool_max_forward_kernel(float* out, const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const float* h = hidden + b * T * H;
    const int64_t t = max_token(h, mask + b * T, T, H, c);
    out[b * H + c] = t < 0 ? 0.0f : h[t * H + c];
  }
}

__global__ void __launch_bounds__(kColThreads)
    pool_max_backward_kernel(float* dhidden, const float* dout, const float* hidden, const int32_t* mask, int64_t B,
                             int64_t T, int64_t H, bool accumulate) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  for (int64_t b = blockIdx.y; b < B; b += gridDim.y) {
    const int64_t best = max_token(hidden + b * T * H, mask + b * T, T, H, c);
    const float g = dout[b * H + c];
    float* dh = dhidden + b * T * H + c;
    if (accumulate) {
      if (best >= 0) dh[best * H] += g;
    } else {
      for (int64_t t = 0; t < T; ++t) dh[t * H] = t == best ? g : 0.0f;
    }
  }
}

// Grid of the mean and max kernels: columns in x, sentences in y.
dim3 mean_grid(int64_t B, int64_t H) { return dim3(detail::grid_blocks(H, kColThreads, INT32_MAX), detail::grid_y(B)); }

}  // namespace

void pool_cls_forward(float* out, const float* hidden, int64_t B, int64_t T, int64_t H) {
  require();
  if (B * T * H <= 0) return;
  launch("pool_cls_forward", pool_cls_forward_kernel, detail::grid_blocks(B * H, kThreads), kThreads, 0,
         detail::op_stream(), out, hidden, B, T, H);
  detail::finish_op();
}

void pool_cls_backward(float* dhidden, const float* dout, int64_t B, int64_t T, int64_t H, bool accumulate) {
  require();
  if (B * T * H <= 0) return;
  if (accumulate) {
    launch("pool_cls_backward", pool_cls_accumulate_kernel, detail::grid_blocks(B * H, kThreads), kThreads, 0,
           detail::op_stream(), dhidden, dout, B, T, H);
  } else {
    launch("pool_cls_backward", pool_cls_assign_kernel, detail::grid_blocks(B * T * H, kThreads), kThreads, 0,
           detail::op_stream(), dhidden, dout, B, T, H);
  }
  detail::finish_op();
}

void pool_mean_forward(float* out, const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H,
                       bool sqrt_len) {
  require();
  if (B * T * H <= 0) return;
  detail::HostArgs args(detail::op_stream());
  const int32_t* dMask = args.to_device(mask, B * T, detail::kSlotMask);
  launch("pool_mean_forward", pool_mean_forward_kernel, mean_grid(B, H), kColThreads, 0, detail::op_stream(), out,
         hidden, dMask, B, T, H, sqrt_len);
  detail::finish_op();
}

void pool_mean_backward(float* dhidden, const float* dout, const int32_t* mask, int64_t B, int64_t T, int64_t H,
                        bool accumulate, bool sqrt_len) {
  require();
  if (B * T * H <= 0) return;
  detail::HostArgs args(detail::op_stream());
  const int32_t* dMask = args.to_device(mask, B * T, detail::kSlotMask);
  launch("pool_mean_backward", pool_mean_backward_kernel, mean_grid(B, H), kColThreads, 0, detail::op_stream(), dhidden,
         dout, dMask, B, T, H, accumulate, sqrt_len);
  detail::finish_op();
}

void pool_max_forward(float* out, const float* hidden, const int32_t* mask, int64_t B, int64_t T, int64_t H) {
  require();
  if (B * T * H <= 0) return;
  detail::HostArgs args(detail::op_stream());
  const int32_t* dMask = args.to_device(mask, B * T, detail::kSlotMask);
  launch("pool_max_forward", pool_max_forward_kernel, mean_grid(B, H), kColThreads, 0, detail::op_stream(), out, hidden,
         dMask, B, T, H);
  detail::finish_op();
}

void pool_max_backward(float* dhidden, const float* dout, const float* hidden, const int32_t* mask, int64_t B,
                       int64_t T, int64_t H, bool accumulate) {
  require();
  if (B * T * H <= 0) return;
  detail::HostArgs args(detail::op_stream());
  const int32_t* dMask = args.to_device(mask, B * T, detail::kSlotMask);
  launch("pool_max_backward", pool_max_backward_kernel, mean_grid(B, H), kColThreads, 0, detail::op_stream(), dhidden,
         dout, hidden, dMask, B, T, H, accumulate);
  detail::finish_op();
}

}  // namespace simcsepp::cuda
