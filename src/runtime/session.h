// A generating sequence: a Context plus the tokens it has evaluated, so a new request that extends an
// earlier one (the next chat turn) re-evaluates only what changed. Used by `g3n run` and the server.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/context.h"
#include "sampling/sampler.h"

namespace g3n {

class Tokenizer;

struct GenerateStats {
  int prompt_tokens = 0;     // tokens in the request's prompt
  int cached_tokens = 0;     // of those, reused from the previous request
  double prompt_s = 0;       // time evaluating the rest of the prompt
  int gen_tokens = 0;        // tokens sampled
  double gen_s = 0;          // time from the first sampled token to the end
  double ttft_s = 0;         // request start to the first sampled token
  std::string done_reason;   // "stop" (stop token or string), "length" (num_predict or context full), "cancel"
  std::vector<int32_t> generated;  // the sampled ids, stop token excluded
};

class Session {
 public:
  Session(const Model& model, const Tokenizer& tokenizer, ContextParams params);

  // Evaluates `prompt` (reusing the longest prefix already evaluated) and samples until a stop token,
  // a stop string, the sampler's num_predict, a full context or *cancel. on_text receives printable text
  // as it is decided (never half a UTF-8 character, never text a stop string might still swallow).
  // Throws std::length_error when the prompt does not fit the context.
  GenerateStats generate(std::span<const int32_t> prompt, const SamplingParams& sampling,
                         const std::function<void(std::string_view)>& on_text,
                         const std::atomic<bool>* cancel = nullptr);

  const std::vector<int32_t>& tokens() const { return tokens_; }
  Context& context() { return ctx_; }
  const Tokenizer& tokenizer() const { return tok_; }
  int n_ctx() const { return ctx_.params().n_ctx; }
  void reset();

 private:
  // Makes the context hold exactly `prompt` and leaves its last logits ready. Returns reused tokens.
  int prefill(std::span<const int32_t> prompt);

  const Tokenizer& tok_;
  Context ctx_;
  std::vector<int32_t> tokens_;  // what the context has evaluated, in order
};

}  // namespace g3n
