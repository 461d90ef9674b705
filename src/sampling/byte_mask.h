// The masking step shared by the byte-level constraints (JSON schema, tool calls): given an automaton
// state, keep the logits of the tokens whose text the automaton accepts from that state. Tokens are
// bucketed by first byte, so whole buckets are skipped with one byte's test; when many remain (inside
// a string, say), they are checked best-logit first and the scan stops once `need` have passed.
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <utility>
#include <vector>

#include "sampling/json_constraint.h"

namespace g3n {

// State: copyable, with bool feed(unsigned char) and bool feed(std::string_view). Writes `out` (every
// token -inf except the allowed ones, which keep their logits) and returns how many were allowed.
template <class State>
int mask_by_bytes(const TokenTexts& texts, const State& state, State& scratch, std::span<const float> logits, int need,
                  std::vector<float>& out, std::vector<std::pair<float, int32_t>>& order) {
  out.assign(logits.size(), -std::numeric_limits<float>::infinity());
  const auto n = static_cast<int32_t>(std::min<size_t>(logits.size(), static_cast<size_t>(texts.n_vocab())));
  const auto allowed = [&](int32_t id) {
    scratch = state;
    return scratch.feed(texts.text(id));
  };
  std::array<bool, 256> first{};
  size_t total = 0;
  for (int b = 0; b < 256; ++b) {
    const auto& bucket = texts.starting_with(static_cast<unsigned char>(b));
    if (bucket.empty()) continue;
    scratch = state;
    if (scratch.feed(static_cast<unsigned char>(b))) {
      first[static_cast<size_t>(b)] = true;
      total += bucket.size();
    }
  }
  int found = 0;
  if (total <= 8192) {
    for (int b = 0; b < 256; ++b) {
      if (!first[static_cast<size_t>(b)]) continue;
      for (int32_t id : texts.starting_with(static_cast<unsigned char>(b)))
        if (id < n && allowed(id)) {
          out[static_cast<size_t>(id)] = logits[static_cast<size_t>(id)];
          ++found;
        }
    }
    return found;
  }
  order.clear();
  for (int b = 0; b < 256; ++b) {
    if (!first[static_cast<size_t>(b)]) continue;
    for (int32_t id : texts.starting_with(static_cast<unsigned char>(b)))
      if (id < n && !std::isnan(logits[static_cast<size_t>(id)])) order.emplace_back(logits[static_cast<size_t>(id)], id);
  }
  const auto better = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t sorted = 0, chunk = static_cast<size_t>(std::max(need, 1)) * 4 + 64;
  while (sorted < order.size() && found < need) {
    const size_t end = std::min(order.size(), sorted + chunk);
    std::partial_sort(order.begin() + static_cast<std::ptrdiff_t>(sorted), order.begin() + static_cast<std::ptrdiff_t>(end), order.end(),
                      better);
    for (size_t i = sorted; i < end && found < need; ++i)
      if (allowed(order[i].second)) {
        out[static_cast<size_t>(order[i].second)] = order[i].first;
        ++found;
      }
    sorted = end;
    chunk *= 8;
  }
  return found;
}

// Lets the end-of-generation tokens through (with their logits, or 0 where those are not finite).
inline void allow_tokens(std::span<const int32_t> ids, std::span<const float> logits, std::vector<float>& out) {
  for (int32_t id : ids)
    if (id >= 0 && static_cast<size_t>(id) < logits.size())
      out[static_cast<size_t>(id)] = std::isfinite(logits[static_cast<size_t>(id)]) ? logits[static_cast<size_t>(id)] : 0.0f;
}

}  // namespace g3n
