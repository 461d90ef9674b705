// Speculative decoding through the server's scheduler (docs/speculative.md): jobs that speculate with
// n-gram lookup share the batched passes with jobs that do not, and every job generates what a plain
// Session generates (greedy, the tiny q4_k_m model); spec draft/self is refused with a message.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "golden_util.h"
#include "model/model.h"
#include "runtime/session.h"
#include "sampling/json_constraint.h"
#include "server/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace g3n {
namespace {

ContextParams ctx_params() {
  ContextParams p;
  p.n_ctx = 256;
  p.n_threads = 1;
  return p;
}

SamplingParams greedy() {
  SamplingParams s;
  s.temperature = 0;
  s.num_predict = 40;
  return s;
}

TEST(SchedulerSpec, SpeculatingAndPlainJobsInOneBatchMatchSessions) {
  auto model = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(model->file());
  const TokenTexts texts(tok);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : test::tiny_prompts()) prompts.push_back(p.tokens);
  std::vector<int32_t> rep = {2};
  for (int i = 0; i < 6; ++i) rep.insert(rep.end(), {300, 301, 302, 17, 18});
  prompts.push_back(rep);
  std::vector<GenerateStats> want;
  for (const auto& p : prompts) {
    Session s(*model, tok, ctx_params());
    want.push_back(s.generate(p, greedy(), [](std::string_view) {}));
  }
  server::Scheduler sched(*model, tok, texts, {.num_parallel = 3, .max_queue = 16});
  std::vector<std::shared_ptr<server::Job>> jobs;
  for (size_t k = 0; k < prompts.size(); ++k) {
    auto j = std::make_shared<server::Job>();
    j->prompt = InputRows(prompts[k]);
    j->sampling = greedy();
    j->ctx_params = ctx_params();
    if (k % 3 != 1) j->spec = {k % 3 == 0 ? SpecMode::Ngram : SpecMode::Auto, 4, k % 2 == 0};
    jobs.push_back(j);
    ASSERT_TRUE(sched.submit(j));
  }
  int drafted = 0;
  for (size_t k = 0; k < jobs.size(); ++k) {
    std::string piece;
    bool done = false;
    for (int i = 0; i < 1200 && !done; ++i) done = jobs[k]->wait(piece, std::chrono::milliseconds(100));
    ASSERT_TRUE(done) << "job " << k << " did not finish within 120 s";
    EXPECT_EQ(jobs[k]->error(), "");
    EXPECT_EQ(jobs[k]->stats().generated, want[k].generated) << "job " << k;
    drafted += jobs[k]->spec_stats.drafted;
  }
  EXPECT_GT(drafted, 0);  // the speculating jobs did verify drafts
}

TEST(SchedulerSpec, ModelDraftersAreRefusedWithAMessage) {
  auto model = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(model->file());
  const TokenTexts texts(tok);
  server::Scheduler sched(*model, tok, texts, {.num_parallel = 1, .max_queue = 4});
  auto j = std::make_shared<server::Job>();
  j->prompt = InputRows(test::tiny_prompts()[0].tokens);
  j->sampling = greedy();
  j->ctx_params = ctx_params();
  j->spec = {SpecMode::Self, 4, true};
  ASSERT_TRUE(sched.submit(j));
  std::string piece;
  bool done = false;
  for (int i = 0; i < 600 && !done; ++i) done = j->wait(piece, std::chrono::milliseconds(100));
  ASSERT_TRUE(done);
  EXPECT_NE(j->error().find("n-gram lookup only"), std::string::npos) << j->error();
}

}  // namespace
}  // namespace g3n
