// Speculative decoding in the generation loop (docs/speculative.md): for every drafter (n-gram lookup, a
// draft model, the MatFormer slice of the same file, an oracle that always guesses right and adversaries
// that guess wrong at a chosen position) the output equals plain decoding token for token, with the
// same final KV state; seeded sampling gives the plain sampler's tokens for the same seed.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <span>

#include "golden_util.h"
#include "kv_state_util.h"
#include "model/model.h"
#include "runtime/drafter_model.h"
#include "runtime/drafter_ngram.h"
#include "runtime/parameters.h"
#include "runtime/session.h"
#include "tokenizer/tokenizer.h"

namespace g3n {
namespace {

// Guesses from a known continuation (the plain run's output): right for the first `right` draft positions
// of each round, then a wrong token. right < 0: always right (the oracle).
class KnownDrafter final : public Drafter {
 public:
  KnownDrafter(size_t prompt_len, std::vector<int32_t> truth, int right, int n_vocab)
      : prompt_len_(prompt_len), truth_(std::move(truth)), right_(right), n_vocab_(n_vocab) {}
  void propose(const InputRows& history, int max, std::vector<int32_t>& out) override {
    // history ends with the token about to be evaluated, generated token number history.size() - prompt_len_ - 1.
    const size_t next = history.size() - prompt_len_;  // index in truth_ of the first guess
    for (int j = 0; j < max; ++j) {
      const size_t k = next + static_cast<size_t>(j);
      const int32_t t = k < truth_.size() ? truth_[k] : 7;
      out.push_back(right_ < 0 || j < right_ ? t : (t + 1) % n_vocab_);
    }
  }
  const char* name() const override { return "known"; }

 private:
  size_t prompt_len_;
  std::vector<int32_t> truth_;
  int right_;
  int n_vocab_;
};

struct Result {
  std::vector<int32_t> tokens;
  SpecStats spec;
  int64_t n_past;
};

class SpecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf");
    tok_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(model_->file()));
    params_.n_ctx = 200;
    params_.n_batch = 32;
    params_.n_threads = 1;  // many short generations: no gain from a pool on the tiny model
  }

  // Generates from a fresh session; compare_with (if given) gets its KV state compared.
  Result generate(const std::vector<int32_t>& prompt, const SamplingParams& sp, SpecOptions spec, Drafter* drafter,
               Session** keep = nullptr) {
    sessions_.push_back(std::make_unique<Session>(*model_, *tok_, params_));
    Session& s = *sessions_.back();
    s.set_speculation(spec, drafter);
    GenerateStats st = s.generate(prompt, sp, [](std::string_view) {});
    if (keep) *keep = &s;
    return {st.generated, s.spec_stats(), s.context().n_past()};
  }

  static void expect_same_kv(const Model& m, const Sequence& a, const Sequence& b) {
    ASSERT_EQ(a.n_past(), b.n_past());
    g3n::expect_same_kv(m, a, b, a.n_past());
  }

  // Prompts: the fixture's four and two repetitive ones (n-gram lookup finds matches in them).
  std::vector<std::vector<int32_t>> prompts() const {
    std::vector<std::vector<int32_t>> out;
    for (const auto& p : test::tiny_prompts()) out.push_back(p.tokens);
    std::vector<int32_t> rep = {2, 105};
    for (int i = 0; i < 6; ++i) rep.insert(rep.end(), {300, 301, 302, 17, 18});
    out.push_back(rep);
    std::vector<int32_t> rep2 = {2};
    for (int i = 0; i < 25; ++i) rep2.push_back(40 + i % 4);
    out.push_back(rep2);
    return out;
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tok_;
  ContextParams params_;
  std::vector<std::unique_ptr<Session>> sessions_;
};

SamplingParams greedy(int n) {
  SamplingParams sp;
  sp.temperature = 0;
  sp.num_predict = n;
  return sp;
}

// The drafter appends: a round's `out` already holds the token about to be evaluated, and `max` counts the
// guesses after it (it once counted that token too: one guess fewer, none at draft length 1).
TEST(NgramDrafter, AppendsUpToMaxGuessesAfterWhatOutHolds) {
  NgramDrafter d;
  const InputRows history(std::vector<int32_t>{1, 2, 3, 4, 1, 2, 3, 4, 1, 2});
  for (int max : {1, 2, 3}) {
    std::vector<int32_t> out = {2};
    d.propose(history, max, out);
    const std::vector<int32_t> want = {2, 3, 4, 1};
    EXPECT_EQ(out, std::vector<int32_t>(want.begin(), want.begin() + 1 + max)) << "max " << max;
  }
  // The latest match of [5, 6] is followed only by a vector row: an earlier match's continuation is proposed.
  InputRows h2(std::vector<int32_t>{5, 6, 7, 8, 5, 6});
  const std::vector<float> image(4, 0.5f);
  h2.push_vectors(image, 4);
  h2.push_tokens(std::vector<int32_t>{9, 5, 6});
  std::vector<int32_t> out = {6};
  d.propose(h2, 2, out);
  EXPECT_EQ(out, (std::vector<int32_t>{6, 7, 8}));
}

TEST_F(SpecTest, NgramGreedyEqualsPlainGreedy) {
  int drafted = 0, accepted = 0;
  const auto all = prompts();
  for (size_t k = 0; k < all.size(); ++k) {
    const auto& prompt = all[k];
    const bool repetitive = k + 2 >= all.size();  // prompts() ends with its two repetitive ones
    Session* plain_s = nullptr;
    const Result plain = generate(prompt, greedy(60), {}, nullptr, &plain_s);
    for (int dmax : {1, 3, 8}) {
      for (bool adaptive : {false, true}) {
        SCOPED_TRACE("prompt of " + std::to_string(prompt.size()) + ", draft_max " + std::to_string(dmax) + (adaptive ? " adaptive" : " fixed"));
        Session* spec_s = nullptr;
        const Result spec = generate(prompt, greedy(60), {SpecMode::Ngram, dmax, adaptive}, nullptr, &spec_s);
        ASSERT_EQ(spec.tokens, plain.tokens);
        expect_same_kv(*model_, spec_s->context().sequence(), plain_s->context().sequence());
        drafted += spec.spec.drafted;
        accepted += spec.spec.accepted;
        if (!adaptive && repetitive) {
          EXPECT_GT(spec.spec.drafted, 0);  // the repetitive prompts are drafted for at every length, 1 included
        }
      }
    }
  }
  // The test means something only if drafts were verified and some were accepted, some rejected.
  EXPECT_GT(drafted, 100);
  EXPECT_GT(accepted, 20);
  EXPECT_LT(accepted, drafted);
  std::printf("ngram: %d drafted, %d accepted\n", drafted, accepted);
}

// Rejections at every draft position, full acceptance, and drafts that cross the sliding window (16 in
// the tiny model: 60 generated tokens cross it several times, the 99-token prompt already has).
TEST_F(SpecTest, KnownDraftsEqualPlainGreedyAtEveryRejectionPosition) {
  for (const auto& prompt : prompts()) {
    Session* plain_s = nullptr;
    const Result plain = generate(prompt, greedy(60), {}, nullptr, &plain_s);
    for (int right : {-1, 0, 1, 2, 3, 4, 5, 6}) {
      SCOPED_TRACE("prompt of " + std::to_string(prompt.size()) + ", right " + std::to_string(right));
      KnownDrafter d(prompt.size(), plain.tokens, right, model_->config().n_vocab);
      Session* spec_s = nullptr;
      const Result spec = generate(prompt, greedy(60), {SpecMode::Draft, 6, false}, &d, &spec_s);
      ASSERT_EQ(spec.tokens, plain.tokens);
      expect_same_kv(*model_, spec_s->context().sequence(), plain_s->context().sequence());
      if (right < 0) {
        // Every guess is right, except one past the end when the run stopped at an end-of-turn token (the
        // plain output excludes it, so the oracle cannot guess it).
        EXPECT_GE(spec.spec.accepted, spec.spec.drafted - (plain.tokens.size() < 60 ? 1 : 0));
        EXPECT_LE(spec.spec.rounds, 60 / 7 + 2);  // 7 tokens per pass
      } else {
        EXPECT_LE(spec.spec.accepted, spec.spec.rounds * right);
      }
    }
  }
}

TEST_F(SpecTest, DraftModelAndSelfSliceGreedyEqualPlainGreedy) {
  auto draft = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q8_0.gguf");
  check_draft_vocabulary(*model_, *draft);
  ModelDrafter by_draft(*draft, params_, "draft");
  // Self: a slice of the target's own file (the fixture's first golden slice).
  const auto doc = test::read_json(test::tiny_dir() + "/golden/matformer/slices.json");
  const auto& s0 = doc["slices"][0];
  const std::string slice_json = std::string(G3N_BINARY_DIR) + "/spec_self_slice.json";
  std::ofstream(slice_json) << nlohmann::json{{"kept_layers", s0["kept_layers"]}, {"ffn_width", s0["ffn_width"]}}.dump();
  auto slice = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf", slice_json);
  ModelDrafter by_self(*slice, params_, "self");
  for (const auto& prompt : prompts()) {
    Session* plain_s = nullptr;
    const Result plain = generate(prompt, greedy(48), {}, nullptr, &plain_s);
    for (auto* d : {&by_draft, &by_self}) {
      for (int dmax : {3}) {
        SCOPED_TRACE(std::string(d->name()) + " draft_max " + std::to_string(dmax));
        Session* spec_s = nullptr;
        const Result spec = generate(prompt, greedy(48), {d == &by_self ? SpecMode::Self : SpecMode::Draft, dmax, false}, d, &spec_s);
        ASSERT_EQ(spec.tokens, plain.tokens);
        expect_same_kv(*model_, spec_s->context().sequence(), plain_s->context().sequence());
        EXPECT_GT(spec.spec.drafted, 0);
        if (d == &by_draft) {
          EXPECT_GT(spec.spec.accepted, 0);  // the same weights at Q8_0 (the random model's margins are small)
        }
      }
    }
  }
}

// A draft model evaluates the prompt when the request begins (the prompt's time), so the first proposal
// evaluates only the token generated after it.
TEST_F(SpecTest, DraftModelPrefillsThePromptAtBegin) {
  auto draft = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q8_0.gguf");
  ModelDrafter d(*draft, params_, "draft");
  const std::vector<int32_t> prompt = prompts().back();
  SpeculativeDecoder spec(d, {SpecMode::Draft, 3, false});
  EXPECT_EQ(d.n_past(), 0);
  spec.begin(InputRows(prompt));
  EXPECT_EQ(d.n_past(), static_cast<int64_t>(prompt.size()));
  InputRows history(prompt);
  history.push_token(7);
  std::vector<int32_t> out;
  d.propose(history, 3, out);
  EXPECT_EQ(out.size(), 3u);
  EXPECT_EQ(d.n_past(), static_cast<int64_t>(prompt.size()) + 3);  // the new token and two guesses, no re-prefill
}

TEST_F(SpecTest, SeededSamplingEqualsPlainSampling) {
  auto draft = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q8_0.gguf");
  ModelDrafter by_draft(*draft, params_, "draft");
  for (const auto& prompt : prompts()) {
    SamplingParams sp;
    sp.temperature = 0.8f;
    sp.top_k = 40;
    sp.seed = 1234;
    sp.num_predict = 40;
    const Result plain = generate(prompt, sp, {}, nullptr);
    const Result ngram = generate(prompt, sp, {SpecMode::Ngram, 4, false}, nullptr);
    const Result model = generate(prompt, sp, {SpecMode::Draft, 4, false}, &by_draft);
    EXPECT_EQ(ngram.tokens, plain.tokens);
    EXPECT_EQ(model.tokens, plain.tokens);
    EXPECT_GT(model.spec.accepted, 0);
  }
}

// A prompt with vector rows (golden/multimodal case a: 16 embedding rows mid-prompt): n-gram lookup ignores
// them, the self and draft drafters prefill the same rows; a draft of another width is refused.
TEST_F(SpecTest, MultimodalPromptGreedyEqualsPlainGreedy) {
  const std::string dir = test::tiny_dir() + "/golden/multimodal/";
  const auto meta = test::read_json(dir + "a_mid_run.json");
  const auto emb = test::read_f32_file(dir + meta["embeddings_file"].get<std::string>());
  const int64_t width = meta["embeddings_shape"][1].get<int64_t>();
  InputRows prompt;
  for (const auto& r : meta["rows"]) {
    if (r.contains("token")) prompt.push_token(r["token"].get<int32_t>());
    else prompt.push_vectors(std::span<const float>(emb).subspan(r["embedding"].get<size_t>() * width, width), width);
  }
  ASSERT_TRUE(prompt.has_vectors());
  auto draft = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q8_0.gguf");
  ModelDrafter by_draft(*draft, params_, "draft");
  const auto doc = test::read_json(test::tiny_dir() + "/golden/matformer/slices.json");
  const std::string slice_json = std::string(G3N_BINARY_DIR) + "/spec_self_slice_mm.json";
  std::ofstream(slice_json) << nlohmann::json{{"kept_layers", doc["slices"][0]["kept_layers"]}, {"ffn_width", doc["slices"][0]["ffn_width"]}}.dump();
  auto slice = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-q4_k_m.gguf", slice_json);
  ModelDrafter by_self(*slice, params_, "self");
  Session plain(*model_, *tok_, params_);
  const GenerateStats want = plain.generate(prompt, greedy(40), [](std::string_view) {});
  ASSERT_EQ(want.generated.size(), 40u);
  struct Case { SpecMode mode; Drafter* d; };
  for (const Case& c : {Case{SpecMode::Ngram, nullptr}, Case{SpecMode::Draft, &by_draft}, Case{SpecMode::Self, &by_self}}) {
    SCOPED_TRACE(spec_mode_name(c.mode));
    Session s(*model_, *tok_, params_);
    s.set_speculation({c.mode, 4, false}, c.d);
    const GenerateStats got = s.generate(prompt, greedy(40), [](std::string_view) {});
    EXPECT_EQ(got.generated, want.generated);
    expect_same_kv(*model_, s.context().sequence(), plain.context().sequence());
    if (c.d) {
      EXPECT_GT(s.spec_stats().drafted, 0);
    }
  }
  // A draft model whose width is not the vector rows' cannot follow the prompt.
  InputRows narrow;
  narrow.push_token(2);
  const std::vector<float> v(100, 0.5f);
  narrow.push_vectors(v, 100);
  EXPECT_THROW(by_draft.check_prompt(narrow), std::invalid_argument);
}

// Speculative sampling has the plain sampler's distribution: two-sample chi-square on the second generated
// token (the first one a verification row chooses) over 1500 generations each, different seeds on each
// side, a drafter that proposes fixed tokens (often right, often wrong). Significance 0.001: a correct
// implementation fails one run in a thousand; the seeds are fixed, so the outcome is reproducible.
class ConstDrafter final : public Drafter {
 public:
  explicit ConstDrafter(std::vector<int32_t> t) : t_(std::move(t)) {}
  void propose(const InputRows&, int max, std::vector<int32_t>& out) override {
    for (int j = 0; j < max && j < static_cast<int>(t_.size()); ++j) out.push_back(t_[static_cast<size_t>(j)]);
  }
  const char* name() const override { return "const"; }

 private:
  std::vector<int32_t> t_;
};

TEST_F(SpecTest, SpeculativeSamplingMatchesPlainDistribution) {
  const std::vector<int32_t> prompt = test::tiny_prompts()[1].tokens;
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_k = 6;  // a few likely tokens, so the histogram has well-filled bins
  sp.num_predict = 3;  // token 2 comes from the verification of a draft, token 3 ends the run
  const int n = 1500;
  auto histogram = [&](Drafter* d, uint64_t seed0, SpecStats* st) {
    std::vector<int> h(static_cast<size_t>(model_->config().n_vocab), 0);
    Session s(*model_, *tok_, params_);
    if (d) s.set_speculation({SpecMode::Draft, 2, false}, d);
    for (int i = 0; i < n; ++i) {
      sp.seed = seed0 + static_cast<uint64_t>(i);
      const GenerateStats g = s.generate(prompt, sp, [](std::string_view) {});
      if (g.generated.size() >= 2) ++h[static_cast<size_t>(g.generated[1])];
      if (st) { st->drafted += s.spec_stats().drafted; st->accepted += s.spec_stats().accepted; }
    }
    return h;
  };
  const auto plain = histogram(nullptr, 1, nullptr);
  // The drafter proposes the plain runs' most frequent second token (as the guess for position 2, after
  // whatever token 1 is: right often, wrong often).
  const int32_t top = static_cast<int32_t>(std::max_element(plain.begin(), plain.end()) - plain.begin());
  ConstDrafter d({top, top});
  SpecStats st;
  const auto spec = histogram(&d, 1000001, &st);
  // Bins: tokens with at least 10 draws in the two together; the rest pooled into one bin.
  double chi2 = 0;
  int bins = 0;
  int rest_a = 0, rest_b = 0;
  for (size_t t = 0; t < plain.size(); ++t) {
    const int a = plain[t], b = spec[t];
    if (a + b >= 10) {
      chi2 += static_cast<double>(a - b) * (a - b) / (a + b);  // equal sample sizes
      ++bins;
    } else {
      rest_a += a;
      rest_b += b;
    }
  }
  if (rest_a + rest_b > 0) {
    chi2 += static_cast<double>(rest_a - rest_b) * (rest_a - rest_b) / (rest_a + rest_b);
    ++bins;
  }
  const int df = bins - 1;
  ASSERT_GE(df, 3);
  // Wilson-Hilferty: the chi-square quantile at 1 - 0.001 (z = 3.0902).
  const double k = 2.0 / (9.0 * df);
  const double crit = df * std::pow(1 - k + 3.0902 * std::sqrt(k), 3);
  std::printf("chi2 %.2f, df %d, critical %.2f (p = 0.001); %d drafted, %d accepted\n", chi2, df, crit, st.drafted, st.accepted);
  EXPECT_LT(chi2, crit);
  EXPECT_GT(st.accepted, n / 20);                // the accept path ran
  EXPECT_GT(st.drafted - st.accepted, n / 20);   // and the reject path
}

TEST_F(SpecTest, DraftOrSelfWithoutADraftModelIsRefused) {
  Session s(*model_, *tok_, params_);
  EXPECT_THROW(s.set_speculation({SpecMode::Draft, 4, true}, nullptr), std::invalid_argument);
  EXPECT_THROW(parse_spec_mode("fast"), std::invalid_argument);
  EXPECT_EQ(parse_spec_mode("self"), SpecMode::Self);
  // The request option / Modelfile parameter: a bad word is refused when parsed, a good one applies.
  const ParamSpec& spec = *find_parameter("spec");
  EXPECT_THROW(parse_parameter(spec, std::string_view("fast")), ParameterError);
  EXPECT_THROW(parse_parameter(spec, nlohmann::json("fast")), ParameterError);
  Parameters p = default_parameters();
  EXPECT_EQ(p.spec.mode, SpecMode::None);
  apply_parameter(p, spec, parse_parameter(spec, std::string_view("ngram")));
  apply_parameter(p, *find_parameter("draft_max"), parse_parameter(*find_parameter("draft_max"), std::string_view("5")));
  EXPECT_EQ(p.spec.mode, SpecMode::Ngram);
  EXPECT_EQ(p.spec.draft_max, 5);
  EXPECT_THROW(parse_parameter(*find_parameter("draft_max"), std::string_view("0")), ParameterError);
}

}  // namespace
}  // namespace g3n
