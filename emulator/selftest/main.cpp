// The emulator's own tests: correct kernels give exact results, broken ones are caught with a report
// that names the fault, the kernel, the thread and the source line. Prints one line per check and ends
// with "N passed, N failed"; exits non-zero if any failed. Run by `npm run test:emulated`.
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "kernels.h"

namespace {

using namespace cuemu_selftest;

int passed = 0, failed = 0;

void check(bool ok, const std::string& name, const std::string& detail = "") {
  if (ok) {
    ++passed;
    std::printf("ok - %s\n", name.c_str());
  } else {
    ++failed;
    std::printf("not ok - %s%s%s\n", name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
  }
}

// Launches and returns "" on success, else cudaGetErrorString of the launch's error.
template <class... P, class... A>
std::string run(const char* name, void (*k)(P...), dim3 grid, dim3 block, A... args) {
  cudaError_t e = cuemu::launch_kernel(name, k, grid, block, 0, nullptr, args...);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();  // a deferred launch runs (and faults) here
  const std::string report = e == cudaSuccess ? "" : cudaGetErrorString(e);
  cuemu::clear_fault();  // a fault ends the device's context (sticky): each check starts on a working one
  (void)cudaGetLastError();
  return report;
}

// run() with `smem` bytes of dynamic shared memory.
template <class... P, class... A>
std::string run_smem(const char* name, void (*k)(P...), dim3 grid, dim3 block, size_t smem, A... args) {
  cudaError_t e = cuemu::launch_kernel(name, k, grid, block, smem, nullptr, args...);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  const std::string report = e == cudaSuccess ? "" : cudaGetErrorString(e);
  cuemu::clear_fault();
  (void)cudaGetLastError();
  return report;
}

// A broken kernel must fail with a report holding every one of `needles`.
void expect_fault(const std::string& name, const std::string& report, std::vector<std::string> needles) {
  std::string missing;
  for (const std::string& n : needles)
    if (report.find(n) == std::string::npos) missing += " '" + n + "'";
  check(!report.empty() && missing.empty(), name,
        report.empty() ? "no fault reported" : "report lacks" + missing + ": " + report);
  if (!report.empty() && missing.empty()) std::printf("#   %s\n", report.c_str());
}

template <class T>
T* device(const std::vector<T>& host) {
  void* p = nullptr;
  cudaMalloc(&p, host.size() * sizeof(T));
  cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice);
  return static_cast<T*>(p);
}

template <class T>
std::vector<T> host(const T* p, size_t n) {
  std::vector<T> h(n);
  cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

}  // namespace

int main() {
  // Correct kernels: exact results.
  {
    const int n = 1000;
    std::vector<float> in(n);
    for (int i = 0; i < n; ++i) in[i] = static_cast<float>(i % 7);
    float* din = device(in);
    float* dout = device(std::vector<float>(256, 0.0f));
    const std::string r = run("block_sum", block_sum, 4, 256, static_cast<const float*>(din), dout, n);
    const std::vector<float> out = host(dout, 4);
    bool ok = r.empty();
    for (int b = 0; b < 4; ++b) {
      float want = 0;
      for (int i = b * 256; i < std::min(n, b * 256 + 256); ++i) want += in[i];
      ok = ok && out[b] == want;
    }
    check(ok, "block_sum: a shared-memory reduction with barriers gives exact sums", r);
    expect_fault(
        "missing __syncthreads(): read-after-write race reported",
        run("block_sum_missing_barrier", block_sum_missing_barrier, 1, 256, static_cast<const float*>(din), dout, n),
        {"shared-memory race", "block_sum_missing_barrier", "block (0,0,0)", "kernels.cu:", "s+"});
    expect_fault("write-after-read race reported",
                 run("reuse_without_barrier", reuse_without_barrier, 1, 64, static_cast<const float*>(din), dout),
                 {"shared-memory race", "thread (1,0,0): writes 4 bytes at s+4", "which thread (0,0,0) read"});
    expect_fault("divergent __syncthreads() reported", run("divergent_barrier", divergent_barrier, 1, 32, dout),
                 {"divergent __syncthreads()", "kernels.cu:", "thread (16,0,0)"});
    expect_fault("__syncthreads() after some threads returned reported",
                 run("barrier_after_early_return", barrier_after_early_return, 1, 64, dout, 40),
                 {"divergent __syncthreads()", "has returned"});
    check(run("barrier_after_early_return", barrier_after_early_return, 1, 64, dout, 64).empty(),
          "a barrier every thread reaches is fine");
    float* small = device(std::vector<float>(8, 1.0f));
    expect_fault("read past the end: names the allocation and the distance",
                 run("read_past_end", read_past_end, 1, 32, static_cast<const float*>(small), dout, 8),
                 {"out-of-bounds read", "4 bytes at", "just past the end of a 32-byte device allocation",
                  "thread (8,0,0)", "kernels.cu:"});
    expect_fault("write past a __shared__ array reported", run("shared_overrun", shared_overrun, 1, 32, dout),
                 {"out-of-bounds shared-memory write", "past the end of __shared__ s", "thread (31,0,0)"});
    {
      // Dynamic shared memory: 20,000 floats (80,000 bytes, past the 48 KB default) once the kernel's limit is raised.
      const int n = 20000;
      const size_t bytes = n * sizeof(float);
      std::vector<float> hin(n);
      for (int i = 0; i < n; ++i) hin[i] = static_cast<float>(i) * 0.5f;
      float* rin = device(hin);
      float* rout = device(std::vector<float>(n, 0.0f));
      const std::string refused =
          run_smem("dynamic_reverse", dynamic_reverse, 1, 256, bytes, static_cast<const float*>(rin), rout, n, 1, 0);
      check(
          refused.find("80000 bytes of dynamic shared memory exceed the kernel's limit of 49152") != std::string::npos,
          "more than 48 KB of dynamic shared memory refused until the kernel's attribute allows it", refused);
      check(cudaFuncSetAttribute(dynamic_reverse, cudaFuncAttributeMaxDynamicSharedMemorySize, 99 * 1024 + 1) ==
                    cudaErrorInvalidValue &&
                cudaGetLastError() == cudaErrorInvalidValue,
            "cudaFuncSetAttribute past the opt-in limit (99 KB) refused");
      int optin = 0;
      check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) == cudaSuccess &&
                optin == 99 * 1024,
            "cudaDevAttrMaxSharedMemoryPerBlockOptin: 99 KB (sm_86's and sm_89's)");
      check(cudaFuncSetAttribute(dynamic_reverse, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(bytes)) == cudaSuccess,
            "cudaFuncSetAttribute raises the kernel's limit");
      const std::string r =
          run_smem("dynamic_reverse", dynamic_reverse, 2, 256, bytes, static_cast<const float*>(rin), rout, n, 1, 0);
      const std::vector<float> got = host(rout, n);
      bool ok = r.empty();
      for (int i = 0; i < n; ++i) ok = ok && got[static_cast<size_t>(i)] == hin[static_cast<size_t>(n - 1 - i)];
      check(ok, "80,000 bytes of dynamic shared memory: each block reverses the array through it", r);
      expect_fault(
          "a write past the launch's dynamic shared memory reported",
          run_smem("dynamic_reverse", dynamic_reverse, 1, 256, bytes, static_cast<const float*>(rin), rout, n, 1, 1),
          {"out-of-bounds shared-memory write", "past the end of the dynamic shared memory (80000 bytes",
           "thread (32,0,0)"});
      expect_fault(
          "a race in dynamic shared memory reported",
          run_smem("dynamic_reverse", dynamic_reverse, 1, 256, bytes, static_cast<const float*>(rin), rout, n, 0, 0),
          {"shared-memory race", "dynamic shared memory+", "no __syncthreads()"});
      expect_fault(
          "dynamic shared memory used by a launch without any reported",
          run_smem("dynamic_reverse", dynamic_reverse, 1, 32, 0, static_cast<const float*>(rin), rout, 4, 1, 0),
          {"out-of-bounds shared-memory write", "past the end of the dynamic shared memory (0 bytes"});
      cudaFree(rin);
      cudaFree(rout);
    }
    float* vin = device(std::vector<float>(8 * 4 + 4, 1.0f));
    float* vout = device(std::vector<float>(8 * 4, 0.0f));
    check(run("vector_copy", vector_copy, 1, 8, static_cast<const float*>(vin), vout, 0).empty(),
          "float4 copy between 16-byte aligned pointers is fine");
    expect_fault("float4 read at a 4-byte aligned address reported",
                 run("vector_copy", vector_copy, 1, 8, static_cast<const float*>(vin), vout, 1),
                 {"misaligned address", "a 16-byte read at byte 4 of the 144-byte device allocation", "kernels.cu:"});
    static float hostBuf[32];
    expect_fault("host pointer dereferenced in a kernel reported", run("touch", touch, 1, 32, hostBuf),
                 {"out-of-bounds write", "not device memory"});
    float* freed = device(std::vector<float>(32, 0.0f));
    cudaFree(freed);
    expect_fault("use after cudaFree reported", run("touch", touch, 1, 32, freed), {"freed"});
    check(cudaFree(freed) == cudaErrorInvalidValue, "cudaFree twice is an error");
    (void)cudaGetLastError();
    expect_fault("shuffle naming an exited lane reported",
                 run("shuffle_with_exited_lane", shuffle_with_exited_lane, 1, 32, dout),
                 {"__shfl_xor_sync", "lane 0", "returned"});
    check(run("touch", touch, dim3(1), dim3(2048), dout).find("exceeds 1024 threads") != std::string::npos,
          "a block of 2048 threads is an invalid configuration");
    cudaFree(din);
    cudaFree(dout);
    cudaFree(small);
  }
  // Warp intrinsics, lane by lane.
  {
    std::vector<int> in(64);
    for (int i = 0; i < 64; ++i) in[i] = (i * 5 + 3) % 11;
    int* din = device(in);
    int* dout = device(std::vector<int>(64 * 6, -1));
    const std::string r = run("warp_ops", warp_ops, 1, 64, static_cast<const int*>(din), dout);
    const std::vector<int> out = host(dout, 64 * 6);
    bool ok = r.empty();
    for (int w = 0; w < 2; ++w) {
      int sum = 0, any7 = 0, all = 1;
      unsigned ballot = 0;
      for (int l = 0; l < 32; ++l) {
        const int v = in[w * 32 + l];
        sum += v;
        any7 |= v == 7;
        all &= v >= 0;
        if (v % 2 == 1) ballot |= 1u << l;
      }
      for (int l = 0; l < 32; ++l) {
        const int t = w * 32 + l, *o = &out[t * 6];
        const int down = (l % 8) + 2 < 8 ? in[t + 2] : in[t];
        ok = ok && o[0] == sum && o[1] == in[w * 32 + 5] && o[2] == (l == 0 ? in[t] : in[t - 1]) && o[3] == down &&
             static_cast<unsigned>(o[4]) == ballot && o[5] == any7 + 2 * all;
      }
    }
    check(ok, "warp intrinsics: shfl_xor sum, shfl, shfl_up, shfl_down with width 8, ballot, any, all", r);
    cudaFree(din);
    cudaFree(dout);
  }
  // Atomics and __syncthreads_count.
  {
    float* f = device(std::vector<float>(1, 0.0f));
    double* d = device(std::vector<double>(1, 0.0));
    int* mx = device(std::vector<int>(1, -1));
    int* counted = device(std::vector<int>(1, 0));
    const std::string r = run("atomics", atomics, 3, 100, f, d, mx, counted);
    const bool ok = r.empty() && host(f, 1)[0] == 300.0f && host(d, 1)[0] == 150.0 && host(mx, 1)[0] == 299 &&
                    host(counted, 1)[0] == 3 * 34;
    check(ok, "atomicAdd (float, double), atomicMax, __syncthreads_count", r);
    cudaFree(f);
    cudaFree(d);
    cudaFree(mx);
    cudaFree(counted);
  }
  // CUEMU_GLOBAL_RACES=1: device memory that one block writes and another reads in the same launch.
  {
    float* out = device(std::vector<float>(16, 0.0f));
    int* mx = device(std::vector<int>(1, -1));
    float* f = device(std::vector<float>(1, 0.0f));
    double* d = device(std::vector<double>(1, 0.0));
    int* counted = device(std::vector<int>(1, 0));
    setenv("CUEMU_GLOBAL_RACES", "1", 1);
    const std::string racy = run("neighbour_read", neighbour_read, 8, 32, out, 1);
    const std::string own = run("neighbour_read", neighbour_read, 8, 32, out, 0);
    const std::string atomicOnly = run("atomics", atomics, 3, 100, f, d, mx, counted);
    unsetenv("CUEMU_GLOBAL_RACES");
    const std::string unchecked = run("neighbour_read", neighbour_read, 8, 32, out, 1);
    check(racy.find("global-memory race between blocks") != std::string::npos &&
              racy.find("which block (") != std::string::npos,
          "CUEMU_GLOBAL_RACES: a block reading what another block of the launch wrote is reported", racy);
    check(own.empty() && atomicOnly.empty() && unchecked.empty(),
          "CUEMU_GLOBAL_RACES: blocks on their own data, and atomics, are not reported (nor anything when unset)",
          own + atomicOnly + unchecked);
    cudaFree(out);
    cudaFree(mx);
    cudaFree(f);
    cudaFree(d);
    cudaFree(counted);
  }
  // CUEMU_BLOCK_ORDER: index (the default), reverse, shuffle:<seed>.
  {
    constexpr int kBlocks = 64;
    const auto ran = [&](const char* how, std::vector<int>* order) {
      if (how != nullptr)
        setenv("CUEMU_BLOCK_ORDER", how, 1);
      else
        unsetenv("CUEMU_BLOCK_ORDER");
      int* o = device(std::vector<int>(kBlocks, -1));
      int* next = device(std::vector<int>(1, 0));
      float* sum = device(std::vector<float>(1, 0.0f));
      const std::string r = run("order_sum", order_sum, kBlocks, 32, o, next, sum);
      *order = host(o, kBlocks);
      const float total = r.empty() ? host(sum, 1)[0] : -1.0f;
      cudaFree(o);
      cudaFree(next);
      cudaFree(sum);
      return total;
    };
    std::vector<int> index, reverse, shuffled, again, other;
    const float sIndex = ran(nullptr, &index), sReverse = ran("reverse", &reverse);
    const float sShuffled = ran("shuffle:7", &shuffled);
    ran("shuffle:7", &again);
    ran("shuffle:8", &other);
    unsetenv("CUEMU_BLOCK_ORDER");
    bool inOrder = true, reversed = true;
    for (int b = 0; b < kBlocks; ++b) {
      inOrder &= index[static_cast<size_t>(b)] == b;
      reversed &= reverse[static_cast<size_t>(b)] == kBlocks - 1 - b;
    }
    std::vector<int> sorted = shuffled;
    std::sort(sorted.begin(), sorted.end());
    check(inOrder && reversed && sorted == index && shuffled != index && other != shuffled,
          "CUEMU_BLOCK_ORDER runs the blocks in index order, reversed, or shuffled (a permutation, another per seed)");
    check(sIndex != sReverse && sIndex != sShuffled,
          "an order-dependent float atomic sum changes with the block order (what the block-order tests catch)");
  }
  // WMMA: exact against a host product of the same rounded inputs, accumulated in the same order.
  {
    std::vector<__half> A(32 * 32), B(32 * 32);
    std::vector<float> af(32 * 32), bf(32 * 32);
    for (int i = 0; i < 32 * 32; ++i) {
      A[i] = __half(static_cast<float>((i * 37) % 101) / 50.0f - 1.0f);
      B[i] = __half(static_cast<float>((i * 53) % 97) / 40.0f - 1.2f);
      af[i] = static_cast<float>(A[i]);
      bf[i] = static_cast<float>(B[i]);
    }
    __half* dA = device(A);
    __half* dB = device(B);
    float* dC = device(std::vector<float>(32 * 32, 0.0f));
    const std::string r = run("wmma_gemm_half", wmma_gemm_half, 1, 128, static_cast<const __half*>(dA),
                              static_cast<const __half*>(dB), dC);
    const std::vector<float> C = host(dC, 32 * 32);
    bool ok = r.empty();
    for (int m = 0; m < 32; ++m)
      for (int n = 0; n < 32; ++n) {
        float acc = 0.0f;
        for (int k = 0; k < 32; ++k) acc = fmaf(af[m * 32 + k], bf[n * 32 + k], acc);  // B is column-major
        ok = ok && C[m * 32 + n] == acc;
      }
    check(ok, "wmma m16n16k16 half -> float: 4 warps, 2 k-steps, exact", r);
    expect_fault("wmma by half a warp reported",
                 run("wmma_half_warp", wmma_half_warp, 1, 32, static_cast<const __half*>(dA), dC),
                 {"wmma_half_warp", "returned"});
    __half* tiny = device(std::vector<__half>(16 * 8));
    expect_fault("wmma load past the end of a buffer reported",
                 run("wmma_load_tile", wmma_load_tile, 1, 32, static_cast<const __half*>(tiny), dC),
                 {"out-of-bounds read", "past the end of a 256-byte device allocation"});
    __half* big = device(std::vector<__half>(32 * 32));
    check(run("wmma_load_at", wmma_load_at, 1, 32, static_cast<const __half*>(big), dC, 16, 24u).empty(),
          "wmma load at a 32-byte aligned pointer with ldm 24 halves is fine");
    expect_fault("wmma load at a pointer that is not 32-byte aligned reported",
                 run("wmma_load_at", wmma_load_at, 1, 32, static_cast<const __half*>(big), dC, 8, 16u),
                 {"misaligned address", "wmma::load_matrix_sync", "not 32-byte aligned"});
    expect_fault("wmma load with ldm not a multiple of 16 bytes reported",
                 run("wmma_load_at", wmma_load_at, 1, 32, static_cast<const __half*>(big), dC, 0, 12u),
                 {"misaligned address", "ldm 12, not a multiple of 8 elements"});
    std::vector<float> F(16 * 16), G(16 * 16);
    for (int i = 0; i < 256; ++i) {
      F[i] = static_cast<float>((i * 29) % 83) / 7.0f - 5.0f + 1e-4f;
      G[i] = static_cast<float>((i * 31) % 79) / 9.0f - 4.0f - 3e-5f;
    }
    float* dF = device(F);
    float* dG = device(G);
    float* dH = device(std::vector<float>(256, 0.0f));
    const std::string r2 =
        run("wmma_gemm_tf32", wmma_gemm_tf32, 1, 32, static_cast<const float*>(dF), static_cast<const float*>(dG), dH);
    const std::vector<float> H = host(dH, 256);
    bool ok2 = r2.empty(), rounded = false;
    for (int m = 0; m < 16; ++m)
      for (int n = 0; n < 16; ++n) {
        float acc = 0.0f, exact = 0.0f;
        for (int k = 0; k < 16; ++k) {
          acc = fmaf(nvcuda::wmma::__float_to_tf32(F[m * 16 + k]), nvcuda::wmma::__float_to_tf32(G[k * 16 + n]), acc);
          exact = fmaf(F[m * 16 + k], G[k * 16 + n], exact);
        }
        ok2 = ok2 && H[m * 16 + n] == acc;
        rounded = rounded || acc != exact;
      }
    check(ok2 && rounded, "wmma m16n16k8 tf32: exact against tf32-rounded inputs (which differ from fp32)", r2);
    for (void* p : {static_cast<void*>(dA), static_cast<void*>(dB), static_cast<void*>(dC), static_cast<void*>(tiny),
                    static_cast<void*>(dF), static_cast<void*>(dG), static_cast<void*>(dH)})
      cudaFree(p);
  }
  {
    float* out = device(std::vector<float>(32, 0.0f));
    expect_fault("a __shared__ variable with a constructor reported",
                 run("shared_with_constructor", shared_with_constructor, 1, 32, out),
                 {"__shared__ s has a constructor", "dynamic initialisation"});
    cudaFree(out);
  }
  if (const char* d = std::getenv("CUEMU_DEFER"); d == nullptr || std::strcmp(d, "0") != 0) {
    // Deferred execution: queued work runs when the host waits for it, as a GPU runs behind the host.
    float* buf = device(std::vector<float>(32, 0.0f));
    float* pinnedOut = nullptr;
    cudaMallocHost(reinterpret_cast<void**>(&pinnedOut), 32 * sizeof(float));
    for (int i = 0; i < 32; ++i) pinnedOut[i] = -1.0f;
    std::vector<float> pageable(32, 3.0f);
    cudaEvent_t done = nullptr;
    cudaEventCreate(&done);
    bool ok = cudaMemcpyAsync(buf, pageable.data(), 32 * sizeof(float), cudaMemcpyHostToDevice, nullptr) == cudaSuccess;
    pageable.assign(32, 100.0f);  // a pageable source is read by the call: the copy keeps 3
    ok = ok && cuemu::launch_kernel("twice_plus_one", twice_plus_one, 1, 32, 0, nullptr, buf) == cudaSuccess;
    ok = ok && cudaMemcpyAsync(pinnedOut, buf, 32 * sizeof(float), cudaMemcpyDeviceToHost, nullptr) == cudaSuccess;
    ok = ok && cudaEventRecord(done, nullptr) == cudaSuccess;
    const bool notYet = pinnedOut[0] == -1.0f;  // the copy into pinned memory has not run
    ok = ok && cudaEventSynchronize(done) == cudaSuccess;
    check(ok && notYet && pinnedOut[0] == 7.0f && pinnedOut[31] == 7.0f,
          "deferred: a copy into pinned memory lands at the event's synchronisation (3 * 2 + 1 = 7), not before");
    // A pinned source is read when the queue gets there: rewriting it before then changes what is copied.
    for (int i = 0; i < 32; ++i) pinnedOut[i] = 1.0f;
    ok = cudaMemcpyAsync(buf, pinnedOut, 32 * sizeof(float), cudaMemcpyHostToDevice, nullptr) == cudaSuccess;
    for (int i = 0; i < 32; ++i) pinnedOut[i] = 2.0f;
    check(ok && host(buf, 32)[0] == 2.0f,
          "deferred: a pinned source rewritten before the copy ran is copied as rewritten");
    // A fault in queued work is reported by the call that waits for it.
    float* small = device(std::vector<float>(8, 1.0f));
    ok = cuemu::launch_kernel("read_past_end", read_past_end, 1, 32, 0, nullptr, static_cast<const float*>(small), buf,
                              8) == cudaSuccess;
    const cudaError_t late = cudaStreamSynchronize(nullptr);
    check(ok && late == cudaErrorIllegalAddress, "deferred: a fault is returned by the synchronising call");
    // As on a GPU, the fault is sticky: every later call that uses the device returns it, with its report, and
    // cudaGetLastError does not clear it; a correct kernel no longer runs.
    void* after = nullptr;
    const cudaError_t malloced = cudaMalloc(&after, 64);
    const cudaError_t last1 = cudaGetLastError(), last2 = cudaGetLastError();
    const cudaError_t relaunched = cuemu::launch_kernel("twice_plus_one", twice_plus_one, 1, 32, 0, nullptr, buf);
    std::vector<float> probe(32, -1.0f);
    const cudaError_t copied = cudaMemcpy(probe.data(), buf, 32 * sizeof(float), cudaMemcpyDeviceToHost);
    const cudaError_t synced = cudaDeviceSynchronize();
    const cudaError_t freed = cudaFree(small);
    const std::string text = cudaGetErrorString(copied);
    check(malloced == cudaErrorIllegalAddress && after == nullptr && last1 == cudaErrorIllegalAddress &&
              last2 == cudaErrorIllegalAddress && relaunched == cudaErrorIllegalAddress &&
              copied == cudaErrorIllegalAddress && probe[0] == -1.0f && synced == cudaErrorIllegalAddress &&
              freed == cudaErrorIllegalAddress && text.find("read_past_end") != std::string::npos,
          "a fault is sticky: cudaMalloc, cudaGetLastError (twice), a launch, cudaMemcpy, cudaDeviceSynchronize and "
          "cudaFree return it, with the faulting kernel named",
          std::string(cudaGetErrorName(malloced)) + " " + cudaGetErrorName(last2) + " " + cudaGetErrorName(relaunched) +
              " " + cudaGetErrorName(copied) + " " + cudaGetErrorName(freed) + ": " + text);
    cuemu::clear_fault();
    (void)cudaGetLastError();
    check(cudaMalloc(&after, 64) == cudaSuccess && cudaFree(after) == cudaSuccess,
          "cuemu::clear_fault gives a working device back (the emulator's own tests only)");
    cudaEventDestroy(done);
    cudaFreeHost(pinnedOut);
    cudaFree(small);
    cudaFree(buf);
  }
  {
    // Stream capture: launches, device copies and memsets are recorded, not run; a graph replays them.
    float* buf = device(std::vector<float>(32, 0.0f));
    float* other = device(std::vector<float>(32, 5.0f));
    cudaStream_t s = nullptr;
    cudaStreamCreate(&s);
    bool ok = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
    ok = ok && cuemu::launch_kernel("twice_plus_one", twice_plus_one, 1, 32, 0, s, buf) == cudaSuccess;
    ok = ok && cudaMemcpyAsync(other, buf, 32 * sizeof(float), cudaMemcpyDeviceToDevice, s) == cudaSuccess;
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    ok = ok && cudaStreamIsCapturing(s, &status) == cudaSuccess && status == cudaStreamCaptureStatusActive;
    // Emulated device memory is host memory: read it directly (a cudaMemcpy would end the capture).
    const bool notRun = buf[0] == 0.0f && other[0] == 5.0f;
    cudaGraph_t g = nullptr;
    cudaGraphExec_t exec = nullptr;
    ok = ok && cudaStreamEndCapture(s, &g) == cudaSuccess && cudaGraphInstantiate(&exec, g, 0) == cudaSuccess;
    for (int k = 0; k < 3 && ok; ++k) ok = cudaGraphLaunch(exec, s) == cudaSuccess;
    ok = ok && cudaStreamSynchronize(s) == cudaSuccess;
    check(ok && notRun && host(buf, 32)[31] == 7.0f && host(other, 32)[0] == 7.0f,
          "a captured launch and copy run only when the graph is launched, once per launch (3 replays: 7)");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(g);

    // A host function runs in stream order: after the launch before it, at every replay when captured.
    struct Seen {
      const float* buf;
      std::vector<float> values;
    } seen{buf, {}};
    const cudaHostFn_t note = [](void* p) {
      auto* s = static_cast<Seen*>(p);
      s->values.push_back(s->buf[0]);
    };
    ok = cuemu::launch_kernel("twice_plus_one", twice_plus_one, 1, 32, 0, s, buf) == cudaSuccess;  // 15
    ok = ok && cudaLaunchHostFunc(s, note, &seen) == cudaSuccess;
    const bool deferred = seen.values.empty();  // queued behind the launch, not run yet
    ok = ok && cudaStreamSynchronize(s) == cudaSuccess;
    ok = ok && cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal) == cudaSuccess;
    ok = ok && cuemu::launch_kernel("twice_plus_one", twice_plus_one, 1, 32, 0, s, buf) == cudaSuccess;
    ok = ok && cudaLaunchHostFunc(s, note, &seen) == cudaSuccess;
    ok = ok && cudaStreamEndCapture(s, &g) == cudaSuccess && cudaGraphInstantiate(&exec, g, 0) == cudaSuccess;
    for (int k = 0; k < 2 && ok; ++k) ok = cudaGraphLaunch(exec, s) == cudaSuccess;
    ok = ok && cudaStreamSynchronize(s) == cudaSuccess;
    check(ok && deferred && seen.values == std::vector<float>{15.0f, 31.0f, 63.0f},
          "cudaLaunchHostFunc: in stream order, deferred, and once per replay when captured (15, 31, 63)");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(g);
    cudaMemset(buf, 0, 32 * sizeof(float));
    for (int k = 0; k < 3; ++k) cuemu::launch_kernel("twice_plus_one", twice_plus_one, 1, 32, 0, s, buf);
    cudaStreamSynchronize(s);  // back to 7, as the checks below expect

    // What CUDA refuses while capturing invalidates the capture.
    std::vector<float> h(32);
    const auto refused = [&](const char* name, const std::function<cudaError_t()>& call, cudaError_t expected) {
      cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
      const cudaError_t e = call();
      (void)cudaGetLastError();
      cudaGraph_t bad = nullptr;
      const cudaError_t end = cudaStreamEndCapture(s, &bad);
      (void)cudaGetLastError();
      check(e == expected && end == cudaErrorStreamCaptureInvalidated && bad == nullptr,
            std::string(name) + " while capturing is refused and invalidates the capture",
            std::string(cudaGetErrorName(e)) + ", end: " + cudaGetErrorName(end));
    };
    refused(
        "cudaStreamSynchronize", [&] { return cudaStreamSynchronize(s); }, cudaErrorStreamCaptureUnsupported);
    refused(
        "cudaMemcpy", [&] { return cudaMemcpy(h.data(), buf, 128, cudaMemcpyDeviceToHost); },
        cudaErrorStreamCaptureUnsupported);
    refused(
        "cudaMemcpyAsync from host memory",
        [&] { return cudaMemcpyAsync(buf, h.data(), 128, cudaMemcpyHostToDevice, s); },
        cudaErrorStreamCaptureUnsupported);
    refused(
        "cudaMalloc",
        [&] {
          void* p = nullptr;
          return cudaMalloc(&p, 64);
        },
        cudaErrorStreamCaptureUnsupported);
    refused(
        "a launch on the legacy stream",
        [&] { return cuemu::launch_kernel("twice_plus_one", twice_plus_one, 1, 32, 0, nullptr, buf); },
        cudaErrorStreamCaptureImplicit);
    check(host(buf, 32)[0] == 7.0f, "refused work did not run");
    cudaStreamDestroy(s);
    cudaFree(buf);
    cudaFree(other);
  }
  {
    // Device-memory traffic (traffic.cpp), read from events: a launch's distinct 32-byte sectors, a copy's and a
    // fill's bytes; counted when the work runs (deferred: at the synchronising call), only while counting is on.
    float* in = device(std::vector<float>(1000, 1.0f));
    float* out = device(std::vector<float>(256, 0.0f));
    cudaEvent_t ev[6];
    for (cudaEvent_t& e : ev) cudaEventCreate(&e);
    cuemu::set_traffic_counting(true);
    cudaEventRecord(ev[0], nullptr);
    cuemu::launch_kernel("block_sum", block_sum, 4, 256, 0, nullptr, static_cast<const float*>(in), out, 1000);
    cudaEventRecord(ev[1], nullptr);
    cuemu::launch_kernel("twice_plus_one", twice_plus_one, 1, 64, 0, nullptr, out);  // each thread its own float
    cudaEventRecord(ev[2], nullptr);
    cudaMemsetAsync(out, 0, 100, nullptr);
    cudaMemcpyAsync(out, in, 64, cudaMemcpyDeviceToDevice, nullptr);
    cudaEventRecord(ev[3], nullptr);
    const bool ok = cudaDeviceSynchronize() == cudaSuccess;
    cuemu::set_traffic_counting(false);
    cuemu::launch_kernel("twice_plus_one", twice_plus_one, 1, 64, 0, nullptr, out);
    cudaEventRecord(ev[4], nullptr);
    cudaMemsetAsync(out, 0, 100, nullptr);
    cudaEventRecord(ev[5], nullptr);
    cudaDeviceSynchronize();
    std::vector<uint64_t> r(6), w(6);
    bool read = true;
    for (int i = 0; i < 6; ++i) read = read && cuemu::event_traffic(ev[i], &r[i], &w[i]) == cudaSuccess;
    const auto span = [&](int a, int b) { return std::to_string(r[b] - r[a]) + "/" + std::to_string(w[b] - w[a]); };
    const std::string got = span(0, 1) + " " + span(1, 2) + " " + span(2, 3) + " " + span(3, 5);
    // block_sum: 4,000 bytes read (125 sectors), 4 floats written (one sector); twice_plus_one: 256 read and
    // written; the fill 100 written, the copy 64 read and written; nothing once counting is off.
    check(ok && read && got == "4000/32 256/256 64/164 0/0",
          "traffic: distinct sectors per launch, bytes per copy and fill, nothing while off", got);
    cudaEvent_t unrecorded = nullptr;
    cudaEventCreate(&unrecorded);
    uint64_t a = 0, b = 0;
    check(cuemu::event_traffic(unrecorded, &a, &b) == cudaErrorInvalidResourceHandle,
          "traffic of an event not recorded is an error");
    (void)cudaGetLastError();
    for (cudaEvent_t e : ev) cudaEventDestroy(e);
    cudaEventDestroy(unrecorded);
    cudaFree(in);
    cudaFree(out);
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
