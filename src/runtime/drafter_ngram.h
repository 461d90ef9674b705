// Prompt lookup (n-gram) drafting: find the latest earlier occurrence of the history's last n tokens
// (n = n_max down to n_min) and propose what followed it. No model, no state: the cost is a scan of the
// history. Vector rows (image, audio) are never part of a match and end a proposal.
#pragma once
#include "runtime/drafter.h"

namespace g3n {

class NgramDrafter final : public Drafter {
 public:
  explicit NgramDrafter(int n_max = 3, int n_min = 2) : n_max_(n_max), n_min_(n_min) {}
  void propose(const InputRows& history, int max, std::vector<int32_t>& out) override;
  const char* name() const override { return "ngram"; }

 private:
  int n_max_, n_min_;
};

}  // namespace g3n
