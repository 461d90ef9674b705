#include "runtime/drafter_synthetic.h"

namespace g3n {
namespace {
// splitmix64: a uniform in [0, 1) per call.
double next_uniform(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}
}  // namespace

void SyntheticDrafter::propose(const InputRows& history, int max, std::vector<int32_t>& out) {
  if (inner_) {
    scratch_.clear();
    inner_->propose(history, max, scratch_);
  }
  // history ends with generated token number history.size() - prompt_len_ - 1; the first guess is the next one.
  const size_t first = history.size() - prompt_len_;
  for (int j = 0; j < max; ++j) {
    const size_t k = first + static_cast<size_t>(j);
    if (k >= truth_.size()) break;
    const int32_t t = truth_[k];
    const int32_t wrong = t == 0 ? 1 : 0;  // the fixed wrong token (id 0 is <pad>, never chosen by real text)
    out.push_back(next_uniform(state_) < p_ ? t : wrong);
  }
}

}  // namespace g3n
