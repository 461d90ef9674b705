// `g3n bench --spec MODE` (docs/speculative.md "Measuring"): speculative against plain greedy decoding of
// the same prompt, alternated run by run (medians), and the cost of verifying T rows.
#pragma once
#include <vector>

#include "runtime/benchmark.h"
#include "runtime/speculative.h"

namespace g3n {

class Drafter;

struct SpecBenchParams {
  BenchParams base;                 // n_prompt, n_gen, repeats, threads, KV type, exact, seed
  SpecMode mode = SpecMode::Ngram;
  int draft_max = 4;                // the fixed draft length measured (adaptive off)
  double synthetic_acceptance = -1; // in [0, 1]: SyntheticDrafter over the mode's drafter; < 0: the drafter's own guesses
  Drafter* model_drafter = nullptr; // for draft and self
  int verify_depth = 512;           // position of the verify-cost measurement
  int verify_max_rows = 9;          // T = 1..this
};

struct SpecBenchResult {
  double plain_tokens_per_s = 0, spec_tokens_per_s = 0, speedup = 0;  // medians; speedup of the medians
  double acceptance = 0;            // accepted / drafted over all speculative runs
  double position_acceptance = 0;   // per-position α (SpecStats::position_acceptance)
  double drafted_per_round = 0;     // mean draft tokens verified per speculative round
  double draft_s_per_token = 0;     // drafting time per proposed token (draft and self: the draft's passes)
  double step_s = 0;                // one plain decode step at verify_depth (median)
  std::vector<double> verify_cost_ratio;  // [T-1]: one forward of T rows at verify_depth / step_s
  double beta = 0;                  // least-squares fit of ratio(T) = 1 + β(T−1)
  double prefill_row_s = 0;         // a full-depth row with the LM head at prefill throughput (64 rows at once)
  double draft_cost = 0;            // c: draft_s_per_token / step_s
  double predicted_speedup = 0;     // §5.2: E(α, γ) / (1 + γ(c + β)) at α (P, else the measured α), the measured β, c
  bool outputs_equal = true;        // every speculative run produced the plain run's tokens
};

SpecBenchResult run_spec_benchmark(const Model& model, const SpecBenchParams& params);

}  // namespace g3n
