// A logits constraint: restricts which tokens may come next (structured output, grammars). The
// generation loop asks it to mask the logits before sampling and tells it each chosen token.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace g3n {

class LogitsConstraint {
 public:
  virtual ~LogitsConstraint() = default;
  // out = logits with every token the constraint forbids set to -inf. Only the `need` best allowed
  // tokens must survive (a sampler that looks at top_k candidates needs no more), so an implementation
  // may stop scanning early.
  virtual void mask(std::span<const float> logits, int need, std::vector<float>& out) = 0;
  // Advances over a chosen token (one mask() allowed).
  virtual void accept(int32_t id) = 0;
  // Nothing more may follow: generation ends without sampling the end token.
  virtual bool complete() const = 0;
};

}  // namespace g3n
