// cuBLASLt, loaded at run time (cublaslt.cuh). The few declarations used are written here (no cuBLAS
// headers at build time); their values are the documented ones of cublasLt.h (CUDA 12 and 13).
//
// Row-major products through a column-major library: a row-major X[m, n] is the column-major X^T, so
// C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T with B as the first operand: m' = N, n' = M, k' = K.
// The bias epilogue adds a vector over the rows of C^T, i.e. one value per column of C.
// Five kinds of product (Kind): fp32; fp32 operands with bf16 tensor-core math (COMPUTE_32F_FAST_16BF); bf16
// operands (the linear layers' bf16 copies, bf16_copy.cuh) with fp32 C, D, bias and sums; bf16 operands with a bf16
// C and D (fp32 sums rounded as stored, beta 0: a product whose readers want it in bf16), without a bias and with an
// fp32 one (BIAS_DATA_TYPE: by default a bf16 D's bias would be bf16), two kinds, as a library may serve one and not
// the other. Each kind is
// self-checked on its own, and a kind that fails is left to the kernels (or, for the bf16 output, to an fp32 output
// the caller rounds) without turning off the others.
// Nothing here has run on a GPU yet: the self-check in probe() compares cuBLASLt with the kernels on
// products with every transpose and odd sizes, and turns cuBLASLt off when they disagree.
#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "bf16_copy.cuh"
#include "cublaslt.cuh"
#include "gemm_bf16.cuh"
#include "kernel_profile.cuh"
#include "nvidia_wheels.h"
#include "tile_gemm.cuh"

namespace simcsepp::cuda::lt {

namespace {

// ---- the C API, as declared by cublasLt.h
using Status = int;  // cublasStatus_t; 0 = CUBLAS_STATUS_SUCCESS
using Handle = void*;
using MatmulDesc = void*;
using Layout = void*;
using Preference = void*;
struct Algo {
  uint64_t data[8];
};
struct HeuristicResult {
  Algo algo;
  size_t workspaceSize;
  Status state;
  float wavesCount;
  int reserved[4];
};
constexpr int kComputeF32 = 68;          // CUBLAS_COMPUTE_32F
constexpr int kComputeF32Fast16BF = 75;  // CUBLAS_COMPUTE_32F_FAST_16BF
constexpr int kR32F = 0;                 // CUDA_R_32F
constexpr int kR16BF = 14;               // CUDA_R_16BF
constexpr int kOpN = 0, kOpT = 1;        // CUBLAS_OP_N, CUBLAS_OP_T
constexpr int kDescTransA = 3;           // CUBLASLT_MATMUL_DESC_TRANSA
constexpr int kDescTransB = 4;           // CUBLASLT_MATMUL_DESC_TRANSB
constexpr int kDescEpilogue = 7;         // CUBLASLT_MATMUL_DESC_EPILOGUE
constexpr int kDescBiasPointer = 8;      // CUBLASLT_MATMUL_DESC_BIAS_POINTER
constexpr int kDescBiasDataType = 26;    // CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE
constexpr int kEpilogueDefault = 1;      // CUBLASLT_EPILOGUE_DEFAULT
constexpr int kEpilogueBias = 4;         // CUBLASLT_EPILOGUE_BIAS
constexpr int kPrefMaxWorkspace = 1;     // CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES
constexpr int kPrefMinAlignA = 5;        // CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES (then B, C, D: 6, 7, 8)
constexpr size_t kWorkspaceBytes = 32u << 20;

struct Api {
  Status (*create)(Handle*);
  size_t (*getVersion)();
  Status (*descCreate)(MatmulDesc*, int, int);
  Status (*descDestroy)(MatmulDesc);
  Status (*descSet)(MatmulDesc, int, const void*, size_t);
  Status (*layoutCreate)(Layout*, int, uint64_t, uint64_t, int64_t);
  Status (*layoutDestroy)(Layout);
  Status (*prefCreate)(Preference*);
  Status (*prefDestroy)(Preference);
  Status (*prefSet)(Preference, int, const void*, size_t);
  Status (*heuristic)(Handle, MatmulDesc, Layout, Layout, Layout, Layout, Preference, int, HeuristicResult*, int*);
  Status (*matmul)(Handle, MatmulDesc, const void*, const void*, Layout, const void*, Layout, const void*, const void*,
                   Layout, void*, Layout, const Algo*, void*, size_t, cudaStream_t);
};

// One prepared product shape: descriptors and the heuristic's algorithm, reused for every call.
struct Plan {
  MatmulDesc desc = nullptr;
  Layout a = nullptr, b = nullptr, c = nullptr;
  Algo algo{};
  bool ok = false;
};
// (transA, transB, M, N, K, lda, ldb, ldc, bias, kind, the alignments of the first operand, the second and C)
using PlanKey = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, int, uint32_t,
                           uint32_t, uint32_t>;

// The largest power of two (at most 256) dividing p's address. The heuristic's algorithms assume 256-byte
// aligned matrices unless told otherwise, and the layer's matrices are views into the parameter buffer and the
// activation arena at any float offset: each plan is made for its pointers' alignments (as PyTorch does).
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

// The product's operand types and math.
enum class Kind : int { kFp32 = 0, kFp32FastBf16 = 1, kBf16 = 2, kBf16Out = 3, kBf16OutBias = 4 };
constexpr int kKinds = 5;
const char* const kKindNames[kKinds] = {"fp32", "fp32 operands with bf16 math", "bf16 operands",
                                        "bf16 operands and output", "bf16 operands and output, fp32 bias"};
bool bf16_output(int kind) {
  return kind == static_cast<int>(Kind::kBf16Out) || kind == static_cast<int>(Kind::kBf16OutBias);
}
Kind kind_of(Precision p) { return p == Precision::kBf16 ? Kind::kFp32FastBf16 : Kind::kFp32; }

struct Library {
  std::mutex mu;
  bool active[kKinds] = {};  // per Kind: loaded, and its self-check passed
  std::string description;
  Api api{};
  Handle handle = nullptr;
  void* workspace = nullptr;
  std::map<PlanKey, Plan> plans;
};

Library& library() {
  static Library* l = new Library();  // never torn down (the driver may be gone at exit)
  return *l;
}

// Candidate files, most specific first.
std::vector<std::string> candidates() {
  std::vector<std::string> c;
  if (const char* p = std::getenv("SIMCSEPP_CUBLASLT")) c.emplace_back(p);
#if defined(SIMCSEPP_CUDA_EMULATOR)
  return c;  // only the stand-in named there (emulator/fake_cublaslt.cpp): a real one would fault on host memory
#endif
  for (const char* so : {"libcublasLt.so.13", "libcublasLt.so.12"}) c.emplace_back(so);  // the loader's path
  std::vector<std::string> roots;
  if (const char* h = std::getenv("CUDA_HOME")) roots.emplace_back(h);
  if (const char* h = std::getenv("CUDA_PATH")) roots.emplace_back(h);
  roots.emplace_back("/usr/local/cuda");
  for (const std::string& r : roots)
    for (const char* so : {"libcublasLt.so.13", "libcublasLt.so.12"}) c.push_back(r + "/lib64/" + so);
  // Python wheels: nvidia-cublas-cu12's nvidia/cublas/lib, CUDA 13's nvidia/cu13/lib.
  for (const std::string& so : nvidia_wheel_libraries("cu*/lib/libcublasLt.so.*")) c.push_back(so);
  return c;
}

template <class F>
bool bind(void* so, const char* name, F*& fn) {
  fn = reinterpret_cast<F*>(dlsym(so, name));
  return fn != nullptr;
}

bool load(Api& api, std::string& path, std::string& why) {
  std::string tried;
  for (const std::string& c : candidates()) {
    void* so = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (so == nullptr) {
      tried += (tried.empty() ? "" : ", ") + c;
      continue;
    }
    const bool all = bind(so, "cublasLtCreate", api.create) && bind(so, "cublasLtGetVersion", api.getVersion) &&
                     bind(so, "cublasLtMatmulDescCreate", api.descCreate) &&
                     bind(so, "cublasLtMatmulDescDestroy", api.descDestroy) &&
                     bind(so, "cublasLtMatmulDescSetAttribute", api.descSet) &&
                     bind(so, "cublasLtMatrixLayoutCreate", api.layoutCreate) &&
                     bind(so, "cublasLtMatrixLayoutDestroy", api.layoutDestroy) &&
                     bind(so, "cublasLtMatmulPreferenceCreate", api.prefCreate) &&
                     bind(so, "cublasLtMatmulPreferenceDestroy", api.prefDestroy) &&
                     bind(so, "cublasLtMatmulPreferenceSetAttribute", api.prefSet) &&
                     bind(so, "cublasLtMatmulAlgoGetHeuristic", api.heuristic) &&
                     bind(so, "cublasLtMatmul", api.matmul);
    if (!all) {
      why = c + " lacks a cuBLASLt function";
      dlclose(so);
      return false;
    }
    path = c;
    return true;
  }
  why = "libcublasLt.so.13/.12 not found (tried " + tried + "; set SIMCSEPP_CUBLASLT to its path)";
  return false;
}

// The plan of a product shape (caller holds the library mutex). A failed plan is remembered: that shape
// then always runs on the kernels.
Plan& plan_for(Library& L, const PlanKey& key) {
  auto it = L.plans.find(key);
  if (it != L.plans.end()) return it->second;
  Plan& p = L.plans[key];
  const auto [transA, transB, M, N, K, lda, ldb, ldc, bias, kind, alignFirst, alignSecond, alignC] = key;
  const Api& api = L.api;
  const int compute = kind == static_cast<int>(Kind::kFp32FastBf16) ? kComputeF32Fast16BF : kComputeF32;
  const bool bf16Out = bf16_output(kind);
  const int operandType = kind == static_cast<int>(Kind::kBf16) || bf16Out ? kR16BF : kR32F;
  if (api.descCreate(&p.desc, compute, kR32F) != 0) return p;
  // First operand: B (op(B)^T); second: A (op(A)^T); see the header comment.
  const int opFirst = transB ? kOpT : kOpN, opSecond = transA ? kOpT : kOpN;
  const int epilogue = bias ? kEpilogueBias : kEpilogueDefault;
  if (api.descSet(p.desc, kDescTransA, &opFirst, sizeof(opFirst)) != 0 ||
      api.descSet(p.desc, kDescTransB, &opSecond, sizeof(opSecond)) != 0 ||
      api.descSet(p.desc, kDescEpilogue, &epilogue, sizeof(epilogue)) != 0)
    return p;
  const int biasType = kR32F;
  if (bias && bf16Out && api.descSet(p.desc, kDescBiasDataType, &biasType, sizeof(biasType)) != 0) return p;
  // Column-major shapes: first operand [N, K] (or [K, N] stored), second [K, M] (or [M, K]), C^T [N, M].
  if (api.layoutCreate(&p.a, operandType, transB ? K : N, transB ? N : K, ldb) != 0 ||
      api.layoutCreate(&p.b, operandType, transA ? M : K, transA ? K : M, lda) != 0 ||
      api.layoutCreate(&p.c, bf16Out ? kR16BF : kR32F, N, M, ldc) != 0)
    return p;
  Preference pref = nullptr;
  if (api.prefCreate(&pref) != 0) return p;
  const size_t ws = kWorkspaceBytes;
  HeuristicResult result{};
  int found = 0;
  const uint32_t aligns[4] = {alignFirst, alignSecond, alignC, alignC};  // D is C
  bool set = api.prefSet(pref, kPrefMaxWorkspace, &ws, sizeof(ws)) == 0;
  for (int i = 0; i < 4 && set; ++i) set = api.prefSet(pref, kPrefMinAlignA + i, &aligns[i], sizeof(aligns[i])) == 0;
  const bool got =
      set && api.heuristic(L.handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &found) == 0 && found > 0;
  api.prefDestroy(pref);
  if (!got) return p;
  p.algo = result.algo;
  p.ok = true;
  return p;
}

// "cuBLASLt bf16 operands, 49152 x 3072 x 768: C = A B^T + bias" (the sizes M x N x K of the header's conventions).
std::string product_label(Kind kind, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float beta, bool bias) {
  return std::string("cuBLASLt ") + kKindNames[static_cast<int>(kind)] + ", " + std::to_string(M) + " x " +
         std::to_string(N) + " x " + std::to_string(K) + ": C " + (beta != 0.0f ? "+= " : "= ") +
         (transA ? "A^T " : "A ") + (transB ? "B^T" : "B") + (bias && kind != Kind::kBf16OutBias ? " + bias" : "");
}

// A and B are float (kFp32, kFp32FastBf16) or __nv_bfloat16 (kBf16 and the bf16 outputs); C is __nv_bfloat16 for the
// bf16 outputs, else float.
bool run(Library& L, bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
         const void* B, int64_t ldb, float beta, void* C, int64_t ldc, const float* bias, Kind kind,
         cudaStream_t stream) {
  // The library's first operand is B, its second A (header comment).
  const uint32_t alignFirst = alignment_of(B), alignSecond = alignment_of(A), alignC = alignment_of(C);
  const PlanKey key{transA,     transB,      M,     N, K, lda, ldb, ldc, bias != nullptr, static_cast<int>(kind),
                    alignFirst, alignSecond, alignC};
  Plan& p = plan_for(L, key);
  if (!p.ok) return false;
  if (bias != nullptr && L.api.descSet(p.desc, kDescBiasPointer, &bias, sizeof(bias)) != 0) return false;
  std::string label;  // an open kernel profile's name for the product: its kind and shape
  if (kernel_profile::is_open()) label = product_label(kind, transA, transB, M, N, K, beta, bias != nullptr);
  kernel_profile::Timed timed(label.c_str(), stream, 2.0 * static_cast<double>(M) * static_cast<double>(N) * K);
#if defined(SIMCSEPP_CUDA_EMULATOR)
  // The emulator's stand-in computes when called, while the emulator queues stream work until the host
  // waits for it: run the work queued before it first (a real cuBLASLt is queued behind it).
  SIMCSEPP_CUDA_CHECK(cudaStreamSynchronize(stream));
#endif
  const bool ok = L.api.matmul(L.handle, p.desc, &alpha, B, p.a, A, p.b, &beta, C, p.c, C, p.c, &p.algo, L.workspace,
                               kWorkspaceBytes, stream) == 0;
#if defined(SIMCSEPP_CUDA_EMULATOR)
  // The stand-in's host code is not instrumented: the product's device-memory traffic for a kernel profile, each
  // operand read once (and C when beta is not 0), the output written once.
  if (ok) {
    const uint64_t in = kind == Kind::kFp32 || kind == Kind::kFp32FastBf16 ? 4 : 2,
                   out = bf16_output(static_cast<int>(kind)) ? 2 : 4;
    const uint64_t mn = static_cast<uint64_t>(M) * static_cast<uint64_t>(N);
    cuemu::add_traffic(in * static_cast<uint64_t>(K) * static_cast<uint64_t>(M + N) + (beta != 0.0f ? out * mn : 0) +
                           (bias != nullptr ? 4 * static_cast<uint64_t>(N) : 0),
                       out * mn);
  }
#endif
  if (ok) timed.done();
  return ok;
}

// The kernels' result for the self-check (A16, B16: the bf16 copies of A and B, for Kind::kBf16 and the bf16 outputs;
// C is __nv_bfloat16 for the bf16 outputs, else float).
void kernel_gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, const float* A, const __nv_bfloat16* A16,
                 int64_t lda, const float* B, const __nv_bfloat16* B16, int64_t ldb, void* C, int64_t ldc,
                 const float* bias, Kind kind) {
  float* C32 = static_cast<float*>(C);
  const char* what = "self-check of cuBLASLt";
  const cudaStream_t s = detail::op_stream();
#define SIMCSEPP_LT_CASE(TA, TB)                                                                                    \
  if (transA == TA && transB == TB) {                                                                               \
    if (bf16_output(static_cast<int>(kind)))                                                                        \
      bf16gemm::gemm<TA, TB>(M, N, K, 1.0f, A16, lda, B16, ldb, 0.0f, static_cast<__nv_bfloat16*>(C), ldc, what, s, \
                             bias);                                                                                 \
    else if (kind == Kind::kBf16)                                                                                   \
      bf16gemm::gemm<TA, TB>(M, N, K, 1.0f, A16, lda, B16, ldb, 0.0f, C32, ldc, what, s, bias);                     \
    else if (kind == Kind::kFp32FastBf16)                                                                           \
      bf16gemm::gemm<TA, TB>(M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C32, ldc, what, s, bias);                         \
    else                                                                                                            \
      tile::sgemm<TA, TB>(M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C32, ldc, what, s, bias);                            \
    return;                                                                                                         \
  }
  SIMCSEPP_LT_CASE(false, false)
  SIMCSEPP_LT_CASE(false, true)
  SIMCSEPP_LT_CASE(true, false)
  SIMCSEPP_LT_CASE(true, true)
#undef SIMCSEPP_LT_CASE
}

// Compares cuBLASLt with the kernels for one Kind on every transpose combination, with and without bias (the bf16
// outputs: kBf16Out without, kBf16OutBias with), at odd sizes. Returns "" when they agree, else what differed.
std::string self_check(Library& L, Kind kind) {
  const int64_t M = 67, N = 45, K = 33;
  std::vector<float> host(static_cast<size_t>(2 * 67 * 67 + 67));
  uint32_t s = 12345;
  for (float& v : host) {
    s = s * 1664525u + 1013904223u;
    v = static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
  }
  const size_t bytes = host.size() * sizeof(float);
  const size_t operands = 2 * 67 * 67;
  float* buf = static_cast<float*>(malloc_device(bytes + 2 * M * N * sizeof(float) + operands * 2));
  std::string problem;
  try {
    copy_to_device(buf, host.data(), bytes);
    const float* A = buf;
    const float* B = buf + 67 * 67;
    const float* bias = buf + 2 * 67 * 67;
    float* C1 = buf + host.size();
    float* C2 = C1 + M * N;
    auto* A16 = reinterpret_cast<__nv_bfloat16*>(C2 + M * N);
    __nv_bfloat16* B16 = A16 + 67 * 67;
    const bf16copy::Segment copies[2] = {{A, A16, 67 * 67}, {B, B16, 67 * 67}};
    bf16copy::convert(copies, 2, detail::op_stream());
    std::vector<float> r1(static_cast<size_t>(M * N)), r2(static_cast<size_t>(M * N));
    const bool out16 = bf16_output(static_cast<int>(kind));
    // A bf16 output: C1 and C2 hold M * N bf16 values each, read back as floats.
    const auto read_back = [&](std::vector<float>& r, const float* C) {
      if (!out16) return copy_to_host(r.data(), C, r.size() * sizeof(float));
      std::vector<__nv_bfloat16> h(r.size());
      copy_to_host(h.data(), C, h.size() * sizeof(__nv_bfloat16));
      for (size_t i = 0; i < r.size(); ++i) r[i] = __bfloat162float(h[i]);
    };
    for (int t = kind == Kind::kBf16OutBias ? 4 : 0; t < (kind == Kind::kBf16Out ? 4 : 8) && problem.empty(); ++t) {
      const bool tA = (t & 1) != 0, tB = (t & 2) != 0, withBias = (t & 4) != 0;
      const int64_t lda = tA ? M : K, ldb = tB ? K : N;
      const bool b16 = kind == Kind::kBf16 || out16;
      kernel_gemm(tA, tB, M, N, K, A, A16, lda, B, B16, ldb, C1, N, withBias ? bias : nullptr, kind);
      if (!run(L, tA, tB, M, N, K, 1.0f, b16 ? static_cast<const void*>(A16) : A, lda,
               b16 ? static_cast<const void*>(B16) : B, ldb, 0.0f, C2, N, withBias ? bias : nullptr, kind,
               detail::op_stream())) {
        problem = "a cuBLASLt call failed";
        break;
      }
      read_back(r1, C1);
      read_back(r2, C2);
      double num = 0, den = 0;
      for (size_t i = 0; i < r1.size(); ++i) {
        num = std::fmax(num, std::fabs(static_cast<double>(r1[i]) - r2[i]));
        den = std::fmax(den, std::fabs(static_cast<double>(r1[i])));
      }
      // fp32 and bf16 operands: summation order only (a product of two bf16 values is exact in fp32);
      // fp32 operands with bf16 math: the library may round the operands differently; a bf16 output: the order may
      // move a sum across a rounding boundary, one bf16 step (2^-8 of the value).
      const double tol = kind == Kind::kFp32FastBf16 ? 2e-2 : out16 ? 8e-3 : 1e-5;
      if (!(num <= tol * den))
        problem = std::string("cuBLASLt and the kernels disagree (") + kKindNames[static_cast<int>(kind)] +
                  (tA ? ", A^T" : "") + (tB ? ", B^T" : "") + (withBias ? ", bias" : "") + "): max difference " +
                  std::to_string(num / den) + " relative";
    }
  } catch (const std::exception& e) {
    problem = std::string("the self-check failed: ") + e.what();
  }
  free_device(buf);
  return problem;
}

void probe(Library& L) {
  const char* mode = std::getenv("SIMCSEPP_GEMM");
  if (mode != nullptr && std::string(mode) == "kernels") {
    L.description = "simcsepp kernels (SIMCSEPP_GEMM=kernels)";
    return;
  }
#if defined(SIMCSEPP_CUDA_EMULATOR)
  constexpr bool kEmulated = true;
#else
  constexpr bool kEmulated = false;
#endif
  if (kEmulated && std::getenv("SIMCSEPP_CUBLASLT") == nullptr) {
    // Its "device" memory is host memory: a real cuBLASLt would fault on it. Tests name the stand-in that
    // computes on the host (emulator/fake_cublaslt.cpp) in SIMCSEPP_CUBLASLT.
    L.description = "simcsepp kernels (the emulated device cannot run cuBLASLt)";
    return;
  }
  std::string path, why;
  if (!load(L.api, path, why)) {
    L.description = "simcsepp kernels (" + why + ")";
    return;
  }
  if (L.api.create(&L.handle) != 0) {
    L.description = "simcsepp kernels (cublasLtCreate failed for " + path + ")";
    return;
  }
  try {
    L.workspace = malloc_device(kWorkspaceBytes);
  } catch (const std::exception& e) {
    L.description = std::string("simcsepp kernels (no memory for cuBLASLt's workspace: ") + e.what() + ")";
    return;
  }
  const std::string name = "cuBLASLt " + std::to_string(L.api.getVersion()) + " (" + path + ")";
  std::string problems;  // the kinds left to the kernels, and why
  for (int k = 0; k < kKinds; ++k) {
    const std::string problem = self_check(L, static_cast<Kind>(k));
    L.active[k] = problem.empty();
    if (!problem.empty()) problems += std::string(problems.empty() ? "" : "; ") + kKindNames[k] + ": " + problem;
  }
  bool any = false;
  for (int k = 0; k < kKinds; ++k) any = any || L.active[k];
  if (!any)
    L.description = "simcsepp kernels (" + name + " not used: " + problems + ")";
  else if (!problems.empty())
    L.description = name + ", simcsepp kernels for what it got wrong (" + problems + ")";
  else
    L.description = name;
}

Library& probed() {
  Library& L = library();
  static std::once_flag once;
  std::call_once(once, [&] {
    std::lock_guard<std::mutex> lock(L.mu);
    probe(L);
  });
  return L;
}

}  // namespace

const std::string& gemm_library() { return probed().description; }

}  // namespace simcsepp::cuda::lt

namespace simcsepp::cuda {

const std::string& gemm_library() { return lt::gemm_library(); }

}  // namespace simcsepp::cuda

namespace simcsepp::cuda::lt {

// The emulator's stand-in computes when called: it cannot be captured into a step graph, so the kernels
// serve the products of a capture there. (A real cuBLASLt is captured like any stream work.)
bool capture_unsupported() {
#if defined(SIMCSEPP_CUDA_EMULATOR)
  return detail::capturing();
#else
  return false;
#endif
}

bool gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias, Precision precision,
          cudaStream_t stream) {
  if (capture_unsupported()) return false;
  Library& L = probed();
  const Kind kind = kind_of(precision);
  if (!L.active[static_cast<int>(kind)] || M <= 0 || N <= 0 || K <= 0) return false;
  std::lock_guard<std::mutex> lock(L.mu);
  return run(L, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, kind, stream);
}

bool serves_bf16_operands() { return probed().active[static_cast<int>(Kind::kBf16)]; }
bool serves_bf16_output(bool bias) {
  return probed().active[static_cast<int>(bias ? Kind::kBf16OutBias : Kind::kBf16Out)];
}
bool serves_fp32_operands_bf16() { return probed().active[static_cast<int>(Kind::kFp32FastBf16)]; }

bool gemm_bf16(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
               int64_t lda, const __nv_bfloat16* B, int64_t ldb, float beta, float* C, int64_t ldc, const float* bias,
               cudaStream_t stream) {
  if (capture_unsupported()) return false;
  Library& L = probed();
  if (!L.active[static_cast<int>(Kind::kBf16)] || M <= 0 || N <= 0 || K <= 0) return false;
  std::lock_guard<std::mutex> lock(L.mu);
  return run(L, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, Kind::kBf16, stream);
}

bool gemm_bf16_out(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const __nv_bfloat16* A,
                   int64_t lda, const __nv_bfloat16* B, int64_t ldb, __nv_bfloat16* C, int64_t ldc, const float* bias,
                   cudaStream_t stream) {
  if (capture_unsupported()) return false;
  Library& L = probed();
  const Kind kind = bias != nullptr ? Kind::kBf16OutBias : Kind::kBf16Out;
  if (!L.active[static_cast<int>(kind)] || M <= 0 || N <= 0 || K <= 0) return false;
  std::lock_guard<std::mutex> lock(L.mu);
  return run(L, transA, transB, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc, bias, kind, stream);
}

}  // namespace simcsepp::cuda::lt
