// `--matformer` from the command line: `g3n debug logits` (the stable interface) against golden/matformer,
// a refused slice, and `g3n create --matformer` + `g3n show` on the e4b-mini random model.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "cli_util.h"
#include "golden_util.h"

namespace g3n {
namespace {

using test::kG3n;
using test::run_capture;

std::string out_path(const std::string& name) { return std::string(G3N_BINARY_DIR) + "/" + name; }
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

std::string token_list(const std::vector<int32_t>& tokens) {
  std::string s;
  for (size_t i = 0; i < tokens.size(); ++i) s += (i ? "," : "") + std::to_string(tokens[i]);
  return s;
}

TEST(CliMatformer, DebugLogitsReproducesGoldenSlice) {
  const auto doc = test::read_json(test::tiny_dir() + "/golden/matformer/slices.json");
  const auto& s3 = doc["slices"][2];
  ASSERT_EQ(s3["name"], "s3");
  const std::string slice = out_path("cli-matformer-s3.json");
  std::ofstream(slice) << nlohmann::json{{"kept_layers", s3["kept_layers"]}, {"ffn_width", s3["ffn_width"]}}.dump();
  const auto prompt = test::tiny_prompts()[1];
  const std::string out = out_path("cli-matformer-s3.bin");
  int status = -1;
  const std::string log = run_capture(kG3n + " debug logits " + test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf --tokens " +
                                          token_list(prompt.tokens) + " --matformer " + slice + " --threads 2 --out " + out + " 2>&1",
                                      status);
  ASSERT_EQ(exit_code(status), 0) << log;
  const auto got = test::read_f32_file(out);
  const auto want = test::read_f32_file(test::tiny_dir() + "/golden/matformer/logits_" + prompt.name + "_s3_f16.bin");
  ASSERT_EQ(got.size(), want.size());
  test::RowStats stats;
  for (size_t i = 0; i < prompt.tokens.size(); ++i) stats.add_row(&got[i * 448], &want[i * 448], 448, 4e-3f);
  EXPECT_LE(stats.max_abs, 2e-3);
  EXPECT_EQ(stats.top1_mismatch, 0);
}

TEST(CliMatformer, RefusedSliceExitsOneWithTheReason) {
  // The tiny model has 25 layers: E4B's presets do not apply to it.
  int status = -1;
  const std::string log = run_capture(kG3n + " debug logits " + test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf --tokens 2,3 --matformer e2b --out " +
                                          out_path("cli-matformer-refused.bin") + " 2>&1",
                                      status);
  EXPECT_EQ(exit_code(status), 1);
  EXPECT_NE(log.find("35 layers"), std::string::npos) << log;
}

TEST(CliMatformer, CreateExportsASliceAndShowListsSizes) {
  const std::string store = out_path("cli-matformer-store");
  std::filesystem::remove_all(store);
  const std::string mini = out_path("cli-e4b-mini.gguf");
  const std::string env = "G3N_MODELS=" + store + " OLLAMA_MODELS=" + store + "/none ";
  int status = -1;
  std::string log = run_capture(kG3n + " create-random " + mini + " --preset e4b-mini --quant q8_0 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  log = run_capture(env + kG3n + " create mini --from " + mini + " 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  log = run_capture(env + kG3n + " show mini 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  EXPECT_NE(log.find("MatFormer sizes"), std::string::npos) << log;
  EXPECT_NE(log.find("e3.73b-block"), std::string::npos) << log;
  // What a killed export leaves in the store (a signal skips its clean-up) goes with the next export.
  const std::filesystem::path staging = std::filesystem::path(store) / "matformer-export";
  std::filesystem::create_directories(staging);
  std::ofstream(staging / "slice.gguf") << "half-written";
  std::ofstream(staging / ".slice.gguf.tmp-0123") << "half-written";
  log = run_capture(env + kG3n + " create mini-e2b --from " + mini + " --matformer e2b 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  EXPECT_TRUE(std::filesystem::is_empty(staging)) << "the export's files stay in the store's staging directory";
  for (const auto& e : std::filesystem::directory_iterator(store))
    EXPECT_EQ(e.path().filename().string().rfind("matformer-export-", 0), std::string::npos) << e.path();
  log = run_capture(env + kG3n + " show mini-e2b 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << log;
  EXPECT_EQ(log.find("MatFormer sizes"), std::string::npos) << "a 30-layer slice offers no presets:\n" << log;
  // The sliced model answers; its logits equal the view's (tests/tools_matformer_export_test.cpp).
  log = run_capture(env + kG3n + " run mini-e2b hello -p num_predict=3 -p temperature=0 2>&1", status);
  EXPECT_EQ(exit_code(status), 0) << log;
  log = run_capture(env + kG3n + " run mini hello --matformer e2.54b -p num_predict=3 -p temperature=0 2>&1", status);
  EXPECT_EQ(exit_code(status), 0) << log;
  std::filesystem::remove_all(store);
}

}  // namespace
}  // namespace g3n
