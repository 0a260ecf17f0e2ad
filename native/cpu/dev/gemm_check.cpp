// Standalone correctness check and benchmark for simcsepp::cpu::sgemm (not part of the addon).
//
// Build from the repository root:
//   g++ -O3 -std=c++17 -ffp-contract=off -Wall -Wextra -Werror -Inative native/cpu/dev/gemm_check.cpp
//       native/cpu/gemm.cpp native/cpu/gemm_bf16.cpp native/cpu/blas_ref.cpp native/cpu/parallel.cpp
//       native/cpu/bert_ops.cpp native/cpu/column_sums.cpp native/cpu/uniforms.cpp native/cpu/dropout.cpp
//       -lpthread -ldl -o gemm_check
//   (bert_ops.cpp for the GELU of the GEMM's epilogue; column_sums.cpp, uniforms.cpp and dropout.cpp for bert_ops.cpp)
// Run:  ./gemm_check [--check-only | --bench-only] [--reps N] [--kernel NAME] [--quick]
//             [--shape M N K]   (benchmark only that shape)
//             [--bert tiny|mini|small|base]   (the products of one training step of that model)
//             [--cpu-time]   (time by the thread's CPU time: with SIMCSEPP_NUM_THREADS=1, a per-core
//                             comparison that holds on a machine shared with other processes)
//   (a) checks every available micro-kernel against a double-precision reference: all four
//       transpose combinations, sizes {0,1,2,3,7,17,63,64,65,97,129,257}^3, several alpha/beta,
//       padded leading dimensions, NaN in C with beta = 0, and shapes that cross the cache blocks;
//   (b) times GFLOP/s at M in {2048, 6144}, N, K in {768, 3072} for C = A*B, A*B^T and A^T*B,
//       ours vs the system BLAS (if one loads) with the same thread count; median of --reps runs.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "cpu/blas_ref.h"
#include "cpu/gemm.h"
#include "cpu/parallel.h"

using simcsepp::cpu::blas_ref_available;
using simcsepp::cpu::blas_ref_sgemm;
using simcsepp::cpu::num_threads;
using simcsepp::cpu::sgemm;
using simcsepp::cpu::sgemm_force_kernel;
using simcsepp::cpu::sgemm_kernel_name;

namespace {

std::mt19937_64 g_rng(12345);

void fill_random(std::vector<float>& v) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (auto& x : v) x = d(g_rng);
}

struct Case {
  bool ta, tb;
  int64_t M, N, K;
  float alpha, beta;
  int64_t pad;  // extra leading-dimension padding for A, B and C
  bool nan_c;   // fill C with NaN (only with beta == 0)
};

struct Operands {
  int64_t lda, ldb, ldc;
  std::vector<float> A, B, C0;
  std::vector<double> ref;  // M x N
};

Operands make_operands(const Case& c) {
  Operands o;
  const int64_t arows = c.ta ? c.K : c.M, acols = c.ta ? c.M : c.K;
  const int64_t brows = c.tb ? c.N : c.K, bcols = c.tb ? c.K : c.N;
  o.lda = acols + c.pad;
  o.ldb = bcols + c.pad;
  o.ldc = c.N + c.pad;
  o.A.resize(static_cast<size_t>(std::max<int64_t>(1, arows * o.lda)));
  o.B.resize(static_cast<size_t>(std::max<int64_t>(1, brows * o.ldb)));
  o.C0.resize(static_cast<size_t>(std::max<int64_t>(1, c.M * o.ldc)));
  fill_random(o.A);
  fill_random(o.B);
  fill_random(o.C0);
  if (c.nan_c) std::fill(o.C0.begin(), o.C0.end(), std::numeric_limits<float>::quiet_NaN());
  o.ref.assign(static_cast<size_t>(c.M * c.N), 0.0);
  std::vector<double> acc(static_cast<size_t>(c.N));
  for (int64_t i = 0; i < c.M; ++i) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t k = 0; k < c.K; ++k) {
      const double a = c.ta ? o.A[k * o.lda + i] : o.A[i * o.lda + k];
      if (c.tb) {
        for (int64_t j = 0; j < c.N; ++j) acc[j] += a * o.B[j * o.ldb + k];
      } else {
        const float* b = &o.B[k * o.ldb];
        for (int64_t j = 0; j < c.N; ++j) acc[j] += a * b[j];
      }
    }
    for (int64_t j = 0; j < c.N; ++j) {
      double v = static_cast<double>(c.alpha) * acc[j];
      if (c.beta != 0.0f) v += static_cast<double>(c.beta) * o.C0[i * o.ldc + j];
      o.ref[i * c.N + j] = v;
    }
  }
  return o;
}

// Returns the relative error (max |C - ref| / max |ref|), or +inf on a non-finite result or a
// write outside the M x N window.
double run_case(const Case& c, const Operands& o) {
  std::vector<float> C = o.C0;
  sgemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, o.A.data(), o.lda, o.B.data(), o.ldb, c.beta, C.data(), o.ldc);
  double max_err = 0.0, max_ref = 0.0;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < o.ldc; ++j) {
      const size_t idx = static_cast<size_t>(i * o.ldc + j);
      if (j >= c.N) {  // padding must be untouched (bitwise, NaN included)
        if (std::memcmp(&C[idx], &o.C0[idx], sizeof(float)) != 0) return std::numeric_limits<double>::infinity();
        continue;
      }
      const double r = o.ref[i * c.N + j];
      if (!std::isfinite(C[idx])) return std::numeric_limits<double>::infinity();
      max_err = std::max(max_err, std::fabs(C[idx] - r));
      max_ref = std::max(max_ref, std::fabs(r));
    }
  }
  if (max_ref == 0.0) return max_err;  // all-zero result: the error itself must be 0
  return max_err / max_ref;
}

std::vector<std::string> available_kernels() {
  std::vector<std::string> ks;
  for (const char* k : {"generic", "avx2", "avx512"}) {
    if (sgemm_force_kernel(k)) ks.push_back(k);
  }
  return ks;
}

int check(const std::vector<std::string>& kernels, bool quick) {
  std::vector<Case> cases;
  const std::vector<int64_t> sizes = quick ? std::vector<int64_t>{0, 1, 3, 17, 65, 129}
                                           : std::vector<int64_t>{0, 1, 2, 3, 7, 17, 63, 64, 65, 97, 129, 257};
  const float alphas[] = {1.0f, -0.5f, 2.0f, 0.0f};
  const float betas[] = {0.0f, 1.0f, 0.25f, -1.0f};
  int variant = 0;
  for (int t = 0; t < 4; ++t) {
    for (int64_t M : sizes) {
      for (int64_t N : sizes) {
        for (int64_t K : sizes) {
          Case c;
          c.ta = t & 1;
          c.tb = t & 2;
          c.M = M;
          c.N = N;
          c.K = K;
          // Cycle through alpha/beta/padding/NaN variants (alpha == 0 only occasionally).
          const int v = variant++;
          c.alpha = (v % 13 == 0) ? alphas[3] : alphas[v % 3];
          c.beta = betas[(v / 3) % 4];
          c.pad = (v % 5 == 0) ? 0 : (v % 5) * 3;
          c.nan_c = c.beta == 0.0f && (v % 2 == 0);
          cases.push_back(c);
        }
      }
    }
  }
  // Shapes that cross the MC / KC / NC blocks, tall-skinny and short-wide ones, and the
  // M-split / N-split threading paths.
  const int64_t big[][3] = {{300, 4200, 600}, {1000, 50, 700},   {5, 5000, 300},   {2, 3000, 2000},
                            {1, 2049, 513},   {2049, 1, 513},    {777, 333, 1029}, {13, 1500, 257},
                            {4500, 40, 90},   {100, 100, 10000}, {1111, 4111, 33}};
  for (int t = 0; t < 4; ++t) {
    for (const auto& s : big) {
      for (int bv = 0; bv < 2; ++bv) {
        Case c;
        c.ta = t & 1;
        c.tb = t & 2;
        c.M = s[0];
        c.N = s[1];
        c.K = s[2];
        c.alpha = bv ? 1.0f : -1.5f;
        c.beta = bv ? 0.0f : 0.5f;
        c.pad = bv ? 5 : 0;
        c.nan_c = bv;
        cases.push_back(c);
      }
    }
  }

  std::vector<double> worst(kernels.size(), 0.0);
  int failures = 0;
  for (const Case& c : cases) {
    const Operands o = make_operands(c);
    for (size_t ki = 0; ki < kernels.size(); ++ki) {
      sgemm_force_kernel(kernels[ki].c_str());
      const double err = run_case(c, o);
      worst[ki] = std::max(worst[ki], err);
      if (!(err < 1e-5)) {
        if (++failures <= 20) {
          std::printf(
              "FAIL kernel=%s ta=%d tb=%d M=%lld N=%lld K=%lld alpha=%g beta=%g pad=%lld "
              "nanC=%d rel_err=%g\n",
              kernels[ki].c_str(), c.ta, c.tb, static_cast<long long>(c.M), static_cast<long long>(c.N),
              static_cast<long long>(c.K), c.alpha, c.beta, static_cast<long long>(c.pad), c.nan_c, err);
        }
      }
    }
  }
  std::printf("correctness: %zu cases x %zu kernels, %d failures\n", cases.size(), kernels.size(), failures);
  for (size_t ki = 0; ki < kernels.size(); ++ki)
    std::printf("  kernel %-8s worst rel err %.3g\n", kernels[ki].c_str(), worst[ki]);
  return failures;
}

// sgemm from several std::threads at once and from inside parallel_for chunks (nested: serial).
int check_concurrent() {
  int failures = 0;
  const int64_t M = 300, N = 260, K = 500;
  std::vector<Case> cs;
  for (int t = 0; t < 4; ++t) cs.push_back(Case{bool(t & 1), bool(t & 2), M, N, K, 1.0f, 0.0f, 3, true});
  std::vector<Operands> os;
  for (const Case& c : cs) os.push_back(make_operands(c));
  std::vector<double> errs(8, 0.0);
  std::vector<std::thread> ths;
  for (int t = 0; t < 4; ++t) {
    ths.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) errs[t] = std::max(errs[t], run_case(cs[t], os[t]));
    });
  }
  for (auto& th : ths) th.join();
  simcsepp::cpu::parallel_for(4, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      for (int rep = 0; rep < 5; ++rep) errs[4 + t] = std::max(errs[4 + t], run_case(cs[t], os[t]));
  });
  for (size_t i = 0; i < errs.size(); ++i) {
    if (!(errs[i] < 1e-5)) {
      ++failures;
      std::printf("FAIL concurrent case %zu rel_err=%g\n", i, errs[i]);
    }
  }
  std::printf("concurrency (4 std::threads, nested in parallel_for): %d failures\n", failures);
  return failures;
}

bool g_cpu_time = false;  // --cpu-time

double now_s() {
  if (g_cpu_time) {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int64_t g_only_m = 0, g_only_n = 0, g_only_k = 0;  // --shape filter (0: all)

struct Op {
  const char* name;
  bool ta, tb;
};
const Op kNN = {"NN  A*B", false, false}, kNT = {"NT  A*B^T", false, true}, kTN = {"TN  A^T*B", true, false};

struct Shape {
  Op op;
  int64_t M, N, K;
};

// The products of one training step of a BERT with hidden size H and MLP size I on R = 3 * 64 * 32 rows
// (three views of B = 64 sentences of T = 32 tokens), per linear layer [OC, C]: the forward
// out = inp * W^T (R, OC, C), the input gradient dinp = dout * W (R, C, OC) and the weight gradient
// dW = dout^T * inp (OC, C, R); layers q/k/v as one [3H, H], the attention output [H, H], the MLP's [I, H], [H, I].
std::vector<Shape> bert_shapes(int64_t H, int64_t I) {
  const int64_t R = 3 * 64 * 32;
  const int64_t layers[][2] = {{3 * H, H}, {H, H}, {I, H}, {H, I}};
  std::vector<Shape> v;
  for (const auto& l : layers) v.push_back({kNT, R, l[0], l[1]});
  for (const auto& l : layers) v.push_back({kNN, R, l[1], l[0]});
  for (const auto& l : layers) v.push_back({kTN, l[0], l[1], R});
  return v;
}

// M in {2048, 6144}, N and K in {768, 3072} in the three forms, or the one --shape.
std::vector<Shape> square_shapes() {
  const std::vector<int64_t> Ms = g_only_m ? std::vector<int64_t>{g_only_m} : std::vector<int64_t>{2048, 6144};
  std::vector<int64_t> NKs = {768, 3072};
  if (g_only_m) NKs = g_only_n == g_only_k ? std::vector<int64_t>{g_only_n} : std::vector<int64_t>{g_only_n, g_only_k};
  std::vector<Shape> v;
  for (const Op& op : {kNN, kNT, kTN})
    for (int64_t M : Ms)
      for (int64_t N : NKs)
        for (int64_t K : NKs) {
          if (g_only_m && (M != g_only_m || N != g_only_n || K != g_only_k)) continue;
          v.push_back({op, M, N, K});
        }
  return v;
}

void bench(int reps, bool have_blas, const std::vector<Shape>& shapes) {
  std::printf("\n%-10s %6s %6s %6s | %9s %9s | %7s || %9s %9s\n", "op", "M", "N", "K", "ours", "blas", "ratio", "ours",
              "blas");
  std::printf("%-10s %6s %6s %6s | %9s %9s | %7s || %9s %9s\n", "", "", "", "", "median", "median", "", "best", "best");
  double sum_ratio_log = 0.0;
  int n_ratio = 0;
  double min_ratio = 1e9;
  double flops_total = 0.0, ours_s = 0.0, blas_s = 0.0;
  for (const Shape& sh : shapes) {
    const Op& op = sh.op;
    const int64_t M = sh.M, N = sh.N, K = sh.K;
    std::vector<float> A(static_cast<size_t>(M * K)), B(static_cast<size_t>(K * N)), C(static_cast<size_t>(M * N));
    fill_random(A);
    fill_random(B);
    const int64_t lda = op.ta ? M : K, ldb = op.tb ? K : N;
    const double flops = 2.0 * M * N * K;
    auto time_one = [&](bool blas) {
      const double t0 = now_s();
      if (blas)
        blas_ref_sgemm(op.ta, op.tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
      else
        sgemm(op.ta, op.tb, M, N, K, 1.0f, A.data(), lda, B.data(), ldb, 0.0f, C.data(), N);
      return flops / (now_s() - t0) * 1e-9;
    };
    // Interleaved, so that load from other processes hits both alike, with a pause after
    // each OpenBLAS call: its idle workers spin for a while (~0.1 s) and would otherwise
    // steal a core from ours. Each timed call follows an untimed one of the same side, and the
    // side that goes first alternates: after the pause, a virtual machine's cores run the first
    // call cold, up to several times slower (measured here: our GEMM at 20-35 GFLOP/s per core
    // right after the pause, 120-140 warm), which would otherwise count against whichever side
    // goes first.
    const auto pause = [] { std::this_thread::sleep_for(std::chrono::milliseconds(250)); };
    std::vector<double> ours, ref;
    const auto timed = [&](bool blas) {
      time_one(blas);  // warm-up
      (blas ? ref : ours).push_back(time_one(blas));
    };
    for (int r = 0; r < reps; ++r) {
      if (have_blas) pause();
      const bool blas_first = have_blas && r % 2 == 1;
      if (blas_first) {
        timed(true);
        pause();
      }
      timed(false);
      if (have_blas && !blas_first) timed(true);
    }
    const double go = median(ours);
    flops_total += flops;
    ours_s += flops / (go * 1e9);
    if (have_blas) {
      const double gb = median(ref);
      blas_s += flops / (gb * 1e9);
      const double ratio = go / gb;
      sum_ratio_log += std::log(ratio);
      ++n_ratio;
      min_ratio = std::min(min_ratio, ratio);
      std::printf("%-10s %6lld %6lld %6lld | %9.1f %9.1f | %6.0f%% || %9.1f %9.1f\n", op.name,
                  static_cast<long long>(M), static_cast<long long>(N), static_cast<long long>(K), go, gb,
                  100.0 * ratio, *std::max_element(ours.begin(), ours.end()),
                  *std::max_element(ref.begin(), ref.end()));
    } else {
      std::printf("%-10s %6lld %6lld %6lld | %9.1f %9s | %7s || %9.1f %9s\n", op.name, static_cast<long long>(M),
                  static_cast<long long>(N), static_cast<long long>(K), go, "-", "-",
                  *std::max_element(ours.begin(), ours.end()), "-");
    }
    std::fflush(stdout);
  }
  if (n_ratio > 0)
    std::printf("ours / blas: geometric mean %.0f%%, worst %.0f%%\n", 100.0 * std::exp(sum_ratio_log / n_ratio),
                100.0 * min_ratio);
  std::printf("all shapes once: %.1f GFLOP, ours %.3f s (%.1f GFLOP/s)", flops_total * 1e-9, ours_s,
              flops_total * 1e-9 / ours_s);
  if (have_blas) std::printf(", blas %.3f s (%.1f GFLOP/s)", blas_s, flops_total * 1e-9 / blas_s);
  std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
  bool do_check = true, do_bench = true, quick = false;
  int reps = 5;
  const char* kernel = nullptr;
  std::string bert;  // --bert mini|base: the products of one training step instead of the square set
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--check-only")) {
      do_bench = false;
    } else if (!std::strcmp(argv[i], "--bench-only")) {
      do_check = false;
    } else if (!std::strcmp(argv[i], "--quick")) {
      quick = true;
    } else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--shape") && i + 3 < argc) {
      g_only_m = std::atoll(argv[++i]);
      g_only_n = std::atoll(argv[++i]);
      g_only_k = std::atoll(argv[++i]);
    } else if (!std::strcmp(argv[i], "--cpu-time")) {
      g_cpu_time = true;
    } else if (!std::strcmp(argv[i], "--bert") && i + 1 < argc) {
      bert = argv[++i];
    } else if (!std::strcmp(argv[i], "--kernel") && i + 1 < argc) {
      kernel = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: %s [--check-only|--bench-only] [--quick] [--reps N] "
                   "[--shape M N K | --bert tiny|mini|small|base] [--cpu-time] [--kernel generic|avx2|avx512]\n",
                   argv[0]);
      return 2;
    }
  }

  const int threads = num_threads();
  if (g_cpu_time && threads != 1) {
    std::fprintf(stderr, "--cpu-time times one thread: run with SIMCSEPP_NUM_THREADS=1\n");
    return 2;
  }
  // OpenBLAS reads this when it is loaded, so set it before the first blas_ref call.
  setenv("OPENBLAS_NUM_THREADS", std::to_string(threads).c_str(), 1);
  std::string blas_name, blas_core;
  const bool have_blas = blas_ref_available(&blas_name, &blas_core);
  const char* ct = std::getenv("OPENBLAS_CORETYPE");
  const char* l2 = std::getenv("OPENBLAS_L2_SIZE");
  std::printf(
      "threads %d | default kernel %s | system BLAS: %s (%s) | OPENBLAS_CORETYPE=%s "
      "OPENBLAS_L2_SIZE=%s\n",
      threads, sgemm_kernel_name(), have_blas ? blas_name.c_str() : "(none)", blas_core.c_str(), ct ? ct : "(unset)",
      l2 ? l2 : "(unset)");

  const std::string default_kernel = sgemm_kernel_name();
  int failures = 0;
  if (do_check) {
    std::vector<std::string> ks = available_kernels();
    if (kernel) ks = {kernel};
    failures = check(ks, quick);
    sgemm_force_kernel(default_kernel.c_str());
    failures += check_concurrent();
  }
  if (do_bench) {
    const std::string k = kernel ? kernel : default_kernel;
    if (!sgemm_force_kernel(k.c_str())) {
      std::fprintf(stderr, "kernel %s is not available here\n", k.c_str());
      return 2;
    }
    std::printf("\nbenchmark: kernel %s, %d threads, median of %d runs\n", sgemm_kernel_name(), threads, reps);
    std::vector<Shape> shapes = square_shapes();
    if (bert == "tiny") shapes = bert_shapes(128, 512);
    if (bert == "mini") shapes = bert_shapes(256, 1024);
    if (bert == "small") shapes = bert_shapes(512, 2048);
    if (bert == "base") shapes = bert_shapes(768, 3072);
    bench(reps, have_blas, shapes);
  }
  return failures == 0 ? 0 : 1;
}
