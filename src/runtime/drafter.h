// Drafters for speculative decoding (docs/speculative.md): they guess the tokens that follow a sequence,
// and the target model verifies the guesses in one forward pass. Every drafter here is deterministic (a
// function of the history: n-gram lookup, or a draft model's greedy choices), so its draft distribution
// is a point mass and SpeculativeDecoder's verification is exact for it, greedy or sampled.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/input_rows.h"

namespace g3n {

class Drafter {
 public:
  virtual ~Drafter() = default;
  // Appends up to `max` tokens that may follow `history` (every row of the sequence so far, the prompt's
  // vector rows included, ending with the token about to be evaluated) to `out`; fewer or none when it has
  // no guess.
  virtual void propose(const InputRows& history, int max, std::vector<int32_t>& out) = 0;
  // Throws std::invalid_argument when this drafter cannot follow `prompt` (a draft model whose width
  // differs from the vector rows'); called once per request before any proposal.
  virtual void check_prompt(const InputRows& prompt) const { (void)prompt; }
  // A new request's prompt, before generation starts: a draft model evaluates its rows here, so that work counts
  // as the prompt's (time to first token), not as drafting. Proposals that follow reuse it.
  virtual void prefill(const InputRows& prompt) { (void)prompt; }
  // Whether proposals cost forward passes of a model (the draft-length controller then weighs their time).
  virtual bool runs_model() const { return false; }
  virtual const char* name() const = 0;
};

}  // namespace g3n
