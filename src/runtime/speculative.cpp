#include "runtime/speculative.h"

#include <algorithm>
#include <stdexcept>

#include "runtime/batch_engine.h"

namespace g3n {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

SpeculativeDecoder::SpeculativeDecoder(Drafter& drafter, SpecOptions opts)
    : drafter_(drafter), opts_(opts), control_(std::max(0, opts.draft_max), opts.adaptive) {}

void SpeculativeDecoder::begin(const InputRows& prompt) {
  drafter_.check_prompt(prompt);
  drafter_.prefill(prompt);
  history_ = prompt;
}

std::span<const int32_t> SpeculativeDecoder::plan(int32_t next, const Generator& gen, int64_t pos0, int64_t n_ctx, int n_batch) {
  history_.push_token(next);
  rows_.assign(1, next);
  int64_t room = std::min<int64_t>(n_ctx - pos0, n_batch) - 1;
  const Sampler& s = gen.sampler();
  // The token that reaches num_predict ends generation unevaluated: the rows after it would be wasted.
  if (s.params().num_predict >= 0) room = std::min<int64_t>(room, s.params().num_predict - s.n_generated() - 1);
  const int gamma = static_cast<int>(std::min<int64_t>(control_.next_length(), std::max<int64_t>(room, 0)));
  const auto t0 = Clock::now();
  if (gamma > 0) drafter_.propose(history_, gamma, rows_);
  if (static_cast<int>(rows_.size()) > gamma + 1) rows_.resize(static_cast<size_t>(gamma) + 1);
  planned_ = Clock::now();
  plan_draft_s_ = seconds_between(t0, planned_);
  return rows_;
}

std::optional<int32_t> SpeculativeDecoder::absorb(Generator& gen, Sequence& seq, int64_t pos0, int64_t n_ctx, const TextSink& emit,
                                                  std::optional<double> timed_s) {
  const double verify_s = timed_s ? *timed_s : seconds_between(planned_, Clock::now());
  const int n = static_cast<int>(rows_.size());
  std::optional<int32_t> out;
  int kept = n;  // rows whose tokens stay in the sequence
  int accepted = 0;
  for (int i = 0; i < n; ++i) {
    out = gen.next(seq.logits(i), pos0 + i + 1, n_ctx, emit);
    if (!out || i + 1 == n || *out != rows_[static_cast<size_t>(i) + 1]) { kept = i + 1; break; }
    ++accepted;  // the generator chose the guess: its row (already evaluated) is the next one
  }
  for (int i = 1; i < kept; ++i) history_.push_token(rows_[static_cast<size_t>(i)]);
  if (pos0 + kept < seq.n_past()) seq.truncate(pos0 + kept);
  const int drafted = n - 1;
  // Only the draft tokens the generator got to judge count: a stop inside the run judges no more.
  const int judged = out ? drafted : std::min(drafted, accepted + 1);
  control_.record(judged, accepted, n, plan_draft_s_, verify_s);
  ++stats_.rounds;
  stats_.spec_rounds += drafted > 0;
  stats_.drafted += judged;
  stats_.accepted += accepted;
  stats_.rejected_rounds += out && accepted < drafted;
  stats_.draft_s += plan_draft_s_;
  stats_.verify_s += verify_s;
  return out;
}

}  // namespace g3n
