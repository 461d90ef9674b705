#include "model/gemma3n_weights.h"

#include <stdexcept>

#include "gguf/gguf.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("gemma3n: " + msg); }

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

class Binder {
 public:
  explicit Binder(const GgufFile& f) : f_(f) {}

  const GgufTensorInfo& get(const std::string& name, std::vector<int64_t> want) const {
    const GgufTensorInfo* t = f_.find_tensor(name);
    if (!t) fail("missing tensor '" + name + "'");
    std::vector<int64_t> have = t->ne;
    while (have.size() < want.size()) have.push_back(1);
    while (want.size() < have.size()) want.push_back(1);
    if (have != want) fail("tensor '" + name + "' has shape " + shape_str(t->ne) + ", expected " + shape_str(want));
    return *t;
  }

  // A matrix [n_in, n_out] (or slice `slice` of a stacked [n_in, n_out, k] tensor).
  WeightMatrix matrix(const std::string& name, int64_t n_in, int64_t n_out, int64_t n_slices = 1, int64_t slice = 0) const {
    const auto& t = n_slices > 1 ? get(name, {n_in, n_out, n_slices}) : get(name, {n_in, n_out});
    WeightMatrix w;
    w.type = t.type;
    w.n_in = n_in;
    w.n_out = n_out;
    auto rb = ggml_row_bytes(t.type, static_cast<uint64_t>(n_in));
    if (!rb) fail("tensor '" + name + "': row of " + std::to_string(n_in) + " is not a whole number of " + std::string(ggml_type_traits(t.type).name) + " blocks");
    w.row_bytes = *rb;
    w.data = f_.tensor_data(t) + static_cast<uint64_t>(slice) * static_cast<uint64_t>(n_out) * w.row_bytes;
    return w;
  }

  std::vector<float> vec(const std::string& name, int64_t n) const {
    const auto& t = get(name, {n});
    std::vector<float> out(n);
    dequantize_row(t.type, f_.tensor_data(t), out.data(), n);
    return out;
  }

 private:
  const GgufFile& f_;
};

}  // namespace

Gemma3nWeights bind_gemma3n_weights(const GgufFile& f, const Gemma3nConfig& c) {
  Binder b(f);
  const int64_t D = c.n_embd, N = c.n_altup, P = c.n_embd_per_layer, L = c.n_layer;
  const int64_t q_width = static_cast<int64_t>(c.n_head) * c.head_dim, kv_width = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
  Gemma3nWeights w;
  w.token_embd = b.matrix("token_embd.weight", D, c.n_vocab);
  w.output = f.find_tensor("output.weight") ? b.matrix("output.weight", D, c.n_vocab) : w.token_embd;
  {
    const GgufTensorInfo* t = f.find_tensor("per_layer_token_embd.weight");
    w.per_layer_token_embd = b.matrix("per_layer_token_embd.weight", L * P, t ? t->rows() : 0);
  }
  w.per_layer_model_proj = b.matrix("per_layer_model_proj.weight", D, L * P);
  w.per_layer_proj_norm = b.vec("per_layer_proj_norm.weight", P);
  for (int64_t k = 0; k < N - 1; ++k) {
    w.altup_proj.push_back(b.matrix("altup_proj.weight", D, D, N - 1, k));
    w.altup_unembd_proj.push_back(b.matrix("altup_unembd_proj.weight", D, D, N - 1, k));
  }
  w.output_norm = b.vec("output_norm.weight", D);

  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    const int64_t F = c.n_ff[l];
    Gemma3nLayerWeights lw;
    lw.altup_router = b.matrix(p + "altup_router.weight", D, N);
    lw.altup_router_norm = b.vec(p + "altup_router_norm.weight", D);
    lw.altup_predict_coef = b.matrix(p + "altup_predict_coef.weight", N, N * N);
    lw.altup_correct_coef = b.matrix(p + "altup_correct_coef.weight", N, N);
    lw.altup_correct_scale = b.vec(p + "altup_correct_scale.weight", D);
    lw.attn_norm = b.vec(p + "attn_norm.weight", D);
    lw.attn_q = b.matrix(p + "attn_q.weight", D, q_width);
    if (c.owns_kv(l)) {  // KV-sharing layers' own K/V weights are optional and never read
      lw.attn_k = b.matrix(p + "attn_k.weight", D, kv_width);
      lw.attn_v = b.matrix(p + "attn_v.weight", D, kv_width);
      lw.attn_k_norm = b.vec(p + "attn_k_norm.weight", c.head_dim);
    }
    lw.attn_output = b.matrix(p + "attn_output.weight", q_width, D);
    lw.attn_q_norm = b.vec(p + "attn_q_norm.weight", c.head_dim);
    lw.post_attention_norm = b.vec(p + "post_attention_norm.weight", D);
    lw.laurel_l = b.matrix(p + "laurel_l.weight", D, c.laurel_rank);
    lw.laurel_r = b.matrix(p + "laurel_r.weight", c.laurel_rank, D);
    lw.laurel_post_norm = b.vec(p + "laurel_post_norm.weight", D);
    lw.ffn_norm = b.vec(p + "ffn_norm.weight", D);
    lw.ffn_gate = b.matrix(p + "ffn_gate.weight", D, F);
    lw.ffn_up = b.matrix(p + "ffn_up.weight", D, F);
    lw.ffn_down = b.matrix(p + "ffn_down.weight", F, D);
    lw.post_ffw_norm = b.vec(p + "post_ffw_norm.weight", D);
    lw.inp_gate = b.matrix(p + "inp_gate.weight", D, P);
    lw.proj = b.matrix(p + "proj.weight", P, D);
    lw.post_norm = b.vec(p + "post_norm.weight", D);
    w.layers.push_back(std::move(lw));
  }
  return w;
}

}  // namespace g3n
