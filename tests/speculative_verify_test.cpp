// What makes greedy speculative decoding exact (docs/speculative.md): (1) verifying T rows of one sequence
// in one forward pass gives each row the same logits, bit for bit, as decoding the rows one at a time, on
// both arithmetic paths; (2) rolling a sequence back (Sequence::truncate) after rejected rows leaves the
// KV state and every later logit identical to a sequence that never saw those rows, across the sliding
// window's ring and with the KV-sharing layers.
#include <gtest/gtest.h>

#include <algorithm>
#include <span>
#include <tuple>

#include "golden_util.h"
#include "kv_state_util.h"
#include "model/model.h"
#include "runtime/context.h"

namespace g3n {
namespace {

std::vector<float> row(const Context& c, int i) { return {c.logits(i).begin(), c.logits(i).end()}; }

// (file, exact arithmetic, KV type)
using Variant = std::tuple<const char*, bool, KvType>;
class VerifyRows : public ::testing::TestWithParam<Variant> {
 protected:
  ContextParams params() const {
    ContextParams p;
    p.n_ctx = 160;
    p.n_batch = 32;
    p.n_threads = std::get<1>(GetParam()) ? 2 : 1;  // the split over threads changes no bits either
    p.exact = std::get<1>(GetParam());
    p.kv_type = std::get<2>(GetParam());
    return p;
  }
  // The exact path is slow (weights decoded to f32): it checks the shortest prompt and one that crosses
  // the window many times.
  std::vector<test::Prompt> prompts() const {
    std::vector<test::Prompt> all = test::tiny_prompts(), out;
    for (auto& p : all)
      if (!std::get<1>(GetParam()) || p.name == "hello" || p.name == "long") out.push_back(std::move(p));
    return out;
  }
  std::unique_ptr<Model> load() const {
    return Model::load(test::tiny_dir() + "/models/" + std::get<0>(GetParam()));
  }
};

// Some token ids to verify after a prompt (any ids do: exactness must not depend on them).
std::vector<int32_t> continuation(int n, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(3 + (i * 131 + salt * 37) % 440));
  return t;
}

// T rows at decode depth (prompts of 13 to 99 tokens: the tiny model's window is 16, so most verifications
// read a ring that has wrapped, and some cross the window edge inside the batch) give each row the bits of
// T single-token steps. T = 1..9.
TEST_P(VerifyRows, BatchOfTEqualsTSingleSteps) {
  auto m = load();
  const ContextParams p = params();
  for (const auto& pr : prompts()) {
    for (int T = 1; T <= 9; ++T) {
      const auto rows = continuation(T, T + static_cast<int>(pr.tokens.size()));
      Context one(*m, p), many(*m, p);
      one.eval(pr.tokens);
      many.eval(pr.tokens);
      std::vector<std::vector<float>> want;
      for (int32_t t : rows) {
        one.eval(std::span<const int32_t>(&t, 1));
        want.push_back(row(one, 0));
      }
      many.eval(rows, LogitsFor::All);
      ASSERT_EQ(many.n_logit_rows(), T);
      for (int i = 0; i < T; ++i) ASSERT_EQ(row(many, i), want[static_cast<size_t>(i)]) << pr.name << " T=" << T << " row " << i;
      expect_same_kv(*m, one.sequence(), many.sequence(), one.n_past());
    }
  }
}

// Verify T rows, keep the first a (a = 0..T-1: a rejection at every position), roll back, go on with other
// tokens: the logits and the KV state equal those of a sequence that evaluated only the kept rows.
TEST_P(VerifyRows, RollbackEqualsFreshEvaluation) {
  auto m = load();
  const ContextParams p = params();
  for (const auto& pr : prompts()) {
    const int T = 6;
    const auto drafts = continuation(T, 5);
    const auto after = continuation(4, 9);  // what is evaluated after the rollback
    for (int a = 0; a < T; ++a) {
      Context spec(*m, p), fresh(*m, p);
      spec.eval(pr.tokens);
      fresh.eval(pr.tokens);
      spec.eval(drafts, LogitsFor::All);
      const int64_t keep = static_cast<int64_t>(pr.tokens.size()) + a;
      spec.truncate(keep);
      ASSERT_EQ(spec.n_past(), keep);
      if (a > 0) fresh.eval(std::span<const int32_t>(drafts.data(), static_cast<size_t>(a)));
      expect_same_kv(*m, spec.sequence(), fresh.sequence(), keep);
      // Continue one row at a time (the bonus token), then a second verification of several rows.
      spec.eval(std::span<const int32_t>(after.data(), 1));
      fresh.eval(std::span<const int32_t>(after.data(), 1));
      ASSERT_EQ(row(spec, 0), row(fresh, 0)) << pr.name << " a=" << a;
      spec.eval(std::span<const int32_t>(after.data() + 1, 3), LogitsFor::All);
      for (int i = 1; i < 4; ++i) {
        fresh.eval(std::span<const int32_t>(after.data() + i, 1));
        ASSERT_EQ(row(spec, i - 1), row(fresh, 0)) << pr.name << " a=" << a << " row " << i;
      }
      expect_same_kv(*m, spec.sequence(), fresh.sequence(), fresh.n_past());
    }
  }
}

// Rolling back further than the rings hold is refused, not silently wrong.
TEST(VerifyRollback, RefusesWhatTheRingsNoLongerHold) {
  auto m = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q8_0.gguf");
  ContextParams p;
  p.n_ctx = 160;
  p.n_batch = 8;  // rings of 16 + 8 - 1 slots
  p.n_threads = 2;
  Context c(*m, p);
  const auto rows = continuation(60, 1);
  c.eval(rows);
  EXPECT_THROW(c.truncate(30), std::invalid_argument);
  EXPECT_EQ(c.n_past(), 60);
  c.truncate(53);  // 60 - 53 = 7 rows back: the last batch of 8 could have written them
  EXPECT_EQ(c.n_past(), 53);
  EXPECT_THROW(c.truncate(61), std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(
    Tiny, VerifyRows,
    ::testing::Values(Variant{"gemma3n-tiny-q4_k_m.gguf", false, KvType::F32}, Variant{"gemma3n-tiny-q4_k_m.gguf", true, KvType::F32},
                      Variant{"gemma3n-tiny-q8_0.gguf", false, KvType::F16}, Variant{"gemma3n-tiny-q8_0.gguf", true, KvType::F16},
                      Variant{"gemma3n-tiny-f16.gguf", false, KvType::F16}),
    [](const auto& info) {
      std::string n = std::get<0>(info.param);
      n = n.substr(13, n.size() - 18);  // "q4_k_m" from "gemma3n-tiny-q4_k_m.gguf"
      return n + (std::get<1>(info.param) ? "_exact" : "_fast") + (std::get<2>(info.param) == KvType::F32 ? "_kvf32" : "_kvf16");
    });

}  // namespace
}  // namespace g3n
