// Sampler stages checked against hand-computed values, plus seeded reproducibility and a frequency test.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sampling/json_constraint.h"
#include "sampling/rng.h"
#include "sampling/sampler.h"
#include "sampling/stop.h"

using namespace g3n;
namespace s = g3n::sampling;

namespace {

// Candidates whose softmax is exactly the given probabilities (logit = ln p).
std::vector<TokenProb> from_probs(const std::vector<float>& p) {
  std::vector<float> logits;
  for (float x : p) logits.push_back(std::log(x));
  auto c = s::candidates(logits);
  s::softmax(c);
  return c;
}

std::vector<int32_t> ids(const std::vector<TokenProb>& c) {
  std::vector<int32_t> out;
  for (const auto& t : c) out.push_back(t.id);
  return out;
}

SamplingParams plain() {  // every truncation off
  SamplingParams p;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.seed = 1;
  return p;
}

// An object's properties are written in the order the schema declares them when it comes as an ordered_json
// (as the server and `g3n run --format` parse it); a plain json has sorted keys, and so that order.
TEST(JsonSchemaOrder, PropertiesInDeclaredOrder) {
  const std::string schema = R"({"type":"object","properties":{"zeta":{"type":"integer"},"alpha":{"type":"boolean"}},"required":["zeta","alpha"]})";
  const auto declared = JsonSchema::compile(nlohmann::ordered_json::parse(schema));
  JsonMatcher in_order(*declared);
  EXPECT_TRUE(in_order.feed(R"({"zeta":1,"alpha":true})"));
  EXPECT_TRUE(in_order.complete());
  JsonMatcher reordered(*declared);
  EXPECT_FALSE(reordered.feed(R"({"alpha":true,"zeta":1})"));
  const auto sorted = JsonSchema::compile(nlohmann::json::parse(schema));
  JsonMatcher by_key(*sorted);
  EXPECT_TRUE(by_key.feed(R"({"alpha":true,"zeta":1})"));
  EXPECT_TRUE(by_key.complete());
}

}  // namespace

// A generated number must parse as a finite double (nlohmann::json refuses 1e309 and -59.1e308): with D
// integer digits the exponent stops at 308 - D, a bound on the value, so a few finite numbers just under
// DBL_MAX are refused too; a negative exponent is not bounded. The fuzzer found -59.1e308 accepted.
TEST(JsonSchemaNumbers, NeverOverflowADouble) {
  const auto any = JsonSchema::compile(nlohmann::json::object());
  for (const char* text : {"-59.1e308", "1e309", "0.5e309", "123e306", "1E+999", "0e309"}) {
    JsonMatcher m(*any);
    EXPECT_FALSE(m.feed(text) && m.complete()) << text;
  }
  for (const char* text : {"-59.1e306", "1e307", "0.5e308", "123e305", "1E+099", "1e-999", "123456789012345e-999",
                           "0.000001e-308", "-0"}) {
    JsonMatcher m(*any);
    EXPECT_TRUE(m.feed(text) && m.complete()) << text;
    EXPECT_TRUE(nlohmann::json::accept(text)) << text;
  }
  // Refusing a digit never strands the number: it may still end where it is.
  JsonMatcher m(*any);
  EXPECT_TRUE(m.feed("99e30"));
  EXPECT_FALSE(JsonMatcher(m).feed('7'));
  EXPECT_TRUE(m.complete());
}

TEST(SamplingDefaults, GoogleRecommendation) {
  SamplingParams p;
  EXPECT_EQ(p.temperature, 1.0f);
  EXPECT_EQ(p.top_k, 64);
  EXPECT_EQ(p.top_p, 0.95f);
  EXPECT_EQ(p.min_p, 0.0f);
  EXPECT_EQ(p.repeat_penalty, 1.0f);
  EXPECT_EQ(p.typical_p, 1.0f);
  EXPECT_EQ(p.num_predict, -1);
}

TEST(SamplingGreedy, TiesGoToLowestId) {
  std::vector<float> l = {1.0f, 3.0f, 3.0f, 2.0f};
  EXPECT_EQ(s::argmax(l), 1);
  std::vector<float> n = {NAN, -INFINITY, 0.5f, 0.5f};
  EXPECT_EQ(s::argmax(n), 2);
  SamplingParams p = plain();
  p.temperature = 0.0f;
  Sampler smp(p);
  EXPECT_EQ(smp.sample(l), 1);
  // Large vocabulary, top_k = 1 at temperature 1 is greedy too.
  std::vector<float> big(262144, 0.0f);
  big[70000] = 5.0f;
  big[200000] = 5.0f;
  SamplingParams k1 = plain();
  k1.top_k = 1;
  Sampler sk(k1);
  EXPECT_EQ(sk.sample(big), 70000);
}

TEST(SamplingTemperature, ScalesLogRatios) {
  std::vector<float> l = {2.0f, 1.0f, -0.5f};
  auto c = s::candidates(l);
  s::temperature(c, 0.5f);
  s::softmax(c);
  // p_i ∝ exp(l_i / T)
  const double z = std::exp(4.0) + std::exp(2.0) + std::exp(-1.0);
  EXPECT_NEAR(c[0].p, std::exp(4.0) / z, 1e-6);
  EXPECT_NEAR(c[1].p, std::exp(2.0) / z, 1e-6);
  EXPECT_NEAR(c[2].p, std::exp(-1.0) / z, 1e-6);
  EXPECT_NEAR(c[0].p / c[1].p, std::exp(2.0), 1e-4);
}

TEST(SamplingTopK, KeepsKBestLowerIdOnTies) {
  std::vector<float> l = {0.0f, 2.0f, 1.0f, 2.0f, 1.0f};
  auto c = s::candidates(l);
  EXPECT_EQ(ids(c), (std::vector<int32_t>{1, 3, 2, 4, 0}));
  s::top_k(c, 3);
  EXPECT_EQ(ids(c), (std::vector<int32_t>{1, 3, 2}));
  s::top_k(c, 0);
  EXPECT_EQ(c.size(), 3u);
}

TEST(SamplingTopP, MinimalPrefixReachingP) {
  auto c = from_probs({0.05f, 0.5f, 0.15f, 0.3f});
  EXPECT_EQ(ids(c), (std::vector<int32_t>{1, 3, 2, 0}));
  auto a = c;
  s::top_p(a, 0.75f);  // 0.5 + 0.3 = 0.8 >= 0.75
  EXPECT_EQ(ids(a), (std::vector<int32_t>{1, 3}));
  EXPECT_NEAR(a[0].p, 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(a[1].p, 0.3 / 0.8, 1e-6);
  auto b = c;
  s::top_p(b, 0.81f);
  EXPECT_EQ(ids(b), (std::vector<int32_t>{1, 3, 2}));
  EXPECT_NEAR(b[2].p, 0.15 / 0.95, 1e-6);
  auto one = c;
  s::top_p(one, 0.1f);  // the best token alone already reaches p
  EXPECT_EQ(ids(one), (std::vector<int32_t>{1}));
  EXPECT_NEAR(one[0].p, 1.0, 1e-6);
  auto off = c;
  s::top_p(off, 1.0f);
  EXPECT_EQ(off.size(), 4u);
}

TEST(SamplingMinP, ThresholdRelativeToMax) {
  auto c = from_probs({0.05f, 0.5f, 0.15f, 0.3f});
  auto a = c;
  s::min_p(a, 0.25f);  // threshold 0.125: drops 0.05
  EXPECT_EQ(ids(a), (std::vector<int32_t>{1, 3, 2}));
  EXPECT_NEAR(a[0].p, 0.5 / 0.95, 1e-6);
  auto b = c;
  s::min_p(b, 0.35f);  // threshold 0.175: drops 0.15 too
  EXPECT_EQ(ids(b), (std::vector<int32_t>{1, 3}));
  auto flat = from_probs({0.25f, 0.25f, 0.25f, 0.25f});
  s::min_p(flat, 0.99f);  // all equal to the max: all stay
  EXPECT_EQ(flat.size(), 4u);
}

TEST(SamplingTypicalP, KeepsTokensNearTheEntropy) {
  // p = .5 .3 .15 .05: H = 1.14212 nats; |−ln p − H| = .449, .062, .755, 1.854.
  // Typical order: 0.3, 0.5, 0.15, 0.05.
  auto c = from_probs({0.5f, 0.3f, 0.15f, 0.05f});
  auto a = c;
  s::typical_p(a, 0.2f);  // 0.3 alone reaches 0.2: the most likely token is dropped
  EXPECT_EQ(ids(a), (std::vector<int32_t>{1}));
  auto b = c;
  s::typical_p(b, 0.5f);  // 0.3 + 0.5
  EXPECT_EQ(ids(b), (std::vector<int32_t>{0, 1}));
  EXPECT_NEAR(b[0].p, 0.625, 1e-6);
  EXPECT_NEAR(b[1].p, 0.375, 1e-6);
  auto d = c;
  s::typical_p(d, 0.9f);  // + 0.15
  EXPECT_EQ(ids(d), (std::vector<int32_t>{0, 1, 2}));
}

TEST(SamplingPenalties, ExactValues) {
  std::vector<float> l = {2.0f, -1.0f, 0.5f, 3.0f};
  std::vector<int32_t> hist = {0, 1, 1};
  s::apply_penalties(l, hist, 2.0f, 0.5f, 0.25f);
  EXPECT_EQ(l[0], 2.0f / 2 - (1 * 0.5f + 0.25f));   // positive: divided
  EXPECT_EQ(l[1], -1.0f * 2 - (2 * 0.5f + 0.25f));  // negative: multiplied; count 2
  EXPECT_EQ(l[2], 0.5f);
  EXPECT_EQ(l[3], 3.0f);
  EXPECT_EQ(l[0], 0.25f);
  EXPECT_EQ(l[1], -3.25f);
}

TEST(SamplingPenalties, WindowIsRepeatLastN) {
  std::vector<float> l = {2.0f, 0.0f, 0.0f, 1.5f};
  SamplingParams p = plain();
  p.temperature = 0;
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 3;
  Sampler a(p);
  a.accept(0, false);
  EXPECT_EQ(a.sample(l), 3);  // 2.0 / 2 = 1.0 < 1.5
  a.accept(1);
  a.accept(1);
  a.accept(2);
  EXPECT_EQ(a.sample(l), 0);  // token 0 left the window of 3
  EXPECT_EQ(a.n_generated(), 3);
  p.repeat_last_n = 0;  // off
  Sampler b(p);
  b.accept(0);
  EXPECT_EQ(b.sample(l), 0);
}

TEST(SamplingLogitBias, AddsAndBans) {
  std::vector<float> l = {1.0f, 2.0f, 0.0f};
  SamplingParams p = plain();
  p.temperature = 0;
  p.logit_bias = {{2, 10.0f}};
  EXPECT_EQ(Sampler(p).sample(l), 2);
  p.logit_bias = {{1, -INFINITY}};
  EXPECT_EQ(Sampler(p).sample(l), 0);
  SamplingParams q = plain();
  q.logit_bias = {{1, -INFINITY}, {2, -INFINITY}};
  Sampler only0(q);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(only0.sample(l), 0);
}

TEST(SamplingSeed, Reproducible) {
  std::vector<float> l(1000);
  for (size_t i = 0; i < l.size(); ++i) l[i] = std::sin(static_cast<float>(i)) * 3.0f;
  SamplingParams p;
  p.seed = 1234;
  Sampler a(p), b(p);
  std::vector<int32_t> sa, sb;
  for (int i = 0; i < 200; ++i) {
    sa.push_back(a.sample(l));
    sb.push_back(b.sample(l));
  }
  EXPECT_EQ(sa, sb);
  a.reset();
  for (int i = 0; i < 200; ++i) EXPECT_EQ(a.sample(l), sa[i]);
  p.seed = 1235;
  Sampler c(p);
  int same = 0;
  for (int i = 0; i < 200; ++i) same += c.sample(l) == sa[i];
  EXPECT_LT(same, 150);
  // The PRNG itself: same seed, same stream; values in [0, 1).
  Rng r1(42), r2(42);
  double mean = 0;
  for (int i = 0; i < 100000; ++i) {
    double u = r1.next_double();
    ASSERT_EQ(u, r2.next_double());
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    mean += u;
  }
  EXPECT_NEAR(mean / 100000, 0.5, 0.005);
}

TEST(SamplingTemperature, FrequenciesMatchSoftmax) {
  // 200k draws at T = 0.7 with a fixed seed: every frequency within 5 standard errors of softmax(l/T).
  std::vector<float> l = {1.0f, 0.5f, 0.0f, -1.0f, 2.0f};
  SamplingParams p = plain();
  p.temperature = 0.7f;
  p.seed = 7;
  Sampler smp(p);
  const int n = 200000;
  std::vector<int> count(l.size());
  for (int i = 0; i < n; ++i) ++count[smp.sample(l)];
  double z = 0;
  for (float x : l) z += std::exp(x / 0.7);
  for (size_t i = 0; i < l.size(); ++i) {
    const double pi = std::exp(l[i] / 0.7) / z;
    const double se = std::sqrt(pi * (1 - pi) / n);
    EXPECT_NEAR(static_cast<double>(count[i]) / n, pi, 5 * se) << "token " << i;
  }
}

TEST(SamplingPipeline, TopKThenTopPThenMinP) {
  // Defaults on a peaked distribution: only tokens inside the top-p mass are ever drawn.
  std::vector<float> l(300, -10.0f);
  l[5] = 5.0f;   // p ≈ 0.70
  l[9] = 4.0f;   // p ≈ 0.26
  l[11] = 1.0f;  // p ≈ 0.013
  SamplingParams p;
  p.seed = 3;
  Sampler smp(p);
  for (int i = 0; i < 500; ++i) {
    int32_t id = smp.sample(l);
    ASSERT_TRUE(id == 5 || id == 9) << id;
  }
  EXPECT_EQ(smp.last_candidates().size(), 2u);
}

TEST(SamplingLimit, NumPredict) {
  SamplingParams p = plain();
  p.num_predict = 3;
  Sampler smp(p);
  EXPECT_FALSE(smp.reached_limit());
  smp.accept(1, false);  // prompt tokens do not count
  smp.accept(1);
  smp.accept(1);
  EXPECT_FALSE(smp.reached_limit());
  smp.accept(1);
  EXPECT_TRUE(smp.reached_limit());
  smp.reset();
  EXPECT_FALSE(smp.reached_limit());
  SamplingParams unlimited = plain();
  Sampler u(unlimited);
  for (int i = 0; i < 1000; ++i) u.accept(1);
  EXPECT_FALSE(u.reached_limit());
}

TEST(SamplingStop, SpansTokensAndHoldsBack) {
  StopMatcher m({"<end>"});
  EXPECT_EQ(m.push("Hello <e"), "Hello ");
  EXPECT_EQ(m.held_bytes(), 2u);
  EXPECT_EQ(m.push("nd> more"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.matched(), "<end>");
  EXPECT_EQ(m.push("x"), "");
  EXPECT_EQ(m.flush(), "");
}

TEST(SamplingStop, FalseStartIsReleased) {
  StopMatcher m({"<end>"});
  EXPECT_EQ(m.push("a<"), "a");
  EXPECT_EQ(m.push("en"), "");
  EXPECT_EQ(m.push("x"), "<enx");
  EXPECT_EQ(m.push("<"), "");
  EXPECT_EQ(m.flush(), "<");
  EXPECT_FALSE(m.stopped());
}

TEST(SamplingStop, OverlappingAndMultiple) {
  StopMatcher m({"aab"});
  std::string out;
  for (char c : std::string("aaab")) out += m.push(std::string(1, c));
  EXPECT_EQ(out, "a");
  EXPECT_TRUE(m.stopped());

  StopMatcher two({"\n\nUser:", "###"});
  EXPECT_EQ(two.push("answer\n\nUs"), "answer");
  EXPECT_EQ(two.push("e"), "");
  EXPECT_EQ(two.push("r: hi"), "");
  EXPECT_EQ(two.matched(), "\n\nUser:");

  StopMatcher earliest({"cd", "bcde"});
  EXPECT_EQ(earliest.push("abcdef"), "a");  // "bcde" starts first
  EXPECT_EQ(earliest.matched(), "bcde");

  StopMatcher none;
  EXPECT_EQ(none.push("anything"), "anything");
  EXPECT_EQ(none.held_bytes(), 0u);
}
