// A persistent pool of worker threads for data-parallel loops (matmul rows, attention heads).
// Workers live as long as the pool; a parallel_for wakes them, splits the range and waits for all.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace g3n {

class ThreadPool {
 public:
  // n_threads counts the calling thread: 1 means run everything inline.
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(begin, end, thread_index) over disjoint chunks covering [0, n). Chunks are contiguous
  // and at least `grain` long, one per thread, so each thread's slice of the output is fixed by n and
  // the thread count only (results never depend on timing).
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

 private:
  void worker_loop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_parts_ = 0;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

// Physical cores if known, else hardware threads, at least 1.
int default_thread_count();

}  // namespace g3n
