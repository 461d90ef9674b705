// Continuous batching: sequences evaluated together give bit-identical logits to each evaluated alone,
// whatever else shares the pass and however the rows are split.
#include <gtest/gtest.h>

#include <algorithm>
#include <span>

#include "golden_util.h"
#include "model/model.h"
#include "runtime/batch_engine.h"

namespace g3n {
namespace {

std::vector<float> solo_last_logits(const Model& m, const EngineParams& p, const std::vector<int32_t>& prompt,
                                    const std::vector<int32_t>& steps) {
  BatchEngine e(m, p);
  auto s = e.new_sequence();
  SequenceWork w{s.get(), prompt, 0, LogitsFor::Last};
  e.eval(std::span<const SequenceWork>(&w, 1));
  std::vector<float> out(s->last_logits().begin(), s->last_logits().end());
  for (int32_t t : steps) {
    SequenceWork d{s.get(), std::span<const int32_t>(&t, 1), s->n_past(), LogitsFor::Last};
    e.eval(std::span<const SequenceWork>(&d, 1));
    out.insert(out.end(), s->last_logits().begin(), s->last_logits().end());
  }
  return out;
}

class BatchInvariance : public ::testing::TestWithParam<bool> {};

TEST_P(BatchInvariance, BatchedEqualsAlone) {
  auto m = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  EngineParams p;
  p.n_ctx = 160;
  p.n_batch = 48;  // the long prompt spans several passes, shared with the others
  p.n_threads = 2;
  p.exact = GetParam();
  const auto prompts = test::tiny_prompts();
  const std::vector<int32_t> steps = {44, 294, 401, 165};
  std::vector<std::vector<float>> want;
  for (const auto& pr : prompts) want.push_back(solo_last_logits(*m, p, pr.tokens, steps));

  BatchEngine e(*m, p);
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<SequenceWork> work;
  for (const auto& pr : prompts) {
    seqs.push_back(e.new_sequence());
    work.push_back({seqs.back().get(), pr.tokens, 0, LogitsFor::Last});
  }
  e.eval(work);  // all prompts prefilled together
  std::vector<std::vector<float>> got(prompts.size());
  for (size_t i = 0; i < seqs.size(); ++i) got[i].assign(seqs[i]->last_logits().begin(), seqs[i]->last_logits().end());
  for (int32_t t : steps) {  // one decode step for every sequence per pass
    work.clear();
    for (auto& s : seqs) work.push_back({s.get(), std::span<const int32_t>(&t, 1), s->n_past(), LogitsFor::Last});
    e.eval(work);
    for (size_t i = 0; i < seqs.size(); ++i) got[i].insert(got[i].end(), seqs[i]->last_logits().begin(), seqs[i]->last_logits().end());
  }
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(got[i], want[i]) << prompts[i].name;
}

INSTANTIATE_TEST_SUITE_P(Engine, BatchInvariance, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "exact" : "fast"; });

// A copy (the n > 1 choices of one prompt) holds the original's logits and continues exactly as it would,
// including past the sliding window (the rings are copied whole), while the original is left as it was.
TEST(BatchEngine, CopiedSequenceContinuesAsTheOriginal) {
  auto m = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  EngineParams p;
  p.n_ctx = 160;
  p.n_batch = 16;
  p.n_threads = 2;
  p.kv_type = KvType::F16;
  const std::vector<int32_t> prompt = test::tiny_prompts().front().tokens;
  std::vector<int32_t> steps;
  for (int i = 0; i < 40; ++i) steps.push_back(static_cast<int32_t>(40 + (i * 37) % 300));
  const std::vector<float> want = solo_last_logits(*m, p, prompt, steps);

  BatchEngine e(*m, p);
  auto a = e.new_sequence();
  SequenceWork w{a.get(), prompt, 0, LogitsFor::Last};
  e.eval(std::span<const SequenceWork>(&w, 1));
  auto b = e.new_sequence();
  b->copy_from(*a);
  EXPECT_EQ(b->n_past(), a->n_past());
  std::vector<float> got(b->last_logits().begin(), b->last_logits().end());
  for (int32_t t : steps) {
    SequenceWork d{b.get(), std::span<const int32_t>(&t, 1), b->n_past(), LogitsFor::Last};
    e.eval(std::span<const SequenceWork>(&d, 1));
    got.insert(got.end(), b->last_logits().begin(), b->last_logits().end());
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(a->n_past(), static_cast<int64_t>(prompt.size()));
  EXPECT_TRUE(std::equal(a->last_logits().begin(), a->last_logits().end(), want.begin()));
  auto other = BatchEngine(*m, p).new_sequence(64);
  EXPECT_THROW(other->copy_from(*a), std::invalid_argument);  // another context length
}

// A sequence evaluated again from position 0 (a new prompt that shares nothing, /clear) may roll back as a
// fresh one may: the rows written before no longer count. They once did, and a speculative round's rollback
// after a long earlier conversation threw "cannot truncate".
TEST(BatchEngine, StartingOverForgetsTheEarlierRowsForRollback) {
  auto m = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  EngineParams p;
  p.n_ctx = 160;
  p.n_batch = 4;  // rings of window 16 + 3 slots
  p.n_threads = 1;
  BatchEngine e(*m, p);
  auto s = e.new_sequence();
  std::vector<int32_t> long_prompt;
  for (int i = 0; i < 120; ++i) long_prompt.push_back(static_cast<int32_t>(40 + (i * 37) % 300));
  SequenceWork a{s.get(), long_prompt, 0, LogitsFor::Last};
  e.eval(std::span<const SequenceWork>(&a, 1));
  const std::vector<int32_t> short_prompt(long_prompt.begin(), long_prompt.begin() + 10);
  SequenceWork b{s.get(), short_prompt, 0, LogitsFor::Last};
  e.eval(std::span<const SequenceWork>(&b, 1));
  EXPECT_TRUE(s->can_resume_at(8));
  EXPECT_NO_THROW(s->truncate(8));
  // ... and continues as a sequence that only ever held those rows.
  auto fresh = e.new_sequence();
  SequenceWork c{fresh.get(), std::span<const int32_t>(short_prompt).first(8), 0, LogitsFor::Last};
  e.eval(std::span<const SequenceWork>(&c, 1));
  const int32_t t = 77;
  SequenceWork d1{s.get(), std::span<const int32_t>(&t, 1), 8, LogitsFor::Last};
  SequenceWork d2{fresh.get(), std::span<const int32_t>(&t, 1), 8, LogitsFor::Last};
  e.eval(std::span<const SequenceWork>(&d1, 1));
  e.eval(std::span<const SequenceWork>(&d2, 1));
  EXPECT_TRUE(std::equal(s->last_logits().begin(), s->last_logits().end(), fresh->last_logits().begin()));
}

TEST(BatchEngine, BadItemChangesNothing) {
  auto m = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  EngineParams p;
  p.n_ctx = 32;
  p.n_threads = 1;
  BatchEngine e(*m, p);
  auto a = e.new_sequence(), b = e.new_sequence();
  const std::vector<int32_t> ok = {2, 300, 301};
  const std::vector<int32_t> too_long(40, 300);
  std::vector<SequenceWork> work = {{a.get(), ok, 0, LogitsFor::Last}, {b.get(), too_long, 0, LogitsFor::Last}};
  EXPECT_THROW(e.eval(work), std::length_error);
  EXPECT_EQ(a->n_past(), 0);
  work = {{a.get(), ok, 0, LogitsFor::Last}, {a.get(), ok, 0, LogitsFor::Last}};
  EXPECT_THROW(e.eval(work), std::invalid_argument);
  EXPECT_THROW(e.new_sequence(64), std::invalid_argument);
}

// Hidden rows (embeddings) sharing passes with logit rows (generation): each item gets what it gets alone,
// and logits and hidden rows asked of the same rows agree with asking for either alone.
TEST(BatchHidden, MixedWithLogitsEqualsAlone) {
  auto m = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  EngineParams p;
  p.n_ctx = 160;
  p.n_batch = 48;
  p.n_threads = 2;
  const auto prompts = test::tiny_prompts();
  const int D = m->config().n_embd, V = m->config().n_vocab;
  std::vector<std::vector<float>> hidden_alone, logits_alone;
  for (const auto& pr : prompts) {
    BatchEngine e(*m, p);
    auto s = e.new_sequence();
    SequenceWork h{s.get(), pr.tokens, 0, LogitsFor::None, LogitsFor::All};
    e.eval(std::span<const SequenceWork>(&h, 1));
    ASSERT_EQ(s->n_hidden_rows(), static_cast<int>(pr.tokens.size()));
    ASSERT_EQ(s->n_logit_rows(), 0);
    std::vector<float> hv;
    for (int r = 0; r < s->n_hidden_rows(); ++r) hv.insert(hv.end(), s->hidden(r).begin(), s->hidden(r).end());
    hidden_alone.push_back(hv);
    s->reset();
    SequenceWork l{s.get(), pr.tokens, 0, LogitsFor::All};
    e.eval(std::span<const SequenceWork>(&l, 1));
    std::vector<float> lv;
    for (int r = 0; r < s->n_logit_rows(); ++r) lv.insert(lv.end(), s->logits(r).begin(), s->logits(r).end());
    logits_alone.push_back(lv);
  }
  BatchEngine e(*m, p);
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<SequenceWork> work;
  for (size_t i = 0; i < prompts.size(); ++i) {
    seqs.push_back(e.new_sequence());
    // Alternate: hidden only, logits only, both.
    const int kind = static_cast<int>(i % 3);
    work.push_back({seqs.back().get(), prompts[i].tokens, 0, kind == 0 ? LogitsFor::None : LogitsFor::All,
                    kind == 1 ? LogitsFor::None : LogitsFor::All});
  }
  e.eval(work);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE(prompts[i].name);
    const int kind = static_cast<int>(i % 3);
    const int n = static_cast<int>(prompts[i].tokens.size());
    ASSERT_EQ(seqs[i]->n_hidden_rows(), kind == 1 ? 0 : n);
    ASSERT_EQ(seqs[i]->n_logit_rows(), kind == 0 ? 0 : n);
    for (int r = 0; r < seqs[i]->n_hidden_rows(); ++r) {
      const auto h = seqs[i]->hidden(r);
      EXPECT_TRUE(std::equal(h.begin(), h.end(), hidden_alone[i].begin() + static_cast<size_t>(r) * D)) << "hidden row " << r;
    }
    for (int r = 0; r < seqs[i]->n_logit_rows(); ++r) {
      const auto l = seqs[i]->logits(r);
      EXPECT_TRUE(std::equal(l.begin(), l.end(), logits_alone[i].begin() + static_cast<size_t>(r) * V)) << "logits row " << r;
    }
  }
}

}  // namespace
}  // namespace g3n
