#include "model/model.h"

#include <algorithm>
#include <vector>

#include "base/thread_pool.h"

namespace g3n {

Model::Model(GgufFile file)
    : file_(std::move(file)), config_(read_gemma3n_config(file_)), weights_(bind_gemma3n_weights(file_, config_)) {
  // Sparse layers (docs/model.md §4.4d) get a column-major copy of their down projection, built on the load
  // threads. The fast path then never reads the mmapped original, so its pages are handed back.
  std::vector<int> sparse;
  for (int l = 0; l < config_.n_layer; ++l)
    if (config_.sparsity_std_multiplier[l] > 0 && sparse_columns_supported(weights_.layers[l].ffn_down))
      sparse.push_back(l);
  if (sparse.empty()) return;
  // One layer per chunk, handed out on demand. The first failure (out of memory) is rethrown by the
  // pool once every thread has stopped, and fails the load.
  ThreadPool pool(std::min<int>(default_thread_count(), static_cast<int>(sparse.size())));
  pool.parallel_for_dynamic(static_cast<int64_t>(sparse.size()), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      auto& lw = weights_.layers[sparse[static_cast<size_t>(i)]];
      lw.ffn_down_cols = make_sparse_columns(lw.ffn_down);
      file_.drop_pages(lw.ffn_down.data, lw.ffn_down.row_bytes * static_cast<uint64_t>(lw.ffn_down.n_out));
    }
  }, 1);
}

std::unique_ptr<Model> Model::load(const std::string& path) { return from_gguf(GgufFile::open(path)); }

std::unique_ptr<Model> Model::from_gguf(GgufFile file) { return std::unique_ptr<Model>(new Model(std::move(file))); }

}  // namespace g3n
