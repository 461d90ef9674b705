// The Gemma 3n type table (tools/quant_plan.h) against the types llama.cpp's quantizer and Ollama's
// registry layout gave the fixture files, tensor by tensor; and quantize_gemma3n_gguf of the F16 fixture
// reproducing the Q8_0 and Q4_K_M fixtures byte for byte (their F32 source equals the F16 weights).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "golden_util.h"
#include "gguf/gguf.h"
#include "tools/quant_plan.h"

namespace g3n {
namespace {

std::string model(const std::string& v) { return test::tiny_dir() + "/models/gemma3n-tiny-" + v + ".gguf"; }

// Every tensor of `file` has the type the table gives for `target` and `layout`.
void expect_table_matches(const std::string& file, QuantTarget target, GgufLayout layout) {
  const auto f = GgufFile::open(model(file));
  const int n_layers = static_cast<int>(*f.get_int("gemma3n.block_count"));
  ASSERT_EQ(n_layers, 25);
  int n = 0;
  for (const auto& t : f.tensors()) {
    const GgmlType want = plan_tensor_type(target, layout, t.name, t.ne, tensor_layer(t.name), n_layers);
    EXPECT_EQ(ggml_type_traits(want).name, ggml_type_traits(t.type).name) << file << ": " << t.name;
    ++n;
  }
  EXPECT_EQ(n, 607);
}

TEST(QuantPlan, MatchesF16Fixture) { expect_table_matches("f16", QuantTarget::F16, GgufLayout::LlamaCpp); }
TEST(QuantPlan, MatchesQ8_0Fixture) { expect_table_matches("q8_0", QuantTarget::Q8_0, GgufLayout::LlamaCpp); }
TEST(QuantPlan, MatchesQ4_K_MFixture) { expect_table_matches("q4_k_m", QuantTarget::Q4_K_M, GgufLayout::LlamaCpp); }
TEST(QuantPlan, MatchesOllamaFixture) { expect_table_matches("ollama", QuantTarget::Q4_K_M, GgufLayout::Ollama); }

TEST(QuantPlan, MoreBitsLayersOfTheTinyModel) {
  std::vector<int> got;
  for (int i = 0; i < 25; ++i)
    if (is_more_bits_layer(i, 25)) got.push_back(i);
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23, 24}));  // fixture README §2
}

TEST(QuantPlan, OtherTargetsAndFallbacks) {
  const std::vector<int64_t> m{2048, 2048}, odd{2016, 64}, v{64};
  auto type = [](QuantTarget q, std::string_view name, const std::vector<int64_t>& ne, int layer) {
    return plan_tensor_type(q, GgufLayout::LlamaCpp, name, ne, layer, 30);
  };
  EXPECT_EQ(type(QuantTarget::Q5_K_M, "blk.3.attn_q.weight", m, 3), GgmlType::Q5_K);
  EXPECT_EQ(type(QuantTarget::Q5_K_M, "blk.0.ffn_down.weight", m, 0), GgmlType::Q6_K);
  EXPECT_EQ(type(QuantTarget::Q5_K_M, "blk.4.ffn_down.weight", m, 4), GgmlType::Q5_K);
  EXPECT_EQ(type(QuantTarget::Q6_K, "blk.4.ffn_up.weight", m, 4), GgmlType::Q6_K);
  EXPECT_EQ(type(QuantTarget::Q6_K, "token_embd.weight", m, -1), GgmlType::Q6_K);
  EXPECT_EQ(type(QuantTarget::BF16, "blk.4.laurel_l.weight", m, 4), GgmlType::BF16);
  EXPECT_EQ(type(QuantTarget::BF16, "blk.4.post_norm.weight", m, 4), GgmlType::F32);
  EXPECT_EQ(type(QuantTarget::F32, "token_embd.weight", m, -1), GgmlType::F32);
  EXPECT_EQ(type(QuantTarget::Q4_K_M, "blk.0.attn_q.weight", v, 0), GgmlType::F32);
  // Rows that are no whole number of 256-blocks fall back as llama.cpp does.
  EXPECT_EQ(type(QuantTarget::Q4_K_M, "blk.3.attn_q.weight", odd, 3), GgmlType::Q5_0);
  EXPECT_EQ(type(QuantTarget::Q4_K_M, "blk.0.attn_v.weight", odd, 0), GgmlType::Q8_0);
  EXPECT_EQ(type(QuantTarget::Q5_K_M, "blk.3.attn_q.weight", odd, 3), GgmlType::Q5_1);
  EXPECT_EQ(type(QuantTarget::Q8_0, "blk.3.attn_q.weight", {100, 4}, 3), GgmlType::F16);
  EXPECT_EQ(plan_tensor_type(QuantTarget::Q8_0, GgufLayout::Ollama, "per_layer_token_embd.weight", m, -1, 30),
            GgmlType::F16);
}

TEST(QuantPlan, ParsesTargets) {
  EXPECT_EQ(parse_quant_target("Q4_K_M"), QuantTarget::Q4_K_M);
  EXPECT_EQ(parse_quant_target("bf16"), QuantTarget::BF16);
  EXPECT_FALSE(parse_quant_target("q4_k_s"));
  EXPECT_EQ(quant_target_file_type(QuantTarget::Q4_K_M), 15);
  EXPECT_EQ(quant_target_file_type(QuantTarget::Q8_0), 7);
  EXPECT_EQ(tensor_layer("blk.17.ffn_down.weight"), 17);
  EXPECT_EQ(tensor_layer("blk.x.ffn_down.weight"), -1);
  EXPECT_EQ(tensor_layer("token_embd.weight"), -1);
}

TEST(QuantPlan, DetectsLayout) {
  EXPECT_EQ(detect_gguf_layout(GgufFile::open(model("q4_k_m"))), GgufLayout::LlamaCpp);
  EXPECT_EQ(detect_gguf_layout(GgufFile::open(model("ollama"))), GgufLayout::Ollama);
}

// Quantizing the F16 fixture reproduces llama.cpp's files: same types and the same bytes in every tensor
// (llama.cpp's quantizer also reorders the tensors, so they are matched by name).
void expect_quantized_equal(QuantTarget target, const std::string& fixture) {
  const auto src = GgufFile::open(model("f16"));
  const std::string out = std::string(G3N_BINARY_DIR) + "/quant-plan-" + fixture + ".gguf";
  quantize_gemma3n_gguf(src, out, target, GgufLayout::LlamaCpp);
  const auto got = GgufFile::open(out);
  const auto want = GgufFile::open(model(fixture));
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (const auto& w : want.tensors()) {
    const auto* gp = got.find_tensor(w.name);
    ASSERT_NE(gp, nullptr) << w.name;
    const auto& g = *gp;
    EXPECT_EQ(g.type, w.type) << w.name;
    EXPECT_EQ(g.ne, w.ne) << w.name;
    ASSERT_EQ(g.nbytes, w.nbytes) << w.name;
    EXPECT_EQ(std::memcmp(got.tensor_data(g), want.tensor_data(w), w.nbytes), 0) << w.name;
  }
  EXPECT_EQ(got.get_int("general.file_type"), want.get_int("general.file_type"));
  EXPECT_EQ(got.get_int("general.quantization_version"), 2);
  std::filesystem::remove(out);
}

TEST(QuantPlan, QuantizedF16FixtureEqualsQ8_0Fixture) { expect_quantized_equal(QuantTarget::Q8_0, "q8_0"); }
TEST(QuantPlan, QuantizedF16FixtureEqualsQ4_K_MFixture) { expect_quantized_equal(QuantTarget::Q4_K_M, "q4_k_m"); }

TEST(QuantPlan, RefusesQuantizedSourceAndOtherArchitectures) {
  const auto q = GgufFile::open(model("q8_0"));
  const std::string out = std::string(G3N_BINARY_DIR) + "/quant-plan-refused.gguf";
  try {
    quantize_gemma3n_gguf(q, out, QuantTarget::Q4_K_M, GgufLayout::LlamaCpp);
    FAIL() << "a quantized source was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("already quantized"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(out));
  const auto mm = GgufFile::open(test::fixtures_dir() + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f16.gguf");
  EXPECT_THROW(quantize_gemma3n_gguf(mm, out, QuantTarget::Q8_0, GgufLayout::LlamaCpp), std::invalid_argument);
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace g3n
