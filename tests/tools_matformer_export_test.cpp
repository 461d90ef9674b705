// MatFormer on the e4b-mini random model (E4B's 35 layers at the tiny width): every preset loads and
// runs, and an exported slice gives the same logits, bit for bit, as the original loaded with the slice.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>

#include "golden_util.h"
#include "process_dir.h"
#include "model/matformer.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/memory_estimate.h"
#include "tools/matformer_export.h"
#include "tools/random_model.h"

namespace g3n {
namespace {

const std::string& e4b_mini_path() {
  static const std::string path = [] {
    const std::string p = test::process_dir("matformer-export") + "/e4b-mini-q4_k_m.gguf";
    auto spec = random_model_preset("e4b-mini");
    write_random_gemma3n(*spec, p, 2);
    return p;
  }();
  return path;
}

std::vector<float> logits(const Model& model, const std::vector<int32_t>& tokens, bool exact) {
  ContextParams p;
  p.exact = exact;
  p.n_ctx = 256;
  p.n_threads = 2;
  Context ctx(model, p);
  ctx.eval(tokens, LogitsFor::All);
  std::vector<float> out;
  for (int i = 0; i < ctx.n_logit_rows(); ++i) out.insert(out.end(), ctx.logits(i).begin(), ctx.logits(i).end());
  return out;
}

TEST(MatformerE4bMini, EveryPresetApplies) {
  const auto prompt = test::tiny_prompts().front().tokens;
  for (const auto& preset : matformer_presets()) {
    SCOPED_TRACE(preset.name);
    auto model = Model::load(e4b_mini_path(), preset.name);
    const auto& c = model->config();
    EXPECT_EQ(c.n_layer, kMatformerE4bLayers - static_cast<int>(preset.skipped.size()));
    EXPECT_EQ(c.n_layer_kv, 20);  // the presets only ever skip layers 20-24
    for (int l = 0; l < c.n_layer; ++l) {
      const bool wide = std::find(preset.wide.begin(), preset.wide.end(), c.file_layer[l]) != preset.wide.end();
      EXPECT_EQ(c.n_ff[l], wide ? 512 : 256) << "layer " << l;
    }
    const auto out = logits(*model, prompt, false);
    ASSERT_EQ(out.size(), prompt.size() * static_cast<size_t>(c.n_vocab));
    for (float v : out) ASSERT_TRUE(std::isfinite(v));
  }
}

// The sliced view and the exported file read the same quant blocks in the same order; any difference is
// a slicing error (a wrong block, stride or per-layer row), never rounding.
TEST(MatformerE4bMini, ExportedSliceIsBitIdenticalToTheView) {
  const std::string custom = test::process_dir("matformer-export") + "/matformer_mini_custom.json";
  {  // README §9.2's s3 pattern at E4B's depth: skip 10-14, so KV sharing starts at new layer 15
    std::vector<int> kept;
    for (int l = 0; l < 35; ++l)
      if (l < 10 || l > 14) kept.push_back(l);
    std::vector<int> widths(kept.size(), 256);
    widths[4] = 512;
    std::ofstream(custom) << nlohmann::json{{"kept_layers", kept}, {"ffn_width", widths}}.dump();
  }
  const auto prompts = test::tiny_prompts();
  for (const std::string& slice : {std::string("e2b"), std::string("e1.96b"), std::string("e2.98b"), std::string("e3.73b-block"), custom}) {
    SCOPED_TRACE(slice);
    const std::string out = test::process_dir("matformer-export") + "/e4b-mini-export.gguf";
    export_matformer_slice(e4b_mini_path(), out, slice);
    auto view = Model::load(e4b_mini_path(), slice);
    auto file = Model::load(out);
    ASSERT_EQ(file->config().n_layer, view->config().n_layer);
    EXPECT_EQ(file->config().n_ff, view->config().n_ff);
    EXPECT_EQ(file->config().kv_source, view->config().kv_source);
    EXPECT_EQ(file->config().is_sliding, view->config().is_sliding);
    EXPECT_EQ(file->config().sparsity_std_multiplier, view->config().sparsity_std_multiplier);
    // `g3n run` refuses what will not fit by this estimate: a view counts what its export holds (kept layers,
    // their widths), not the whole file's weights.
    const ContextParams cp{.n_ctx = 256};
    const uint64_t view_w = estimate_memory(*view, cp).weights, file_w = estimate_memory(*file, cp).weights;
    EXPECT_NEAR(static_cast<double>(view_w), static_cast<double>(file_w), 0.01 * static_cast<double>(file_w));
    EXPECT_LT(view_w, estimate_memory(*Model::load(e4b_mini_path()), cp).weights);
    // The slice decodes as its export does: its compacted down projections laid out (packed or rows) as the
    // export's, for a plain load and a speculating one (which packs Q6_K too).
    for (bool speculative : {false, true}) {
      auto v = speculative ? Model::load(e4b_mini_path(), Model::LoadOptions{.matformer = slice, .speculative = true}) : nullptr;
      auto f = speculative ? Model::load(out, Model::LoadOptions{.speculative = true}) : nullptr;
      const Model& vm = v ? *v : *view;
      const Model& fm = f ? *f : *file;
      for (int l = 0; l < vm.config().n_layer; ++l)
        EXPECT_EQ(vm.weights().layers[l].ffn_down.packed, fm.weights().layers[l].ffn_down.packed)
            << "layer " << l << (speculative ? " speculative" : "");
    }
    for (bool exact : {true, false}) {
      for (const auto& p : prompts) {
        const auto a = logits(*view, p.tokens, exact), b = logits(*file, p.tokens, exact);
        ASSERT_EQ(a.size(), b.size());
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << p.name << (exact ? " exact" : " fast");
      }
    }
    std::filesystem::remove(out);
  }
}

}  // namespace
}  // namespace g3n
