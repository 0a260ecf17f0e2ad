// Standalone benchmark of the training step's column reductions (not part of the addon): the linear
// layers' bias gradient (cpu::linear_backward with only dbias) and LayerNorm's parameter gradients
// (cpu::layernorm_backward with dinp null), row-blocked (column_sums.h), against the column-parallel loop
// they replaced (each thread owning 32-column pieces of every row), timed alternately in one process.
//
// Build from the repository root:
//   g++ -O3 -std=c++17 -ffp-contract=off -Wall -Wextra -Werror -Inative native/cpu/dev/column_sums_check.cpp
//       native/cpu/bert_ops.cpp native/cpu/column_sums.cpp native/cpu/gemm.cpp native/cpu/gemm_bf16.cpp
//       native/cpu/blas_ref.cpp native/cpu/uniforms.cpp native/cpu/dropout.cpp native/cpu/parallel.cpp -lpthread -ldl
//       -o column_sums_check
// Run:  SIMCSEPP_NUM_THREADS=2 ./column_sums_check [--reps N]
// Prints, per shape of the mini step (6144 rows), the median wall and CPU (all threads) milliseconds of
// each version and the rate at which it read its input (GB/s of wall clock).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/ops.h"
#include "cpu/parallel.h"

namespace {

using simcsepp::cpu::parallel_for;

// The replaced loops: 32-column chunks, every row in order, in double.
void column_parallel_bias(float* dbias, const float* dout, int64_t R, int64_t OC) {
  parallel_for(OC, 32, [&](int64_t c0, int64_t c1) {
    double s[4096] = {};
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = c0; c < c1; ++c) s[c - c0] += dout[r * OC + c];
    for (int64_t c = c0; c < c1; ++c) dbias[c] += static_cast<float>(s[c - c0]);
  });
}

void column_parallel_layernorm(float* dw, float* db, const float* dout, const float* inp, const float* mean,
                               const float* rstd, int64_t R, int64_t C) {
  parallel_for(C, 32, [&](int64_t c0, int64_t c1) {
    double sw[4096] = {}, sb[4096] = {};
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = c0; c < c1; ++c) {
        const float g = dout[r * C + c];
        sw[c - c0] += static_cast<double>(g) * ((inp[r * C + c] - mean[r]) * rstd[r]);
        sb[c - c0] += g;
      }
    for (int64_t c = c0; c < c1; ++c) {
      dw[c] += static_cast<float>(sw[c - c0]);
      db[c] += static_cast<float>(sb[c - c0]);
    }
  });
}

double seconds(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

struct Times {
  std::vector<double> wall, cpu;
  void add(double w, double c) {
    wall.push_back(w);
    cpu.push_back(c);
  }
  static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
};

template <class F>
void time_into(Times& t, F&& f) {
  const double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
  f();
  t.add(seconds(CLOCK_MONOTONIC) - w0, seconds(CLOCK_PROCESS_CPUTIME_ID) - c0);
}

void report(const char* what, int64_t R, int64_t C, double bytes, const Times& before, const Times& after) {
  const double wb = Times::median(before.wall), wa = Times::median(after.wall);
  std::printf(
      "%-10s %5lld x %-5lld  column-parallel %7.3f ms (CPU %7.3f) %6.1f GB/s   row-blocked %7.3f ms (CPU %7.3f) "
      "%6.1f GB/s   %.2fx\n",
      what, static_cast<long long>(R), static_cast<long long>(C), 1e3 * wb, 1e3 * Times::median(before.cpu),
      bytes / wb * 1e-9, 1e3 * wa, 1e3 * Times::median(after.cpu), bytes / wa * 1e-9, wb / wa);
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 41;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = std::max(1, std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: column_sums_check [--reps N]\n");
      return 2;
    }
  }
  std::printf("threads: %d, reps: %d (medians)\n", simcsepp::cpu::num_threads(), reps);
  constexpr int64_t R = 6144;  // mini's step: 3 views x 64 sentences x 32 tokens
  std::mt19937 gen(1);
  std::normal_distribution<float> normal;
  std::vector<float> dout(R * 1024), inp(R * 1024), mean(R), rstd(R);
  for (auto& v : dout) v = normal(gen);
  for (auto& v : inp) v = normal(gen);
  for (int64_t r = 0; r < R; ++r) mean[r] = 0.1f * normal(gen), rstd[r] = 1.0f + 0.1f * normal(gen);
  std::vector<float> a(2048), b(2048);
  for (int64_t C : {256, 768, 1024}) {
    Times before, after;
    for (int i = 0; i < reps; ++i) {
      time_into(before, [&] { column_parallel_bias(a.data(), dout.data(), R, C); });
      time_into(after, [&] {
        simcsepp::cpu::linear_backward(nullptr, nullptr, b.data(), dout.data(), nullptr, nullptr, R, 0, C, false,
                                       simcsepp::Precision::kFp32, nullptr, nullptr, nullptr, simcsepp::LinearBf16{});
      });
    }
    report("bias", R, C, 4.0 * R * C, before, after);
  }
  for (int64_t C : {256, 1024}) {
    Times before, after;
    for (int i = 0; i < reps; ++i) {
      time_into(before, [&] {
        column_parallel_layernorm(a.data(), a.data() + C, dout.data(), inp.data(), mean.data(), rstd.data(), R, C);
      });
      time_into(after, [&] {
        simcsepp::cpu::layernorm_backward(nullptr, b.data(), b.data() + C, dout.data(), inp.data(), nullptr,
                                          mean.data(), rstd.data(), R, C);
      });
    }
    report("layernorm", R, C, 8.0 * R * C, before, after);
  }
  return 0;
}
