#include "runtime/memory_estimate.h"

#include <algorithm>
#include <fstream>
#include <string>

#include "model/model.h"

namespace g3n {

MemoryEstimate estimate_memory(const Model& model, const ContextParams& params) {
  const auto& c = model.config();
  MemoryEstimate m;
  for (const auto& t : model.file().tensors()) {
    if (t.name == "per_layer_token_embd.weight") {
      // Only rows of tokens seen are paged in: at most one row per context position.
      const uint64_t row = t.rows() ? t.nbytes / static_cast<uint64_t>(t.rows()) : 0;
      m.per_layer_table_touched = row * std::min<uint64_t>(static_cast<uint64_t>(params.n_ctx), t.rows());
    } else if (c.owns_kv(0) && (t.name.find("attn_k.") != std::string::npos || t.name.find("attn_v.") != std::string::npos)) {
      // K/V weights of KV-sharing layers are never read, so never paged in.
      const int layer = std::stoi(t.name.substr(4));
      if (c.owns_kv(layer)) m.weights += t.nbytes;
    } else {
      m.weights += t.nbytes;
    }
  }
  const uint64_t kv_elem = params.kv_type == KvType::F16 ? 2 : 4;
  const uint64_t kv_width = static_cast<uint64_t>(c.n_head_kv) * c.head_dim;
  const int n_batch = std::min(params.n_batch > 0 ? params.n_batch : ContextParams{}.n_batch, params.n_ctx);
  for (int l = 0; l < c.n_layer_kv; ++l) {
    const uint64_t slots = c.is_sliding[l] ? std::min(params.n_ctx, c.sliding_window + n_batch - 1) : params.n_ctx;
    m.kv_cache += 2 * slots * kv_width * kv_elem;
  }
  const uint64_t D = c.n_embd, F = *std::max_element(c.n_ff.begin(), c.n_ff.end());
  const uint64_t per_token = 4 * (2 * c.n_altup * D + 6 * D + 2 * F + static_cast<uint64_t>(c.n_layer) * c.n_embd_per_layer +
                                  3 * static_cast<uint64_t>(c.n_head) * c.head_dim);
  m.buffers = per_token * n_batch + 4ull * c.n_vocab;  // one logits row (generation asks for the last only)
  return m;
}

std::optional<uint64_t> available_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  uint64_t kb = 0;
  std::string unit;
  while (in >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return std::nullopt;
}

}  // namespace g3n
