#include "runtime/drafter_ngram.h"

#include <algorithm>

namespace g3n {

void NgramDrafter::propose(const InputRows& history, int max, std::vector<int32_t>& out) {
  const auto t = history.tokens();
  const int64_t len = static_cast<int64_t>(t.size());
  if (max <= 0) return;
  const size_t base = out.size();  // out may already hold rows (the round's first): max counts what is appended
  for (int n = std::min<int64_t>(n_max_, len - 1); n >= n_min_; --n) {
    const int64_t tail = len - n;  // the pattern is t[tail, len)
    bool vector_in_tail = false;
    for (int64_t i = tail; i < len; ++i) vector_in_tail |= t[static_cast<size_t>(i)] == kVectorRow;
    if (vector_in_tail) continue;
    // Latest start s < tail whose n tokens equal the pattern (a match may overlap the pattern itself:
    // a repeating run then proposes its own continuation).
    for (int64_t s = tail - 1; s >= 0; --s) {
      if (!std::equal(t.begin() + s, t.begin() + s + n, t.begin() + tail)) continue;
      for (int64_t j = s + n; j < len && out.size() - base < static_cast<size_t>(max); ++j) {
        if (t[static_cast<size_t>(j)] == kVectorRow) break;
        out.push_back(t[static_cast<size_t>(j)]);
      }
      if (out.size() > base) return;  // else an earlier match may go on with tokens
    }
  }
}

}  // namespace g3n
