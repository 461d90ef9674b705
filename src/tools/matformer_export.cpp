#include "tools/matformer_export.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>

#include "gguf/gguf.h"
#include "model/gemma3n_config.h"
#include "model/matformer.h"
#include "quant/ggml_type.h"

namespace g3n {
namespace {

uint64_t row_bytes(GgmlType type, int64_t n) {
  auto b = ggml_row_bytes(type, static_cast<uint64_t>(n));
  if (!b) throw std::invalid_argument("matformer export: " + std::to_string(n) + " values are not whole " + std::string(ggml_type_traits(type).name) + " blocks");
  return *b;
}

// "blk.12.ffn_up.weight" -> (12, "ffn_up.weight"); -1 for tensors outside the layers.
std::pair<int, std::string> split_layer_name(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return {-1, name};
  const size_t dot = name.find('.', 4);
  if (dot == std::string::npos) return {-1, name};
  return {std::stoi(name.substr(4, dot - 4)), name.substr(dot + 1)};
}

}  // namespace

void export_matformer_slice(const std::string& in_path, const std::string& out_path, const std::string& matformer) {
  const GgufFile in = GgufFile::open(in_path);
  const Gemma3nConfig full = read_gemma3n_config(in);
  const MatformerSlice slice = resolve_matformer(matformer, full);
  const Gemma3nConfig c = slice_config(full, slice);
  const int64_t P = c.n_embd_per_layer;
  std::map<int, int> new_index;  // file layer -> sliced layer
  for (int l = 0; l < c.n_layer; ++l) new_index[c.file_layer[l]] = l;

  GgufWriter w(in.alignment());
  for (const auto& kv : in.metadata()) w.set(kv.key, kv.value);
  // The smaller model's hyperparameters, per layer where they differ between layers.
  const std::string a = "gemma3n.";
  w.set_u32(a + "block_count", static_cast<uint32_t>(c.n_layer));
  w.set_array_i32(a + "feed_forward_length", std::vector<int32_t>(c.n_ff.begin(), c.n_ff.end()));
  w.set_u32(a + "attention.shared_kv_layers", static_cast<uint32_t>(c.n_layer - c.n_layer_kv));
  w.set_array_bool(a + "attention.sliding_window_pattern", c.is_sliding);
  std::vector<float> sparsity;
  for (float k : c.sparsity_std_multiplier) sparsity.push_back(k > 0 ? k : -INFINITY);
  w.set_array_f32(a + "activation_sparsity_scale", sparsity);

  for (const GgufTensorInfo& t : in.tensors()) {
    const uint8_t* src = in.tensor_data(t);
    const auto [old, role] = split_layer_name(t.name);
    if (old >= 0) {
      const auto it = new_index.find(old);
      if (it == new_index.end()) continue;  // a skipped layer
      const int l = it->second;
      const std::string name = "blk." + std::to_string(l) + "." + role;
      const int64_t F = c.n_ff[l];
      if (role == "ffn_gate.weight" || role == "ffn_up.weight") {  // the first F rows: a byte prefix
        const uint64_t rb = row_bytes(t.type, t.ne[0]);
        w.add_tensor_lazy(name, t.type, {t.ne[0], F}, [src, rb](int64_t r0, int64_t n, uint8_t* dst) {
          std::memcpy(dst, src + r0 * rb, n * rb);
        });
      } else if (role == "ffn_down.weight") {  // the first F columns of every row
        const uint64_t rb = row_bytes(t.type, t.ne[0]), keep = row_bytes(t.type, F);
        w.add_tensor_lazy(name, t.type, {F, t.ne[1]}, [src, rb, keep](int64_t r0, int64_t n, uint8_t* dst) {
          for (int64_t r = 0; r < n; ++r) std::memcpy(dst + r * keep, src + (r0 + r) * rb, keep);
        });
      } else {
        std::vector<int64_t> ne = t.ne;
        w.add_tensor_lazy(name, t.type, ne, [src, &t](int64_t r0, int64_t n, uint8_t* dst) {
          const uint64_t rb = t.nbytes / static_cast<uint64_t>(t.rows());
          std::memcpy(dst, src + r0 * rb, n * rb);
        });
      }
      continue;
    }
    if (t.name == "per_layer_token_embd.weight") {  // in every token row, the kept layers' P-wide blocks
      const uint64_t rb = row_bytes(t.type, t.ne[0]), blk = row_bytes(t.type, P);
      std::vector<int> layers = c.file_layer;
      w.add_tensor_lazy(t.name, t.type, {c.n_layer * P, t.ne[1]}, [src, rb, blk, layers](int64_t r0, int64_t n, uint8_t* dst) {
        for (int64_t r = 0; r < n; ++r)
          for (size_t i = 0; i < layers.size(); ++i)
            std::memcpy(dst + (r * layers.size() + i) * blk, src + (r0 + r) * rb + layers[i] * blk, blk);
      });
    } else if (t.name == "per_layer_model_proj.weight") {  // the kept layers' P-row blocks
      const uint64_t rb = row_bytes(t.type, t.ne[0]);
      std::vector<int> layers = c.file_layer;
      w.add_tensor_lazy(t.name, t.type, {t.ne[0], c.n_layer * P}, [src, rb, P, layers](int64_t r0, int64_t n, uint8_t* dst) {
        for (int64_t r = r0; r < r0 + n; ++r) {
          const int64_t file_row = layers[static_cast<size_t>(r / P)] * P + r % P;
          std::memcpy(dst + (r - r0) * rb, src + file_row * rb, rb);
        }
      });
    } else {
      w.add_tensor_lazy(t.name, t.type, t.ne, [src, &t](int64_t r0, int64_t n, uint8_t* dst) {
        const uint64_t rb = t.nbytes / static_cast<uint64_t>(std::max<int64_t>(1, t.rows()));
        std::memcpy(dst, src + r0 * rb, n * rb);
      });
    }
  }
  w.write(out_path);
}

}  // namespace g3n
