// Session::generate looks at its cancel flag between the prompt's passes of n_batch rows, not only before
// each generated token: a long prompt stops within one pass of a Ctrl-C (done_reason Cancel, nothing
// generated), the rows it evaluated stay reusable, and the same prompt afterwards gets the answer a fresh
// session gives.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "golden_util.h"
#include "model/model.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace g3n {
namespace {

class SessionCancel : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
    tok_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(model_->file()));
    params_.n_ctx = 256;
    params_.n_batch = 8;
    params_.n_threads = 1;
    for (int i = 0; i < 150; ++i) prompt_.push_back(i == 0 ? 2 : 30 + (i * 7) % 60);
    sp_.temperature = 0;
    sp_.num_predict = 6;
    Session fresh(*model_, *tok_, params_);
    want_ = fresh.generate(prompt_, sp_, [](std::string_view) {}).generated;
    ASSERT_EQ(want_.size(), 6u);
  }
  std::unique_ptr<Session> session() { return std::make_unique<Session>(*model_, *tok_, params_); }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  ContextParams params_;
  SamplingParams sp_;
  std::vector<int32_t> prompt_, want_;
};

TEST_F(SessionCancel, CancelledBeforeThePromptEvaluatesNothing) {
  auto s = session();
  const std::atomic<bool> cancel{true};
  int texts = 0;
  const GenerateStats st = s->generate(prompt_, sp_, [&](std::string_view) { ++texts; }, &cancel);
  EXPECT_EQ(st.done_reason, DoneReason::Cancel);
  EXPECT_TRUE(st.generated.empty());
  EXPECT_EQ(texts, 0);
  EXPECT_EQ(s->context().n_past(), 0);
  EXPECT_TRUE(s->keys().empty());
  const GenerateStats again = s->generate(prompt_, sp_, [](std::string_view) {});
  EXPECT_EQ(again.generated, want_);
}

TEST_F(SessionCancel, AStoppedPromptKeepsWhatItEvaluated) {
  auto s = session();
  // The first 40 rows are evaluated (and answered) in full; the longer prompt then stops before its
  // first new pass, holding exactly those 40 rows, which the next request reuses.
  const std::vector<int32_t> head(prompt_.begin(), prompt_.begin() + 40);
  (void)s->generate(head, sp_, [](std::string_view) {});
  const std::atomic<bool> cancel{true};
  const GenerateStats st = s->generate(prompt_, sp_, [](std::string_view) {}, &cancel);
  EXPECT_EQ(st.done_reason, DoneReason::Cancel);
  EXPECT_EQ(st.cached_tokens, 40);
  EXPECT_EQ(s->context().n_past(), 40);
  EXPECT_EQ(s->keys().size(), 40u);
  const GenerateStats again = s->generate(prompt_, sp_, [](std::string_view) {});
  EXPECT_EQ(again.cached_tokens, 40);
  EXPECT_EQ(again.generated, want_);
}

TEST_F(SessionCancel, CancelDuringThePromptLeavesAConsistentPrefix) {
  // Wherever the flag lands (between two passes, or after the prompt), the context holds whole passes of
  // the prompt (or the prompt and some answer) and the next request is answered as a fresh session would.
  for (int delay_us : {200, 1000, 3000}) {
    auto s = session();
    std::atomic<bool> cancel{false};
    std::thread t([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
      cancel.store(true);
    });
    const GenerateStats st = s->generate(prompt_, sp_, [](std::string_view) {}, &cancel);
    t.join();
    EXPECT_EQ(st.done_reason, DoneReason::Cancel) << delay_us;
    const int64_t n = s->context().n_past();
    EXPECT_EQ(static_cast<size_t>(n), s->keys().size());
    if (st.generated.empty() && n < static_cast<int64_t>(prompt_.size())) {
      EXPECT_EQ(n % params_.n_batch, 0) << "stopped inside a pass: n_past " << n;
    }
    const GenerateStats again = s->generate(prompt_, sp_, [](std::string_view) {});
    EXPECT_EQ(again.generated, want_) << delay_us;
  }
}

}  // namespace
}  // namespace g3n
