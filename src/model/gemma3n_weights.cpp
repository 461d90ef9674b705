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

  // Rows [first, first + count) of a stored [n_in, n_out] matrix: a contiguous byte range (MatFormer's
  // gate/up prefix, a slice's per-layer projection blocks).
  WeightMatrix rows(const std::string& name, int64_t n_in, int64_t n_out, int64_t first, int64_t count) const {
    WeightMatrix w = matrix(name, n_in, n_out);
    w.data += static_cast<uint64_t>(first) * w.row_bytes;
    w.n_out = count;
    return w;
  }

  // Columns [first, first + count) of every row of a stored [n_in, n_out] matrix, rows keeping the stored
  // stride (MatFormer's ffn_down prefix, a slice's per-layer blocks). The range must be whole quant blocks.
  WeightMatrix columns(const std::string& name, int64_t n_in, int64_t n_out, int64_t first, int64_t count) const {
    WeightMatrix w = matrix(name, n_in, n_out);
    const auto skip = ggml_row_bytes(w.type, static_cast<uint64_t>(first));
    const auto keep = ggml_row_bytes(w.type, static_cast<uint64_t>(count));
    if (!skip || !keep)
      fail("tensor '" + name + "': columns " + std::to_string(first) + ".." + std::to_string(first + count) + " are not whole " +
           std::string(ggml_type_traits(w.type).name) + " blocks, so a MatFormer slice cannot use them");
    w.data += *skip;
    w.n_in = count;
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
  const int64_t D = c.n_embd, N = c.n_altup, P = c.n_embd_per_layer;
  const int64_t q_width = static_cast<int64_t>(c.n_head) * c.head_dim, kv_width = static_cast<int64_t>(c.n_head_kv) * c.head_dim;
  Gemma3nWeights w;
  w.file = &f;
  w.token_embd = b.matrix("token_embd.weight", D, c.n_vocab);
  w.output = f.find_tensor("output.weight") ? b.matrix("output.weight", D, c.n_vocab) : w.token_embd;
  // Blocks of the kept file layers, grouped into runs of consecutive file layers.
  const int64_t LF = c.n_layer_file;
  const GgufTensorInfo* ple = f.find_tensor("per_layer_token_embd.weight");
  const int64_t ple_rows = ple ? ple->rows() : 0;
  for (int l = 0; l < c.n_layer;) {
    int n = 1;
    while (l + n < c.n_layer && c.file_layer[l + n] == c.file_layer[l] + n) ++n;
    const int64_t first = static_cast<int64_t>(c.file_layer[l]) * P;
    PerLayerRun run;
    run.first_layer = l;
    run.n_layers = n;
    run.token_embd = b.columns("per_layer_token_embd.weight", LF * P, ple_rows, first, n * P);
    run.model_proj = b.rows("per_layer_model_proj.weight", D, LF * P, first, n * P);
    w.per_layer.push_back(run);
    l += n;
  }
  w.per_layer_proj_norm = b.vec("per_layer_proj_norm.weight", P);
  for (int64_t k = 0; k < N - 1; ++k) {
    w.altup_proj.push_back(b.matrix("altup_proj.weight", D, D, N - 1, k));
    w.altup_unembd_proj.push_back(b.matrix("altup_unembd_proj.weight", D, D, N - 1, k));
  }
  w.output_norm = b.vec("output_norm.weight", D);

  for (int l = 0; l < c.n_layer; ++l) {
    // A MatFormer slice's layer l is the file's blk.{file_layer[l]}, its FFN the first F of the stored Fs.
    const std::string p = "blk." + std::to_string(c.file_layer[l]) + ".";
    const int64_t F = c.n_ff[l];
    const GgufTensorInfo* gate = f.find_tensor(p + "ffn_gate.weight");
    const int64_t Fs = gate && gate->ne.size() >= 2 ? gate->ne[1] : F;
    if (F > Fs) fail("layer " + std::to_string(l) + ": FFN width " + std::to_string(F) + " exceeds the stored " + std::to_string(Fs));
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
    lw.ffn_gate = b.rows(p + "ffn_gate.weight", D, Fs, 0, F);
    lw.ffn_up = b.rows(p + "ffn_up.weight", D, Fs, 0, F);
    lw.ffn_down = b.columns(p + "ffn_down.weight", Fs, D, 0, F);
    lw.post_ffw_norm = b.vec(p + "post_ffw_norm.weight", D);
    lw.inp_gate = b.matrix(p + "inp_gate.weight", D, P);
    lw.proj = b.matrix(p + "proj.weight", P, D);
    lw.post_norm = b.vec(p + "post_norm.weight", D);
    w.layers.push_back(std::move(lw));
  }
  return w;
}

}  // namespace g3n
