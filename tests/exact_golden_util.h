// The gemma3n-tiny golden/exact check (README §4.1), shared by the engine's own test
// (model_golden_test.cpp) and the Hugging Face conversion's (tools_hf_convert_goldens_test.cpp): for every
// prompt, batch prefill, the teacher-forced greedy continuation and the token-by-token path.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "golden_util.h"
#include "model/model.h"
#include "runtime/context.h"

namespace g3n::test {

struct ExactGoldenFiles {
  std::vector<float> batch;   // [n, V]
  std::vector<float> greedy;  // [32, V]
  std::vector<int32_t> greedy_tokens;
};

inline ExactGoldenFiles load_exact_golden(const std::string& tag, const std::string& prompt) {
  const std::string dir = tiny_dir() + "/golden/exact/" + tag + "/";
  ExactGoldenFiles g;
  g.batch = read_f32_file(dir + "logits_" + prompt + "_exact-" + tag + ".bin");
  g.greedy = read_f32_file(dir + "greedy_logits_" + prompt + "_exact-" + tag + ".bin");
  const auto results = read_json(dir + "results_exact-" + tag + ".json");
  for (const auto& p : results["prompts"])
    if (p["name"] == prompt) g.greedy_tokens = p["greedy_tokens"].get<std::vector<int32_t>>();
  return g;
}

// `model` against golden/exact/<tag>: 2e-3 with an F32 cache, the F16-KV allowance 0.05 otherwise; no
// top-1 change where the golden's margin is above the tie threshold. `label` prefixes the printed figures.
inline void check_exact_golden(const Model& model, const std::string& tag, KvType kv, const std::string& label) {
  const float tol = kv == KvType::F32 ? 2e-3f : 0.05f;
  const float tie = kv == KvType::F32 ? 4e-3f : 0.05f;
  const int V = model.config().n_vocab;
  for (const auto& prompt : tiny_prompts()) {
    SCOPED_TRACE(label + "/" + prompt.name);
    const ExactGoldenFiles g = load_exact_golden(tag, prompt.name);
    const int n = static_cast<int>(prompt.tokens.size());
    ASSERT_EQ(g.batch.size(), static_cast<size_t>(n) * V);
    ASSERT_EQ(g.greedy_tokens.size(), 32u);

    ContextParams p;
    p.exact = true;
    p.n_ctx = 256;
    p.kv_type = kv;
    p.n_threads = 2;
    for (bool incremental : {false, true}) {
      SCOPED_TRACE(incremental ? "token by token" : "batch");
      Context ctx(model, p);
      RowStats prompt_stats, greedy_stats;
      if (incremental) {
        for (int i = 0; i < n; ++i) {
          ctx.eval(std::span<const int32_t>(&prompt.tokens[i], 1));
          prompt_stats.add_row(ctx.last_logits().data(), &g.batch[static_cast<size_t>(i) * V], V, tie);
        }
      } else {
        ctx.eval(prompt.tokens, LogitsFor::All);
        ASSERT_EQ(ctx.n_logit_rows(), n);
        for (int i = 0; i < n; ++i) prompt_stats.add_row(ctx.logits(i).data(), &g.batch[static_cast<size_t>(i) * V], V, tie);
      }
      // Teacher-forced greedy: row i of greedy_logits is what token i was chosen from.
      greedy_stats.add_row(ctx.last_logits().data(), &g.greedy[0], V, tie);
      if (!incremental && kv == KvType::F32) {
        EXPECT_EQ(argmax(ctx.last_logits().data(), V), g.greedy_tokens[0]);
      }
      for (int i = 1; i < 32; ++i) {
        ctx.eval(std::span<const int32_t>(&g.greedy_tokens[i - 1], 1));
        greedy_stats.add_row(ctx.last_logits().data(), &g.greedy[static_cast<size_t>(i) * V], V, tie);
      }
      EXPECT_LE(prompt_stats.max_abs, tol);
      EXPECT_LE(greedy_stats.max_abs, tol);
      EXPECT_EQ(prompt_stats.top1_mismatch, 0);
      EXPECT_EQ(greedy_stats.top1_mismatch, 0);
      std::printf("[%s %s %s %s] prompt max %.3g rms %.3g | greedy max %.3g\n", label.c_str(), kv == KvType::F32 ? "kv-f32" : "kv-f16",
                  prompt.name.c_str(), incremental ? "incr" : "batch", prompt_stats.max_abs, prompt_stats.rms(), greedy_stats.max_abs);
    }
  }
}

}  // namespace g3n::test
