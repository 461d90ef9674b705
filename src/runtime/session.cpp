#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "sampling/stop.h"
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
  tokens_.clear();
}

int Session::prefill(std::span<const int32_t> prompt) {
  if (prompt.empty()) throw std::invalid_argument("empty prompt");
  if (static_cast<int64_t>(prompt.size()) >= n_ctx())
    throw std::length_error("prompt of " + std::to_string(prompt.size()) + " tokens does not fit the context of " + std::to_string(n_ctx()));
  size_t common = 0;
  while (common < tokens_.size() && common < prompt.size() && tokens_[common] == prompt[common]) ++common;
  // The last prompt token is always evaluated again: its logits pick the first new token.
  common = std::min(common, prompt.size() - 1);
  if (!ctx_.can_resume_at(static_cast<int64_t>(common))) common = 0;
  tokens_.resize(common);
  ctx_.eval(prompt.subspan(common), static_cast<int64_t>(common), LogitsFor::Last);
  tokens_.assign(prompt.begin(), prompt.end());
  return static_cast<int>(common);
}

GenerateStats Session::generate(std::span<const int32_t> prompt, const SamplingParams& sampling,
                                const std::function<void(std::string_view)>& on_text, const std::atomic<bool>* cancel) {
  const auto t0 = std::chrono::steady_clock::now();
  GenerateStats st;
  st.prompt_tokens = static_cast<int>(prompt.size());
  st.cached_tokens = prefill(prompt);
  st.prompt_s = seconds_since(t0);

  Sampler sampler(sampling);
  for (int32_t id : prompt) sampler.accept(id, false);  // penalties see the prompt too
  StreamingDetokenizer detok(tok_);
  StopMatcher stops(sampling.stop);
  const auto emit = [&](const std::string& text) {
    if (text.empty()) return;
    const std::string out = stops.push(text);
    if (!out.empty() && on_text) on_text(out);
  };

  std::chrono::steady_clock::time_point first{};
  for (;;) {
    if (cancel && cancel->load()) { st.done_reason = "cancel"; break; }
    if (sampler.reached_limit()) { st.done_reason = "length"; break; }
    const int32_t id = sampler.sample(ctx_.last_logits());
    if (st.gen_tokens == 0) {
      first = std::chrono::steady_clock::now();
      st.ttft_s = seconds_since(t0);
    }
    sampler.accept(id);
    if (tok_.is_stop(id)) { st.done_reason = "stop"; break; }
    ++st.gen_tokens;
    st.generated.push_back(id);
    emit(detok.push(id));
    if (stops.stopped()) { st.done_reason = "stop"; break; }
    if (ctx_.n_past() + 1 > n_ctx()) { st.done_reason = "length"; break; }
    // Evaluate the sampled token only if another will be drawn (saves one step at the end).
    if (sampler.reached_limit()) { st.done_reason = "length"; break; }
    const int32_t one[1] = {id};
    ctx_.eval(std::span<const int32_t>(one, 1), LogitsFor::Last);
    tokens_.push_back(id);
  }
  if (!stops.stopped()) {
    emit(detok.flush());
    const std::string rest = stops.flush();
    if (!rest.empty() && on_text) on_text(rest);
  }
  if (st.gen_tokens > 0) st.gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - first).count();
  return st;
}

}  // namespace g3n
