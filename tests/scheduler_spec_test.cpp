// Speculative decoding through the server's scheduler (docs/speculative.md): jobs that speculate with
// n-gram lookup or a draft model share the batched passes with jobs that do not, and every job generates what
// a plain Session generates (greedy, the tiny q4_k_m model).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
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

// What a plain Session generates for each prompt.
std::vector<GenerateStats> plain_answers(const Model& model, const Tokenizer& tok, const std::vector<std::vector<int32_t>>& prompts) {
  std::vector<GenerateStats> want;
  for (const auto& p : prompts) {
    Session s(model, tok, ctx_params());
    want.push_back(s.generate(p, greedy(), [](std::string_view) {}));
  }
  return want;
}

std::shared_ptr<server::Job> greedy_job(const std::vector<int32_t>& prompt) {
  auto j = std::make_shared<server::Job>();
  j->prompt = InputRows(prompt);
  j->sampling = greedy();
  j->ctx_params = ctx_params();
  return j;
}

// Whether the job finished within `seconds`.
bool wait_done(server::Job& j, int seconds) {
  std::string piece;
  bool done = false;
  for (int i = 0; i < 10 * seconds && !done; ++i) done = j.wait(piece, std::chrono::milliseconds(100));
  return done;
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
  const std::vector<GenerateStats> want = plain_answers(*model, tok, prompts);
  server::Scheduler sched(*model, tok, texts, {.num_parallel = 3, .max_queue = 16});
  std::vector<std::shared_ptr<server::Job>> jobs;
  for (size_t k = 0; k < prompts.size(); ++k) {
    auto j = greedy_job(prompts[k]);
    if (k % 3 != 1) j->spec = {k % 3 == 0 ? SpecMode::Ngram : SpecMode::Auto, 4, k % 2 == 0};
    jobs.push_back(j);
    ASSERT_TRUE(sched.submit(j));
  }
  int drafted = 0;
  for (size_t k = 0; k < jobs.size(); ++k) {
    ASSERT_TRUE(wait_done(*jobs[k], 120)) << "job " << k << " did not finish within 120 s";
    EXPECT_EQ(jobs[k]->error(), "");
    EXPECT_EQ(jobs[k]->stats().generated, want[k].generated) << "job " << k;
    drafted += jobs[k]->spec_stats.drafted;
  }
  EXPECT_GT(drafted, 0);  // the speculating jobs did verify drafts
}

// Jobs that draft with a model (a separate draft file, a MatFormer slice of the target's own file) share the
// batched passes with n-gram and plain jobs; each slot keeps its draft model's sequence between requests, and
// every job generates what a plain Session generates.
TEST(SchedulerSpec, DraftAndSelfJobsInOneBatchMatchSessions) {
  const std::string path = test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf";
  auto model = Model::load(path);
  auto draft = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q8_0.gguf");
  const auto doc = test::read_json(test::tiny_dir() + "/golden/matformer/slices.json");
  const auto& s0 = doc["slices"][0];
  const std::string slice_json = std::string(G3N_BINARY_DIR) + "/scheduler_self_slice.json";
  std::ofstream(slice_json) << nlohmann::json{{"kept_layers", s0["kept_layers"]}, {"ffn_width", s0["ffn_width"]}}.dump();
  auto slice = Model::load(path, slice_json, model.get());
  const Tokenizer tok = Tokenizer::from_gguf(model->file());
  const TokenTexts texts(tok);
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& p : test::tiny_prompts()) prompts.push_back(p.tokens);
  const std::vector<GenerateStats> want = plain_answers(*model, tok, prompts);
  server::Scheduler sched(*model, tok, texts, {.num_parallel = 3, .max_queue = 64});
  // Two rounds over the prompts: the second finds the slots' draft sequences from the first.
  int drafted = 0, accepted = 0;
  for (int round = 0; round < 2; ++round) {
    std::vector<std::shared_ptr<server::Job>> jobs;
    for (size_t k = 0; k < prompts.size(); ++k) {
      auto j = greedy_job(prompts[k]);
      switch ((k + static_cast<size_t>(round)) % 4) {
        case 0: j->spec = {SpecMode::Draft, 3, false}; j->draft_model = draft.get(); break;
        case 1: j->spec = {SpecMode::Self, 4, k % 2 == 0}; j->draft_model = slice.get(); break;
        case 2: j->spec = {SpecMode::Ngram, 4, false}; break;
        default: break;  // plain
      }
      jobs.push_back(j);
      ASSERT_TRUE(sched.submit(j));
    }
    for (size_t k = 0; k < jobs.size(); ++k) {
      ASSERT_TRUE(wait_done(*jobs[k], 120)) << "job " << k << " did not finish within 120 s";
      EXPECT_EQ(jobs[k]->error(), "");
      EXPECT_EQ(jobs[k]->stats().generated, want[k].generated) << "round " << round << " job " << k << " spec "
                                                               << spec_mode_name(jobs[k]->spec.mode);
      if (jobs[k]->draft_model) {
        drafted += jobs[k]->spec_stats.drafted;
        accepted += jobs[k]->spec_stats.accepted;
      }
    }
  }
  EXPECT_GT(drafted, 0);  // the model drafters did propose
  EXPECT_GT(accepted, 0);  // and some proposals were right (the q8_0 file drafts for its q4_k_m twin)
  // The slots' draft sequences count with their target sequences: three slots, at least one drafting.
  const uint64_t target = Context(*model, ctx_params()).kv_bytes();
  const uint64_t least_draft = std::min(Context(*draft, ctx_params()).kv_bytes(), Context(*slice, ctx_params()).kv_bytes());
  EXPECT_GE(sched.kv_bytes(), 3 * target + least_draft);
}

// A draft model's sequence is sized by the engine's pass, whatever the request's num_batch: its rings must
// hold a rejected round's rows to roll back (sized by num_batch 1, every rejection re-evaluated the draft's
// whole history one row per pass, on the thread every slot shares).
TEST(SchedulerSpec, DraftSequenceIsSizedByTheEngineNotTheRequestsNumBatch) {
  auto model = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  auto draft = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q8_0.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(model->file());
  const TokenTexts texts(tok);
  const std::vector<int32_t> prompt = test::tiny_prompts()[0].tokens;
  const std::vector<GenerateStats> want = plain_answers(*model, tok, {prompt});
  std::vector<uint64_t> kv;
  for (int n_batch : {1, 7, ContextParams{}.n_batch}) {
    server::Scheduler sched(*model, tok, texts, {.num_parallel = 1, .max_queue = 4});
    auto j = greedy_job(prompt);
    j->ctx_params.n_batch = n_batch;
    j->spec = {SpecMode::Draft, 4, false};
    j->draft_model = draft.get();
    ASSERT_TRUE(sched.submit(j));
    ASSERT_TRUE(wait_done(*j, 120));
    EXPECT_EQ(j->error(), "");
    EXPECT_EQ(j->stats().generated, want[0].generated) << "num_batch " << n_batch;
    EXPECT_GT(j->spec_stats.drafted, 0);
    kv.push_back(sched.kv_bytes());
  }
  EXPECT_EQ(kv[0], kv[2]);
  EXPECT_EQ(kv[1], kv[2]);
}

// A long prompt read in small passes does not stall the other slots: they take a decode step between its
// chunks (it once ran whole, so an answer in progress waited for it). A generating job A (its 25 greedy tokens
// end at the model's end of turn) and a prompt B of 150 rows read one row per pass: A finishes while B reads.
TEST(SchedulerSpec, ALongPromptLetsTheOtherSlotsDecodeBetweenItsChunks) {
  auto model = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(model->file());
  const TokenTexts texts(tok);
  server::Scheduler sched(*model, tok, texts, {.num_parallel = 2, .max_queue = 4});
  auto a = greedy_job(test::tiny_prompts()[0].tokens);
  a->sampling.num_predict = 100;
  a->sampling.stop.clear();
  ASSERT_TRUE(sched.submit(a));
  std::string piece;
  while (piece.empty() && !a->wait(piece, std::chrono::milliseconds(10))) {}  // A is generating
  std::vector<int32_t> long_prompt = {2};
  for (int i = 0; i < 150; ++i) long_prompt.push_back(static_cast<int32_t>(300 + i % 50));
  auto b = greedy_job(long_prompt);
  b->ctx_params.n_batch = 1;
  b->sampling.num_predict = 1;
  ASSERT_TRUE(sched.submit(b));
  bool a_done = false, b_done = false, a_first = false;
  for (int i = 0; i < 12000 && !(a_done && b_done); ++i) {
    std::string t;
    if (!a_done && a->wait(t, std::chrono::milliseconds(5))) {
      a_done = true;
      a_first = !b_done;
    }
    if (!b_done && b->wait(t, std::chrono::milliseconds(5))) b_done = true;
  }
  ASSERT_TRUE(a_done && b_done);
  EXPECT_EQ(a->error(), "");
  EXPECT_EQ(b->error(), "");
  ASSERT_GE(a->stats().generated.size(), 20u);  // A had many steps left when B came (no early end hides the order)
  EXPECT_TRUE(a_first) << "the answer in progress waited for the whole prompt";
  EXPECT_EQ(b->stats().prompt_tokens, static_cast<int>(long_prompt.size()));
}

TEST(SchedulerSpec, ModelDrafterWithoutADraftModelFailsWithAMessage) {
  auto model = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
  const Tokenizer tok = Tokenizer::from_gguf(model->file());
  const TokenTexts texts(tok);
  server::Scheduler sched(*model, tok, texts, {.num_parallel = 1, .max_queue = 4});
  auto j = greedy_job(test::tiny_prompts()[0].tokens);
  j->spec = {SpecMode::Self, 4, true};
  ASSERT_TRUE(sched.submit(j));
  ASSERT_TRUE(wait_done(*j, 60));
  EXPECT_NE(j->error().find("needs a draft model"), std::string::npos) << j->error();
}

}  // namespace
}  // namespace g3n
