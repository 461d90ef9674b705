#include "runtime/generator.h"

#include "runtime/input_rows.h"

namespace g3n {
namespace {
using Clock = std::chrono::steady_clock;
double seconds_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
}  // namespace

const char* done_reason_name(DoneReason r) {
  switch (r) {
    case DoneReason::Stop: return "stop";
    case DoneReason::Length: return "length";
    case DoneReason::Cancel: return "cancel";
    case DoneReason::Error: return "error";
  }
  return "stop";
}

Generator::Generator(const Tokenizer* tok, SamplingParams sampling, std::unique_ptr<LogitsConstraint> constraint,
                     GeneratorOptions opts, Clock::time_point t0)
    : tok_(tok), sampler_(sampling), constraint_(std::move(constraint)), opts_(opts), stops_(sampling.stop), t0_(t0) {
  if (tok_) detok_.emplace(*tok_);
}

void Generator::observe_prompt(std::span<const int32_t> tokens) {
  for (int32_t id : tokens)
    if (id != kVectorRow) sampler_.accept(id, false);  // penalties see the prompt's text too
}

std::optional<int32_t> Generator::next(std::span<const float> logits, int64_t n_past, int64_t n_ctx, const TextSink& emit) {
  if (done_) return std::nullopt;
  if (opts_.cancel && opts_.cancel->load()) { finish(DoneReason::Cancel, emit); return std::nullopt; }
  if (sampler_.reached_limit()) { finish(DoneReason::Length, emit); return std::nullopt; }
  const std::span<const float> raw = logits;  // what logprobs are taken from: before the mask and the sampler
  if (constraint_) {
    const SamplingParams& p = sampler_.params();
    const int need = p.temperature <= 0 ? 1 : (p.top_k > 0 ? p.top_k : 256);
    constraint_->mask(logits, need, masked_);
    logits = masked_;
  }
  const int32_t id = sampler_.sample(logits);
  if (stats_.gen_tokens == 0) {
    first_ = Clock::now();
    stats_.ttft_s = seconds_between(t0_, first_);
  }
  sampler_.accept(id);
  if (opts_.stop_at_eos && tok_ && tok_->is_stop(id)) { finish(DoneReason::Stop, emit); return std::nullopt; }
  if (constraint_) constraint_->accept(id);
  ++stats_.gen_tokens;
  stats_.generated.push_back(id);
  if (opts_.logprobs.enabled) stats_.logprobs.push_back(sampling::token_logprobs(raw, id, opts_.logprobs.top));
  if (detok_) {
    const std::string out = stops_.push(detok_->push(id));
    if (!out.empty() && emit) emit(out);
    if (stops_.stopped()) { finish(DoneReason::Stop, emit); return std::nullopt; }
  }
  // A finished JSON value needs nothing more: stop without spending a forward pass on the end token.
  if (constraint_ && constraint_->complete()) { finish(DoneReason::Stop, emit); return std::nullopt; }
  if (n_past + 1 > n_ctx) { finish(DoneReason::Length, emit); return std::nullopt; }
  // Evaluate the sampled token only if another will be drawn (saves one step at the end).
  if (sampler_.reached_limit()) { finish(DoneReason::Length, emit); return std::nullopt; }
  return id;
}

void Generator::finish(DoneReason reason, const TextSink& emit) {
  if (done_) return;
  done_ = true;
  stats_.done_reason = reason;
  if (reason != DoneReason::Error && detok_ && !stops_.stopped()) {
    std::string rest = stops_.push(detok_->flush());
    rest += stops_.flush();
    if (!rest.empty() && emit) emit(rest);
  }
  if (stats_.gen_tokens > 0) stats_.gen_s = seconds_between(first_, Clock::now());
}

}  // namespace g3n
