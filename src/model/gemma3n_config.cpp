#include "model/gemma3n_config.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

#include "gguf/gguf.h"

namespace g3n {
namespace {

// Φ⁻¹(0.95): the std multiplier of the Gaussian top-k when the file carries no sparsity keys.
constexpr float kDefaultSparsityMultiplier = 1.6448533535f;
constexpr int kDefaultSparseLayers = 10;
constexpr int kDefaultKvOwningLayers = 20;
constexpr int kPerLayerTextVocab = 262144;  // text ids; HF's vocab_size_per_layer_input

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("gemma3n: " + msg); }

struct Meta {
  const GgufFile& f;
  std::string arch;
  const GgufValue* find(const std::string& key) const { return f.find(arch + "." + key); }
  std::optional<int64_t> get_int(const std::string& key) const { return f.get_int(arch + "." + key); }
  std::optional<double> get_float(const std::string& key) const { return f.get_float(arch + "." + key); }
};

const GgufTensorInfo& tensor(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo* t = f.find_tensor(name);
  if (!t) fail("missing tensor '" + name + "'");
  return *t;
}

int64_t dim(const GgufTensorInfo& t, size_t i) { return i < t.ne.size() ? t.ne[i] : 1; }

// Per-layer integer list from a scalar or an array key (feed_forward_length comes both ways).
std::vector<int64_t> int_list(const GgufValue& v, int n, const std::string& key) {
  std::vector<int64_t> out;
  if (v.type == GgufValueType::ARRAY) {
    if (static_cast<int>(v.array.size()) != n) fail("metadata '" + key + "' has " + std::to_string(v.array.size()) + " entries, expected " + std::to_string(n));
    for (const auto& e : v.array) {
      auto x = e.as_int();
      if (!x) fail("metadata '" + key + "' has a non-integer entry");
      out.push_back(*x);
    }
  } else {
    auto x = v.as_int();
    if (!x) fail("metadata '" + key + "' is not an integer");
    out.assign(n, *x);
  }
  return out;
}

}  // namespace

Gemma3nConfig read_gemma3n_config(const GgufFile& f) {
  const auto arch = f.get_string("general.architecture");
  if (!arch) fail("file has no general.architecture; not a GGUF model");
  if (*arch != "gemma3n") throw std::runtime_error("not a Gemma 3n model: architecture is '" + *arch + "' (g3n runs gemma3n only)");
  if (f.tensors().empty()) fail("the file has no tensors (a vocab-only GGUF?), so it cannot be run");
  Meta m{f, *arch};
  Gemma3nConfig c;

  auto req_int = [&](const std::string& key) -> int64_t {
    auto v = m.get_int(key);
    if (!v) fail("missing metadata '" + m.arch + "." + key + "'");
    return *v;
  };
  c.n_layer = static_cast<int>(req_int("block_count"));
  c.n_embd = static_cast<int>(req_int("embedding_length"));
  c.n_head = static_cast<int>(req_int("attention.head_count"));
  c.n_head_kv = static_cast<int>(req_int("attention.head_count_kv"));
  if (c.n_layer <= 0 || c.n_layer > 1024) fail("block_count " + std::to_string(c.n_layer) + " out of range");
  if (c.n_embd <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0)
    fail("bad attention geometry (embedding_length " + std::to_string(c.n_embd) + ", heads " + std::to_string(c.n_head) + "/" + std::to_string(c.n_head_kv) + ")");
  // Head dim: key_length (llama.cpp) -> head_dim (Ollama) -> D/H.
  if (auto v = m.get_int("attention.key_length")) c.head_dim = static_cast<int>(*v);
  else if (auto h = m.get_int("head_dim")) c.head_dim = static_cast<int>(*h);
  else c.head_dim = c.n_embd / c.n_head;
  if (auto v = m.get_int("attention.value_length"); v && *v != c.head_dim) fail("value_length differs from key_length (unsupported)");
  c.context_length = static_cast<int>(m.get_int("context_length").value_or(32768));
  c.sliding_window = static_cast<int>(req_int("attention.sliding_window"));
  if (c.sliding_window <= 0) fail("attention.sliding_window must be positive");
  c.rms_eps = static_cast<float>(m.get_float("attention.layer_norm_rms_epsilon").value_or(1e-6));
  c.rope_base_global = static_cast<float>(m.get_float("rope.freq_base").value_or(1e6));
  c.rope_base_local = static_cast<float>(m.get_float("rope.freq_base_local").value_or(1e4));
  c.final_logit_softcap = static_cast<float>(m.get_float("final_logit_softcapping").value_or(30.0));
  c.altup_active = static_cast<int>(m.get_int("altup.active_idx").value_or(0));

  // Shapes fixed by tensors: vocab rows, PLE width, AltUp streams, LAuReL rank.
  const auto& tok = tensor(f, "token_embd.weight");
  const auto& ple = tensor(f, "per_layer_token_embd.weight");
  const auto& inp_gate = tensor(f, "blk.0.inp_gate.weight");
  const auto& laurel_l = tensor(f, "blk.0.laurel_l.weight");
  const auto& altup_proj = tensor(f, "altup_proj.weight");
  if (dim(tok, 0) != c.n_embd) fail("token_embd width " + std::to_string(dim(tok, 0)) + " != embedding_length " + std::to_string(c.n_embd));
  c.n_vocab = static_cast<int>(dim(tok, 1));
  c.n_embd_per_layer = static_cast<int>(m.get_int("embedding_length_per_layer_input").value_or(dim(inp_gate, 1)));
  c.laurel_rank = static_cast<int>(dim(laurel_l, 1));
  c.n_altup = static_cast<int>(m.get_int("altup.num_inputs").value_or(dim(altup_proj, 2) + 1));
  if (c.n_altup < 1 || dim(altup_proj, 2) != c.n_altup - 1) fail("altup_proj has " + std::to_string(dim(altup_proj, 2)) + " slices for " + std::to_string(c.n_altup) + " AltUp streams");
  if (c.altup_active < 0 || c.altup_active >= c.n_altup) fail("altup.active_idx out of range");
  if (dim(ple, 0) != static_cast<int64_t>(c.n_layer) * c.n_embd_per_layer)
    fail("per_layer_token_embd width " + std::to_string(dim(ple, 0)) + " != block_count x " + std::to_string(c.n_embd_per_layer));
  const int64_t ple_rows = dim(ple, 1);
  // Newer llama.cpp files zero-pad the per-layer table to the full vocab; HF still maps ids past the
  // text vocab to row 0, so the padded rows are never used.
  c.n_vocab_per_layer = static_cast<int>(ple_rows > kPerLayerTextVocab && ple_rows == c.n_vocab ? kPerLayerTextVocab : ple_rows);

  // FFN width per layer: metadata (scalar or array), checked against each layer's tensors.
  std::vector<int64_t> ff;
  if (const GgufValue* v = m.find("feed_forward_length")) ff = int_list(*v, c.n_layer, m.arch + ".feed_forward_length");
  for (int l = 0; l < c.n_layer; ++l) {
    const auto& gate = tensor(f, "blk." + std::to_string(l) + ".ffn_gate.weight");
    const int64_t width = dim(gate, 1);
    if (!ff.empty() && ff[l] != width) fail("layer " + std::to_string(l) + " feed_forward_length " + std::to_string(ff[l]) + " != ffn_gate rows " + std::to_string(width));
    c.n_ff.push_back(static_cast<int>(width));
  }

  // Layer types: the file's pattern (true = sliding) if present, else every 5th layer global.
  if (const GgufValue* v = m.find("attention.sliding_window_pattern"); v && v->type == GgufValueType::ARRAY) {
    if (static_cast<int>(v->array.size()) != c.n_layer) fail("sliding_window_pattern has " + std::to_string(v->array.size()) + " entries for " + std::to_string(c.n_layer) + " layers");
    for (const auto& e : v->array) c.is_sliding.push_back(e.as_int().value_or(0) != 0);
  } else {
    for (int l = 0; l < c.n_layer; ++l) c.is_sliding.push_back(l % 5 != 4);
  }

  // Gaussian top-k: active iff the stored multiplier is finite and > 0 (−inf / NaN mean dense).
  if (const GgufValue* v = m.find("activation_sparsity_scale"); v && v->type == GgufValueType::ARRAY) {
    if (static_cast<int>(v->array.size()) != c.n_layer) fail("activation_sparsity_scale has " + std::to_string(v->array.size()) + " entries for " + std::to_string(c.n_layer) + " layers");
    for (const auto& e : v->array) {
      const double s = e.as_double().value_or(0);
      c.sparsity_std_multiplier.push_back(std::isfinite(s) && s > 0 ? static_cast<float>(s) : 0.0f);
    }
  } else {
    for (int l = 0; l < c.n_layer; ++l) c.sparsity_std_multiplier.push_back(l < kDefaultSparseLayers ? kDefaultSparsityMultiplier : 0.0f);
  }

  // KV sharing: shared_kv_layers may be u32 or (early llama.cpp files) f32; default: 20 layers own KV.
  int shared = c.n_layer > kDefaultKvOwningLayers ? c.n_layer - kDefaultKvOwningLayers : 0;
  if (const GgufValue* v = m.find("attention.shared_kv_layers")) {
    auto d = v->as_double();
    if (!d || *d < 0 || *d >= c.n_layer || *d != std::floor(*d)) fail("attention.shared_kv_layers is not a layer count below block_count");
    shared = static_cast<int>(*d);
  }
  c.n_layer_kv = c.n_layer - shared;
  assign_kv_sources(c);
  c.n_layer_file = c.n_layer;
  for (int l = 0; l < c.n_layer; ++l) c.file_layer.push_back(l);
  return c;
}

void assign_kv_sources(Gemma3nConfig& c) {
  c.kv_source.clear();
  for (int l = 0; l < c.n_layer; ++l) {
    if (l < c.n_layer_kv) {
      c.kv_source.push_back(l);
      continue;
    }
    int src = -1;  // the last KV-owning layer of the same type
    for (int s = c.n_layer_kv - 1; s >= 0; --s)
      if (c.is_sliding[s] == c.is_sliding[l]) { src = s; break; }
    if (src < 0) fail("layer " + std::to_string(l) + " shares KV but no earlier layer of its type owns a cache");
    c.kv_source.push_back(src);
  }
}

std::string Gemma3nConfig::describe() const {
  std::ostringstream o;
  o << "layers " << n_layer << " (KV in " << n_layer_kv << "), embd " << n_embd << ", heads " << n_head << "/" << n_head_kv
    << " x " << head_dim << ", ffn " << (n_ff.empty() ? 0 : n_ff[0]) << ", vocab " << n_vocab << " (per-layer " << n_vocab_per_layer
    << "), window " << sliding_window << ", rope " << rope_base_global << "/" << rope_base_local << ", softcap " << final_logit_softcap;
  return o.str();
}

}  // namespace g3n
