// A stand-in libcublasLt for the emulated build: the subset of cuBLASLt's C API that kernels/cublaslt.cu
// calls, with the semantics cublasLt.h documents, computed on the host (the emulator's device memory is
// host memory). It lets CI run our cuBLASLt code (dlopen, descriptors, layouts, the alignment-keyed plans,
// the self-check, the per-kind fallbacks) without a GPU. It checks what a real library would refuse:
// operand layouts that do not fit the transposes and the output, unknown attributes and types, and pointers
// less aligned than the preference the algorithm was chosen under (default 256 bytes, as cuBLASLt's).
//
// Built as libcublasLt-emulated.so next to the emulated addon; SIMCSEPP_CUBLASLT points the addon at it
// (test/cublaslt-emulated.test.ts). Test switches: CUEMU_FAKE_CUBLASLT_BUG=bias drops the bias epilogue (a
// library that disagrees with the kernels), =bf16out halves what a bf16 output stores (one kind wrong);
// CUEMU_FAKE_CUBLASLT_LOG=file appends the number of matmuls at exit.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr int kSuccess = 0, kNotInitialized = 1, kInvalidValue = 7, kNotSupported = 15;
constexpr int kR32F = 0, kR16BF = 14;
constexpr int kComputeF32 = 68, kComputeF32Fast16BF = 75;
constexpr int kOpN = 0, kOpT = 1;
constexpr int kEpilogueDefault = 1, kEpilogueBias = 4;

struct Desc {
  int compute = 0, scale = 0;
  int transA = kOpN, transB = kOpN;
  int epilogue = kEpilogueDefault;
  const float* bias = nullptr;
  int biasType = -1;  // BIAS_DATA_TYPE; -1: D's type
};
struct Layout {
  int type = 0;
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0;
};
struct Preference {
  size_t maxWorkspace = 0;
  uint32_t align[4] = {256, 256, 256, 256};  // A, B, C, D: cuBLASLt's default
};
struct Algo {
  uint64_t data[8];
};
struct HeuristicResult {
  Algo algo;
  size_t workspaceSize;
  int state;
  float wavesCount;
  int reserved[4];
};

long g_matmuls = 0;
int g_handles = 0;

bool bug(const char* what) {
  const char* b = std::getenv("CUEMU_FAKE_CUBLASLT_BUG");
  return b != nullptr && std::strcmp(b, what) == 0;
}

float bf16_to_float(uint16_t v) {
  const uint32_t u = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Round to bf16, nearest even (what COMPUTE_32F_FAST_16BF does to fp32 operands).
float round_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// The stored element (i, j) of a column-major matrix.
float element(const void* p, const Layout& l, uint64_t i, uint64_t j, bool roundBf16) {
  const uint64_t at = i + j * static_cast<uint64_t>(l.ld);
  if (l.type == kR16BF) return bf16_to_float(static_cast<const uint16_t*>(p)[at]);
  const float v = static_cast<const float*>(p)[at];
  return roundBf16 ? round_bf16(v) : v;
}

bool valid_type(int t) { return t == kR32F || t == kR16BF; }

// Whether the layouts fit the descriptor: op(A) is m x k, op(B) k x n, C and D m x n.
bool consistent(const Desc& d, const Layout& a, const Layout& b, const Layout& c, const Layout& dd, uint64_t* m,
                uint64_t* n, uint64_t* k) {
  const uint64_t am = d.transA == kOpN ? a.rows : a.cols, ak = d.transA == kOpN ? a.cols : a.rows;
  const uint64_t bk = d.transB == kOpN ? b.rows : b.cols, bn = d.transB == kOpN ? b.cols : b.rows;
  *m = am;
  *n = bn;
  *k = ak;
  // C and D: fp32, or bf16 with bf16 operands (then a bias only of type fp32, set by BIAS_DATA_TYPE: by default its
  // type is D's, which no caller passes).
  const bool out16 = c.type == kR16BF && dd.type == kR16BF && a.type == kR16BF &&
                     (d.epilogue == kEpilogueDefault || d.biasType == kR32F);
  return ak == bk && c.rows == am && c.cols == bn && dd.rows == am && dd.cols == bn && a.type == b.type &&
         ((c.type == kR32F && dd.type == kR32F) || out16) && valid_type(a.type);
}

uint32_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al != 0) al /= 2;
  return al;
}

struct AtExit {
  ~AtExit() {
    if (const char* log = std::getenv("CUEMU_FAKE_CUBLASLT_LOG")) {
      if (FILE* f = std::fopen(log, "a")) {
        std::fprintf(f, "%ld\n", g_matmuls);
        std::fclose(f);
      }
    }
  }
} g_at_exit;

}  // namespace

extern "C" {

int cublasLtCreate(void** handle) {
  if (handle == nullptr) return kInvalidValue;
  *handle = new int(++g_handles);
  return kSuccess;
}

size_t cublasLtGetVersion() { return 999999; }  // not a real version: the status line shows it is the fake

int cublasLtMatmulDescCreate(void** desc, int compute, int scale) {
  if (desc == nullptr || (compute != kComputeF32 && compute != kComputeF32Fast16BF) || scale != kR32F)
    return kInvalidValue;
  auto* d = new Desc();
  d->compute = compute;
  d->scale = scale;
  *desc = d;
  return kSuccess;
}

int cublasLtMatmulDescDestroy(void* desc) {
  delete static_cast<Desc*>(desc);
  return kSuccess;
}

int cublasLtMatmulDescSetAttribute(void* desc, int attr, const void* buf, size_t size) {
  auto* d = static_cast<Desc*>(desc);
  if (d == nullptr || buf == nullptr) return kInvalidValue;
  switch (attr) {
    case 3:  // TRANSA
    case 4:  // TRANSB
    case 7:  // EPILOGUE
    {
      if (size != sizeof(int32_t)) return kInvalidValue;
      int32_t v;
      std::memcpy(&v, buf, sizeof(v));
      if (attr == 7) {
        if (v != kEpilogueDefault && v != kEpilogueBias) return kNotSupported;
        d->epilogue = v;
      } else {
        if (v != kOpN && v != kOpT) return kInvalidValue;
        (attr == 3 ? d->transA : d->transB) = v;
      }
      return kSuccess;
    }
    case 8:  // BIAS_POINTER
      if (size != sizeof(void*)) return kInvalidValue;
      std::memcpy(&d->bias, buf, sizeof(void*));
      return kSuccess;
    case 26:  // BIAS_DATA_TYPE
      if (size != sizeof(int32_t)) return kInvalidValue;
      std::memcpy(&d->biasType, buf, sizeof(int32_t));
      return valid_type(d->biasType) ? kSuccess : kInvalidValue;
    default: return kInvalidValue;
  }
}

int cublasLtMatrixLayoutCreate(void** layout, int type, uint64_t rows, uint64_t cols, int64_t ld) {
  if (layout == nullptr || !valid_type(type) || ld < static_cast<int64_t>(rows) || ld < 1) return kInvalidValue;
  *layout = new Layout{type, rows, cols, ld};
  return kSuccess;
}

int cublasLtMatrixLayoutDestroy(void* layout) {
  delete static_cast<Layout*>(layout);
  return kSuccess;
}

int cublasLtMatmulPreferenceCreate(void** pref) {
  if (pref == nullptr) return kInvalidValue;
  *pref = new Preference();
  return kSuccess;
}

int cublasLtMatmulPreferenceDestroy(void* pref) {
  delete static_cast<Preference*>(pref);
  return kSuccess;
}

int cublasLtMatmulPreferenceSetAttribute(void* pref, int attr, const void* buf, size_t size) {
  auto* p = static_cast<Preference*>(pref);
  if (p == nullptr || buf == nullptr) return kInvalidValue;
  if (attr == 1) {  // MAX_WORKSPACE_BYTES (uint64)
    if (size != sizeof(uint64_t)) return kInvalidValue;
    std::memcpy(&p->maxWorkspace, buf, sizeof(uint64_t));
    return kSuccess;
  }
  if (attr >= 5 && attr <= 8) {  // MIN_ALIGNMENT_{A,B,C,D}_BYTES (uint32)
    if (size != sizeof(uint32_t)) return kInvalidValue;
    std::memcpy(&p->align[attr - 5], buf, sizeof(uint32_t));
    return kSuccess;
  }
  return kInvalidValue;
}

int cublasLtMatmulAlgoGetHeuristic(void* handle, void* desc, void* a, void* b, void* c, void* d, void* pref,
                                   int requested, HeuristicResult* results, int* found) {
  if (handle == nullptr) return kNotInitialized;
  if (desc == nullptr || a == nullptr || b == nullptr || c == nullptr || d == nullptr || pref == nullptr ||
      requested < 1 || results == nullptr || found == nullptr)
    return kInvalidValue;
  uint64_t m, n, k;
  if (!consistent(*static_cast<Desc*>(desc), *static_cast<Layout*>(a), *static_cast<Layout*>(b),
                  *static_cast<Layout*>(c), *static_cast<Layout*>(d), &m, &n, &k)) {
    *found = 0;
    return kInvalidValue;
  }
  std::memset(&results[0], 0, sizeof(HeuristicResult));
  // The algorithm remembers the alignments it was chosen for: matmul refuses less aligned pointers.
  for (int i = 0; i < 4; ++i) results[0].algo.data[i] = static_cast<Preference*>(pref)->align[i];
  results[0].workspaceSize = 0;
  results[0].wavesCount = 1.0f;
  *found = 1;
  return kSuccess;
}

int cublasLtMatmul(void* handle, void* desc, const void* alpha, const void* A, void* adesc, const void* B, void* bdesc,
                   const void* beta, const void* C, void* cdesc, void* D, void* ddesc, const Algo* algo,
                   void* /*workspace*/, size_t /*workspaceBytes*/, void* /*stream*/) {
  if (handle == nullptr) return kNotInitialized;
  if (desc == nullptr || alpha == nullptr || beta == nullptr || A == nullptr || B == nullptr || C == nullptr ||
      D == nullptr || adesc == nullptr || bdesc == nullptr || cdesc == nullptr || ddesc == nullptr || algo == nullptr)
    return kInvalidValue;
  const Desc& dd = *static_cast<Desc*>(desc);
  const Layout &la = *static_cast<Layout*>(adesc), &lb = *static_cast<Layout*>(bdesc);
  const Layout &lc = *static_cast<Layout*>(cdesc), &ld = *static_cast<Layout*>(ddesc);
  uint64_t m, n, k;
  if (!consistent(dd, la, lb, lc, ld, &m, &n, &k)) return kInvalidValue;
  const void* ptrs[4] = {A, B, C, D};
  for (int i = 0; i < 4; ++i)
    if (alignment(ptrs[i]) < algo->data[i]) return kInvalidValue;  // chosen for a larger alignment
  if (dd.epilogue == kEpilogueBias && dd.bias == nullptr) return kInvalidValue;
  float al, be;
  std::memcpy(&al, alpha, sizeof(float));
  std::memcpy(&be, beta, sizeof(float));
  const bool transA = dd.transA == kOpT;
  const bool transB = dd.transB == kOpT;
  const bool roundOperands = dd.compute == kComputeF32Fast16BF;
  // op(A) as m rows of k values and op(B) as k rows of n values, rounded as the compute type rounds them, so that
  // the loops below read both contiguously.
  std::vector<float> a(m * k), b(k * n);
  for (uint64_t i = 0; i < m; ++i)
    for (uint64_t p = 0; p < k; ++p)
      a[i * k + p] = transA ? element(A, la, p, i, roundOperands) : element(A, la, i, p, roundOperands);
  for (uint64_t p = 0; p < k; ++p)
    for (uint64_t j = 0; j < n; ++j)
      b[p * n + j] = transB ? element(B, lb, j, p, roundOperands) : element(B, lb, p, j, roundOperands);
  const bool addBias = dd.epilogue == kEpilogueBias && !bug("bias");
  std::vector<float> out(m * n);
  // Each output s(i, j) = sum over p of a(i, p) b(p, j), added in p order from 0 in fp32: a real library's order
  // differs, this one is fixed. kRows rows of A at a time share each row of B; the innermost loop runs over j, so the
  // compiler vectorises it without reordering any sum.
  constexpr uint64_t kRows = 4, kCols = 512;
  float s[kRows][kCols];
  for (uint64_t i0 = 0; i0 < m; i0 += kRows) {
    const uint64_t rows = m - i0 < kRows ? m - i0 : kRows;
    for (uint64_t j0 = 0; j0 < n; j0 += kCols) {
      const uint64_t cols = n - j0 < kCols ? n - j0 : kCols;
      for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t j = 0; j < cols; ++j) s[r][j] = 0.0f;
      for (uint64_t p = 0; p < k; ++p) {
        const float* bp = &b[p * n + j0];
        for (uint64_t r = 0; r < rows; ++r) {
          const float x = a[(i0 + r) * k + p];
          float* sr = s[r];
          for (uint64_t j = 0; j < cols; ++j) sr[j] += x * bp[j];
        }
      }
      for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t j = 0; j < cols; ++j) {
          const uint64_t i = i0 + r;
          float v = al * s[r][j];
          if (be != 0.0f) v += be * element(C, lc, i, j0 + j, false);
          if (addBias) v += dd.bias[i];
          out[i + (j0 + j) * m] = v;
        }
    }
  }
  for (uint64_t j = 0; j < n; ++j)
    for (uint64_t i = 0; i < m; ++i) {
      const uint64_t at = i + j * static_cast<uint64_t>(ld.ld);
      if (ld.type == kR16BF) {  // the fp32 sum rounded to nearest even
        const float r = round_bf16(out[i + j * m] * (bug("bf16out") ? 0.5f : 1.0f));
        uint32_t u;
        std::memcpy(&u, &r, sizeof(u));
        static_cast<uint16_t*>(D)[at] = static_cast<uint16_t>(u >> 16);
      } else {
        static_cast<float*>(D)[at] = out[i + j * m];
      }
    }
  ++g_matmuls;
  return kSuccess;
}

}  // extern "C"
