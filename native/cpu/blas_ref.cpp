// Run-time loaded cblas_sgemm (see blas_ref.h).
#include "blas_ref.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace simcsepp::cpu {

namespace {

// CBLAS enum values (cblas.h).
constexpr int kRowMajor = 101;
constexpr int kNoTrans = 111;
constexpr int kTrans = 112;

using CblasSgemm = void (*)(int order, int transA, int transB, int M, int N, int K, float alpha, const float* A,
                            int lda, const float* B, int ldb, float beta, float* C, int ldc);

struct Loaded {
  CblasSgemm fn = nullptr;
  std::string name;
  std::string core;  // OpenBLAS's kernel family (openblas_get_corename), empty for other libraries
};

const Loaded& loaded() {
  static const Loaded l = [] {
    Loaded r;
    static const char* const kNames[] = {"libopenblas.so.0", "libopenblas.so", "libblas.so.3", "libcblas.so.3",
                                         "libmkl_rt.so"};
    for (const char* name : kNames) {
      void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (!h) continue;
      if (void* sym = dlsym(h, "cblas_sgemm")) {
        r.fn = reinterpret_cast<CblasSgemm>(sym);
        r.name = name;
        using Corename = char* (*)();
        if (auto core = reinterpret_cast<Corename>(dlsym(h, "openblas_get_corename"))) r.core = core();
        break;  // keep the handle open for the life of the process
      }
      dlclose(h);
    }
    return r;
  }();
  return l;
}

}  // namespace

bool blas_ref_available(std::string* name_out, std::string* core_out) {
  const Loaded& l = loaded();
  if (name_out) *name_out = l.name;
  if (core_out) *core_out = l.core;
  return l.fn != nullptr;
}

void blas_ref_sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                    const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const Loaded& l = loaded();
  if (!l.fn) {
    std::fprintf(stderr, "blas_ref_sgemm: no system BLAS with cblas_sgemm was found\n");
    std::abort();
  }
  l.fn(kRowMajor, transA ? kTrans : kNoTrans, transB ? kTrans : kNoTrans, static_cast<int>(M), static_cast<int>(N),
       static_cast<int>(K), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), beta, C, static_cast<int>(ldc));
}

}  // namespace simcsepp::cpu
