// Speculative decoding in the one generation loop (docs/speculative.md). Each round the token the
// Generator chose is evaluated together with a drafter's guesses for the tokens after it, in one forward
// pass (LogitsFor::All); the Generator then consumes the rows' logits one by one, exactly as it would
// after single-token steps, and the round ends at the first row whose chosen token is not the next guess
// (that token is the correction) or after the last row (a bonus token). The sequence is rolled back to
// the rows whose tokens were emitted.
//
// Exactness: a row's logits are bit-identical to a single-token step's (tests/speculative_verify_test.cpp),
// the sampler advances only by emitted tokens and draws once per emitted token. Greedy output is therefore
// plain greedy output, token for token; sampled output is the plain sampler's output for the same seed
// and so has its distribution. For a deterministic draft x (every drafter here) this "sample the target,
// accept while it equals the draft" rule is the standard speculative-sampling rule with q = δ_x: accept x
// with probability p(x), else draw from the residual norm(max(0, p − q)) = p without x.
//
//   SpeculativeDecoder spec(drafter, {.draft_max = 8});
//   spec.begin(prompt);
//   auto id = gen.next(ctx.last_logits(), ctx.n_past(), n_ctx, emit);
//   while (id) {
//     const int64_t pos0 = ctx.n_past();
//     ctx.eval(spec.plan(*id, gen, pos0, n_ctx, n_batch), pos0, LogitsFor::All);
//     id = spec.absorb(gen, ctx.sequence(), pos0, n_ctx, emit);
//   }
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "runtime/draft_length.h"
#include "runtime/drafter.h"
#include "runtime/generator.h"
#include "runtime/input_rows.h"
#include "runtime/spec_options.h"

namespace g3n {

class Sequence;

struct SpecStats {
  int rounds = 0;         // forward passes of the target while speculating (plain rounds included)
  int spec_rounds = 0;    // of those, rounds that verified at least one draft token
  int drafted = 0;        // draft tokens verified
  int accepted = 0;       // of those, accepted
  int rejected_rounds = 0;  // rounds that ended in a rejected draft token
  double draft_s = 0;     // time spent drafting
  double verify_s = 0;    // time from the end of drafting to the verification's result
  double acceptance() const { return drafted ? static_cast<double>(accepted) / drafted : 0.0; }
  // Per-position acceptance α (the chance that a draft token is accepted given the ones before it were):
  // accepted / (accepted + rejections), the maximum-likelihood estimate for i.i.d. acceptance. Lower
  // than α, acceptance() also counts the tokens after a rejection, which are never accepted.
  double position_acceptance() const {
    return accepted + rejected_rounds ? static_cast<double>(accepted) / (accepted + rejected_rounds) : 0.0;
  }
};

class SpeculativeDecoder {
 public:
  // The drafter must outlive the decoder.
  SpeculativeDecoder(Drafter& drafter, SpecOptions opts);

  // A new request: the sequence holds (or will hold) `prompt`; the drafter prefills it (Drafter::prefill: part
  // of the prompt's time). Throws std::invalid_argument when the drafter cannot follow it (Drafter::check_prompt).
  void begin(const InputRows& prompt);

  // The rows to evaluate at pos0 (the sequence's n_past): `next`, then up to the chosen draft length of
  // guesses, fewer where the context (n_ctx), a pass (n_batch rows) or num_predict leaves less room.
  std::span<const int32_t> plan(int32_t next, const Generator& gen, int64_t pos0, int64_t n_ctx, int n_batch);

  // After the plan was evaluated at pos0 with every row's logits: feeds them to the generator, rolls the
  // sequence back to the rows whose tokens were emitted, and returns the next token to evaluate (nullopt
  // when generation ended, as Generator::next). verify_s: how long the evaluation took, where the caller timed
  // it (the server's pass: the time since plan() would also count other slots' drafting and sampling);
  // otherwise the time since plan() returned.
  std::optional<int32_t> absorb(Generator& gen, Sequence& seq, int64_t pos0, int64_t n_ctx, const TextSink& emit,
                                std::optional<double> verify_s = std::nullopt);

  const SpecStats& stats() const { return stats_; }
  const DraftLengthController& controller() const { return control_; }
  Drafter& drafter() { return drafter_; }

 private:
  Drafter& drafter_;
  SpecOptions opts_;
  DraftLengthController control_;
  InputRows history_;            // every row the target has kept, then `next`
  std::vector<int32_t> rows_;    // the current plan
  std::chrono::steady_clock::time_point planned_;
  double plan_draft_s_ = 0;
  SpecStats stats_;
};

}  // namespace g3n
