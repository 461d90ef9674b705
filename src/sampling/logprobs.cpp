#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace g3n::sampling {

LogprobStep token_logprobs(std::span<const float> logits, int32_t chosen, int top) {
  // The log-sum-exp with the maximum taken out, so no exp overflows.
  float mx = -std::numeric_limits<float>::infinity();
  for (float l : logits)
    if (std::isfinite(l)) mx = std::max(mx, l);
  double sum = 0;
  for (float l : logits)
    if (std::isfinite(l)) sum += std::exp(static_cast<double>(l) - mx);
  const double log_z = static_cast<double>(mx) + std::log(sum);
  const auto logprob = [&](int32_t id) -> float {
    if (id < 0 || static_cast<size_t>(id) >= logits.size() || !std::isfinite(logits[id]) || !std::isfinite(mx))
      return -std::numeric_limits<float>::infinity();
    return static_cast<float>(static_cast<double>(logits[id]) - log_z);
  };

  LogprobStep step;
  step.chosen = {chosen, logprob(chosen)};
  if (top <= 0) return step;
  // A partial selection of the `top` largest logits (ties: lower id), then their log-probabilities.
  std::vector<int32_t> ids;
  ids.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i)
    if (std::isfinite(logits[i])) ids.push_back(static_cast<int32_t>(i));
  const auto better = [&](int32_t a, int32_t b) { return logits[a] != logits[b] ? logits[a] > logits[b] : a < b; };
  const size_t k = std::min(ids.size(), static_cast<size_t>(top));
  std::partial_sort(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end(), better);
  step.top.reserve(k);
  for (size_t i = 0; i < k; ++i) step.top.push_back({ids[i], logprob(ids[i])});
  return step;
}

}  // namespace g3n::sampling
