// The gemma3n-tiny golden/multimodal cases (README §8: token ids and embedding rows, logits per weight
// variant) and their exact-path check, shared by model_multimodal_test.cpp and the Hugging Face
// conversion's test (tools_hf_convert_goldens_test.cpp).
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "golden_util.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/input_rows.h"

namespace g3n::test {

inline const std::vector<std::string>& multimodal_cases() {
  static const std::vector<std::string> cases = {"a_mid_run", "b_two_runs", "c_run_at_start", "d_long_run"};
  return cases;
}

// Soft rows where the computation is perturbed (F16 KV, int8 activations): 3x the token-row allowance,
// the measured sensitivity ratio being 2-3x (see the top of model_multimodal_test.cpp).
constexpr double kSoftRowFactor = 3.0;

inline std::string mm_dir() { return tiny_dir() + "/golden/multimodal/"; }

struct MmCase {
  InputRows rows;
  nlohmann::json meta;
};

inline MmCase load_case(const std::string& name) {
  MmCase c;
  c.meta = read_json(mm_dir() + name + ".json");
  const auto emb = read_f32_file(mm_dir() + c.meta["embeddings_file"].get<std::string>());
  const int64_t width = c.meta["embeddings_shape"][1].get<int64_t>();
  for (const auto& r : c.meta["rows"]) {
    if (r.contains("token")) {
      c.rows.push_token(r["token"].get<int32_t>());
    } else {
      const size_t k = r["embedding"].get<size_t>();
      c.rows.push_vectors(std::span<const float>(emb).subspan(k * width, width), width);
    }
  }
  return c;
}

inline std::vector<float> golden_logits(const MmCase& c, const std::string& v) {
  return read_f32_file(mm_dir() + c.meta["variants"][v]["logits_file"].get<std::string>());
}

// The exact path of `model` against the cases' <variant> logits, batched and row by row, and the
// teacher-forced greedy rows: README §8.3's 2e-3 with an F32 cache on every row; an F16 cache gets the
// F16-KV allowance of §4.1 on token rows and 3x that on soft rows.
inline void check_multimodal_exact(const Model& model, const std::string& variant, KvType kv) {
  const float tol = kv == KvType::F32 ? 2e-3f : 0.05f;
  const float tie = kv == KvType::F32 ? 4e-3f : 0.05f;
  const int V = model.config().n_vocab;
  ContextParams params;
  params.exact = true;
  params.n_ctx = 256;
  params.kv_type = kv;
  params.n_threads = 2;
  for (const std::string& name : multimodal_cases()) {
    SCOPED_TRACE(name);
    const MmCase c = load_case(name);
    const auto want = golden_logits(c, variant);
    const int n = static_cast<int>(c.rows.size());
    ASSERT_EQ(want.size(), static_cast<size_t>(n) * V);
    const auto& vmeta = c.meta["variants"][variant];
    const bool has_greedy = vmeta.contains("greedy");
    std::vector<float> greedy;
    std::vector<int32_t> greedy_tokens;
    if (has_greedy) {
      greedy = read_f32_file(mm_dir() + vmeta["greedy"]["logits_file"].get<std::string>());
      greedy_tokens = vmeta["greedy"]["tokens"].get<std::vector<int32_t>>();
    }
    for (bool incremental : {false, true}) {
      SCOPED_TRACE(incremental ? "row by row" : "batch");
      Context ctx(model, params);
      RowStats token_rows, soft_rows, greedy_stats;
      const auto add = [&](int i, const float* got) {
        (c.rows.is_vector(i) ? soft_rows : token_rows).add_row(got, &want[static_cast<size_t>(i) * V], V, tie);
      };
      if (incremental) {
        for (int i = 0; i < n; ++i) {
          ctx.eval(c.rows.view().subspan(i, 1));
          add(i, ctx.last_logits().data());
        }
      } else {
        ctx.eval(c.rows.view(), LogitsFor::All);
        ASSERT_EQ(ctx.n_logit_rows(), n);
        for (int i = 0; i < n; ++i) add(i, ctx.logits(i).data());
      }
      EXPECT_LE(token_rows.max_abs, tol);
      if (kv == KvType::F32) {
        EXPECT_LE(soft_rows.max_abs, tol);  // README §8.3: every row
      } else {
        EXPECT_LE(soft_rows.max_abs, kSoftRowFactor * tol);  // 3x the token-row allowance
      }
      EXPECT_EQ(token_rows.top1_mismatch, 0);
      EXPECT_EQ(soft_rows.top1_mismatch, 0);
      if (has_greedy) {
        // Teacher-forced: row i of the greedy file is what golden token i was chosen from.
        greedy_stats.add_row(ctx.last_logits().data(), greedy.data(), V, tie);
        if (kv == KvType::F32) {
          EXPECT_EQ(argmax(ctx.last_logits().data(), V), greedy_tokens[0]);
        }
        for (size_t i = 1; i < greedy_tokens.size(); ++i) {
          ctx.eval(std::span<const int32_t>(&greedy_tokens[i - 1], 1));
          greedy_stats.add_row(ctx.last_logits().data(), &greedy[i * V], V, tie);
        }
        EXPECT_EQ(greedy_stats.rows, 8);
        EXPECT_LE(greedy_stats.max_abs, tol);
        EXPECT_EQ(greedy_stats.top1_mismatch, 0);
      }
      std::printf("[mm %s %s %s %s] token rows max %.3g rms %.3g | soft rows max %.3g rms %.3g | greedy max %.3g\n",
                  variant.c_str(), kv == KvType::F32 ? "kv-f32" : "kv-f16", name.c_str(), incremental ? "incr" : "batch",
                  token_rows.max_abs, token_rows.rms(), soft_rows.max_abs, soft_rows.rms(), greedy_stats.max_abs);
    }
  }
}

}  // namespace g3n::test
