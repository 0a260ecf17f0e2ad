// The emulator's stand-in for <mma.h>: the WMMA API (nvcuda::wmma) as warp-collective operations.
//
// A fragment of an R x C matrix (A: M x K, B: K x N, accumulator: M x N) spreads its elements over the 32
// lanes in row-major order, num_elements = R * C / 32 per lane (CUDA leaves the mapping unspecified, so
// code that is correct on the GPU cannot depend on it). load_matrix_sync and store_matrix_sync move each
// lane's own elements from and to memory in kernel code (so the emulator's bounds and race checks see
// every access); mma_sync stages all lanes' fragments with the emulator, and each lane computes its
// elements of D = A B + C with inputs at their precision (half, bfloat16, or tf32: the low 13 mantissa bits
// dropped, as the tensor cores ignore them) and fp32 accumulation in k order. Every operation first checks
// that the whole warp takes part (as __syncwarp does), and loads and stores check the GPU's rules for their
// operand: a 32-byte aligned pointer, a leading dimension of a multiple of 16 bytes (cudaErrorMisalignedAddress). Any
// M, N, K compile here; nvcc accepts only the shapes the hardware has (m16n16k16, m32n8k16, m8n32k16 for half/bfloat16;
// m16n16k8 for tf32).
#pragma once
#include <cstdint>
#include <cstdio>
#include <type_traits>

#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

inline float __float_to_tf32(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7f800000u) != 0x7f800000u) x = (x + 0xfffu + ((x >> 13) & 1u)) & 0xffffe000u;  // round to nearest even
  std::memcpy(&f, &x, 4);
  return f;
}

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
 public:
  static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
  static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
  static_assert(rows * cols % 32 == 0, "a fragment's elements must divide over the 32 lanes");
  static constexpr int num_elements = rows * cols / 32;
  using storage_element_type = std::conditional_t<std::is_same_v<T, precision::tf32>, float, T>;
  storage_element_type x[num_elements];
};

namespace detail {

inline void warp_converged(const char* file, int line) {
  (void)::cuemu::warp_collective(::cuemu::WarpOp::Sync, 0xffffffffu, 0, 0, 32, file, line);
}
inline int lane() {
  return static_cast<int>((threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y) % 32);
}

// The input as the tensor cores see it.
template <class T>
inline float operand(T v) {
  if constexpr (std::is_same_v<T, float>) {
    uint32_t x;
    std::memcpy(&x, &v, 4);
    if ((x & 0x7f800000u) != 0x7f800000u) x &= 0xffffe000u;
    std::memcpy(&v, &x, 4);
    return v;
  } else {
    return static_cast<float>(v);
  }
}

// Memory offset of logical element (r, c) of a matrix stored row- or column-major with leading dimension ldm.
inline size_t offset(int r, int c, unsigned ldm, bool rowMajor) {
  return rowMajor ? static_cast<size_t>(r) * ldm + c : static_cast<size_t>(c) * ldm + r;
}

// What the GPU requires of a load_matrix_sync/store_matrix_sync operand: a 256-bit (32-byte) aligned pointer,
// and a leading dimension that is a multiple of 16 bytes (8 half or bfloat16 elements, 4 floats).
template <class P>
inline void check_operand(const P* p, unsigned ldm, const char* fn, const char* file, int line) {
  char what[160];
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) {
    std::snprintf(what, sizeof what, "wmma::%s at %p, not 32-byte aligned", fn, static_cast<const void*>(p));
    ::cuemu::misaligned(what, file, line);
  }
  if (ldm * sizeof(P) % 16 != 0) {
    std::snprintf(what, sizeof what, "wmma::%s with ldm %u, not a multiple of %zu elements", fn, ldm, 16 / sizeof(P));
    ::cuemu::misaligned(what, file, line);
  }
}

template <class Frag, class P>
inline void load(Frag& f, const P* p, unsigned ldm, bool rowMajor) {
  const int base = lane() * Frag::num_elements;
  for (int e = 0; e < Frag::num_elements; ++e) {
    const int idx = base + e, r = idx / Frag::cols, c = idx % Frag::cols;
    f.x[e] = p[offset(r, c, ldm, rowMajor)];
  }
}

}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f,
                          typename fragment<Use, M, N, K, T, Layout>::storage_element_type v) {
  for (auto& e : f.x) e = v;
}

template <class Use, int M, int N, int K, class T, class Layout, class P>
inline void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const P* p, unsigned ldm,
                             const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  static_assert(!std::is_same_v<Use, accumulator>, "an accumulator load takes a layout_t");
  detail::warp_converged(file, line);
  detail::check_operand(p, ldm, "load_matrix_sync", file, line);
  detail::load(f, p, ldm, std::is_same_v<Layout, row_major>);
}

template <int M, int N, int K, class T, class P>
inline void load_matrix_sync(fragment<accumulator, M, N, K, T>& f, const P* p, unsigned ldm, layout_t layout,
                             const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  detail::warp_converged(file, line);
  detail::check_operand(p, ldm, "load_matrix_sync", file, line);
  detail::load(f, p, ldm, layout == mem_row_major);
}

template <int M, int N, int K, class T, class P>
inline void store_matrix_sync(P* p, const fragment<accumulator, M, N, K, T>& f, unsigned ldm, layout_t layout,
                              const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  using Frag = fragment<accumulator, M, N, K, T>;
  detail::warp_converged(file, line);
  detail::check_operand(p, ldm, "store_matrix_sync", file, line);
  const int base = detail::lane() * Frag::num_elements;
  for (int e = 0; e < Frag::num_elements; ++e) {
    const int idx = base + e, r = idx / Frag::cols, c = idx % Frag::cols;
    p[detail::offset(r, c, ldm, layout == mem_row_major)] = f.x[e];
  }
}

template <int M, int N, int K, class TA, class LA, class TB, class LB, class TC, class TD>
inline void mma_sync(fragment<accumulator, M, N, K, TD>& d, const fragment<matrix_a, M, N, K, TA, LA>& a,
                     const fragment<matrix_b, M, N, K, TB, LB>& b, const fragment<accumulator, M, N, K, TC>& c,
                     bool /*satf*/ = false, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
  constexpr int EA = M * K / 32, EB = K * N / 32, EC = M * N / 32;
  float va[EA], vb[EB], vc[EC];
  for (int e = 0; e < EA; ++e) va[e] = detail::operand(a.x[e]);
  for (int e = 0; e < EB; ++e) vb[e] = detail::operand(b.x[e]);
  for (int e = 0; e < EC; ++e) vc[e] = static_cast<float>(c.x[e]);
  detail::warp_converged(file, line);
  ::cuemu::warp_stage(0, va, EA);
  ::cuemu::warp_stage(1, vb, EB);
  ::cuemu::warp_stage(2, vc, EC);
  detail::warp_converged(file, line);  // every lane has staged
  float A[M * K], B[K * N], C[M * N];
  ::cuemu::warp_gather(0, A, EA);
  ::cuemu::warp_gather(1, B, EB);
  ::cuemu::warp_gather(2, C, EC);
  detail::warp_converged(file, line);  // every lane has read: the staging may be reused
  const int base = detail::lane() * EC;
  for (int e = 0; e < EC; ++e) {
    const int idx = base + e, r = idx / N, col = idx % N;
    float acc = C[idx];
    for (int k = 0; k < K; ++k) acc = fmaf(A[r * K + k], B[k * N + col], acc);
    d.x[e] = acc;
  }
}

}  // namespace nvcuda::wmma
