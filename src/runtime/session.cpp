#include "runtime/session.h"

#include <chrono>
#include <stdexcept>
#include <string>

#include "base/clock.h"
#include "tokenizer/tokenizer.h"

namespace g3n {
Session::Session(const Model& model, const Tokenizer& tokenizer, ContextParams params)
    : tok_(tokenizer), ctx_(model, params) {}

void Session::set_speculation(SpecOptions opts, Drafter* model_drafter) {
  if ((opts.mode == SpecMode::Draft || opts.mode == SpecMode::Self) && !model_drafter)
    throw std::invalid_argument(std::string("--spec ") + spec_mode_name(opts.mode) + " needs a draft model");
  spec_ = opts;
  model_drafter_ = model_drafter;
}

Drafter* Session::drafter_for(SpecMode m) {
  switch (m) {
    case SpecMode::None: return nullptr;
    case SpecMode::Auto:
    case SpecMode::Ngram: return &ngram_;
    case SpecMode::Draft:
    case SpecMode::Self: return model_drafter_;
  }
  return nullptr;
}

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
  spec_stats_ = {};
  if (Drafter* d = drafter_for(spec_.mode)) {
    SpeculativeDecoder spec(*d, spec_);
    spec.begin(prompt);
    auto id = gen.next(ctx_.last_logits(), ctx_.n_past(), n_ctx(), on_text);
    while (id) {
      const int64_t pos0 = ctx_.n_past();
      const auto rows = spec.plan(*id, gen, pos0, n_ctx(), ctx_.params().n_batch);
      ctx_.eval(rows, pos0, LogitsFor::All);
      id = spec.absorb(gen, ctx_.sequence(), pos0, n_ctx(), on_text);
      for (int64_t i = 0; i < ctx_.n_past() - pos0; ++i) keys_.push_back(token_key(rows[static_cast<size_t>(i)]));
    }
    spec_stats_ = spec.stats();
  } else {
    while (auto id = gen.next(ctx_.last_logits(), ctx_.n_past(), n_ctx(), on_text)) {
      ctx_.eval(std::span<const int32_t>(&*id, 1), LogitsFor::Last);
      keys_.push_back(token_key(*id));
    }
  }
  GenerateStats st = std::move(gen.stats());
  st.prompt_tokens = static_cast<int>(prompt.size());
  st.cached_tokens = cached;
  st.prompt_s = prompt_s;
  return st;
}

}  // namespace g3n
