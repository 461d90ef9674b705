#include "tools/hf_text_gguf.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "base/thread_pool.h"
#include "quant/fp16.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

const char* kPrefix = "model.language_model.";

// Per-layer names: GGUF suffix and HF suffix under layers.{l}. (architecture spec §2.2).
const std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm", "input_layernorm.weight"},
    {"attn_q", "self_attn.q_proj.weight"},
    {"attn_k", "self_attn.k_proj.weight"},
    {"attn_v", "self_attn.v_proj.weight"},
    {"attn_output", "self_attn.o_proj.weight"},
    {"attn_q_norm", "self_attn.q_norm.weight"},
    {"attn_k_norm", "self_attn.k_norm.weight"},
    {"post_attention_norm", "post_attention_layernorm.weight"},
    {"ffn_norm", "pre_feedforward_layernorm.weight"},
    {"ffn_gate", "mlp.gate_proj.weight"},
    {"ffn_up", "mlp.up_proj.weight"},
    {"ffn_down", "mlp.down_proj.weight"},
    {"post_ffw_norm", "post_feedforward_layernorm.weight"},
    {"inp_gate", "per_layer_input_gate.weight"},
    {"proj", "per_layer_projection.weight"},
    {"post_norm", "post_per_layer_input_norm.weight"},
    {"altup_correct_coef", "altup.correction_coefs.weight"},
    {"altup_correct_scale", "altup.correct_output_scale"},
    {"altup_predict_coef", "altup.prediction_coefs.weight"},
    {"altup_router", "altup.modality_router.weight"},
    {"altup_router_norm", "altup.router_norm.weight"},
    {"laurel_l", "laurel.linear_left.weight"},
    {"laurel_r", "laurel.linear_right.weight"},
    {"laurel_post_norm", "laurel.post_laurel_norm.weight"},
};

GgufValue scalar_u32(uint64_t v) { GgufValue x; x.type = GgufValueType::UINT32; x.u = v; return x; }
GgufValue scalar_f32(double v) { GgufValue x; x.type = GgufValueType::FLOAT32; x.f = static_cast<float>(v); return x; }
GgufValue scalar_bool(bool v) { GgufValue x; x.type = GgufValueType::BOOL; x.u = v; return x; }
GgufValue scalar_str(const std::string& v) { GgufValue x; x.type = GgufValueType::STRING; x.s = v; return x; }

// The standard normal quantile (Acklam's rational approximation refined by one Halley step: full double
// precision), for the sparsity threshold Φ⁻¹(p).
double normal_quantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00};
  double x;
  if (p < 0.02425) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - 0.02425) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

// The stored sparsity scale of a layer: Φ⁻¹(p) for p > 0, −inf (no sparsity) for 0. For 0.95 this is
// torch's float32 icdf, the value llama.cpp's converter writes and its graph hard-codes (the double
// quantile rounds 2 ulp higher).
float sparsity_scale(double p) {
  if (p <= 0) return -INFINITY;
  if (static_cast<float>(p) == 0.95f) return 1.6448533535f;
  return static_cast<float>(normal_quantile(static_cast<double>(static_cast<float>(p))));
}

// Decodes n elements of a BF16/F16/F32 source into dst.
void decode(const std::string& dtype, const uint8_t* src, float* dst, int64_t n) {
  if (dtype == "F32") {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
  } else if (dtype == "BF16") {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = bf16_to_fp32(h);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = fp16_to_fp32_fast(h);
    }
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

}  // namespace

std::string hf_text_prefix() { return kPrefix; }

std::vector<HfTextTensor> hf_text_tensors(const HfTextConfig& c, GgufLayout layout) {
  const std::string p = kPrefix;
  const int64_t D = c.hidden_size, L = c.num_hidden_layers, P = c.hidden_size_per_layer_input, N = c.altup_num_inputs;
  const int64_t R = c.laurel_rank, qw = int64_t(c.num_attention_heads) * c.head_dim, kvw = int64_t(c.num_key_value_heads) * c.head_dim;
  const bool ollama = layout == GgufLayout::Ollama;
  const int64_t V = ollama ? c.vocab_size : c.vocab_size_per_layer_input, Vp = c.vocab_size_per_layer_input;
  std::vector<HfTextTensor> t;
  t.push_back({"token_embd.weight", {D, V}, {p + "embed_tokens.weight"}});
  t.push_back({"per_layer_token_embd.weight", {L * P, Vp}, {p + "embed_tokens_per_layer.weight"}});
  t.push_back({"per_layer_model_proj.weight", {D, L * P}, {p + "per_layer_model_projection.weight"}});
  t.push_back({"per_layer_proj_norm.weight", {P}, {p + "per_layer_projection_norm.weight"}});
  HfTextTensor up{"altup_proj.weight", {D, D, N - 1}, {}}, un{"altup_unembd_proj.weight", {D, D, N - 1}, {}};
  for (int k = 0; k < N - 1; ++k) {
    up.sources.push_back(p + "altup_projections." + std::to_string(k) + ".weight");
    un.sources.push_back(p + "altup_unembed_projections." + std::to_string(k) + ".weight");
  }
  t.push_back(up);
  t.push_back(un);
  for (int l = 0; l < L; ++l) {
    const int64_t F = c.intermediate_size[static_cast<size_t>(l)];
    const std::map<std::string, std::vector<int64_t>> shapes = {
        {"attn_q", {D, qw}}, {"attn_k", {D, kvw}}, {"attn_v", {D, kvw}}, {"attn_output", {qw, D}},
        {"attn_q_norm", {c.head_dim}}, {"attn_k_norm", {c.head_dim}}, {"ffn_gate", {D, F}}, {"ffn_up", {D, F}},
        {"ffn_down", {F, D}}, {"inp_gate", {D, P}}, {"proj", {P, D}}, {"altup_correct_coef", {N, N}},
        {"altup_predict_coef", {N, N * N}}, {"altup_router", {D, N}}, {"laurel_l", {D, R}}, {"laurel_r", {R, D}}};
    for (const auto& [g, h] : kLayerNames) {
      const auto s = shapes.find(g);
      HfTextTensor x{"blk." + std::to_string(l) + "." + g + ".weight", s == shapes.end() ? std::vector<int64_t>{D} : s->second,
                     {p + "layers." + std::to_string(l) + "." + h}, l};
      x.clamp = ollama && c.altup_coef_clip > 0 && (std::string(g) == "altup_correct_coef" || std::string(g) == "altup_predict_coef");
      t.push_back(std::move(x));
    }
  }
  t.push_back({"output_norm.weight", {D}, {p + "norm.weight"}});
  if (ollama) {
    // Ollama's writer: block tensors by (block, name), then the others by name.
    std::stable_sort(t.begin(), t.end(), [](const HfTextTensor& a, const HfTextTensor& b) {
      const int ka = a.layer < 0 ? INT_MAX : a.layer, kb = b.layer < 0 ? INT_MAX : b.layer;
      return ka != kb ? ka < kb : a.name < b.name;
    });
  }
  return t;
}

std::vector<GgufKV> hf_text_metadata(const HfTextConfig& c, GgufLayout layout, QuantTarget target, const std::string& name) {
  const bool ollama = layout == GgufLayout::Ollama;
  const std::string a = "gemma3n.";
  std::vector<GgufKV> kv;
  auto set = [&](const std::string& k, GgufValue v) { kv.push_back({k, std::move(v)}); };
  const int L = c.num_hidden_layers;
  std::vector<bool> pattern = c.layer_is_sliding;
  std::vector<float> sparsity;
  for (double p : c.activation_sparsity_pattern) sparsity.push_back(sparsity_scale(p));
  std::vector<int32_t> ff(c.intermediate_size.begin(), c.intermediate_size.end());
  set("general.architecture", scalar_str("gemma3n"));
  if (!ollama) {
    set("general.type", scalar_str("model"));
    set("general.name", scalar_str(name));
  }
  set(a + "block_count", scalar_u32(static_cast<uint64_t>(L)));
  set(a + "context_length", scalar_u32(static_cast<uint64_t>(c.max_position_embeddings)));
  set(a + "embedding_length", scalar_u32(static_cast<uint64_t>(c.hidden_size)));
  if (ollama) set(a + "feed_forward_length", scalar_u32(static_cast<uint64_t>(c.intermediate_size[0])));
  else set(a + "feed_forward_length", gguf_array_of(GgufValueType::INT32, ff, [](GgufValue& y, int32_t e) { y.i = e; }));
  set(a + "attention.head_count", scalar_u32(static_cast<uint64_t>(c.num_attention_heads)));
  set(a + "attention.head_count_kv", scalar_u32(static_cast<uint64_t>(c.num_key_value_heads)));
  set(a + "rope.freq_base", scalar_f32(c.rope_theta));
  set(a + "attention.layer_norm_rms_epsilon", scalar_f32(c.rms_norm_eps));
  set("general.file_type", scalar_u32(static_cast<uint64_t>(quant_target_file_type(target))));
  if (ollama) {
    set(a + "head_dim", scalar_u32(static_cast<uint64_t>(c.head_dim)));
    set(a + "rope.freq_base_local", scalar_f32(c.rope_local_base_freq));
    set(a + "altup.correct_scale", scalar_bool(c.altup_correct_scale));
    set(a + "altup.lr_multiplier", scalar_f32(c.altup_lr_multiplier));
  } else {
    set(a + "attention.key_length", scalar_u32(static_cast<uint64_t>(c.head_dim)));
    set(a + "attention.value_length", scalar_u32(static_cast<uint64_t>(c.head_dim)));
    set(a + "final_logit_softcapping", scalar_f32(c.final_logit_softcapping));
  }
  set(a + "attention.sliding_window", scalar_u32(static_cast<uint64_t>(c.sliding_window)));
  set(a + "altup.active_idx", scalar_u32(static_cast<uint64_t>(c.altup_active_idx)));
  set(a + "altup.num_inputs", scalar_u32(static_cast<uint64_t>(c.altup_num_inputs)));
  set(a + "embedding_length_per_layer_input", scalar_u32(static_cast<uint64_t>(c.hidden_size_per_layer_input)));
  set(a + "attention.shared_kv_layers", scalar_u32(static_cast<uint64_t>(c.num_kv_shared_layers)));
  set(a + "activation_sparsity_scale", gguf_array_of(GgufValueType::FLOAT32, sparsity, [](GgufValue& y, float e) { y.f = e; }));
  set(a + "attention.sliding_window_pattern", gguf_array_of(GgufValueType::BOOL, pattern, [](GgufValue& y, bool e) { y.u = e; }));
  set("general.quantization_version", scalar_u32(2));
  return kv;
}

void write_hf_text_gguf(const HfCheckpoint& ck, const std::string& out_path, const HfConvertOptions& opt,
                        const std::vector<GgufKV>& tokenizer_kvs) {
  const HfTextConfig& c = ck.text();
  const bool ollama = opt.layout == GgufLayout::Ollama;
  const std::string name = opt.name.empty() ? std::filesystem::path(ck.dir()).filename().string() : opt.name;
  std::vector<GgufKV> kvs = hf_text_metadata(c, opt.layout, opt.target, name);
  for (const auto& kv : tokenizer_kvs) kvs.push_back(kv);
  if (ollama) std::stable_sort(kvs.begin(), kvs.end(), [](const GgufKV& x, const GgufKV& y) { return x.key < y.key; });
  GgufWriter w;
  for (const auto& kv : kvs) w.set(kv.key, kv.value);

  // Validate every source before writing anything: presence, dtype, shape (rows may exceed the GGUF's
  // for the embedding tables, which the llama.cpp layout cuts to the tokenizer's size).
  struct Plan {
    HfTextTensor t;
    GgmlType type;
    std::vector<HfTensorRef> src;
  };
  std::vector<Plan> plans;
  uint64_t total = 0;
  for (auto& t : hf_text_tensors(c, opt.layout)) {
    Plan p{t, plan_tensor_type(opt.target, opt.layout, t.name, t.ne, t.layer, c.num_hidden_layers), {}};
    const bool table = t.name == "token_embd.weight" || t.name == "per_layer_token_embd.weight";
    const int64_t rows_per_src = (t.ne.size() == 1 ? 1 : t.ne[1]);
    for (const auto& s : t.sources) {
      const HfTensorRef r = ck.get(s);
      const std::string where = r.file->path() + ": tensor '" + s + "'";
      if (r.tensor->dtype != "BF16" && r.tensor->dtype != "F16" && r.tensor->dtype != "F32")
        throw HfCheckpointError(where + " has dtype " + r.tensor->dtype + "; expected BF16, F16 or F32");
      std::vector<int64_t> ne(r.tensor->shape.rbegin(), r.tensor->shape.rend());
      std::vector<int64_t> want(t.ne.begin(), t.ne.begin() + std::min<size_t>(t.ne.size(), 2));
      const bool ok = table ? ne.size() == 2 && ne[0] == want[0] && ne[1] >= want[1] : ne == want;
      if (!ok)
        throw HfCheckpointError(where + " has shape " + shape_str(r.tensor->shape) + "; config.json implies " +
                                shape_str(std::vector<int64_t>(want.rbegin(), want.rend())));
      total += static_cast<uint64_t>(rows_per_src * t.ne[0]) * r.tensor->elem_bytes;
      p.src.push_back(r);
    }
    plans.push_back(std::move(p));
  }

  auto pool = std::make_shared<ThreadPool>(opt.n_threads > 0 ? opt.n_threads : default_thread_count());
  auto done = std::make_shared<std::atomic<uint64_t>>(0);
  for (const auto& p : plans) {
    const int64_t n0 = p.t.ne[0];
    const int64_t rows_per_src = p.t.ne.size() == 1 ? 1 : p.t.ne[1];
    const uint64_t out_row = *ggml_row_bytes(p.type, static_cast<uint64_t>(n0));
    const GgmlType type = p.type;
    const std::vector<HfTensorRef> src = p.src;
    const float clip = p.t.clamp ? static_cast<float>(c.altup_coef_clip) : 0.0f;
    const auto progress = opt.progress;
    w.add_tensor_lazy(p.t.name, p.type, p.t.ne, [=](int64_t r0, int64_t n, uint8_t* dst) {
      pool->parallel_for(n, [&](int64_t b, int64_t e, int) {
        std::vector<float> row(static_cast<size_t>(n0));
        for (int64_t r = b; r < e; ++r) {
          const int64_t g = r0 + r;
          const HfTensorRef& s = src[static_cast<size_t>(g / rows_per_src)];
          const uint64_t in_row = static_cast<uint64_t>(n0) * s.tensor->elem_bytes;
          decode(s.tensor->dtype, s.file->data(*s.tensor) + static_cast<uint64_t>(g % rows_per_src) * in_row, row.data(), n0);
          if (clip > 0)
            for (float& v : row) v = std::clamp(v, -clip, clip);
          quantize_row(type, row.data(), dst + r * out_row, n0);
        }
      }, 16);
      // The rows just read leave the resident set: RSS stays at the write buffer, not the checkpoint.
      uint64_t read = 0;
      for (int64_t g = r0; g < r0 + n;) {
        const HfTensorRef& s = src[static_cast<size_t>(g / rows_per_src)];
        const int64_t in_src = std::min<int64_t>(r0 + n, (g / rows_per_src + 1) * rows_per_src) - g;
        const uint64_t in_row = static_cast<uint64_t>(n0) * s.tensor->elem_bytes;
        s.file->drop_pages(s.file->data(*s.tensor) + static_cast<uint64_t>(g % rows_per_src) * in_row, in_row * in_src);
        read += in_row * static_cast<uint64_t>(in_src);
        g += in_src;
      }
      const uint64_t now = done->fetch_add(read) + read;
      if (progress) progress(now, total);
    });
  }
  w.write(out_path);
}

}  // namespace g3n
