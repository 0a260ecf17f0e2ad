// A process-wide worker pool for the CPU backend.
//
// parallel_for splits [0, n) into contiguous chunks of at least `grain` items and runs
// fn(begin, end) on the pool and the calling thread; it returns when every chunk is done.
// Safe to call from several threads at once (each call waits only for its own chunks) and from
// inside a chunk (nested calls run serially), so Node worker_threads can share the pool.
// Thread count: SIMCSEPP_NUM_THREADS, else std::thread::hardware_concurrency(). Idle threads poll for up to
// 200 µs (SIMCSEPP_SPIN_US) before blocking, so that the ops of a step, a few hundred per step, do not each
// wait for a thread to wake.
#pragma once
#include <cstdint>
#include <functional>

namespace simcsepp::cpu {

int num_threads();

void parallel_for_impl(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

template <class F>
void parallel_for(int64_t n, int64_t grain, F&& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  if (n <= grain || num_threads() == 1) {
    fn(int64_t{0}, n);
    return;
  }
  parallel_for_impl(n, grain, std::function<void(int64_t, int64_t)>(fn));
}

}  // namespace simcsepp::cpu
