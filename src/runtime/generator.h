// The generation loop's per-sequence state, shared by `g3n run` (Session), the server's scheduler and
// `g3n bench`: the sampler, an optional logits constraint, the streaming detokenizer, stop strings and
// the stop conditions, and the statistics. The caller owns the forward passes: it evaluates whatever
// next() returns and calls next() again with the new logits, so one Generator drives a single Context
// or one slot of a continuously batched engine alike.
//
//   Generator gen(&tok, sampling, std::move(constraint), {.cancel = &flag});
//   gen.observe_prompt(prompt.tokens());
//   while (auto id = gen.next(ctx.last_logits(), ctx.n_past(), ctx.params().n_ctx, on_text))
//     ctx.eval(std::span<const int32_t>(&*id, 1));
//   GenerateStats st = gen.stats();
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sampling/constraint.h"
#include "sampling/logprobs.h"
#include "sampling/sampler.h"
#include "sampling/stop.h"
#include "tokenizer/tokenizer.h"

namespace g3n {

enum class DoneReason {
  Stop,    // a stop token or stop string, or the constraint's value is complete
  Length,  // num_predict reached or the context is full
  Cancel,  // the caller cancelled (client gone, Ctrl-C, shutdown)
  Error,   // evaluation failed (the caller has the message)
};
// "stop", "length", "cancel", "error" (Ollama's done_reason words where Ollama has one).
const char* done_reason_name(DoneReason r);

struct GenerateStats {
  int prompt_tokens = 0;     // rows in the request's prompt (tokens and vectors)
  int cached_tokens = 0;     // of those, reused from the previous request
  double prompt_s = 0;       // time evaluating the rest of the prompt
  int gen_tokens = 0;        // tokens sampled
  double gen_s = 0;          // time from the first sampled token to the end
  double ttft_s = 0;         // request start to the first sampled token
  DoneReason done_reason = DoneReason::Stop;
  std::vector<int32_t> generated;  // the sampled ids, stop token excluded
  std::vector<LogprobStep> logprobs;  // one per generated id when GeneratorOptions::logprobs is enabled
};

using TextSink = std::function<void(std::string_view)>;

struct GeneratorOptions {
  // End at the tokenizer's end-of-generation ids. `g3n bench` turns it off to decode exactly num_predict.
  bool stop_at_eos = true;
  const std::atomic<bool>* cancel = nullptr;  // checked before every token
  // Each generated token's log-probability (and the top alternatives) from the raw logits: stats().logprobs.
  LogprobOptions logprobs{};
};

class Generator {
 public:
  // tok may be null (no text: bench); it must outlive the generator. t0 is the request's start (TTFT).
  Generator(const Tokenizer* tok, SamplingParams sampling, std::unique_ptr<LogitsConstraint> constraint = nullptr,
            GeneratorOptions opts = {}, std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now());

  // Seeds the penalty window with the prompt's token ids (vector rows, kVectorRow, are skipped).
  void observe_prompt(std::span<const int32_t> tokens);

  // Chooses the next token from the logits of the sequence's last row, sends text that is decided to
  // `emit`, and returns the token to evaluate next (at position n_past); nullopt when generation has
  // ended (done() is then true and the remaining text has been flushed to `emit`).
  std::optional<int32_t> next(std::span<const float> logits, int64_t n_past, int64_t n_ctx, const TextSink& emit);

  // Ends generation now for a reason found outside (cancel or error); flushes held text unless error.
  void finish(DoneReason reason, const TextSink& emit);

  bool done() const { return done_; }
  GenerateStats& stats() { return stats_; }
  const Sampler& sampler() const { return sampler_; }

 private:
  const Tokenizer* tok_;
  Sampler sampler_;
  std::unique_ptr<LogitsConstraint> constraint_;
  GeneratorOptions opts_;
  std::optional<StreamingDetokenizer> detok_;
  StopMatcher stops_;
  std::vector<float> masked_;
  GenerateStats stats_;
  std::chrono::steady_clock::time_point t0_, first_{};
  bool done_ = false;
};

}  // namespace g3n
