#include "runtime/draft_length.h"

#include <algorithm>
#include <cmath>

namespace g3n {
namespace {
constexpr double kDecay = 0.95;      // per round: the estimates follow the text as it changes
constexpr double kSmooth = 0.2;      // moving-average weight of a new timing
constexpr double kMinGain = 1.02;    // speculate only when it is expected to pay at least this much
constexpr int kProbeEvery = 16;      // plain rounds between probes while speculation is off

double expected_tokens(double a, int gamma) {
  if (a >= 1.0) return gamma + 1.0;
  return (1.0 - std::pow(a, gamma + 1)) / (1.0 - a);
}
}  // namespace

double DraftLengthController::predicted_speedup(int gamma) const {
  return expected_tokens(acceptance(), gamma) / (1.0 + gamma * (c_ + beta_));
}

int DraftLengthController::next_length() {
  if (!adaptive_ || max_ == 0) return max_;
  if (t1_ == 0) return 0;  // measure a plain step first: β and c are relative to it
  int best = 0;
  double best_s = kMinGain;
  for (int g = 1; g <= max_; ++g) {
    const double s = predicted_speedup(g);
    if (s > best_s) { best_s = s; best = g; }
  }
  if (best > 0) { plain_run_ = 0; return best; }
  // Off: probe with a short draft now and then, so a text that turns repetitive switches it back on.
  if (++plain_run_ >= kProbeEvery) { plain_run_ = 0; return std::max(1, max_ / 4); }
  return 0;
}

void DraftLengthController::record(int drafted, int accepted, int rows, double draft_s, double verify_s) {
  if (drafted > 0) {
    acc_ = acc_ * kDecay + accepted;
    rej_ = rej_ * kDecay + (accepted < drafted ? 1.0 : 0.0);
  }
  if (rows == 1) {
    t1_ = t1_ == 0 ? verify_s : t1_ + kSmooth * (verify_s - t1_);
  } else if (rows > 1 && t1_ > 0) {
    const double b = std::max(0.0, (verify_s / t1_ - 1.0) / (rows - 1));
    beta_ += kSmooth * (b - beta_);
  }
  if (drafted > 0 && t1_ > 0) {
    const double c = draft_s / drafted / t1_;
    c_ = c_known_ ? c_ + kSmooth * (c - c_) : c;
    c_known_ = true;
  }
}

}  // namespace g3n
