// Worker pool behind parallel_for (see parallel.h for the contract).
#include "parallel.h"

#include <algorithm>
#include <atomic>
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
    cv_.notify_all();
    job->work();
    std::unique_lock<std::mutex> lock(job->m);
    job->cv.wait(lock, [&] { return job->done.load() == job->chunks; });
  }

 private:
  void loop() {
    for (;;) {
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
