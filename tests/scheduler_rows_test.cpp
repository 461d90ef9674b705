// Vector rows (image/audio soft tokens) through the server's scheduler: prompts that mix token rows and
// n_embd-wide vector rows (the multimodal fixtures, ../shared/fixtures/gemma3n-tiny/golden/multimodal)
// generate exactly what a Session generates from the same rows with the same parameters, alone, again
// from a slot's cached prefix (reuse keyed by the vectors' content), and two at once in one batched
// decode (continuous batching). The tiny q4_k_m model on the fast path (exact=false), greedy.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "golden_util.h"
#include "model/model.h"
#include "runtime/input_rows.h"
#include "runtime/session.h"
#include "sampling/json_constraint.h"
#include "server/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace g3n {
namespace {

std::string mm_dir() { return test::tiny_dir() + "/golden/multimodal/"; }

// A multimodal case's rows (format: tests/model_multimodal_test.cpp, load_case); with changed_row >= 0,
// that row (a vector row) gets its first element increased by 1.
InputRows load_rows(const std::string& name, int changed_row = -1) {
  const nlohmann::json meta = test::read_json(mm_dir() + name + ".json");
  const auto emb = test::read_f32_file(mm_dir() + meta["embeddings_file"].get<std::string>());
  const int64_t width = meta["embeddings_shape"][1].get<int64_t>();
  InputRows rows;
  for (const auto& r : meta["rows"]) {
    if (r.contains("token")) {
      rows.push_token(r["token"].get<int32_t>());
    } else {
      const size_t k = r["embedding"].get<size_t>();
      std::vector<float> v(emb.begin() + static_cast<std::ptrdiff_t>(k * width),
                           emb.begin() + static_cast<std::ptrdiff_t>((k + 1) * width));
      if (static_cast<int>(rows.size()) == changed_row) v[0] += 1.0f;
      rows.push_vectors(v, width);
    }
  }
  if (changed_row >= 0 && !rows.is_vector(static_cast<size_t>(changed_row))) throw std::logic_error("not a vector row");
  return rows;
}

size_t count_vectors(const InputRows& rows) {
  size_t n = 0;
  for (size_t i = 0; i < rows.size(); ++i) n += rows.is_vector(i);
  return n;
}

SamplingParams greedy() {
  SamplingParams s;
  s.temperature = 0;
  s.num_predict = 8;
  return s;
}

ContextParams ctx_params() {
  ContextParams p;
  p.exact = false;
  p.n_ctx = 256;
  p.n_threads = 2;
  return p;
}

std::string ids(const std::vector<int32_t>& v) {
  std::string s;
  for (int32_t id : v) {
    if (!s.empty()) s += ',';
    s += std::to_string(id);
  }
  return s;
}

class SchedulerRows : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    model_ = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf").release();
    tok_ = new Tokenizer(Tokenizer::from_gguf(model_->file()));
    texts_ = new TokenTexts(*tok_);
  }
  static void TearDownTestSuite() {
    delete texts_;
    delete tok_;
    delete model_;
    texts_ = nullptr;
    tok_ = nullptr;
    model_ = nullptr;
  }

  static std::shared_ptr<server::Job> make_job(const InputRows& rows) {
    auto job = std::make_shared<server::Job>();
    job->prompt = rows;
    job->sampling = greedy();
    job->ctx_params = ctx_params();
    return job;
  }
  // Waits for the job's end; returns its text.
  static std::string wait(server::Job& job) {
    std::string all, piece;
    for (int i = 0; i < 600; ++i) {  // 60 s at most
      const bool done = job.wait(piece, std::chrono::milliseconds(100));
      all += piece;
      if (done) return all;
    }
    ADD_FAILURE() << "job did not finish within 60 s";
    return all;
  }
  // What a Session (one Context, no batching) generates from the same rows and parameters.
  static GenerateStats session_answer(const InputRows& rows, std::string* text = nullptr) {
    Session session(*model_, *tok_, ctx_params());
    return session.generate(rows, greedy(), [&](std::string_view t) {
      if (text) text->append(t);
    });
  }

  static Model* model_;
  static Tokenizer* tok_;
  static TokenTexts* texts_;
};
Model* SchedulerRows::model_ = nullptr;
Tokenizer* SchedulerRows::tok_ = nullptr;
TokenTexts* SchedulerRows::texts_ = nullptr;

// One job alone, then the same job again: the second reuses every prompt row but the last from the
// slot's cache (the vectors' keys match); then the same layout with one vector changed reuses only the
// rows before it. Every answer is what a Session answers.
TEST_F(SchedulerRows, MixedRowsMatchSessionAndReuseThePrefix) {
  const InputRows rows = load_rows("a_mid_run");
  ASSERT_GT(count_vectors(rows), 0u);
  ASSERT_LT(count_vectors(rows), rows.size());
  std::string want_text;
  const GenerateStats want = session_answer(rows, &want_text);
  ASSERT_FALSE(want.generated.empty());

  server::Scheduler sched(*model_, *tok_, *texts_, {.num_parallel = 2, .max_queue = 16});
  auto first = make_job(rows);
  ASSERT_TRUE(sched.submit(first));
  const std::string first_text = wait(*first);
  EXPECT_EQ(first->error(), "");
  EXPECT_EQ(first->stats().generated, want.generated) << "scheduler " << ids(first->stats().generated) << " vs session "
                                                      << ids(want.generated);
  EXPECT_EQ(first_text, want_text);
  EXPECT_EQ(first->stats().prompt_tokens, static_cast<int>(rows.size()));
  EXPECT_EQ(first->stats().cached_tokens, 0);
  EXPECT_EQ(first->stats().done_reason, want.done_reason);

  auto second = make_job(rows);
  ASSERT_TRUE(sched.submit(second));
  const std::string second_text = wait(*second);
  EXPECT_EQ(second->error(), "");
  EXPECT_EQ(second->stats().cached_tokens, static_cast<int>(rows.size()) - 1);
  EXPECT_EQ(second->stats().generated, want.generated) << "scheduler " << ids(second->stats().generated) << " vs session "
                                                       << ids(want.generated);
  EXPECT_EQ(second_text, want_text);

  // The same layout with the vector at row 10 changed: the slot's rows before it are reused, not more.
  const InputRows changed = load_rows("a_mid_run", 10);
  const GenerateStats want_changed = session_answer(changed);
  auto third = make_job(changed);
  ASSERT_TRUE(sched.submit(third));
  wait(*third);
  EXPECT_EQ(third->error(), "");
  EXPECT_EQ(third->stats().cached_tokens, 10);
  EXPECT_EQ(third->stats().generated, want_changed.generated) << "scheduler " << ids(third->stats().generated)
                                                              << " vs session " << ids(want_changed.generated);
  std::printf("[scheduler rows a_mid_run] %zu rows (%zu vectors), generated %s; again: %d cached; row 10 changed: "
              "%d cached, generated %s\n",
              rows.size(), count_vectors(rows), ids(want.generated).c_str(), second->stats().cached_tokens,
              third->stats().cached_tokens, ids(want_changed.generated).c_str());
}

// Two different vector-row prompts at once: both slots busy, their decode steps shared forward passes;
// each answer is its Session answer.
TEST_F(SchedulerRows, TwoVectorPromptsDecodeTogether) {
  const char* const names[2] = {"b_two_runs", "d_long_run"};
  InputRows rows[2];
  GenerateStats want[2];
  for (int k = 0; k < 2; ++k) {
    rows[k] = load_rows(names[k]);
    ASSERT_GT(count_vectors(rows[k]), 0u) << names[k];
    want[k] = session_answer(rows[k]);
    ASSERT_FALSE(want[k].generated.empty()) << names[k];
  }
  server::Scheduler sched(*model_, *tok_, *texts_, {.num_parallel = 2, .max_queue = 16});
  std::shared_ptr<server::Job> jobs[2] = {make_job(rows[0]), make_job(rows[1])};
  ASSERT_TRUE(sched.submit(jobs[0]));
  ASSERT_TRUE(sched.submit(jobs[1]));
  // Watch the number of active slots until both jobs end: both must have run at the same time.
  int max_active = 0;
  std::string piece;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool done[2] = {false, false};
  while (!(done[0] && done[1]) && std::chrono::steady_clock::now() < deadline) {
    max_active = std::max(max_active, sched.active());
    for (int k = 0; k < 2; ++k)
      if (!done[k]) done[k] = jobs[k]->wait(piece, std::chrono::milliseconds(0));
  }
  ASSERT_TRUE(done[0] && done[1]) << "jobs did not finish within 60 s";
  EXPECT_EQ(max_active, 2);
  for (int k = 0; k < 2; ++k) {
    SCOPED_TRACE(names[k]);
    EXPECT_EQ(jobs[k]->error(), "");
    EXPECT_EQ(jobs[k]->stats().generated, want[k].generated)
        << "scheduler " << ids(jobs[k]->stats().generated) << " vs session " << ids(want[k].generated);
    EXPECT_EQ(jobs[k]->stats().cached_tokens, 0);
    std::printf("[scheduler rows %s] %zu rows (%zu vectors), generated %s\n", names[k], rows[k].size(),
                count_vectors(rows[k]), ids(want[k].generated).c_str());
  }
  std::printf("[scheduler rows] at most %d slots active together\n", max_active);
}

}  // namespace
}  // namespace g3n
