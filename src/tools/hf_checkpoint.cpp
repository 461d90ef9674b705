#include "tools/hf_checkpoint.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <nlohmann/json.hpp>

#include "base/json_nesting.h"

namespace g3n {

nlohmann::json read_hf_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw HfCheckpointError(path + ": cannot open");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof()) throw HfCheckpointError(path + ": cannot read");
  if (json_nesting_exceeds(text)) throw HfCheckpointError(path + ": nested more than " + std::to_string(kMaxJsonNesting) + " deep");
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw HfCheckpointError(path + ": not valid JSON: " + e.what());
  }
}

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Typed lookups in a config object; a missing or mistyped key names the file and the key.
struct ConfigReader {
  const json& obj;
  std::string file;
  const json& at(const char* key) const {
    const auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) throw HfCheckpointError(file + ": text_config has no '" + key + "'");
    return *it;
  }
  int integer(const char* key) const {
    const auto& v = at(key);
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t(1) << 30))
      throw HfCheckpointError(file + ": text_config '" + key + "' is not a non-negative integer");
    return v.get<int>();
  }
  int integer_or(const char* key, int dflt) const { return obj.contains(key) && !obj[key].is_null() ? integer(key) : dflt; }
  double number(const char* key) const {
    const auto& v = at(key);
    if (!v.is_number()) throw HfCheckpointError(file + ": text_config '" + key + "' is not a number");
    return v.get<double>();
  }
  double number_or(const char* key, double dflt) const { return obj.contains(key) && !obj[key].is_null() ? number(key) : dflt; }
};

HfTextConfig parse_text_config(const json& tc, const std::string& file) {
  ConfigReader r{tc, file};
  HfTextConfig c;
  c.hidden_size = r.integer("hidden_size");
  c.num_hidden_layers = r.integer("num_hidden_layers");
  c.num_attention_heads = r.integer("num_attention_heads");
  c.num_key_value_heads = r.integer("num_key_value_heads");
  c.head_dim = r.integer("head_dim");
  c.vocab_size = r.integer("vocab_size");
  c.vocab_size_per_layer_input = r.integer("vocab_size_per_layer_input");
  c.hidden_size_per_layer_input = r.integer("hidden_size_per_layer_input");
  c.sliding_window = r.integer("sliding_window");
  c.num_kv_shared_layers = r.integer("num_kv_shared_layers");
  c.altup_active_idx = r.integer_or("altup_active_idx", 0);
  c.altup_num_inputs = r.integer_or("altup_num_inputs", 4);
  c.laurel_rank = r.integer_or("laurel_rank", 64);
  c.max_position_embeddings = r.integer("max_position_embeddings");
  c.rms_norm_eps = r.number("rms_norm_eps");
  c.rope_theta = r.number("rope_theta");
  c.rope_local_base_freq = r.number_or("rope_local_base_freq", 10000.0);
  c.final_logit_softcapping = r.number_or("final_logit_softcapping", 30.0);
  c.altup_coef_clip = r.number_or("altup_coef_clip", 0.0);
  c.altup_lr_multiplier = r.number_or("altup_lr_multiplier", 1.0);
  if (tc.contains("altup_correct_scale") && tc["altup_correct_scale"].is_boolean())
    c.altup_correct_scale = tc["altup_correct_scale"].get<bool>();
  const int L = c.num_hidden_layers;
  if (L <= 0 || c.hidden_size <= 0 || c.num_attention_heads <= 0 || c.num_key_value_heads <= 0 || c.head_dim <= 0)
    throw HfCheckpointError(file + ": text_config has a zero layer count, width or head count");
  const auto& ff = r.at("intermediate_size");
  if (ff.is_number_integer()) {
    c.intermediate_size.assign(static_cast<size_t>(L), r.integer("intermediate_size"));
  } else if (ff.is_array() && ff.size() == static_cast<size_t>(L)) {
    for (const auto& v : ff) {
      if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() > (int64_t{1} << 30))
        throw HfCheckpointError(file + ": intermediate_size holds an entry out of range (1..2^30)");
      c.intermediate_size.push_back(v.get<int>());
    }
  } else {
    throw HfCheckpointError(file + ": intermediate_size is neither a number nor a list of " + std::to_string(L));
  }
  const auto& lt = r.at("layer_types");
  if (!lt.is_array() || lt.size() != static_cast<size_t>(L))
    throw HfCheckpointError(file + ": layer_types is not a list of " + std::to_string(L));
  for (const auto& v : lt) {
    const std::string s = v.is_string() ? v.get<std::string>() : "";
    if (s != "sliding_attention" && s != "full_attention") throw HfCheckpointError(file + ": layer_types holds '" + v.dump() + "'");
    c.layer_is_sliding.push_back(s == "sliding_attention");
  }
  const auto& sp = r.at("activation_sparsity_pattern");
  if (!sp.is_array() || sp.size() != static_cast<size_t>(L))
    throw HfCheckpointError(file + ": activation_sparsity_pattern is not a list of " + std::to_string(L));
  for (const auto& v : sp) {
    if (!v.is_number() || v.get<double>() < 0 || v.get<double>() >= 1)
      throw HfCheckpointError(file + ": activation_sparsity_pattern holds " + v.dump() + " (not in [0, 1))");
    c.activation_sparsity_pattern.push_back(v.get<double>());
  }
  if (c.num_kv_shared_layers >= L) throw HfCheckpointError(file + ": num_kv_shared_layers >= num_hidden_layers");
  if (c.vocab_size_per_layer_input > c.vocab_size) throw HfCheckpointError(file + ": vocab_size_per_layer_input > vocab_size");
  return c;
}

}  // namespace

HfCheckpoint HfCheckpoint::open(const std::string& dir_in) {
  HfCheckpoint ck;
  ck.dir_ = fs::path(dir_in).lexically_normal().string();
  if (!ck.dir_.empty() && ck.dir_.size() > 1 && ck.dir_.back() == '/') ck.dir_.pop_back();
  if (!fs::is_directory(ck.dir_)) throw HfCheckpointError(ck.dir_ + ": not a directory");
  const std::string cfg_path = ck.path_of("config.json");
  const json cfg = read_hf_json(cfg_path);
  if (!cfg.is_object()) throw HfCheckpointError(cfg_path + ": not a JSON object");
  const std::string model_type = cfg.value("model_type", "");
  std::string archs;
  if (cfg.contains("architectures") && cfg["architectures"].is_array())
    for (const auto& a : cfg["architectures"]) archs += (archs.empty() ? "" : ", ") + (a.is_string() ? a.get<std::string>() : a.dump());
  if (model_type != "gemma3n" && model_type != "gemma3n_text")
    throw HfCheckpointError(cfg_path + ": model_type '" + model_type + "' (architectures: " + archs +
                            ") is not Gemma 3n (gemma3n)");
  const json& tc = model_type == "gemma3n" ? cfg.value("text_config", json()) : cfg;
  if (!tc.is_object()) throw HfCheckpointError(cfg_path + ": no text_config object");
  ck.text_ = parse_text_config(tc, cfg_path);
  ck.has_vision_ = cfg.contains("vision_config") && cfg["vision_config"].is_object();
  ck.has_audio_ = cfg.contains("audio_config") && cfg["audio_config"].is_object();
  auto num = [](const json& o, const char* k, double dflt) { return o.is_object() && o.contains(k) && o[k].is_number() ? o[k].get<double>() : dflt; };
  // A size as an int, -1 when the number is none (a double past int's range would make the cast undefined).
  auto size_of = [](double v) { return v >= 0 && v <= 1e9 ? static_cast<int>(v) : -1; };
  if (ck.has_vision_) ck.mm_.vision_eps = num(cfg["vision_config"], "rms_norm_eps", 1e-6);
  if (ck.has_audio_) {
    ck.mm_.audio_eps = num(cfg["audio_config"], "rms_norm_eps", 1e-6);
    ck.mm_.audio_mel_bins = size_of(num(cfg["audio_config"], "input_feat_size", 128));
  }
  const std::string pre_path = ck.path_of("preprocessor_config.json");
  if (fs::exists(pre_path)) {
    const json pre = read_hf_json(pre_path);
    if (pre.is_object() && pre.contains("size") && pre["size"].is_object())
      ck.mm_.image_size = size_of(num(pre["size"], "height", 768));
  }
  if (ck.mm_.image_size <= 0 || ck.mm_.image_size > 16384 || ck.mm_.audio_mel_bins <= 0 || ck.mm_.audio_mel_bins > 4096)
    throw HfCheckpointError(cfg_path + ": image size or mel bins out of range");

  const std::string gen_path = ck.path_of("generation_config.json");
  if (fs::exists(gen_path)) {
    const json g = read_hf_json(gen_path);
    if (g.is_object() && g.contains("eos_token_id")) {
      const auto& e = g["eos_token_id"];
      if (e.is_number_integer()) ck.eos_.push_back(e.get<int>());
      else if (e.is_array())
        for (const auto& x : e)
          if (x.is_number_integer()) ck.eos_.push_back(x.get<int>());
    }
  }

  // Shards: the index's weight_map (every file it names must exist and hold the tensors mapped to it),
  // or a single model.safetensors.
  const std::string index_path = ck.path_of("model.safetensors.index.json");
  std::map<std::string, std::string> mapped;  // tensor -> file
  std::vector<std::string> files;
  if (fs::exists(index_path)) {
    const json idx = read_hf_json(index_path);
    if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw HfCheckpointError(index_path + ": no weight_map object");
    std::set<std::string> seen;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw HfCheckpointError(index_path + ": weight_map['" + it.key() + "'] is not a file name");
      const std::string f = it.value().get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
        throw HfCheckpointError(index_path + ": weight_map['" + it.key() + "'] names '" + f + "', not a file of the checkpoint");
      mapped[it.key()] = f;
      if (seen.insert(f).second) files.push_back(f);
    }
  } else if (fs::exists(ck.path_of("model.safetensors"))) {
    files.push_back("model.safetensors");
  } else {
    throw HfCheckpointError(ck.dir_ + ": neither model.safetensors.index.json nor model.safetensors");
  }
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string p = ck.path_of(files[i]);
    if (!fs::exists(p)) throw HfCheckpointError(p + ": missing (named by " + index_path + ")");
    try {
      ck.shards_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(p)));
    } catch (const SafetensorsError& e) {
      throw HfCheckpointError(e.what());
    }
    for (const auto& t : ck.shards_.back()->tensors()) {
      const auto m = mapped.find(t.name);
      if (!mapped.empty() && m != mapped.end() && m->second != files[i]) continue;  // the index says another shard
      if (!ck.where_.emplace(t.name, i).second) throw HfCheckpointError(p + ": tensor '" + t.name + "' is also in another shard");
    }
  }
  for (const auto& [name, file] : mapped)
    if (!ck.where_.count(name))
      throw HfCheckpointError(ck.path_of(file) + ": tensor '" + name + "' named by model.safetensors.index.json is missing");
  return ck;
}

std::optional<HfTensorRef> HfCheckpoint::find(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) return std::nullopt;
  const SafetensorsFile* f = shards_[it->second].get();
  return HfTensorRef{f, f->find(name)};
}

HfTensorRef HfCheckpoint::get(const std::string& name) const {
  if (auto r = find(name)) return *r;
  throw HfCheckpointError(dir_ + ": tensor '" + name + "' is missing from the checkpoint");
}

std::vector<std::string> HfCheckpoint::tensor_names() const {
  std::vector<std::string> v;
  for (const auto& [n, i] : where_) v.push_back(n);
  return v;
}

uint64_t HfCheckpoint::total_bytes() const {
  uint64_t n = 0;
  for (const auto& s : shards_) n += s->file_size();
  return n;
}

}  // namespace g3n
