#include "base/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <system_error>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define G3N_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define G3N_CPU_RELAX() asm volatile("yield")
#else
#define G3N_CPU_RELAX() std::this_thread::yield()
#endif

namespace g3n {
namespace {
// How long an idle worker polls for the next job before sleeping.
constexpr auto kSpin = std::chrono::microseconds(300);

std::pair<int64_t, int64_t> chunk_of(int64_t n, int parts, int index) {
  const int64_t base = n / parts, extra = n % parts;
  const int64_t begin = index * base + std::min<int64_t>(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(static_cast<size_t>(n_threads_ - 1));
  for (int i = 1; i < n_threads_; ++i) {
    try {
      workers_.emplace_back([this, i] { worker_loop(i); });
    } catch (const std::system_error&) {
      break;  // out of threads: work with those already started
    }
  }
  // Workers never read n_threads_, so shrinking it after they started is safe.
  n_threads_ = static_cast<int>(workers_.size()) + 1;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  const int parts = static_cast<int>(std::min<int64_t>(n_threads_, std::max<int64_t>(1, n / std::max<int64_t>(1, grain))));
  if (parts <= 1) {
    fn(0, n, 0);
    return;
  }
  run_job(parts, n, grain, Schedule::Static, fn);
}

void ThreadPool::parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  if (n_threads_ <= 1 || n <= grain) {
    fn(0, n, 0);
    return;
  }
  next_.store(0, std::memory_order_relaxed);
  run_job(static_cast<int>(std::min<int64_t>(n_threads_, (n + grain - 1) / grain)), n, grain, Schedule::Dynamic, fn);
}

void ThreadPool::parallel_for_guided(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t min_grain,
                                     int64_t max_grain) {
  if (n <= 0) return;
  min_grain = std::max<int64_t>(1, min_grain);
  max_grain = std::max(min_grain, max_grain);
  if (n_threads_ <= 1 || n <= min_grain) {
    fn(0, n, 0);
    return;
  }
  next_.store(0, std::memory_order_relaxed);
  job_min_grain_ = min_grain;
  run_job(static_cast<int>(std::min<int64_t>(n_threads_, (n + min_grain - 1) / min_grain)), n, max_grain,
          Schedule::Guided, fn);
}

void ThreadPool::run_part(int index) noexcept {
  if (index >= job_parts_) return;
  try {
    if (job_schedule_ == Schedule::Static) {
      const auto [b, e] = chunk_of(job_n_, job_parts_, index);
      (*job_)(b, e, index);
      return;
    }
    if (job_schedule_ == Schedule::Guided) {
      for (;;) {
        int64_t b = next_.load(std::memory_order_relaxed), size = 0;
        do {
          if (b >= job_n_) return;
          const int64_t left = job_n_ - b;
          size = std::min(left, std::clamp(left / (2 * job_parts_), job_min_grain_, job_grain_));
        } while (!next_.compare_exchange_weak(b, b + size, std::memory_order_relaxed));
        (*job_)(b, b + size, index);
      }
    }
    for (;;) {
      const int64_t b = next_.fetch_add(job_grain_, std::memory_order_relaxed);
      if (b >= job_n_) return;
      (*job_)(b, std::min(job_n_, b + job_grain_), index);
    }
  } catch (...) {
    // An exception must not escape a worker (std::terminate) nor leave the caller before the workers
    // are done with fn: keep the first one for run_job, and hand out no more dynamic chunks.
    next_.store(job_n_, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mu_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::run_job(int parts, int64_t n, int64_t grain, Schedule schedule,
                         const std::function<void(int64_t, int64_t, int)>& fn) {
  job_ = &fn;
  job_n_ = n;
  job_parts_ = parts;
  job_grain_ = grain;
  job_schedule_ = schedule;
  // Every worker acknowledges every job, even with nothing to do: then no worker can still be reading
  // this job's fields when the next call rewrites them.
  pending_.store(n_threads_ - 1, std::memory_order_relaxed);
  {
    // Bumped under the lock so a worker checking the predicate before sleeping cannot miss it.
    std::lock_guard<std::mutex> lock(mu_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  run_part(0);
  // Spin while the workers are likely running; then yield, so that on an oversubscribed machine the
  // caller does not burn the time slice a descheduled worker needs to finish.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 4096) G3N_CPU_RELAX();
    else std::this_thread::yield();
  }
  // Every worker has acknowledged (acquire above), so error_ is no longer written.
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  for (;;) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    if (gen == seen) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      int polls = 0;
      while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
        G3N_CPU_RELAX();
        if (++polls % 64 == 0) {
          if (std::chrono::steady_clock::now() > until) break;
          if (polls % 1024 == 0) std::this_thread::yield();  // let other runnable threads in
        }
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
        gen = generation_.load(std::memory_order_acquire);
      }
    }
    seen = gen;
    if (stop_.load()) return;
    run_part(index);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

int default_thread_count() {
  // Count distinct (physical id, core id) pairs: hyperthreads share a core's SIMD units.
  std::ifstream in("/proc/cpuinfo");
  std::set<std::pair<std::string, std::string>> cores;
  std::string line, phys = "0";
  while (std::getline(in, line)) {
    auto value = [&] { auto p = line.find(':'); return p == std::string::npos ? std::string() : line.substr(p + 2); };
    if (line.rfind("physical id", 0) == 0) phys = value();
    else if (line.rfind("core id", 0) == 0) cores.insert({phys, value()});
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace g3n
