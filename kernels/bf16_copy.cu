// The bf16 operand copies of bf16_copy.cuh.
// bf16_convert_kernel: blockIdx.y picks the segment (a GELU segment rounds GELU(src), gelu.cuh; a LayerNorm segment
// the LayerNorm's output, ln_output.cuh, its row and column from the element's index); the x blocks walk
// it grid-stride. A segment whose source is 16-byte and destination 8-byte aligned goes 4 elements per thread per
// step (one float4 load, one 8-byte store; kQuadsAhead steps' loads issued together), its last n % 4 elements one
// at a time; any other segment one element at a time. Consecutive threads touch consecutive addresses either way
// (coalesced). Memory-bound: 6 bytes moved per element.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bf16_copy.cuh"
#include "bf16_mirror.cuh"
#include "cublaslt.cuh"
#include "gelu.cuh"
#include "grid.cuh"
#include "ln_output.cuh"

namespace simcsepp::cuda::bf16copy {

namespace {

struct Segments {
  Segment s[kMaxSegments];
};

constexpr int kThreads = 256;
// Quads a thread loads before it converts any: 64 bytes in flight per thread rather than 16 (one quad per step of
// the grid-stride loop waited on memory at every step).
constexpr int kQuadsAhead = 4;

struct alignas(8) Bf16x4 {
  __nv_bfloat16 v[4];
};

enum class Kind { kPlain, kGelu, kLayerNorm };

// src[i] (= x), GELU(x) in a GELU segment, or the LayerNorm's output at i in a LayerNorm segment.
template <Kind kKind>
__device__ __forceinline__ float source(const Segment& seg, int64_t i, float x) {
  if constexpr (kKind == Kind::kGelu) {
    return detail::gelu(x);
  } else if constexpr (kKind == Kind::kLayerNorm) {
    const int64_t r = i / seg.C, c = i - r * seg.C;
    return detail::ln_output(x, seg.mean[r], seg.rstd[r], seg.lnWeight[c], seg.lnBias[c]);
  } else {
    return x;
  }
}

template <Kind kKind>
__device__ void convert_segment(const Segment& seg) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  int64_t done = 0;
  if (reinterpret_cast<uintptr_t>(seg.src) % 16 == 0 && reinterpret_cast<uintptr_t>(seg.dst) % 8 == 0) {
    const int64_t quads = seg.n / 4;
    const auto* src4 = reinterpret_cast<const float4*>(seg.src);
    auto* dst4 = reinterpret_cast<Bf16x4*>(seg.dst);
    for (int64_t q0 = first; q0 < quads; q0 += kQuadsAhead * stride) {
      float4 f[kQuadsAhead];  // every load of the batch issued before the first conversion
#pragma unroll
      for (int u = 0; u < kQuadsAhead; ++u)
        if (q0 + u * stride < quads) f[u] = src4[q0 + u * stride];
#pragma unroll
      for (int u = 0; u < kQuadsAhead; ++u) {
        const int64_t q = q0 + u * stride;
        if (q >= quads) continue;
        Bf16x4 b;
        b.v[0] = __float2bfloat16(source<kKind>(seg, 4 * q, f[u].x));
        b.v[1] = __float2bfloat16(source<kKind>(seg, 4 * q + 1, f[u].y));
        b.v[2] = __float2bfloat16(source<kKind>(seg, 4 * q + 2, f[u].z));
        b.v[3] = __float2bfloat16(source<kKind>(seg, 4 * q + 3, f[u].w));
        dst4[q] = b;
      }
    }
    done = quads * 4;
  }
  for (int64_t i = done + first; i < seg.n; i += stride)
    seg.dst[i] = __float2bfloat16(source<kKind>(seg, i, seg.src[i]));
}

__global__ void __launch_bounds__(kThreads) bf16_convert_kernel(Segments segs) {
  const Segment seg = segs.s[blockIdx.y];
  if (seg.mean != nullptr)
    convert_segment<Kind::kLayerNorm>(seg);
  else if (seg.gelu)
    convert_segment<Kind::kGelu>(seg);
  else
    convert_segment<Kind::kPlain>(seg);
}

}  // namespace

Operands operands() {
  const char* v = std::getenv("SIMCSEPP_BF16_OPERANDS");
  return v != nullptr && std::strcmp(v, "fp32") == 0 ? Operands::kFp32 : Operands::kCopies;
}

const char* describe(Operands o) {
  return o == Operands::kFp32 ? "fp32, rounded to bf16 inside the GEMM (SIMCSEPP_BF16_OPERANDS=fp32)"
                              : "bf16 copies (SIMCSEPP_BF16_OPERANDS=copies, the default)";
}

namespace {
std::atomic<int64_t> g_converted{0};
}  // namespace

int64_t converted_elements() { return g_converted.load(); }

void convert(const Segment* segments, int count, cudaStream_t stream) {
  Segments segs{};
  int used = 0;
  int64_t longest = 0;
  for (int i = 0; i < count && i < kMaxSegments; ++i) {
    if (segments[i].n <= 0) continue;
    segs.s[used++] = segments[i];
    longest = segments[i].n > longest ? segments[i].n : longest;
  }
  if (used == 0) return;
  for (int i = 0; i < used; ++i) g_converted += segs.s[i].n;
  // A thread per kQuadsAhead quads of the longest segment (at most 4096 blocks a segment, as before).
  const int64_t perThread = 4 * kQuadsAhead;
  launch("bf16_convert_kernel", bf16_convert_kernel,
         dim3(detail::grid_blocks((longest + perThread - 1) / perThread, kThreads), static_cast<unsigned>(used)),
         kThreads, 0, stream, segs);
}

}  // namespace simcsepp::cuda::bf16copy

namespace simcsepp::cuda {

std::string bf16_operands() {
  const bf16copy::Operands o = bf16copy::operands();
  if (o == bf16copy::Operands::kCopies && !lt::serves_bf16_operands() && lt::serves_fp32_operands_bf16())
    return "fp32, rounded to bf16 inside the GEMM (cuBLASLt failed its check with bf16 operands and passed it with "
           "fp32 ones: see gemm)";
  if (o == bf16copy::Operands::kFp32) return bf16copy::describe(o);
  return std::string(bf16copy::describe(o)) +
         (bf16mirror::enabled() ? "; weights from the model's bf16 mirror (kernels/bf16_mirror.cuh)"
                                : "; weights rounded at every product (SIMCSEPP_BF16_WEIGHT_MIRROR=0)");
}

}  // namespace simcsepp::cuda
