// The adaptive draft length (docs/speculative.md "Draft length"): from the measured per-token acceptance
// α, the time of a 1-row step T_t, the marginal cost β of each further verified row (T_v(T) = T_t·(1 +
// β(T−1))) and the draft's cost c per proposed token (in T_t), choose the γ that maximises the expected
// tokens per unit of time, E(α, γ) / (1 + γ(c + β)) with E = (1 − α^(γ+1)) / (1 − α); γ = 0 (plain
// decoding) when no γ beats plain decoding, with a probe round now and then to re-measure α.
#pragma once

namespace g3n {

class DraftLengthController {
 public:
  // max_len >= 0; adaptive false: always max_len.
  DraftLengthController(int max_len, bool adaptive) : max_(max_len), adaptive_(adaptive) {}

  // Draft length for the next round (0: decode one row plainly).
  int next_length();
  // One round's outcome: `drafted` tokens proposed (in draft_s seconds), `accepted` of them accepted,
  // `rows` rows verified in verify_s seconds.
  void record(int drafted, int accepted, int rows, double draft_s, double verify_s);

  double acceptance() const { return acc_ / (acc_ + rej_); }
  double beta() const { return beta_; }
  double draft_cost() const { return c_; }
  double step_seconds() const { return t1_; }
  // Expected speed-up over plain decoding of a draft length under the current estimates.
  double predicted_speedup(int gamma) const;

 private:
  int max_;
  bool adaptive_;
  // Decayed counts for the acceptance's maximum-likelihood estimate under i.i.d. acceptance (a round's
  // accepted run is geometric): accepted tokens / (accepted tokens + rounds that ended in a rejection).
  // The prior (1.5, 1: α = 0.6) lets the first rounds speculate.
  double acc_ = 1.5, rej_ = 1.0;
  double t1_ = 0;      // seconds of a 1-row step (moving average), 0 until measured
  double beta_ = 0.15; // prior until rounds of several rows are measured
  double c_ = 0;       // draft seconds per proposed token / t1_
  bool c_known_ = false;
  int plain_run_ = 0;  // plain rounds since the last speculative one
};

}  // namespace g3n
