#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <cstddef>
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

int Session::prefill(const InputRows& prompt, const std::atomic<bool>* cancel, bool* complete) {
  if (prompt.empty()) throw std::invalid_argument("empty prompt");
  if (static_cast<int64_t>(prompt.size()) >= n_ctx())
    throw std::length_error("prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " + std::to_string(n_ctx()));
  const size_t common = reusable_prefix(keys_, prompt.keys(), ctx_.sequence());
  keys_.resize(common);
  // Passes of n_batch rows, as the engine would cut one call anyway (so the same numbers), each
  // followed by a look at *cancel; the keys grow with what the context holds.
  const RowsView rest = prompt.view().subspan(common);
  const size_t pass = static_cast<size_t>(ctx_.params().n_batch);
  for (size_t done = 0; done < rest.size(); done += pass) {
    if (cancel && cancel->load()) {
      // Forget what the context held past the evaluated rows (an earlier answer), so it holds exactly keys_.
      const auto held = static_cast<int64_t>(common + done);
      if (ctx_.n_past() > held && ctx_.can_resume_at(held)) ctx_.truncate(held);
      *complete = false;
      return static_cast<int>(common);
    }
    const size_t n = std::min(pass, rest.size() - done);
    ctx_.eval(rest.subspan(done, n), static_cast<int64_t>(common + done),
              done + n == rest.size() ? LogitsFor::Last : LogitsFor::None);
    keys_.insert(keys_.end(), prompt.keys().begin() + static_cast<std::ptrdiff_t>(common + done),
                 prompt.keys().begin() + static_cast<std::ptrdiff_t>(common + done + n));
  }
  *complete = true;
  return static_cast<int>(common);
}

GenerateStats Session::generate(const InputRows& prompt, const SamplingParams& sampling, const TextSink& on_text,
                                const std::atomic<bool>* cancel, std::unique_ptr<LogitsConstraint> constraint) {
  const auto t0 = std::chrono::steady_clock::now();
  bool complete = false;
  const int cached = prefill(prompt, cancel, &complete);
  double prompt_s = seconds_since(t0);
  GeneratorOptions opts;
  opts.cancel = cancel;
  Generator gen(&tok_, sampling, std::move(constraint), opts, t0);
  gen.observe_prompt(prompt.tokens());
  spec_stats_ = {};
  if (!complete) {
    gen.next({}, ctx_.n_past(), n_ctx(), on_text);  // sees *cancel first: ends with DoneReason::Cancel
  } else if (Drafter* d = drafter_for(spec_.mode)) {
    SpeculativeDecoder spec(*d, spec_);
    spec.begin(prompt);  // a draft model's prefill belongs to the prompt's time
    prompt_s = seconds_since(t0);
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
