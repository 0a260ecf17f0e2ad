// Worker pool behind parallel_for (see parallel.h for the contract).
#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace simcsepp::cpu {

namespace {

thread_local bool t_inside_chunk = false;

// How long an idle thread polls before it blocks on a condition variable: a worker for the next job, the
// caller for the last chunks of its own. A training step makes a few hundred parallel_for calls, most a
// fraction of a millisecond to a few milliseconds apart; waking a blocked thread is a system call and, on a
// virtual machine, tens to hundreds of microseconds more. Measured on a 2-vCPU VM, mini step, alternating
// runs: 200 µs gave +4-10% steps/s in bf16 (AMX: short products) and +0-6% in fp32. The cost is at most that
// much CPU time per idle gap. SIMCSEPP_SPIN_US overrides (0: block at once; at most 100 ms).
int64_t spin_ns() {
  static const int64_t ns = [] {
    if (const char* env = std::getenv("SIMCSEPP_SPIN_US")) {
      const long us = std::atol(env);
      return static_cast<int64_t>(std::max(0L, std::min(us, 100000L))) * 1000;
    }
    return int64_t{200} * 1000;
  }();
  return ns;
}

// Polls pred() for up to spin_ns(); true as soon as it holds.
template <class Pred>
bool spin_until(Pred&& pred) {
  const int64_t limit = spin_ns();
  if (limit <= 0) return pred();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (pred()) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
    if ((i & 63) == 63 &&
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count() > limit)
      return pred();
  }
}

// One parallel_for call: chunks are claimed by index, so the caller and the workers share work
// without a queue entry per chunk.
struct Job {
  const std::function<void(int64_t, int64_t)>* fn;
  int64_t n, chunk, chunks;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex m;
  std::condition_variable cv;

  // Runs chunks until none is left; returns after finishing at least zero of them.
  void work() {
    const bool was_inside = t_inside_chunk;
    t_inside_chunk = true;
    for (;;) {
      const int64_t c = next.fetch_add(1);
      if (c >= chunks) break;
      const int64_t b = c * chunk, e = std::min(n, b + chunk);
      (*fn)(b, e);
      if (done.fetch_add(1) + 1 == chunks) {
        std::lock_guard<std::mutex> lock(m);
        cv.notify_all();
      }
    }
    t_inside_chunk = was_inside;
  }
};

class Pool {
 public:
  explicit Pool(int threads) {
    for (int i = 0; i < threads - 1; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
      stop_flag_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void run(const std::shared_ptr<Job>& job) {
    {
      std::lock_guard<std::mutex> lock(m_);
      queue_.push_back(job);
    }
    posted_.fetch_add(1, std::memory_order_release);
    cv_.notify_all();
    job->work();
    if (spin_until([&] { return job->done.load(std::memory_order_acquire) == job->chunks; })) return;
    std::unique_lock<std::mutex> lock(job->m);
    job->cv.wait(lock, [&] { return job->done.load() == job->chunks; });
  }

 private:
  void loop() {
    uint64_t seen = posted_.load(std::memory_order_acquire);
    for (;;) {
      spin_until([&] { return posted_.load(std::memory_order_acquire) != seen || stop_flag_.load(); });  // new job?
      seen = posted_.load(std::memory_order_acquire);
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(m_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (stop_) return;
        job = queue_.front();
        // Leave the job queued while it still has unclaimed chunks so other workers join it.
        if (job->next.load() >= job->chunks) {
          queue_.pop_front();
          continue;
        }
      }
      job->work();
      std::lock_guard<std::mutex> lock(m_);
      if (!queue_.empty() && queue_.front() == job) queue_.pop_front();
    }
  }

  std::vector<std::thread> workers_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> stop_flag_{false};  // stop_, readable while polling
  std::atomic<uint64_t> posted_{0};     // jobs posted so far: what idle workers poll
};

int configured_threads() {
  if (const char* env = std::getenv("SIMCSEPP_NUM_THREADS")) {
    const int v = std::atoi(env);
    if (v >= 1) return std::min(v, 256);
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(std::min(hc, 256u));
}

Pool& pool() {
  // Leaked on purpose: joining threads from a static destructor at process exit can deadlock
  // when the process exits from inside a worker thread's callback.
  static Pool* p = new Pool(configured_threads());
  return *p;
}

}  // namespace

int num_threads() { return pool().size(); }

void parallel_for_impl(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (t_inside_chunk) {
    fn(0, n);
    return;
  }
  const int64_t threads = num_threads();
  // A few chunks per thread balance uneven work without much claiming overhead.
  const int64_t target = threads * 4;
  const int64_t chunk = std::max(grain, (n + target - 1) / target);
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  job->chunk = chunk;
  job->chunks = (n + chunk - 1) / chunk;
  pool().run(job);
}

}  // namespace simcsepp::cpu
