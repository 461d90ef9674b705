// Token log-probabilities (sampling/logprobs.h and the Generator's LogprobOptions): hand-computed values,
// and on the tiny model every generated token's value checked against an independent log-softmax of
// `g3n debug logits` over the same tokens, with sampling settings (temperature, penalties, top-k, bias)
// that must not change them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "cli_util.h"
#include "golden_util.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/generator.h"
#include "sampling/logprobs.h"

using namespace g3n;

namespace {

// log-softmax in long double, written out independently of the library's.
std::vector<double> log_softmax(const float* x, size_t n) {
  long double mx = x[0];
  for (size_t i = 1; i < n; ++i) mx = std::max<long double>(mx, x[i]);
  long double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += std::exp(static_cast<long double>(x[i]) - mx);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<double>(static_cast<long double>(x[i]) - mx - std::log(sum));
  return out;
}

}  // namespace

TEST(Logprobs, HandComputedValuesAndTopOrder) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f};
  const double z = std::log(std::exp(1.0) + std::exp(3.0) + std::exp(2.0) + std::exp(3.0) + std::exp(-1.0));
  const LogprobStep s = sampling::token_logprobs(logits, 4, 3);
  EXPECT_EQ(s.chosen.id, 4);
  EXPECT_NEAR(s.chosen.logprob, -1.0 - z, 1e-6);  // the chosen token is reported though it is not in the top 3
  ASSERT_EQ(s.top.size(), 3u);
  EXPECT_EQ(s.top[0].id, 1);  // a tie at 3.0: the lower id first
  EXPECT_EQ(s.top[1].id, 3);
  EXPECT_EQ(s.top[2].id, 2);
  EXPECT_NEAR(s.top[0].logprob, 3.0 - z, 1e-6);
  EXPECT_NEAR(s.top[2].logprob, 2.0 - z, 1e-6);
  // The probabilities of the whole vocabulary sum to 1.
  double total = 0;
  for (int32_t id = 0; id < 5; ++id) total += std::exp(sampling::token_logprobs(logits, id, 0).chosen.logprob);
  EXPECT_NEAR(total, 1.0, 1e-6);
}

TEST(Logprobs, TopZeroListsNothingAndLargeTopListsEveryFiniteToken) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> logits = {0.5f, -inf, 0.5f};
  EXPECT_TRUE(sampling::token_logprobs(logits, 0, 0).top.empty());
  const LogprobStep s = sampling::token_logprobs(logits, 1, 20);
  ASSERT_EQ(s.top.size(), 2u);  // -inf is no candidate
  EXPECT_NEAR(s.top[0].logprob, std::log(0.5), 1e-6);
  EXPECT_TRUE(std::isinf(s.chosen.logprob) && s.chosen.logprob < 0);
  EXPECT_TRUE(std::isinf(sampling::token_logprobs(logits, 7, 0).chosen.logprob));  // out of range: -inf, no crash
}

TEST(Logprobs, NoLargeLogitOverflows) {
  const std::vector<float> logits = {1000.0f, 999.0f};
  const LogprobStep s = sampling::token_logprobs(logits, 1, 1);
  EXPECT_NEAR(s.chosen.logprob, -1.0 - std::log1p(std::exp(-1.0)), 1e-5);
  EXPECT_NEAR(s.top[0].logprob, -std::log1p(std::exp(-1.0)), 1e-5);
}

TEST(Logprobs, GeneratorRecordsNothingUnlessAsked) {
  const std::vector<float> logits = {0.0f, 2.0f, 1.0f};
  SamplingParams sp;
  sp.temperature = 0;
  Generator off(nullptr, sp, nullptr, {.stop_at_eos = false});
  ASSERT_TRUE(off.next(logits, 1, 100, {}));
  EXPECT_TRUE(off.stats().logprobs.empty());
  Generator on(nullptr, sp, nullptr, {.stop_at_eos = false, .logprobs = {.enabled = true, .top = 2}});
  ASSERT_TRUE(on.next(logits, 1, 100, {}));
  ASSERT_EQ(on.stats().logprobs.size(), 1u);
  EXPECT_EQ(on.stats().logprobs[0].chosen.id, 1);
  EXPECT_EQ(on.stats().logprobs[0].top.size(), 2u);
}

// The values are the raw model's: a run with a high temperature, penalties, a small top-k and a logit bias
// samples other tokens than greedy would, but each token's logprob is still the log-softmax of the
// logits `g3n debug logits` writes for the same tokens (the exact path and F32 cache in both).
TEST(Logprobs, TinyModelMatchesDebugLogitsLogSoftmax) {
  const std::string path = test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf";
  auto model = Model::load(path);
  const std::vector<int32_t> prompt = test::tiny_prompts().front().tokens;  // BOS + "Hello world, this is a test."
  const int n_vocab = static_cast<int>(model->config().n_vocab);
  for (int32_t id : prompt) ASSERT_LT(id, n_vocab);
  Context ctx(*model, {.n_ctx = 256, .kv_type = KvType::F32, .n_threads = 1, .exact = true});
  SamplingParams sp;
  sp.temperature = 1.7f;
  sp.top_k = 5;
  sp.repeat_penalty = 1.8f;
  sp.presence_penalty = 0.5f;
  sp.logit_bias = {{prompt[3], 4.0f}};
  sp.seed = 7;
  sp.num_predict = 12;
  Generator gen(nullptr, sp, nullptr, {.stop_at_eos = false, .logprobs = {.enabled = true, .top = 5}});
  gen.observe_prompt(prompt);
  ctx.eval(prompt, LogitsFor::Last);
  while (auto id = gen.next(ctx.last_logits(), ctx.n_past(), ctx.params().n_ctx, {})) ctx.eval(std::span<const int32_t>(&*id, 1));
  const GenerateStats& st = gen.stats();
  ASSERT_EQ(st.generated.size(), 12u);
  ASSERT_EQ(st.logprobs.size(), st.generated.size());

  std::vector<int32_t> all = prompt;
  all.insert(all.end(), st.generated.begin(), st.generated.end());
  std::string list;
  for (int32_t id : all) {
    if (!list.empty()) list += ',';
    list += std::to_string(id);
  }
  const std::string out = ::testing::TempDir() + "logprobs-debug-logits.bin";
  int status = 0;
  const std::string log = test::run_capture(test::kG3n + " debug logits " + path + " --tokens " + list + " --out " + out + " --threads 1 2>&1", status);
  ASSERT_EQ(status, 0) << log;
  const std::vector<float> rows = test::read_f32_file(out);
  std::remove(out.c_str());
  ASSERT_EQ(rows.size(), all.size() * static_cast<size_t>(n_vocab));

  int not_greedy = 0;
  for (size_t i = 0; i < st.generated.size(); ++i) {
    // Row (prompt + i - 1) holds the logits the i-th generated token was drawn from.
    const float* row = rows.data() + (prompt.size() + i - 1) * static_cast<size_t>(n_vocab);
    const std::vector<double> ref = log_softmax(row, static_cast<size_t>(n_vocab));
    const LogprobStep& s = st.logprobs[i];
    EXPECT_EQ(s.chosen.id, st.generated[i]);
    EXPECT_NEAR(s.chosen.logprob, ref[static_cast<size_t>(s.chosen.id)], 1e-4) << "token " << i;
    ASSERT_EQ(s.top.size(), 5u);
    for (size_t k = 0; k < s.top.size(); ++k) {
      EXPECT_NEAR(s.top[k].logprob, ref[static_cast<size_t>(s.top[k].id)], 1e-4) << "token " << i << " top " << k;
      if (k > 0) {
        EXPECT_GE(s.top[k - 1].logprob, s.top[k].logprob);
      }
    }
    // The best of the reference is the first of the list.
    const size_t best = static_cast<size_t>(std::max_element(ref.begin(), ref.end()) - ref.begin());
    EXPECT_NEAR(s.top[0].logprob, ref[best], 1e-4);
    not_greedy += s.chosen.id != static_cast<int32_t>(best);
  }
  // The settings did move the sampler off the argmax: the values above are not the sampler's own.
  EXPECT_GT(not_greedy, 0);
}
