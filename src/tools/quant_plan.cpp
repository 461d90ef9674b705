#include "tools/quant_plan.h"

#include <array>
#include <cctype>
#include <stdexcept>

#include "tools/convert.h"

namespace g3n {
namespace {

struct TargetInfo {
  QuantTarget target;
  std::string_view name;
  int file_type;
  GgmlType base;
};

constexpr std::array<TargetInfo, 8> kTargets = {{
    {QuantTarget::F32, "f32", 0, GgmlType::F32},
    {QuantTarget::F16, "f16", 1, GgmlType::F16},
    {QuantTarget::BF16, "bf16", 32, GgmlType::BF16},
    {QuantTarget::Q8_0, "q8_0", 7, GgmlType::Q8_0},
    {QuantTarget::Q4_0, "q4_0", 2, GgmlType::Q4_0},
    {QuantTarget::Q4_K_M, "q4_k_m", 15, GgmlType::Q4_K},
    {QuantTarget::Q5_K_M, "q5_k_m", 17, GgmlType::Q5_K},
    {QuantTarget::Q6_K, "q6_k", 18, GgmlType::Q6_K},
}};

const TargetInfo& info(QuantTarget t) {
  for (const auto& i : kTargets)
    if (i.target == t) return i;
  throw std::logic_error("unknown quantization target");
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A type whose blocks fit a row of n0 elements: llama.cpp's fallback chain for rows that are not a
// multiple of 256 (K-quants) or 32 (legacy quants).
GgmlType fitting(GgmlType t, int64_t n0) {
  while (!ggml_row_bytes(t, static_cast<uint64_t>(n0))) {
    switch (t) {
      case GgmlType::Q4_K: t = GgmlType::Q5_0; break;
      case GgmlType::Q5_K: t = GgmlType::Q5_1; break;
      case GgmlType::Q6_K: t = GgmlType::Q8_0; break;
      default: return GgmlType::F16;
    }
  }
  return t;
}

}  // namespace

std::optional<QuantTarget> parse_quant_target(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const auto& i : kTargets)
    if (i.name == lower) return i.target;
  return std::nullopt;
}

std::string_view quant_target_name(QuantTarget t) { return info(t).name; }
int quant_target_file_type(QuantTarget t) { return info(t).file_type; }

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

bool is_more_bits_layer(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

GgmlType plan_tensor_type(QuantTarget target, GgufLayout layout, std::string_view name,
                          const std::vector<int64_t>& ne, int layer, int n_layers) {
  if (ne.size() <= 1 || ends_with(name, "_norm.weight")) return GgmlType::F32;
  if (layout == GgufLayout::Ollama && name == "per_layer_token_embd.weight") return GgmlType::F16;
  const TargetInfo& ti = info(target);
  if (is_float_type(ti.base)) return ti.base;
  // llama.cpp quantizes only 2-D+ "*weight" tensors and leaves gemma3n's small altup/laurel/PLE
  // projections in the source precision (F32 from its F32 intermediate).
  if (!ends_with(name, "weight") || name.find("altup") != std::string_view::npos ||
      name.find("laurel") != std::string_view::npos || name.find("per_layer_model_proj") != std::string_view::npos)
    return GgmlType::F32;
  GgmlType t = ti.base;
  if (name == "token_embd.weight" || name == "output.weight") {
    // The output matrix (gemma3n ties it to token_embd): Q6_K unless the target is Q8_0.
    if (t != GgmlType::Q8_0) t = GgmlType::Q6_K;
  } else if (target == QuantTarget::Q4_K_M || target == QuantTarget::Q5_K_M) {
    const bool v_or_down = name.find("attn_v.weight") != std::string_view::npos ||
                           name.find("ffn_down") != std::string_view::npos;
    if (v_or_down && layer >= 0 && is_more_bits_layer(layer, n_layers)) t = GgmlType::Q6_K;
  }
  return fitting(t, ne[0]);
}

GgufLayout detect_gguf_layout(const GgufFile& in) {
  if (in.find("gemma3n.head_dim")) return GgufLayout::Ollama;
  const auto* te = in.find_tensor("token_embd.weight");
  const auto* pl = in.find_tensor("per_layer_token_embd.weight");
  if (te && pl && te->ne.size() == 2 && pl->ne.size() == 2 && pl->ne[1] < te->ne[1]) return GgufLayout::Ollama;
  return GgufLayout::LlamaCpp;
}

void quantize_gemma3n_gguf(const GgufFile& in, const std::string& out_path, QuantTarget target, GgufLayout layout) {
  const auto arch = in.get_string("general.architecture");
  if (arch != "gemma3n")
    throw std::invalid_argument(in.path() + ": architecture '" + arch.value_or("") + "' is not gemma3n");
  const auto n_layers = in.get_int("gemma3n.block_count");
  if (!n_layers || *n_layers <= 0) throw std::invalid_argument(in.path() + ": no gemma3n.block_count");
  for (const auto& t : in.tensors())
    if (!is_float_type(t.type))
      throw std::invalid_argument(in.path() + ": tensor '" + t.name + "' is already quantized (" +
                                  std::string(ggml_type_traits(t.type).name) +
                                  "); quantize from an F32, F16 or BF16 model");
  const int n = static_cast<int>(*n_layers);
  std::vector<GgufKV> kvs;
  if (!is_float_type(info(target).base)) {
    GgufValue v;
    v.type = GgufValueType::UINT32;
    v.u = 2;  // ggml's GGML_QNT_VERSION: the block layouts of quant/blocks.h
    kvs.push_back({"general.quantization_version", v});
  }
  convert_gguf(
      in, out_path,
      [&](const GgufTensorInfo& t) { return plan_tensor_type(target, layout, t.name, t.ne, tensor_layer(t.name), n); },
      quant_target_file_type(target), kvs);
}

}  // namespace g3n
