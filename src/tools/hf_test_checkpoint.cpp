#include "tools/hf_test_checkpoint.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "quant/fp16.h"
#include "quant/quantize.h"
#include "tools/hf_checkpoint.h"
#include "tools/hf_mmproj_gguf.h"
#include "tools/hf_text_gguf.h"
#include "tools/safetensors_writer.h"

namespace g3n {
namespace {

using nlohmann::ordered_json;

int64_t int_key(const GgufFile& f, const std::string& k, int64_t dflt) { return f.get_int(k).value_or(dflt); }

// One HF tensor to write: rows [row0, row0 + rows) of GGUF tensor `t` (several HF tensors share the
// stacked altup projections), optionally continued by rows of a second file.
struct Piece {
  std::string hf_name;
  const GgufFile* file;
  const GgufTensorInfo* t;
  int64_t row0, rows;
  const GgufFile* extra_file = nullptr;
  const GgufTensorInfo* extra = nullptr;
  int64_t extra_rows = 0;
  std::vector<int64_t> shape{};  // HF shape when not [rows, ne0] / [ne0]
};

void encode(const std::string& dtype, const float* src, uint8_t* dst, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) {
    if (dtype == "F32") {
      std::memcpy(dst + 4 * i, src + i, 4);
    } else {
      const uint16_t h = dtype == "F16" ? fp32_to_fp16(src[i]) : fp32_to_bf16(src[i]);
      std::memcpy(dst + 2 * i, &h, 2);
    }
  }
}

// tokenizer.json + tokenizer_config.json holding the GGUF's vocabulary: NORMAL and BYTE pieces in
// model.vocab, the others as added tokens (CONTROL and UNKNOWN ones special).
void write_tokenizer(const GgufFile& f, const std::string& dir) {
  const auto* tokens = f.find("tokenizer.ggml.tokens");
  const auto* types = f.find("tokenizer.ggml.token_type");
  if (!tokens || !types || tokens->array.size() != types->array.size()) return;
  // model.vocab and added_tokens_decoder hold a quarter million entries at the real size: sorted objects
  // (ordered_json's inserts are linear searches).
  nlohmann::json vocab = nlohmann::json::object(), decoder = nlohmann::json::object();
  ordered_json added = ordered_json::array();
  for (size_t i = 0; i < tokens->array.size(); ++i) {
    const std::string& text = tokens->array[i].s;
    const int64_t type = types->array[i].i;
    vocab[text] = i;
    if (type == 1 || type == 6) continue;
    const bool special = type == 3 || type == 2;
    added.push_back({{"id", i}, {"content", text}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", special}});
    decoder[std::to_string(i)] = {{"content", text}, {"lstrip", false}, {"normalized", false}, {"rstrip", false},
                                  {"single_word", false}, {"special", special}};
  }
  nlohmann::json tj;
  tj["version"] = "1.0";
  tj["added_tokens"] = added;
  tj["model"] = {{"type", "BPE"}, {"byte_fallback", true}, {"vocab", vocab}, {"merges", ordered_json::array()}};
  write_file_atomic(dir + "/tokenizer.json", tj.dump());
  auto text_of = [&](const char* key, int64_t dflt) {
    const int64_t id = f.get_int(key).value_or(dflt);
    return id >= 0 && static_cast<size_t>(id) < tokens->array.size() ? tokens->array[static_cast<size_t>(id)].s : std::string();
  };
  ordered_json tc;
  tc["add_bos_token"] = f.get_bool("tokenizer.ggml.add_bos_token").value_or(true);
  tc["add_eos_token"] = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  tc["bos_token"] = text_of("tokenizer.ggml.bos_token_id", 2);
  tc["eos_token"] = text_of("tokenizer.ggml.eos_token_id", 1);
  tc["unk_token"] = text_of("tokenizer.ggml.unknown_token_id", 3);
  tc["pad_token"] = text_of("tokenizer.ggml.padding_token_id", 0);
  tc["added_tokens_decoder"] = decoder;
  write_file_atomic(dir + "/tokenizer_config.json", tc.dump(1));
}

}  // namespace

void write_hf_test_checkpoint(const GgufFile& f, const std::string& dir, const HfTestCheckpointOptions& opt) {
  if (f.get_string("general.architecture") != "gemma3n") throw std::invalid_argument(f.path() + ": not a gemma3n GGUF");
  std::unique_ptr<GgufFile> extra;
  if (!opt.extra_embedding_rows_from.empty()) extra = std::make_unique<GgufFile>(GgufFile::open(opt.extra_embedding_rows_from));
  std::filesystem::create_directories(dir);
  const std::string a = "gemma3n.";
  const int64_t L = int_key(f, a + "block_count", 0);
  const auto* te = f.find_tensor("token_embd.weight");
  const auto* pl = f.find_tensor("per_layer_token_embd.weight");
  if (!te || !pl || L <= 0) throw std::invalid_argument(f.path() + ": no token tables or block count");
  const auto* te_extra = extra ? extra->find_tensor("token_embd.weight") : nullptr;
  const int64_t V = te_extra ? std::max(te->ne[1], te_extra->ne[1]) : te->ne[1];

  // config.json from the GGUF's metadata.
  ordered_json tc;
  tc["model_type"] = "gemma3n_text";
  tc["hidden_size"] = int_key(f, a + "embedding_length", 0);
  tc["num_hidden_layers"] = L;
  std::vector<int64_t> ff;
  if (const auto* v = f.find(a + "feed_forward_length"); v && v->type == GgufValueType::ARRAY)
    for (const auto& e : v->array) ff.push_back(*e.as_int());
  else
    ff.assign(static_cast<size_t>(L), int_key(f, a + "feed_forward_length", 0));
  tc["intermediate_size"] = ff;
  tc["num_attention_heads"] = int_key(f, a + "attention.head_count", 0);
  tc["num_key_value_heads"] = int_key(f, a + "attention.head_count_kv", 0);
  tc["head_dim"] = int_key(f, a + "attention.key_length", int_key(f, a + "head_dim", 256));
  tc["vocab_size"] = V;
  tc["vocab_size_per_layer_input"] = pl->ne[1];
  tc["hidden_size_per_layer_input"] = int_key(f, a + "embedding_length_per_layer_input", 256);
  tc["rms_norm_eps"] = 1e-6;
  tc["rope_theta"] = f.get_float(a + "rope.freq_base").value_or(1e6);
  tc["rope_local_base_freq"] = f.get_float(a + "rope.freq_base_local").value_or(1e4);
  tc["sliding_window"] = int_key(f, a + "attention.sliding_window", 512);
  std::vector<std::string> types;
  if (const auto* v = f.find(a + "attention.sliding_window_pattern"))
    for (const auto& e : v->array) types.push_back(e.u ? "sliding_attention" : "full_attention");
  tc["layer_types"] = types;
  tc["num_kv_shared_layers"] = int_key(f, a + "attention.shared_kv_layers", 0);
  std::vector<double> sp;
  if (const auto* v = f.find(a + "activation_sparsity_scale"))
    for (const auto& e : v->array) sp.push_back(e.f > 0 ? std::round(0.5 * std::erfc(-e.f / std::sqrt(2.0)) * 1e6) / 1e6 : 0.0);
  tc["activation_sparsity_pattern"] = sp;
  tc["final_logit_softcapping"] = f.get_float(a + "final_logit_softcapping").value_or(30.0);
  tc["altup_active_idx"] = int_key(f, a + "altup.active_idx", 0);
  tc["altup_num_inputs"] = int_key(f, a + "altup.num_inputs", 4);
  tc["altup_coef_clip"] = 120.0;
  tc["altup_correct_scale"] = true;
  tc["altup_lr_multiplier"] = 1.0;
  tc["laurel_rank"] = f.find_tensor("blk.0.laurel_l.weight") ? f.find_tensor("blk.0.laurel_l.weight")->ne[1] : 64;
  tc["max_position_embeddings"] = int_key(f, a + "context_length", 32768);
  tc["hidden_activation"] = "gelu_pytorch_tanh";
  ordered_json cfg;
  cfg["architectures"] = {"Gemma3nForConditionalGeneration"};
  cfg["model_type"] = "gemma3n";
  cfg["text_config"] = tc;
  std::vector<std::unique_ptr<GgufFile>> mm;
  for (const auto& p : opt.mmproj_from) {
    mm.push_back(std::make_unique<GgufFile>(GgufFile::open(p)));
    const GgufFile& m = *mm.back();
    if (m.get_bool("clip.has_vision_encoder").value_or(false)) {
      cfg["vision_config"] = {{"model_type", "gemma3n_vision"},
                              {"rms_norm_eps", m.get_float("clip.vision.attention.layer_norm_epsilon").value_or(1e-6)}};
      const int64_t size = m.get_int("clip.vision.image_size").value_or(768);
      ordered_json pre;
      pre["size"] = {{"height", size}, {"width", size}};
      write_file_atomic(dir + "/preprocessor_config.json", pre.dump(2));
    }
    if (m.get_bool("clip.has_audio_encoder").value_or(false))
      cfg["audio_config"] = {{"model_type", "gemma3n_audio"}, {"input_feat_size", m.get_int("clip.audio.num_mel_bins").value_or(128)},
                             {"rms_norm_eps", m.get_float("clip.audio.attention.layer_norm_epsilon").value_or(1e-6)}};
  }
  write_file_atomic(dir + "/config.json", cfg.dump(2));
  ordered_json gen;
  gen["bos_token_id"] = 2;
  // Gemma 3n stops on <eos> and <end_of_turn> (1 and 106 in the real vocabulary).
  std::vector<int64_t> eos = {f.get_int("tokenizer.ggml.eos_token_id").value_or(1)};
  if (const auto* toks = f.find("tokenizer.ggml.tokens"))
    for (size_t i = 0; i < toks->array.size(); ++i)
      if (toks->array[i].s == "<end_of_turn>") eos.push_back(static_cast<int64_t>(i));
  gen["eos_token_id"] = eos;
  write_file_atomic(dir + "/generation_config.json", gen.dump(2));
  // The larger vocabulary when a second file extends the token table (the Ollama fixture's 512 entries).
  write_tokenizer(extra && extra->find("tokenizer.ggml.tokens") &&
                          extra->find("tokenizer.ggml.tokens")->array.size() > f.find("tokenizer.ggml.tokens")->array.size()
                      ? *extra
                      : f,
                  dir);

  // Names come from the converter's own table (llama.cpp layout; token rows = V per the options).
  std::vector<Piece> pieces;
  HfTextConfig c;
  c.hidden_size = static_cast<int>(tc["hidden_size"].get<int64_t>());
  c.num_hidden_layers = static_cast<int>(L);
  c.num_attention_heads = static_cast<int>(tc["num_attention_heads"].get<int64_t>());
  c.num_key_value_heads = static_cast<int>(tc["num_key_value_heads"].get<int64_t>());
  c.head_dim = static_cast<int>(tc["head_dim"].get<int64_t>());
  for (int64_t x : ff) c.intermediate_size.push_back(static_cast<int>(x));
  c.vocab_size = static_cast<int>(V);
  c.vocab_size_per_layer_input = static_cast<int>(pl->ne[1]);
  c.hidden_size_per_layer_input = static_cast<int>(tc["hidden_size_per_layer_input"].get<int64_t>());
  c.altup_num_inputs = static_cast<int>(tc["altup_num_inputs"].get<int64_t>());
  c.laurel_rank = static_cast<int>(tc["laurel_rank"].get<int64_t>());
  for (const auto& t : hf_text_tensors(c, GgufLayout::LlamaCpp)) {
    const auto* g = f.find_tensor(t.name);
    if (!g) throw std::invalid_argument(f.path() + ": no tensor " + t.name);
    const int64_t rows_per = t.ne.size() == 1 ? 1 : t.ne[1];
    for (size_t k = 0; k < t.sources.size(); ++k) {
      Piece p{t.sources[k], &f, g, static_cast<int64_t>(k) * rows_per, t.name == "token_embd.weight" ? g->ne[1] : rows_per};
      if (t.name == "token_embd.weight" && te_extra && te_extra->ne[1] > g->ne[1]) {
        p.extra_file = extra.get();
        p.extra = te_extra;
        p.extra_rows = te_extra->ne[1] - g->ne[1];
      }
      pieces.push_back(p);
    }
  }

  for (const auto& m : mm) {
    for (const auto& t : m->tensors()) {
      const std::string hf = hf_mmproj_source(t.name);
      if (hf.empty()) throw std::invalid_argument(m->path() + ": no Hugging Face name for " + t.name);
      Piece p{hf, m.get(), &t, 0, t.rows()};
      p.shape.assign(t.ne.rbegin(), t.ne.rend());
      if (t.ne.size() == 4 && t.ne[0] == 1 && t.ne[1] == 1 && t.ne[3] == 1 &&
          (t.name.find("layer_scale.gamma") != std::string::npos || t.name == "v.conv_stem.conv.bias"))
        p.shape = {t.ne[2]};  // HF keeps the per-channel vectors 1-D
      pieces.push_back(p);
    }
  }
  // Shards of about equal size, in order.
  uint64_t total = 0;
  const uint32_t eb = safetensors_dtype_bytes(opt.dtype);
  if (eb == 0 || (opt.dtype != "F32" && opt.dtype != "F16" && opt.dtype != "BF16")) throw std::invalid_argument("dtype " + opt.dtype);
  auto bytes_of = [&](const Piece& p) { return static_cast<uint64_t>((p.rows + p.extra_rows) * p.t->ne[0]) * eb; };
  for (const auto& p : pieces) total += bytes_of(p);
  const int n_shards = std::max(1, opt.n_shards);
  ordered_json weight_map;
  std::vector<SafetensorsWriter> shards(static_cast<size_t>(n_shards));
  uint64_t acc = 0;
  for (const auto& p : pieces) {
    const int s = std::min<int>(n_shards - 1, static_cast<int>(acc * n_shards / std::max<uint64_t>(total, 1)));
    acc += bytes_of(p);
    char fname[64];
    std::snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
    weight_map[p.hf_name] = fname;
    std::vector<int64_t> shape = p.shape;
    if (shape.empty()) shape = p.t->ne.size() == 1 ? std::vector<int64_t>{p.t->ne[0]} : std::vector<int64_t>{p.rows + p.extra_rows, p.t->ne[0]};
    const std::string dtype = opt.dtype;
    shards[static_cast<size_t>(s)].add(p.hf_name, dtype, shape, [p, dtype, eb](uint64_t first, uint64_t n, uint8_t* dst) {
      const int64_t n0 = p.t->ne[0];
      std::vector<float> row(static_cast<size_t>(n0));
      // [first, first + n) may start and end inside a row: decode each row touched, copy its span.
      uint64_t done = 0;
      while (done < n) {
        const uint64_t e = first + done;
        const int64_t r = static_cast<int64_t>(e / static_cast<uint64_t>(n0));
        const uint64_t col = e % static_cast<uint64_t>(n0);
        const bool ext = r >= p.rows;
        const GgufFile* file = ext ? p.extra_file : p.file;
        const GgufTensorInfo* t = ext ? p.extra : p.t;
        const int64_t gr = ext ? r : p.row0 + r;
        const uint64_t rb = *ggml_row_bytes(t->type, static_cast<uint64_t>(n0));
        dequantize_row(t->type, file->tensor_data(*t) + static_cast<uint64_t>(gr) * rb, row.data(), n0);
        const uint64_t k = std::min<uint64_t>(n - done, static_cast<uint64_t>(n0) - col);
        encode(dtype, row.data() + col, dst + done * eb, k);
        done += k;
      }
      // The rows read leave the resident set (whole pages only: a neighbour's rows stay), so the writer's
      // memory does not grow with the source file.
      const uint64_t r_first = first / static_cast<uint64_t>(n0), r_end = (first + n + n0 - 1) / static_cast<uint64_t>(n0);
      const uint64_t main_end = std::min<uint64_t>(r_end, static_cast<uint64_t>(p.rows));
      if (r_first < main_end) {
        const uint64_t rb = *ggml_row_bytes(p.t->type, static_cast<uint64_t>(n0));
        p.file->drop_pages(p.file->tensor_data(*p.t) + (static_cast<uint64_t>(p.row0) + r_first) * rb, (main_end - r_first) * rb);
      }
    });
  }
  for (int s = 0; s < n_shards; ++s) {
    char fname[64];
    std::snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
    shards[static_cast<size_t>(s)].set_metadata("format", "pt");
    shards[static_cast<size_t>(s)].write(dir + "/" + fname, opt.n_threads);
  }
  ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = weight_map;
  write_file_atomic(dir + "/model.safetensors.index.json", index.dump(2));
}

}  // namespace g3n
