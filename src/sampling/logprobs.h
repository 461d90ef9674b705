// Log-probabilities of a sampled token, as Ollama's and OpenAI's `logprobs` / `top_logprobs` report them:
// the log-softmax of the model's final logits (after Gemma's soft-cap) over the whole vocabulary, taken
// before the logit bias, penalties, temperature, truncation and any constraint mask. The chosen token's
// value is given even when it is not among the top ones.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace g3n {

// What the generation loop computes per token; off (enabled = false) costs nothing.
struct LogprobOptions {
  bool enabled = false;
  int top = 0;  // how many of the most likely tokens to list as well (0..20 in both APIs)
};

struct TokenLogprob {
  int32_t id = -1;
  float logprob = 0;
};

// One generated token: its own log-probability and the `top` most likely alternatives (most likely first;
// ties: lower id first).
struct LogprobStep {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
};

namespace sampling {

// log p(id) = logit[id] - log(sum_j exp(logit[j])) over every finite logit, in double. -inf for a token whose
// logit is -inf or out of range; the top list skips non-finite logits.
LogprobStep token_logprobs(std::span<const float> logits, int32_t chosen, int top);

}  // namespace sampling
}  // namespace g3n
