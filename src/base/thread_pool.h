// A persistent pool of worker threads for data-parallel loops (matmul rows, attention heads).
// Workers live as long as the pool. Between jobs they spin briefly (a decode step issues hundreds of
// small jobs, and a futex wake-up per job would cost more than the work), then sleep on a condition
// variable so an idle pool uses no CPU.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace g3n {

class ThreadPool {
 public:
  // n_threads counts the calling thread: 1 means run everything inline. When the system refuses to
  // start that many threads, the pool runs with the ones it got (size() tells).
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, thread_index) over disjoint chunks covering [0, n). Chunks are contiguous,
  // at least `grain` long, one per thread, so each thread's slice is fixed by n and the thread count
  // only (results never depend on timing). Not reentrant: call from one thread at a time.
  // If fn throws, the first exception is rethrown here once every thread has left the job (the other
  // chunks may or may not have run).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);
  // Same contract, but chunks of `grain` are handed out on demand, so a thread slowed by the OS (or a
  // noisy neighbour) takes fewer of them. Only for loops whose results do not depend on which thread
  // runs a chunk (each output written by one chunk, per-thread scratch indexed by `thread`).
  void parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain);
  // parallel_for_dynamic with chunks that shrink as the loop nears its end (a quarter of what is left per
  // thread pair, between min_grain and max_grain): long runs while there is plenty left, and a last chunk
  // short enough that no thread waits long for another to finish. Same contract.
  void parallel_for_guided(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t min_grain,
                           int64_t max_grain);

 private:
  void worker_loop(int index);
  enum class Schedule { Static, Dynamic, Guided };
  void run_job(int parts, int64_t n, int64_t grain, Schedule schedule, const std::function<void(int64_t, int64_t, int)>& fn);
  void run_part(int index) noexcept;

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  // Job description, written before generation_ is bumped (release) and read after (acquire).
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_parts_ = 0;
  int64_t job_grain_ = 1;      // Dynamic: the chunk; Guided: the largest chunk
  int64_t job_min_grain_ = 1;  // Guided: the smallest chunk
  Schedule job_schedule_ = Schedule::Static;
  // Each on its own cache line: next_ is bumped once per chunk by every thread, and must not drag the
  // job description or the counters the idle workers poll along with it.
  alignas(64) std::atomic<int64_t> next_{0};  // dynamic jobs: first index not yet handed out
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::exception_ptr error_;  // the job's first exception (under mu_), rethrown by run_job
};

// Physical cores if known, else hardware threads, at least 1.
int default_thread_count();

}  // namespace g3n
