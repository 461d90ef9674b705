#include "tools/random_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <vector>

#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "quant/fp16.h"
#include "quant/quantize.h"
#include "tools/random_values.h"

namespace g3n {
namespace {

// How a tensor's values are drawn: mean + std * N(0, 1).
struct Init {
  float mean, std;
};

struct TensorPlan {
  std::string name;
  int block = -1;  // layer index, or -1 for global tensors
  std::vector<int64_t> ne;
  GgmlType type;
  Init init;
};

// llama.cpp's file-type mixtures (tools/quant_plan.h).
QuantTarget target_for(const std::string& q) {
  const auto t = parse_quant_target(q);
  if (!t) throw std::invalid_argument("unknown quantization '" + q + "' (f32, f16, bf16, q8_0, q4_0, q4_k_m, q5_k_m, q6_k)");
  return *t;
}

std::vector<TensorPlan> plan_tensors(const RandomModelSpec& s) {
  const int64_t D = s.n_embd, P = s.n_embd_per_layer, L = s.n_layer, N = s.n_altup, R = s.laurel_rank;
  const int64_t qw = int64_t(s.n_head) * s.head_dim, kvw = int64_t(s.n_head_kv) * s.head_dim, F = s.n_ff;
  const float inv = 1.0f / std::sqrt(static_cast<float>(D));
  std::vector<TensorPlan> t;
  auto mat = [](int64_t n_in) { return Init{0.0f, 1.0f / std::sqrt(static_cast<float>(n_in))}; };
  const Init norm{1.0f, 0.1f};
  t.push_back({"token_embd.weight", -1, {D, s.n_vocab}, {}, {0.0f, 8.0f * inv}});
  t.push_back({"per_layer_token_embd.weight", -1, {L * P, s.n_vocab_per_layer}, {}, {0.0f, 1.0f / std::sqrt(float(P))}});
  t.push_back({"per_layer_model_proj.weight", -1, {D, L * P}, {}, mat(D)});
  t.push_back({"per_layer_proj_norm.weight", -1, {P}, {}, norm});
  t.push_back({"altup_proj.weight", -1, {D, D, N - 1}, {}, mat(D)});
  t.push_back({"altup_unembd_proj.weight", -1, {D, D, N - 1}, {}, mat(D)});
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    t.push_back({p + "attn_norm.weight", l, {D}, {}, norm});
    t.push_back({p + "attn_q.weight", l, {D, qw}, {}, mat(D)});
    t.push_back({p + "attn_k.weight", l, {D, kvw}, {}, mat(D)});
    t.push_back({p + "attn_v.weight", l, {D, kvw}, {}, mat(D)});
    t.push_back({p + "attn_output.weight", l, {qw, D}, {}, mat(qw)});
    t.push_back({p + "attn_q_norm.weight", l, {s.head_dim}, {}, {0.35f, 0.035f}});
    t.push_back({p + "attn_k_norm.weight", l, {s.head_dim}, {}, {0.35f, 0.035f}});
    t.push_back({p + "post_attention_norm.weight", l, {D}, {}, norm});
    t.push_back({p + "ffn_norm.weight", l, {D}, {}, norm});
    t.push_back({p + "ffn_gate.weight", l, {D, F}, {}, mat(D)});
    t.push_back({p + "ffn_up.weight", l, {D, F}, {}, mat(D)});
    t.push_back({p + "ffn_down.weight", l, {F, D}, {}, mat(F)});
    t.push_back({p + "post_ffw_norm.weight", l, {D}, {}, norm});
    t.push_back({p + "inp_gate.weight", l, {D, P}, {}, {0.0f, 0.32f * inv}});
    t.push_back({p + "proj.weight", l, {P, D}, {}, mat(P)});
    t.push_back({p + "post_norm.weight", l, {D}, {}, norm});
    t.push_back({p + "altup_correct_coef.weight", l, {N, N}, {}, {0.0f, 0.05f}});
    t.push_back({p + "altup_correct_scale.weight", l, {D}, {}, {1.0f, 0.2f}});
    t.push_back({p + "altup_predict_coef.weight", l, {N, N * N}, {}, {0.0f, 0.03f}});
    t.push_back({p + "altup_router.weight", l, {D, N}, {}, {0.0f, 64.0f * inv}});
    t.push_back({p + "altup_router_norm.weight", l, {D}, {}, norm});
    t.push_back({p + "laurel_l.weight", l, {D, R}, {}, mat(D)});
    t.push_back({p + "laurel_r.weight", l, {R, D}, {}, mat(R)});
    t.push_back({p + "laurel_post_norm.weight", l, {D}, {}, norm});
  }
  t.push_back({"output_norm.weight", -1, {D}, {}, norm});
  const QuantTarget target = target_for(s.quant);
  for (auto& x : t) x.type = plan_tensor_type(target, s.layout, x.name, x.ne, x.block, s.n_layer);
  if (s.layout == GgufLayout::Ollama) {
    // Ollama's writer: block tensors by (block, name), then the others by name.
    std::stable_sort(t.begin(), t.end(), [](const TensorPlan& a, const TensorPlan& b) {
      const int ka = a.block < 0 ? INT32_MAX : a.block, kb = b.block < 0 ? INT32_MAX : b.block;
      return ka != kb ? ka < kb : a.name < b.name;
    });
  }
  return t;
}

// Metadata is staged here so the Ollama layout can write it sorted by key, as Ollama's writer does.
class KvList {
 public:
  void set(const std::string& k, GgufValue v) {
    for (auto& kv : kvs_)
      if (kv.key == k) { kv.value = std::move(v); return; }
    kvs_.push_back({k, std::move(v)});
  }
  bool has(const std::string& k) const {
    return std::any_of(kvs_.begin(), kvs_.end(), [&](const GgufKV& kv) { return kv.key == k; });
  }
  void set_u32(const std::string& k, uint32_t v) { set(k, scalar(GgufValueType::UINT32, v)); }
  void set_f32(const std::string& k, float v) { GgufValue x; x.type = GgufValueType::FLOAT32; x.f = v; set(k, x); }
  void set_bool(const std::string& k, bool v) { set(k, scalar(GgufValueType::BOOL, v)); }
  void set_string(const std::string& k, const std::string& v) { GgufValue x; x.type = GgufValueType::STRING; x.s = v; set(k, x); }
  void set_array_i32(const std::string& k, const std::vector<int32_t>& v) { set(k, gguf_array_of(GgufValueType::INT32, v, [](GgufValue& y, int32_t e) { y.i = e; })); }
  void set_array_f32(const std::string& k, const std::vector<float>& v) { set(k, gguf_array_of(GgufValueType::FLOAT32, v, [](GgufValue& y, float e) { y.f = e; })); }
  void set_array_bool(const std::string& k, const std::vector<bool>& v) { set(k, gguf_array_of(GgufValueType::BOOL, v, [](GgufValue& y, bool e) { y.u = e; })); }
  void set_array_string(const std::string& k, const std::vector<std::string>& v) { set(k, gguf_array_of(GgufValueType::STRING, v, [](GgufValue& y, const std::string& e) { y.s = e; })); }
  void sort_keys() { std::sort(kvs_.begin(), kvs_.end(), [](const GgufKV& a, const GgufKV& b) { return a.key < b.key; }); }
  void write_to(GgufWriter& w) const { for (const auto& kv : kvs_) w.set(kv.key, kv.value); }

 private:
  static GgufValue scalar(GgufValueType t, uint64_t u) { GgufValue x; x.type = t; x.u = u; return x; }
  std::vector<GgufKV> kvs_;
};

void add_synthetic_vocab(const RandomModelSpec& s, KvList& w) {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  auto add = [&](std::string text, int32_t type, float score) {
    tokens.push_back(std::move(text));
    types.push_back(type);
    scores.push_back(score);
  };
  add("<pad>", 3, -1000);
  add("<eos>", 3, -1000);
  add("<bos>", 3, -1000);
  add("<unk>", 2, -1000);
  add("<mask>", 4, -1000);
  add("<start_of_turn>", 3, -1000);
  add("<end_of_turn>", 3, -1000);
  char buf[16];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 6, 0);
  }
  // Single printable characters and the space marker, so text always has a non-byte segmentation.
  const std::string space = "\xE2\x96\x81";
  add(space, 1, -1);
  for (char c = 33; c < 127; ++c) add(std::string(1, c), 1, -2.0f - static_cast<float>(tokens.size()));
  int unused = 0;
  while (static_cast<int>(tokens.size()) < s.n_vocab) add("<unused" + std::to_string(unused++) + ">", 5, 0);
  if (static_cast<int>(tokens.size()) > s.n_vocab) throw std::invalid_argument("n_vocab too small for the synthetic vocabulary (need >= 358)");
  w.set_string("tokenizer.ggml.model", "llama");
  w.set_string("tokenizer.ggml.pre", "default");
  w.set_array_string("tokenizer.ggml.tokens", tokens);
  w.set_array_f32("tokenizer.ggml.scores", scores);
  w.set_array_i32("tokenizer.ggml.token_type", types);
  w.set_u32("tokenizer.ggml.bos_token_id", 2);
  w.set_u32("tokenizer.ggml.eos_token_id", 1);
  w.set_u32("tokenizer.ggml.unknown_token_id", 3);
  w.set_u32("tokenizer.ggml.padding_token_id", 0);
  w.set_bool("tokenizer.ggml.add_bos_token", true);
  w.set_bool("tokenizer.ggml.add_eos_token", false);
}

void add_vocab_from(const std::string& path, const RandomModelSpec& s, KvList& w) {
  const GgufFile v = GgufFile::open(path);
  const GgufValue* tokens = v.find("tokenizer.ggml.tokens");
  if (!tokens || tokens->type != GgufValueType::ARRAY) throw std::invalid_argument(path + ": no tokenizer.ggml.tokens");
  if (static_cast<int64_t>(tokens->array.size()) != s.n_vocab)
    throw std::invalid_argument(path + ": vocabulary has " + std::to_string(tokens->array.size()) + " tokens, the model " + std::to_string(s.n_vocab) + " rows");
  for (const auto& kv : v.metadata())
    if (kv.key.rfind("tokenizer.", 0) == 0) w.set(kv.key, kv.value);
}

}  // namespace

std::optional<RandomModelSpec> random_model_preset(const std::string& name) {
  RandomModelSpec s;
  s.name = name;
  if (name == "tiny") return s;
  if (name == "e4b-mini") {  // E4B's topology at the tiny width: every MatFormer preset applies (FFN 512 = E4B's 16384)
    s.n_layer = 35;
    s.shared_kv_layers = 15;
    return s;
  }
  if (name == "e2b" || name == "e4b") {
    s.n_layer = name == "e2b" ? 30 : 35;
    s.n_embd = 2048;
    s.n_head = 8;
    s.n_head_kv = 2;
    s.head_dim = 256;
    s.n_ff = name == "e2b" ? 8192 : 16384;
    s.n_vocab = 262144;
    s.n_vocab_per_layer = 262144;
    s.sliding_window = 512;
    s.shared_kv_layers = s.n_layer - 20;
    return s;
  }
  return std::nullopt;
}

void write_random_gemma3n(const RandomModelSpec& s, const std::string& path, int n_threads) {
  if (s.n_layer <= 0 || s.n_embd <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_head % s.n_head_kv || s.n_altup < 2 ||
      s.shared_kv_layers < 0 || s.shared_kv_layers >= s.n_layer || s.n_vocab_per_layer > s.n_vocab)
    throw std::invalid_argument("random model: inconsistent shape");
  const bool ollama = s.layout == GgufLayout::Ollama;
  KvList w;
  const std::string a = "gemma3n.";
  w.set_string("general.architecture", "gemma3n");
  if (!ollama) {
    w.set_string("general.type", "model");
    w.set_string("general.name", "gemma3n-random-" + s.name);
  }
  w.set_u32("general.file_type", static_cast<uint32_t>(quant_target_file_type(target_for(s.quant))));
  w.set_u32("general.quantization_version", 2);
  w.set_u32(a + "block_count", s.n_layer);
  w.set_u32(a + "context_length", s.context_length);
  w.set_u32(a + "embedding_length", s.n_embd);
  if (ollama) w.set_u32(a + "feed_forward_length", s.n_ff);
  else w.set_array_i32(a + "feed_forward_length", std::vector<int32_t>(s.n_layer, s.n_ff));
  w.set_u32(a + "attention.head_count", s.n_head);
  w.set_u32(a + "attention.head_count_kv", s.n_head_kv);
  w.set_f32(a + "rope.freq_base", 1e6f);
  w.set_f32(a + "attention.layer_norm_rms_epsilon", 1e-6f);
  if (ollama) {
    w.set_u32(a + "head_dim", s.head_dim);
    w.set_f32(a + "rope.freq_base_local", 1e4f);
    w.set_bool(a + "altup.correct_scale", true);
    w.set_f32(a + "altup.lr_multiplier", 1.0f);
  } else {
    w.set_u32(a + "attention.key_length", s.head_dim);
    w.set_u32(a + "attention.value_length", s.head_dim);
    w.set_f32(a + "final_logit_softcapping", 30.0f);
  }
  w.set_u32(a + "attention.sliding_window", s.sliding_window);
  w.set_u32(a + "altup.active_idx", 0);
  w.set_u32(a + "altup.num_inputs", s.n_altup);
  w.set_u32(a + "embedding_length_per_layer_input", s.n_embd_per_layer);
  std::vector<bool> pattern;
  std::vector<float> sparsity;
  for (int l = 0; l < s.n_layer; ++l) {
    pattern.push_back(l % 5 != 4);
    sparsity.push_back(l < s.sparse_layers ? 1.6448533535f : -INFINITY);
  }
  w.set_array_bool(a + "attention.sliding_window_pattern", pattern);
  w.set_u32(a + "attention.shared_kv_layers", s.shared_kv_layers);
  w.set_array_f32(a + "activation_sparsity_scale", sparsity);
  if (s.vocab_path.empty()) add_synthetic_vocab(s, w);
  else add_vocab_from(s.vocab_path, s, w);
  if (ollama && !w.has("tokenizer.ggml.eos_token_ids")) w.set_array_i32("tokenizer.ggml.eos_token_ids", {1, s.vocab_path.empty() ? 6 : 106});
  if (ollama) w.sort_keys();
  GgufWriter out;
  w.write_to(out);

  auto pool = std::make_shared<ThreadPool>(n_threads > 0 ? n_threads : default_thread_count());
  for (const auto& t : plan_tensors(s)) {
    const uint64_t key = tensor_key(s.seed, t.name);
    const int64_t n_in = t.ne[0];
    const uint64_t row_bytes = *ggml_row_bytes(t.type, static_cast<uint64_t>(n_in));
    const GgmlType type = t.type;
    const Init init = t.init;
    out.add_tensor_lazy(t.name, t.type, t.ne, [=](int64_t r0, int64_t n, uint8_t* dst) {
      pool->parallel_for(n, [&](int64_t b, int64_t e, int) {
        std::vector<float> row(static_cast<size_t>(n_in));
        for (int64_t r = b; r < e; ++r) {
          const uint64_t base = static_cast<uint64_t>(r0 + r) * static_cast<uint64_t>(n_in);
          for (int64_t i = 0; i < n_in; ++i) row[i] = init.mean + init.std * normal_at(key, base + i);
          // Tensors a real file stores as F32 were widened from the bf16 checkpoint: bf16 values in F32.
          if (type == GgmlType::F32)
            for (int64_t i = 0; i < n_in; ++i) row[i] = bf16_to_fp32(fp32_to_bf16(row[i]));
          quantize_row(type, row.data(), dst + r * row_bytes, n_in);
        }
      }, 1);
    });
  }
  out.write(path);
}

}  // namespace g3n
