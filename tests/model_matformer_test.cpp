// MatFormer slicing: the slice descriptions (presets, JSON, CSV, validation) on an E4B-shaped
// configuration, and sliced models of the tiny fixture against golden/matformer (README §9: float64
// reference logits of three slices, golden/exact's tolerance).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <span>

#include "golden_util.h"
#include "model/matformer.h"
#include "model/model.h"
#include "runtime/context.h"

namespace g3n {
namespace {

// The configuration read_gemma3n_config gives for E4B (docs/model.md §1.1), without a file.
Gemma3nConfig e4b_config() {
  Gemma3nConfig c;
  c.n_layer = c.n_layer_file = 35;
  c.n_embd = 2048;
  c.n_head = 8;
  c.n_head_kv = 2;
  c.head_dim = 256;
  c.n_embd_per_layer = 256;
  c.laurel_rank = 64;
  c.n_layer_kv = 20;
  for (int l = 0; l < 35; ++l) {
    c.n_ff.push_back(16384);
    c.is_sliding.push_back(l % 5 != 4);
    c.sparsity_std_multiplier.push_back(l < 10 ? 1.6448533535f : 0.0f);
    c.file_layer.push_back(l);
  }
  assign_kv_sources(c);
  return c;
}

MatformerSlice custom(std::vector<int> kept, std::vector<int> widths) { return {"custom", std::move(kept), std::move(widths)}; }

TEST(Matformer, E2bPresetIsTheReleasedE2bShape) {
  const Gemma3nConfig full = e4b_config();
  const Gemma3nConfig e2b = slice_config(full, resolve_matformer("e2b", full));
  ASSERT_EQ(e2b.n_layer, 30);
  EXPECT_EQ(e2b.n_layer_kv, 20);
  EXPECT_EQ(e2b.file_layer[20], 25);
  for (int l = 0; l < 30; ++l) {
    SCOPED_TRACE(l);
    EXPECT_EQ(e2b.n_ff[l], 8192);
    EXPECT_EQ(e2b.is_sliding[l], l % 5 != 4);
    EXPECT_EQ(e2b.sparsity_std_multiplier[l] > 0, l < 10);
    EXPECT_EQ(e2b.kv_source[l], l < 20 ? l : (l % 5 == 4 ? 19 : 18));
  }
  // The MatFormer Lab notebook prints these counts for E2B and the full model.
  EXPECT_EQ(effective_parameters(e2b), 1905495648);
  EXPECT_EQ(effective_parameters(full), 3980491248);
}

TEST(Matformer, EveryPresetMatchesItsPublishedSize) {
  const Gemma3nConfig full = e4b_config();
  // The CSV's "# Effective Params (B)" column; our counts sit at most 0.02 B below it (docs/matformer.md §1.2).
  const std::vector<std::pair<std::string, double>> published = {
      {"e4b", 3.98}, {"e2b", 1.91}, {"e1.96b", 1.96}, {"e2.54b", 2.54}, {"e2.69b", 2.69}, {"e2.98b", 2.98},
      {"e3.18b", 3.18}, {"e3.39b", 3.39}, {"e3.59b", 3.59}, {"e3.79b", 3.79}, {"e2.49b-block", 2.49},
      {"e2.73b-block", 2.73}, {"e2.98b-block", 2.98}, {"e3.24b-block", 3.24}, {"e3.49b-block", 3.49},
      {"e3.73b-block", 3.74}};
  ASSERT_EQ(published.size(), matformer_presets().size());
  for (const auto& [name, billions] : published) {
    SCOPED_TRACE(name);
    const double got = effective_parameters(slice_config(full, resolve_matformer(name, full))) / 1e9;
    EXPECT_LE(got, billions + 0.005);
    EXPECT_GE(got, billions - 0.025);
  }
}

TEST(Matformer, NamesAreAcceptedAsPublished) {
  const Gemma3nConfig full = e4b_config();
  const auto by_csv = resolve_matformer("Config for E3.79B (block-level)", full);
  const auto by_name = resolve_matformer("e3.73b-block", full);
  EXPECT_EQ(by_csv.kept_layers, by_name.kept_layers);
  EXPECT_EQ(by_csv.ffn_width, by_name.ffn_width);
  EXPECT_EQ(resolve_matformer("full", full).ffn_width, resolve_matformer("E4B", full).ffn_width);
  EXPECT_EQ(resolve_matformer("full", full).kept_layers.size(), 35u);
}

TEST(Matformer, CsvRowEqualsThePreset) {
  const std::string csv =
      "name,# Layers,# Effective Params (B),MMLU PT accuracy,FFN Hidden Dims,Layers Skipped\n"
      "Config for E1.96B (layer-level),30,1.96,53.40%,\"[2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 8, "
      "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, "
      "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, "
      "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4]\",\"[20, 21, 22, 23, 24]\"\n";
  const std::string path = std::string(G3N_BINARY_DIR) + "/matformer_test.csv";
  std::ofstream(path) << csv;
  const Gemma3nConfig full = e4b_config();
  const auto row = resolve_matformer(path + ":Config for E1.96B (layer-level)", full);
  const auto preset = resolve_matformer("e1.96b", full);
  EXPECT_EQ(row.kept_layers, preset.kept_layers);
  EXPECT_EQ(row.ffn_width, preset.ffn_width);
  EXPECT_THROW(resolve_matformer(path + ":Main model", full), std::invalid_argument);
  // Skipping a layer E4B lacks, or one layer twice, is refused (it used to be dropped silently).
  const std::string head = "name,# Layers,# Effective Params (B),MMLU PT accuracy,FFN Hidden Dims,Layers Skipped\n";
  for (const char* skipped : {"[40, 50]", "[20, 20]"}) {
    std::ofstream(path) << head << "bad,33,0,0%,\"[256]\",\"" << skipped << "\"\n";
    try {
      resolve_matformer(path + ":bad", full);
      ADD_FAILURE() << skipped << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("skips layer"), std::string::npos) << e.what();
    }
  }
}

TEST(Matformer, DeeplyNestedSliceFilesAreRefusedNotDumped) {
  // The error names a bad element's type rather than dumping it (dump() recurses), and text nested past
  // kMaxJsonNesting is refused before parsing.
  const std::string deep = std::string(300000, '[') + std::string(300000, ']');
  try {
    parse_matformer_json(R"({"kept_layers": [)" + deep + R"(], "ffn_width": []})", "deep.json");
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("nested more than"), std::string::npos) << e.what();
  }
  const std::string shallow = std::string(100, '[') + std::string(100, ']');
  try {
    parse_matformer_json(R"({"kept_layers": [)" + shallow + R"(], "ffn_width": []})", "shallow.json");
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("holds a JSON array, not a non-negative integer"), std::string::npos) << e.what();
  }
}

TEST(Matformer, PresetWidthsScaleToTheFile) {
  Gemma3nConfig mini = e4b_config();
  for (int& f : mini.n_ff) f = 512;
  const auto s = resolve_matformer("e1.96b", mini);
  ASSERT_EQ(s.ffn_width.size(), 30u);
  EXPECT_EQ(s.ffn_width[4], 512);
  EXPECT_EQ(s.ffn_width[0], 256);
}

TEST(Matformer, InvalidSlicesAreRefusedWithTheReason) {
  const Gemma3nConfig full = e4b_config();
  auto refused = [&](const MatformerSlice& s, const std::string& reason) {
    try {
      validate_matformer_slice(s, full);
      ADD_FAILURE() << "accepted; expected: " << reason;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
    }
  };
  std::vector<int> all, wide(35, 16384);
  for (int l = 0; l < 35; ++l) all.push_back(l);
  auto without = [&](std::initializer_list<int> skip) {
    std::vector<int> v;
    for (int l : all)
      if (std::find(skip.begin(), skip.end(), l) == skip.end()) v.push_back(l);
    return v;
  };
  refused(custom(without({19}), std::vector<int>(34, 16384)), "produces the KV");
  refused(custom(without({18}), std::vector<int>(34, 16384)), "produces the KV");
  refused(custom(all, std::vector<int>(35, 8000)), "multiple of 256");
  refused(custom(all, std::vector<int>(35, 16640)), "outside");
  refused(custom({0, 1, 40}, {256, 256, 256}), "does not exist");
  refused(custom({1, 0}, {256, 256}), "increasing");
  refused(custom(all, std::vector<int>(34, 16384)), "widths for");
  // A file whose last two producers are both local: its global sharing layers need a kept global producer.
  Gemma3nConfig odd = full;
  odd.is_sliding[19] = true;
  assign_kv_sources(odd);
  std::vector<int> no_global;
  for (int l : all)
    if (l % 5 != 4 || l >= 19) no_global.push_back(l);  // 19 kept (local here): only 4, 9, 14 dropped
  try {
    validate_matformer_slice(custom(no_global, std::vector<int>(no_global.size(), 8192)), odd);
    ADD_FAILURE() << "a global sharing layer without a producer was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("no kept layer of its type"), std::string::npos) << e.what();
  }
  Gemma3nConfig tiny = full;
  tiny.n_layer = tiny.n_layer_file = 25;
  EXPECT_THROW(resolve_matformer("e2b", tiny), std::invalid_argument);  // presets need E4B's depth
  EXPECT_THROW(resolve_matformer("e9b", full), std::invalid_argument);
}

TEST(Matformer, KvSourcesFollowTheOriginalTypes) {
  // README §9.2's s3 on an E4B-shaped model: skip 10-14 keeps KV sharing, now from new layer 15.
  const Gemma3nConfig full = e4b_config();
  std::vector<int> kept;
  for (int l = 0; l < 35; ++l)
    if (l < 10 || l > 14) kept.push_back(l);
  const Gemma3nConfig c = slice_config(full, custom(kept, std::vector<int>(30, 16384)));
  EXPECT_EQ(c.n_layer_kv, 15);
  EXPECT_EQ(c.kv_source[15], 13);  // old 20 (local) <- old 18
  EXPECT_EQ(c.kv_source[19], 14);  // old 24 (global) <- old 19
  EXPECT_FALSE(c.is_sliding[9]);
  EXPECT_FALSE(c.is_sliding[14]);
}

// ---- the tiny fixture against golden/matformer ----

struct SliceGolden {
  std::string name, json_path;
  nlohmann::json desc;
};

std::vector<SliceGolden> golden_slices() {
  const auto doc = test::read_json(test::tiny_dir() + "/golden/matformer/slices.json");
  std::vector<SliceGolden> out;
  for (const auto& s : doc["slices"]) {
    SliceGolden g{s["name"].get<std::string>(), std::string(G3N_BINARY_DIR) + "/matformer_" + s["name"].get<std::string>() + ".json", s};
    nlohmann::json custom_form{{"kept_layers", s["kept_layers"]}, {"ffn_width", s["ffn_width"]}};
    std::ofstream(g.json_path) << custom_form.dump();
    out.push_back(g);
  }
  return out;
}

std::vector<float> golden_logits(const std::string& prompt, const std::string& slice, const std::string& variant) {
  return test::read_f32_file(test::tiny_dir() + "/golden/matformer/logits_" + prompt + "_" + slice + "_" + variant + ".bin");
}

// All rows of a prompt, in one batch or one token at a time.
std::vector<float> run_prompt(const Model& model, const std::vector<int32_t>& tokens, bool exact, bool incremental) {
  ContextParams p;
  p.exact = exact;
  p.n_ctx = 256;
  p.kv_type = KvType::F32;
  p.n_threads = 2;
  Context ctx(model, p);
  const int V = model.config().n_vocab;
  std::vector<float> out;
  if (incremental) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      ctx.eval(std::span<const int32_t>(&tokens[i], 1));
      out.insert(out.end(), ctx.last_logits().begin(), ctx.last_logits().end());
    }
  } else {
    ctx.eval(tokens, LogitsFor::All);
    for (int i = 0; i < ctx.n_logit_rows(); ++i) out.insert(out.end(), ctx.logits(i).begin(), ctx.logits(i).end());
  }
  EXPECT_EQ(out.size(), tokens.size() * V);
  return out;
}

class MatformerGolden : public ::testing::TestWithParam<std::string> {};

// The custom JSON form of each golden slice: the derived configuration equals slices.json, and the
// logits (exact path, batch and token by token) are within golden/exact's tolerance.
TEST_P(MatformerGolden, CustomSliceReproducesReferenceLogits) {
  const std::string variant = GetParam();
  for (const auto& g : golden_slices()) {
    SCOPED_TRACE(variant + "/" + g.name);
    auto model = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-" + variant + ".gguf", g.json_path);
    const auto& c = model->config();
    ASSERT_EQ(c.n_layer, g.desc["n_layer"].get<int>());
    EXPECT_EQ(c.n_layer_kv, g.desc["first_kv_shared_layer"].get<int>());
    EXPECT_EQ(c.kv_source, g.desc["kv_source_layer"].get<std::vector<int>>());
    EXPECT_EQ(c.is_sliding, g.desc["layer_is_sliding"].get<std::vector<bool>>());
    for (int l = 0; l < c.n_layer; ++l)
      EXPECT_EQ(c.sparsity_std_multiplier[l] > 0, g.desc["activation_sparsity"][l].get<double>() > 0) << "layer " << l;
    const int V = c.n_vocab;
    for (const auto& prompt : test::tiny_prompts()) {
      const auto want = golden_logits(prompt.name, g.name, variant);
      for (bool incremental : {false, true}) {
        SCOPED_TRACE(prompt.name + (incremental ? " token by token" : " batch"));
        const auto got = run_prompt(*model, prompt.tokens, true, incremental);
        ASSERT_EQ(want.size(), got.size());
        test::RowStats stats;
        for (size_t i = 0; i < prompt.tokens.size(); ++i) stats.add_row(&got[i * V], &want[i * V], V, 4e-3f);
        EXPECT_LE(stats.max_abs, 2e-3);
        EXPECT_EQ(stats.top1_mismatch, 0);
        std::printf("[matformer %s %s %s %s] max |d| %.3g rms %.3g\n", variant.c_str(), g.name.c_str(), prompt.name.c_str(),
                    incremental ? "incr" : "batch", stats.max_abs, stats.rms());
      }
    }
  }
}

// The fast path on the same slices: F16 and Q8_0 weights use f32 activations and stay within the exact
// tolerance (as FastPath in model_golden_test.cpp).
TEST_P(MatformerGolden, FastPathWithinExactTolerance) {
  const std::string variant = GetParam();
  for (const auto& g : golden_slices()) {
    SCOPED_TRACE(variant + "/" + g.name);
    auto model = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-" + variant + ".gguf", g.json_path);
    const int V = model->config().n_vocab;
    test::RowStats stats;
    for (const auto& prompt : test::tiny_prompts()) {
      const auto want = golden_logits(prompt.name, g.name, variant);
      const auto got = run_prompt(*model, prompt.tokens, false, false);
      for (size_t i = 0; i < prompt.tokens.size(); ++i) stats.add_row(&got[i * V], &want[i * V], V, 4e-3f);
    }
    std::printf("[matformer fast %s %s] max |d| %.3g\n", variant.c_str(), g.name.c_str(), stats.max_abs);
    EXPECT_LE(stats.max_abs, 2e-3);
  }
}

// Another spelling of the loaded slice is the same slice; another slice or the whole file is not.
TEST(MatformerModel, RunsSliceComparesSlicesNotSpellings) {
  const auto slices = golden_slices();
  const std::string path = test::tiny_dir() + "/models/gemma3n-tiny-q8_0.gguf";
  auto s3 = Model::load(path, slices[2].json_path);
  const std::string respelled = std::string(G3N_BINARY_DIR) + "/matformer_s3_respelled.json";
  std::ofstream(respelled) << "{ \"ffn_width\": " << slices[2].desc["ffn_width"].dump(1) << ", \"kept_layers\": "
                           << slices[2].desc["kept_layers"].dump(1) << " }";
  EXPECT_TRUE(s3->runs_slice(respelled));
  EXPECT_FALSE(s3->runs_slice(slices[0].json_path));
  EXPECT_FALSE(s3->runs_slice(""));
  auto whole = Model::load(path);
  EXPECT_TRUE(whole->runs_slice(""));
  EXPECT_FALSE(whole->runs_slice(slices[1].json_path));
  EXPECT_THROW(whole->runs_slice("e2b"), std::invalid_argument);  // 25 layers: no presets
}

INSTANTIATE_TEST_SUITE_P(Gemma3nTiny, MatformerGolden, ::testing::Values("f16", "q8_0"));

// Q4_K_M: the fast path (int8 activations, the column-major sparse down projection) against the exact
// path on the same slice, at the thresholds FastPath holds the unsliced Q4_K_M model to.
TEST(MatformerQ4KM, FastPathAgreesWithExactSlice) {
  for (const auto& g : golden_slices()) {
    SCOPED_TRACE(g.name);
    auto model = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf", g.json_path);
    const int V = model->config().n_vocab;
    test::RowStats stats;
    for (const auto& prompt : test::tiny_prompts()) {
      const auto exact = run_prompt(*model, prompt.tokens, true, false);
      const auto fast = run_prompt(*model, prompt.tokens, false, false);
      for (size_t i = 0; i < prompt.tokens.size(); ++i) stats.add_row(&fast[i * V], &exact[i * V], V, 0);
    }
    std::printf("[matformer q4_k_m fast vs exact %s] max %.3f rms %.4f top1 %.3f\n", g.name.c_str(), stats.max_abs, stats.rms(), stats.top1_rate());
    EXPECT_LE(stats.max_abs, 4);
    EXPECT_LE(stats.rms(), 0.6);
    EXPECT_GE(stats.top1_rate(), 0.85);
  }
}

}  // namespace
}  // namespace g3n
