#include "tools/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

namespace g3n {
namespace {

using nlohmann::json;

constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kByte = 6;

bool is_byte_piece(const std::string& s) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return s.size() == 6 && s.compare(0, 3, "<0x") == 0 && hex(s[3]) && hex(s[4]) && s[5] == '>';
}

// convert_hf_to_gguf.py's does_token_look_special, the cases that matter for Gemma.
bool looks_special(const std::string& s) {
  if (s == "<pad>" || s == "<mask>" || s == "<2mass>" || s == "[@BOS@]") return true;
  if (s.size() >= 4 && s.compare(0, 2, "<|") == 0 && s.compare(s.size() - 2, 2, "|>") == 0) return true;
  return s.size() >= 8 && s.compare(0, 7, "<unused") == 0 && s.back() == '>';
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

struct Added {
  std::string content;
  bool special = false;
};

// A special token named in tokenizer_config.json: a string or {"content": ...}.
std::string token_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

}  // namespace

HfVocab read_hf_vocab(const std::string& dir, const HfTextConfig& c, GgufLayout layout, const std::vector<int>& generation_eos) {
  const std::string tj_path = dir + "/tokenizer.json", tc_path = dir + "/tokenizer_config.json";
  const json tj = read_hf_json(tj_path);
  const json tc = std::filesystem::exists(tc_path) ? read_hf_json(tc_path) : json::object();
  if (!tj.is_object() || !tj.contains("model") || !tj["model"].is_object() || !tj["model"].contains("vocab") ||
      !tj["model"]["vocab"].is_object())
    throw HfCheckpointError(tj_path + ": no model.vocab object");
  const auto& model = tj["model"];
  const int64_t n_tok = layout == GgufLayout::LlamaCpp ? c.vocab_size_per_layer_input : c.vocab_size;
  std::map<int64_t, std::string> pieces;  // every id the files define
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0)
      throw HfCheckpointError(tj_path + ": model.vocab['" + it.key() + "'] is not a token id");
    pieces[it.value().get<int64_t>()] = it.key();
  }
  // Added tokens: tokenizer_config.json's added_tokens_decoder when present (what llama.cpp's converter
  // reads), else tokenizer.json's added_tokens.
  std::map<int64_t, Added> added;
  if (tc.contains("added_tokens_decoder") && tc["added_tokens_decoder"].is_object()) {
    for (auto it = tc["added_tokens_decoder"].begin(); it != tc["added_tokens_decoder"].end(); ++it) {
      int64_t id = -1;
      try {
        id = std::stoll(it.key());
      } catch (...) {
      }
      if (id < 0 || !it.value().is_object()) throw HfCheckpointError(tc_path + ": added_tokens_decoder['" + it.key() + "'] is not a token");
      added[id] = {token_text(it.value()), it.value().value("special", false)};
    }
  } else if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
    for (const auto& a : tj["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer()) throw HfCheckpointError(tj_path + ": added_tokens holds a bad entry");
      added[a["id"].get<int64_t>()] = {token_text(a), a.value("special", false)};
    }
  }
  // tokenizer.json's added_tokens also say which are special when the config lacks them.
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array())
    for (const auto& a : tj["added_tokens"])
      if (a.is_object() && a.contains("id") && a["id"].is_number_integer() && !added.count(a["id"].get<int64_t>()))
        added[a["id"].get<int64_t>()] = {token_text(a), a.value("special", false)};
  for (const auto& [id, a] : added) pieces[id] = a.content;

  HfVocab v;
  if (model.contains("merges") && model["merges"].is_array())
    for (const auto& m : model["merges"]) {
      if (m.is_string()) v.merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else throw HfCheckpointError(tj_path + ": model.merges holds a bad entry");
    }
  auto id_of = [&](const char* key, int dflt) {
    if (!tc.contains(key)) return dflt;
    const std::string t = token_text(tc[key]);
    for (const auto& [id, p] : pieces)
      if (p == t && id < n_tok) return static_cast<int>(id);
    return dflt;
  };
  v.bos = id_of("bos_token", 2);
  v.eos = id_of("eos_token", 1);
  v.unk = id_of("unk_token", 3);
  v.pad = id_of("pad_token", 0);
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) v.add_bos = tc["add_bos_token"].get<bool>();
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) v.add_eos = tc["add_eos_token"].get<bool>();
  v.eos_ids = generation_eos;

  if (layout == GgufLayout::LlamaCpp) {
    // SentencePiece's view rebuilt from tokenizer.json: NORMAL pieces scored -rank in id order, <0xNN>
    // BYTE at 0; then every added token below the vocabulary size is overwritten at -1000, CONTROL when
    // special or special-looking, else USER_DEFINED with U+2581 written as a space.
    v.model = "llama";
    int64_t rank = 0;
    for (int64_t id = 0; id < n_tok; ++id) {
      const auto p = pieces.find(id);
      if (p == pieces.end()) throw HfCheckpointError(tj_path + ": no token with id " + std::to_string(id) + " (config.json's vocabulary has " + std::to_string(n_tok) + ")");
      std::string text = p->second;
      float score = 0;
      int32_t type = kNormal;
      if (const auto a = added.find(id); a != added.end()) {
        if (a->second.special || looks_special(text)) type = kControl;
        else {
          type = kUserDefined;
          text = replace_all(text, "\xe2\x96\x81", " ");
        }
        score = -1000.0f;
      } else if (is_byte_piece(text)) {
        type = kByte;
      } else {
        score = -static_cast<float>(rank++);
      }
      v.tokens.push_back(std::move(text));
      v.scores.push_back(score);
      v.types.push_back(type);
    }
  } else {
    // Ollama's tokenizer.json path: every defined token in id order (so ids past the text vocabulary
    // land at their rank), score = id, CONTROL = special added tokens, USER_DEFINED = the other added
    // tokens, NORMAL otherwise; padded to vocab_size with [PADn] (USER_DEFINED, -1).
    v.model = "gpt2";
    for (const auto& [id, text] : pieces) {
      const auto a = added.find(id);
      v.tokens.push_back(text);
      v.scores.push_back(static_cast<float>(id));
      v.types.push_back(a == added.end() ? kNormal : a->second.special ? kControl : kUserDefined);
    }
    if (static_cast<int64_t>(v.tokens.size()) > n_tok)
      throw HfCheckpointError(tj_path + ": " + std::to_string(v.tokens.size()) + " tokens but config.json's vocab_size is " + std::to_string(n_tok));
    for (int i = 0; static_cast<int64_t>(v.tokens.size()) < n_tok; ++i) {
      v.tokens.push_back("[PAD" + std::to_string(i) + "]");
      v.scores.push_back(-1.0f);
      v.types.push_back(kUserDefined);
    }
  }
  return v;
}

std::vector<GgufKV> hf_vocab_kvs(const HfVocab& v, GgufLayout layout) {
  std::vector<GgufKV> kv;
  auto u32 = [&](const std::string& k, uint64_t x) { GgufValue g; g.type = GgufValueType::UINT32; g.u = x; kv.push_back({k, g}); };
  auto boolean = [&](const std::string& k, bool x) { GgufValue g; g.type = GgufValueType::BOOL; g.u = x; kv.push_back({k, g}); };
  auto str = [&](const std::string& k, const std::string& x) { GgufValue g; g.type = GgufValueType::STRING; g.s = x; kv.push_back({k, g}); };
  auto arr = [&](const std::string& k, GgufValue a) { kv.push_back({k, std::move(a)}); };
  const auto to_s = [](GgufValue& g, const std::string& x) { g.s = x; };
  const auto to_i = [](GgufValue& g, int32_t x) { g.i = x; };
  str("tokenizer.ggml.model", v.model);
  str("tokenizer.ggml.pre", "default");
  arr("tokenizer.ggml.tokens", gguf_array_of(GgufValueType::STRING, v.tokens, to_s));
  arr("tokenizer.ggml.scores", gguf_array_of(GgufValueType::FLOAT32, v.scores, [](GgufValue& g, float x) { g.f = x; }));
  arr("tokenizer.ggml.token_type", gguf_array_of(GgufValueType::INT32, v.types, to_i));
  if (layout == GgufLayout::Ollama && !v.merges.empty())
    arr("tokenizer.ggml.merges", gguf_array_of(GgufValueType::STRING, v.merges, to_s));
  u32("tokenizer.ggml.bos_token_id", static_cast<uint64_t>(v.bos));
  u32("tokenizer.ggml.eos_token_id", static_cast<uint64_t>(v.eos));
  u32("tokenizer.ggml.unknown_token_id", static_cast<uint64_t>(v.unk));
  u32("tokenizer.ggml.padding_token_id", static_cast<uint64_t>(v.pad));
  boolean("tokenizer.ggml.add_bos_token", v.add_bos);
  boolean("tokenizer.ggml.add_eos_token", v.add_eos);
  if (layout == GgufLayout::LlamaCpp) {
    boolean("tokenizer.ggml.add_space_prefix", false);
  } else {
    boolean("tokenizer.ggml.add_unknown_token", false);
    boolean("tokenizer.ggml.add_padding_token", false);
    if (!v.eos_ids.empty())
      arr("tokenizer.ggml.eos_token_ids", gguf_array_of(GgufValueType::INT32, v.eos_ids, to_i));
  }
  return kv;
}

}  // namespace g3n
