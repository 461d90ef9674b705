#include "model/model.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/thread_pool.h"

namespace g3n {

Model::Model(GgufFile file)
    : file_(std::move(file)), config_(read_gemma3n_config(file_)), weights_(bind_gemma3n_weights(file_, config_)) {
  // Sparse layers (docs/model.md §4.4d) get a column-major copy of their down projection, built on the load
  // threads. The fast path then never reads the mmapped original, so its pages are handed back.
  std::vector<int> sparse;
  for (int l = 0; l < config_.n_layer; ++l)
    if (config_.sparsity_std_multiplier[l] > 0 && sparse_columns_supported(weights_.layers[l].ffn_down))
      sparse.push_back(l);
  const int n_threads = std::max(1, std::min<int>(default_thread_count(), static_cast<int>(sparse.size())));
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::exception_ptr error;  // the first failure (out of memory), rethrown once every thread is done
  auto work = [&] {
    try {
      for (size_t i; (i = next++) < sparse.size();) {
        auto& lw = weights_.layers[sparse[i]];
        lw.ffn_down_cols = make_sparse_columns(lw.ffn_down);
        file_.drop_pages(lw.ffn_down.data, lw.ffn_down.row_bytes * static_cast<uint64_t>(lw.ffn_down.n_out));
      }
    } catch (...) {
      next = sparse.size();
      std::lock_guard<std::mutex> lock(mu);
      if (!error) error = std::current_exception();
    }
  };
  std::vector<std::thread> workers;
  try {
    for (int t = 1; t < n_threads; ++t) workers.emplace_back(work);
  } catch (...) {  // no thread to spare: this one does the rest
  }
  work();
  for (auto& t : workers) t.join();
  if (error) std::rethrow_exception(error);
}

std::unique_ptr<Model> Model::load(const std::string& path) { return from_gguf(GgufFile::open(path)); }

std::unique_ptr<Model> Model::from_gguf(GgufFile file) { return std::unique_ptr<Model>(new Model(std::move(file))); }

}  // namespace g3n
