#include "runtime/memory_estimate.h"

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/model.h"
#include "vision/mmproj.h"

namespace g3n {

MemoryEstimate estimate_memory(const Model& model, const ContextParams& params) {
  const auto& c = model.config();
  // A MatFormer slice reads only its kept layers (their file index -> the slice's), and of each FFN its width.
  std::vector<int> slice_layer(static_cast<size_t>(std::max(c.n_layer_file, c.n_layer)), -1);
  for (int l = 0; l < c.n_layer; ++l) {
    const int f = l < static_cast<int>(c.file_layer.size()) ? c.file_layer[static_cast<size_t>(l)] : l;
    if (f >= 0 && f < static_cast<int>(slice_layer.size())) slice_layer[static_cast<size_t>(f)] = l;
  }
  MemoryEstimate m;
  for (const auto& t : model.file().tensors()) {
    const int block = tensor_layer(t.name);
    const int layer = block >= 0 && block < static_cast<int>(slice_layer.size()) ? slice_layer[static_cast<size_t>(block)] : -1;
    if (t.name == "per_layer_token_embd.weight") {
      // Only rows of tokens seen are paged in: at most one row per context position.
      const uint64_t row = t.rows() ? t.nbytes / static_cast<uint64_t>(t.rows()) : 0;
      m.per_layer_table_touched = row * std::min<uint64_t>(static_cast<uint64_t>(params.n_ctx), t.rows());
    } else if (block >= 0 && layer < 0) {
      // A layer the slice skips is never read.
    } else if (c.owns_kv(0) && (t.name.find("attn_k.") != std::string::npos || t.name.find("attn_v.") != std::string::npos)) {
      // K/V weights of KV-sharing layers are never read, so never paged in.
      if (c.owns_kv(layer)) m.weights += t.nbytes;
    } else if (layer >= 0 && layer < static_cast<int>(c.n_ff.size()) &&
               (t.name.find(".ffn_gate.") != std::string::npos || t.name.find(".ffn_up.") != std::string::npos ||
                t.name.find(".ffn_down.") != std::string::npos)) {
      // The slice's width of the stored one: gate and up are read as a row prefix, down as a column prefix.
      const bool down = t.name.find(".ffn_down.") != std::string::npos;
      const int64_t stored = down ? (t.ne.empty() ? 0 : t.ne[0]) : t.rows();
      const int64_t width = c.n_ff[static_cast<size_t>(layer)];
      m.weights += stored > 0 && width < stored ? t.nbytes / static_cast<uint64_t>(stored) * static_cast<uint64_t>(width) : t.nbytes;
    } else if (t.name == "per_layer_model_proj.weight" && c.n_layer_file > c.n_layer) {
      m.weights += t.nbytes / static_cast<uint64_t>(c.n_layer_file) * static_cast<uint64_t>(c.n_layer);  // kept layers' blocks
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

ProjectorEstimate estimate_projector_memory(const Mmproj& mm) {
  ProjectorEstimate e;
  if (mm.file)
    for (const auto& t : mm.file->tensors()) e.weights += t.nbytes;
  const auto kernel = [](const ConvKernel& k) { return static_cast<uint64_t>(k.w.size()) * sizeof(float); };
  e.weights += kernel(mm.tower.stem);
  for (const VisionBlock& b : mm.tower.blocks)
    e.weights += kernel(b.conv_exp) + kernel(b.dw_start) + kernel(b.dw_mid) + kernel(b.key_down) + kernel(b.value_down);

  // Floats live at once, per stage of the tower; the allowance is the largest.
  const auto half = [](uint64_t s) { return (s + 1) / 2; };  // SAME padding, stride 2
  const uint64_t n = static_cast<uint64_t>(std::max<int64_t>(mm.config.image_size, 0));
  uint64_t s = half(n);                                   // after the stem
  const uint64_t c0 = static_cast<uint64_t>(mm.tower.stem.out);
  uint64_t peak = 3 * n * n + c0 * s * s;
  uint64_t stage2_side = 0;
  for (const VisionBlock& b : mm.tower.blocks) {
    const uint64_t in = static_cast<uint64_t>(b.in), out = static_cast<uint64_t>(b.out);
    const uint64_t s_out = b.stride == 2 ? half(s) : s;
    uint64_t live = in * s * s + out * s_out * s_out;
    if (b.kind == VisionBlockKind::EdgeResidual) {
      live += static_cast<uint64_t>(b.conv_exp.out) * s_out * s_out;
    } else if (b.kind == VisionBlockKind::UniversalInvertedResidual) {
      live += 2 * static_cast<uint64_t>(b.pw_exp.n_out) * s * s;
    } else {
      const uint64_t p = s * s, kv = b.key_down.empty() ? p : half(s) * half(s);
      const uint64_t heads = static_cast<uint64_t>(b.heads), d = static_cast<uint64_t>(b.head_dim);
      live += heads * d * p * 2 + 2 * d * kv + heads * p * kv;  // q and the heads' output, k and v, scores
    }
    peak = std::max(peak, live);
    s = s_out;
    if (b.stage == 2) stage2_side = s;
  }
  if (stage2_side > 0) {
    const uint64_t p = stage2_side * stage2_side;
    const uint64_t msfa = (static_cast<uint64_t>(mm.tower.msfa_in) + static_cast<uint64_t>(mm.tower.msfa_exp.n_out) +
                           static_cast<uint64_t>(mm.tower.msfa_proj.n_out)) * p;
    peak = std::max(peak, msfa);
  }
  e.activations = peak * sizeof(float);
  return e;
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
