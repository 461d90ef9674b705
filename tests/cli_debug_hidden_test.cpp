// `g3n debug hidden`: the LM head's input rows, checked independently of the engine's head: the logits
// 30·tanh((h·Eᵀ)/30), with E = token_embd decoded to f32 here, must match golden/exact within the golden
// test's tolerance (2e-3).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <string>
#include <vector>

#include "cli_util.h"
#include "golden_util.h"
#include "gguf/gguf.h"
#include "quant/ggml_type.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

std::string out_path(const std::string& name) { return std::string(G3N_BINARY_DIR) + "/" + name; }
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

// token_embd as f32 [rows, n_embd].
std::vector<float> token_embd_f32(const std::string& model_path, int64_t& n_embd, int64_t& rows) {
  const GgufFile f = GgufFile::open(model_path);
  const GgufTensorInfo* t = f.find_tensor("token_embd.weight");
  if (!t) throw std::runtime_error(model_path + ": no token_embd.weight");
  n_embd = t->ne[0];
  rows = t->rows();
  const uint64_t row_bytes = *ggml_row_bytes(t->type, static_cast<uint64_t>(n_embd));
  std::vector<float> out(static_cast<size_t>(rows * n_embd));
  const uint8_t* data = f.tensor_data(*t);
  for (int64_t r = 0; r < rows; ++r) dequantize_row(t->type, data + r * row_bytes, out.data() + r * n_embd, n_embd);
  return out;
}

class DebugHidden : public ::testing::TestWithParam<std::string> {};

TEST_P(DebugHidden, SoftCappedHeadOfHiddenRowsMatchesExactGolden) {
  const std::string tag = GetParam();
  const std::string model = test::tiny_dir() + "/models/gemma3n-tiny-" + tag + ".gguf";
  int64_t D = 0, V = 0;
  const std::vector<float> E = token_embd_f32(model, D, V);
  ASSERT_EQ(D, 256);
  ASSERT_EQ(V, 448);
  for (const auto& prompt : test::tiny_prompts()) {
    SCOPED_TRACE(tag + "/" + prompt.name);
    std::string ids;
    for (size_t i = 0; i < prompt.tokens.size(); ++i) {
      if (i) ids += ',';
      ids += std::to_string(prompt.tokens[i]);
    }
    const std::string out = out_path("debug-hidden-" + tag + ".bin");
    int status = -1;
    const std::string log = test::run_capture(test::kG3n + " debug hidden " + model + " --tokens " + ids + " --threads 2 --out " + out + " 2>&1", status);
    ASSERT_EQ(exit_code(status), 0) << log;
    const auto h = test::read_f32_file(out);
    const size_t n = prompt.tokens.size();
    ASSERT_EQ(h.size(), n * static_cast<size_t>(D));
    const auto want = test::read_f32_file(test::tiny_dir() + "/golden/exact/" + tag + "/logits_" + prompt.name + "_exact-" + tag + ".bin");
    ASSERT_EQ(want.size(), n * static_cast<size_t>(V));
    test::RowStats stats;
    std::vector<float> logits(static_cast<size_t>(V));
    for (size_t t = 0; t < n; ++t) {
      for (int64_t v = 0; v < V; ++v) {
        double dot = 0;
        for (int64_t i = 0; i < D; ++i) dot += static_cast<double>(h[t * D + i]) * E[v * D + i];
        logits[v] = static_cast<float>(30.0 * std::tanh(dot / 30.0));
      }
      stats.add_row(logits.data(), &want[t * V], static_cast<int>(V), 4e-3f);
    }
    EXPECT_LE(stats.max_abs, 2e-3);
    EXPECT_EQ(stats.top1_mismatch, 0);
  }
}

// F16 weights decode exactly to f32 (the golden's f32 arithmetic); Q8_0 and Q4_K_M are quantized variants.
INSTANTIATE_TEST_SUITE_P(Gemma3nTiny, DebugHidden, ::testing::Values("f16", "q8_0", "q4_k_m"));

TEST(DebugHiddenCli, BadTokensExitOne) {
  int status = -1;
  const std::string log = test::run_capture(test::kG3n + " debug hidden " + test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf --tokens 2,999999 --out " +
                                                out_path("debug-hidden-bad.bin") + " 2>&1", status);
  EXPECT_EQ(exit_code(status), 1);
  EXPECT_NE(log.find("outside the vocabulary"), std::string::npos) << log;
}

}  // namespace
}  // namespace g3n
