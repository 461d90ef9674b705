#include "runtime/session.h"

#include <chrono>
#include <stdexcept>
#include <string>

#include "tokenizer/tokenizer.h"

namespace g3n {
namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

Session::Session(const Model& model, const Tokenizer& tokenizer, ContextParams params)
    : tok_(tokenizer), ctx_(model, params) {}

void Session::reset() {
  ctx_.reset();
  keys_.clear();
}

int Session::prefill(const InputRows& prompt) {
  if (prompt.empty()) throw std::invalid_argument("empty prompt");
  if (static_cast<int64_t>(prompt.size()) >= n_ctx())
    throw std::length_error("prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " + std::to_string(n_ctx()));
  const size_t common = reusable_prefix(keys_, prompt.keys(), ctx_.sequence());
  keys_.resize(common);
  ctx_.eval(prompt.view().subspan(common), static_cast<int64_t>(common), LogitsFor::Last);
  keys_.assign(prompt.keys().begin(), prompt.keys().end());
  return static_cast<int>(common);
}

GenerateStats Session::generate(const InputRows& prompt, const SamplingParams& sampling, const TextSink& on_text,
                                const std::atomic<bool>* cancel, std::unique_ptr<LogitsConstraint> constraint) {
  const auto t0 = std::chrono::steady_clock::now();
  const int cached = prefill(prompt);
  const double prompt_s = seconds_since(t0);
  GeneratorOptions opts;
  opts.cancel = cancel;
  Generator gen(&tok_, sampling, std::move(constraint), opts, t0);
  gen.observe_prompt(prompt.tokens());
  while (auto id = gen.next(ctx_.last_logits(), ctx_.n_past(), n_ctx(), on_text)) {
    ctx_.eval(std::span<const int32_t>(&*id, 1), LogitsFor::Last);
    keys_.push_back(token_key(*id));
  }
  GenerateStats st = std::move(gen.stats());
  st.prompt_tokens = static_cast<int>(prompt.size());
  st.cached_tokens = cached;
  st.prompt_s = prompt_s;
  return st;
}

}  // namespace g3n
