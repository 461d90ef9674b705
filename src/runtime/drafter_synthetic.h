// `g3n bench --synthetic-acceptance P` (docs/speculative.md "Measuring"): proposals of a known acceptance.
// Knowing the true continuation (plain greedy decoding's output), each draft position independently gets
// the true token with probability P, else a fixed wrong token. The wrapped drafter still runs for every
// proposal (a draft model's forward passes are timed as in real use); only its tokens are replaced.
#pragma once
#include <cstdint>
#include <vector>

#include "runtime/drafter.h"

namespace g3n {

class SyntheticDrafter final : public Drafter {
 public:
  // truth[k] is generated token k; prompt_len rows precede it. inner may be null (no drafting cost).
  SyntheticDrafter(Drafter* inner, size_t prompt_len, std::vector<int32_t> truth, double p, int n_vocab, uint64_t seed)
      : inner_(inner), prompt_len_(prompt_len), truth_(std::move(truth)), p_(p), n_vocab_(n_vocab), state_(seed) {}
  void propose(const InputRows& history, int max, std::vector<int32_t>& out) override;
  void prefill(const InputRows& prompt) override {
    if (inner_) inner_->prefill(prompt);
  }
  bool runs_model() const override { return inner_ && inner_->runs_model(); }
  const char* name() const override { return inner_ ? inner_->name() : "synthetic"; }

 private:
  Drafter* inner_;
  size_t prompt_len_;
  std::vector<int32_t> truth_;
  double p_;
  int n_vocab_;
  uint64_t state_;
  std::vector<int32_t> scratch_;
};

}  // namespace g3n
