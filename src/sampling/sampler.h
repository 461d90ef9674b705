// Token sampling over a logits vector of n_vocab floats.
//
// Pipeline (Hugging Face's order, which Google's Gemma settings are given for):
//   logit bias -> repeat/presence/frequency penalties over the last repeat_last_n tokens
//   -> greedy if temperature <= 0
//   -> temperature -> top_k -> softmax -> top_p -> min_p -> typical_p -> draw with the seeded RNG.
// Each truncation renormalizes what is left. The stages are free functions for testing.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sampling/rng.h"

namespace g3n {

struct SamplingParams {
  float temperature = 1.0f;        // <= 0: greedy (argmax, ties -> lowest id)
  int32_t top_k = 64;              // <= 0 or >= n_vocab: off
  float top_p = 0.95f;             // >= 1: off
  float min_p = 0.0f;              // <= 0: off; keeps p >= min_p * p_max
  float typical_p = 1.0f;          // >= 1: off
  float repeat_penalty = 1.0f;     // 1: off; logit > 0 divided, logit <= 0 multiplied
  float presence_penalty = 0.0f;   // subtracted once from every token seen in the window
  float frequency_penalty = 0.0f;  // subtracted count times
  int32_t repeat_last_n = 64;      // penalty window; 0: off, -1: whole history
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the logit; -INFINITY bans a token
  std::optional<uint64_t> seed;    // nullopt: from std::random_device
  int32_t num_predict = -1;        // generation limit in tokens; < 0: none
  std::vector<std::string> stop;   // stop strings (see StopMatcher)
};

struct TokenProb {
  int32_t id;
  float logit;
  float p;
};

namespace sampling {

// Index of the largest logit; ties -> lowest id. NaN never wins. -1 if empty.
int32_t argmax(std::span<const float> logits);
void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias);
// llama.cpp's penalties: for each distinct token t in `history` with count c:
//   logit = logit > 0 ? logit / repeat : logit * repeat;  logit -= c * frequency + presence.
void apply_penalties(std::span<float> logits, std::span<const int32_t> history, float repeat,
                     float frequency, float presence);
// Candidates with finite logits, sorted by logit descending (ties: lower id first); p unset.
std::vector<TokenProb> candidates(std::span<const float> logits);
// Keeps the k best (same order); k <= 0 or >= size: unchanged.
void top_k(std::vector<TokenProb>& c, int32_t k);
void temperature(std::vector<TokenProb>& c, float t);
// Sets p = softmax(logit) over c (c stays sorted).
void softmax(std::vector<TokenProb>& c);
// The truncations below need sorted, softmaxed input; they keep at least one token and renormalize.
// top_p: the shortest prefix whose mass reaches p.
void top_p(std::vector<TokenProb>& c, float p);
// min_p: tokens with p >= min_p * max p.
void min_p(std::vector<TokenProb>& c, float min_p);
// typical_p (Meister et al.): order by |−log p − H| ascending, keep the shortest prefix whose mass
// reaches p; the result is re-sorted by probability.
void typical_p(std::vector<TokenProb>& c, float p);
// Draws from c by its p (need not sum exactly to 1).
int32_t draw(const std::vector<TokenProb>& c, Rng& rng);

}  // namespace sampling

class Sampler {
 public:
  explicit Sampler(SamplingParams params);

  // Picks the next token. logits is not modified. Does not record the token: call accept().
  int32_t sample(std::span<const float> logits);
  // Records a token (generated, or the prompt's tokens to seed the penalty window).
  void accept(int32_t id, bool generated = true);
  int32_t n_generated() const { return n_generated_; }
  // num_predict reached.
  bool reached_limit() const { return params_.num_predict >= 0 && n_generated_ >= params_.num_predict; }
  // Forgets the history and reseeds (same seed -> same draws again).
  void reset();
  const SamplingParams& params() const { return params_; }
  uint64_t seed() const { return seed_; }
  // The candidates of the last sample() after all truncations (for logprobs/debugging).
  const std::vector<TokenProb>& last_candidates() const { return cand_; }

 private:
  SamplingParams params_;
  uint64_t seed_;
  Rng rng_;
  std::vector<int32_t> history_;
  int32_t n_generated_ = 0;
  std::vector<float> work_;
  std::vector<TokenProb> cand_;
};

}  // namespace g3n
