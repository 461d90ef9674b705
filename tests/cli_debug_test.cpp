// `g3n debug logits --rows`: the stable interface for rows that are vectors, checked against the
// multimodal goldens, and its errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <fstream>
#include <string>
#include <vector>

#include "cli_util.h"
#include "golden_util.h"

namespace g3n {
namespace {

using test::kG3n;
using test::run_capture;

std::string mm_dir() { return test::tiny_dir() + "/golden/multimodal/"; }
std::string out_path(const std::string& name) { return std::string(G3N_BINARY_DIR) + "/" + name; }
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

TEST(CliDebugRows, CaseWithAppendedTokensMatchesGolden) {
  const auto meta = test::read_json(mm_dir() + "a_mid_run.json");
  const auto& v = meta["variants"]["f16"];
  const auto tokens = v["greedy"]["tokens"].get<std::vector<int32_t>>();
  std::string append;
  for (size_t i = 0; i + 1 < tokens.size(); ++i) {
    if (i) append += ',';
    append += std::to_string(tokens[i]);
  }
  const auto want = test::read_f32_file(mm_dir() + v["logits_file"].get<std::string>());
  const auto greedy = test::read_f32_file(mm_dir() + v["greedy"]["logits_file"].get<std::string>());
  const int V = 448, n = meta["n_rows"].get<int>();
  for (const char* mode : {"", " --incremental"}) {
    SCOPED_TRACE(mode);
    const std::string out = out_path("debug-rows-a.bin");
    int status = -1;
    run_capture(kG3n + " debug logits " + test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf --rows " + mm_dir() +
                    "a_mid_run.json --append-tokens " + append + " --threads 2 --out " + out + mode + " 2>&1",
                status);
    ASSERT_EQ(exit_code(status), 0);
    const auto got = test::read_f32_file(out);
    ASSERT_EQ(got.size(), static_cast<size_t>(n + tokens.size() - 1) * V);
    test::RowStats rows, greedy_rows;
    for (int i = 0; i < n; ++i) rows.add_row(&got[static_cast<size_t>(i) * V], &want[static_cast<size_t>(i) * V], V, 4e-3f);
    // Row n-1+i is what greedy token i was chosen from (row 0 of the greedy file = the last case row).
    for (size_t i = 0; i < tokens.size(); ++i)
      greedy_rows.add_row(&got[(n - 1 + i) * V], &greedy[i * V], V, 4e-3f);
    EXPECT_LE(rows.max_abs, 2e-3);
    EXPECT_LE(greedy_rows.max_abs, 2e-3);
    EXPECT_EQ(rows.top1_mismatch + greedy_rows.top1_mismatch, 0);
  }
}

TEST(CliDebugRows, BadInputsExitOneWithAMessage) {
  const std::string model = test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf";
  const std::string bad_emb = out_path("debug-rows-100-floats.bin");
  {
    std::ofstream f(bad_emb, std::ios::binary);
    const std::vector<float> v(100, 1.0f);
    f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  }
  struct Case {
    std::string args, message;
  };
  const Case cases[] = {
      {"--rows " + mm_dir() + "a_mid_run.json --embeddings " + bad_emb, "n_embd"},
      {"--rows " + mm_dir() + "a_mid_run.json --tokens 1,2", "exactly one of --tokens and --rows"},
      {"--rows /nonexistent/case.json", "/nonexistent/case.json"},
      {"--tokens 1,2 --append-tokens 3", "--append-tokens"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    int status = -1;
    const std::string out = run_capture(kG3n + " debug logits " + model + " " + c.args + " --out " + out_path("debug-rows-bad.bin") + " 2>&1", status);
    EXPECT_EQ(exit_code(status), 1) << out;
    EXPECT_NE(out.find(c.message), std::string::npos) << out;
  }
}

}  // namespace
}  // namespace g3n
