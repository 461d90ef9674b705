// A generating sequence: a Context plus the rows it has evaluated, so a new request that extends an
// earlier one (the next chat turn) re-evaluates only what changed. Used by `g3n run`; the server's
// scheduler keeps the same state per slot. Both drive the one generation loop, Generator.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/context.h"
#include "runtime/drafter_ngram.h"
#include "runtime/generator.h"
#include "runtime/input_rows.h"
#include "runtime/speculative.h"
#include "sampling/sampler.h"

namespace g3n {

class Tokenizer;

class Session {
 public:
  Session(const Model& model, const Tokenizer& tokenizer, ContextParams params);

  // Evaluates `prompt` (reusing the longest prefix already evaluated) and generates until a stop
  // condition (see Generator) or *cancel. *cancel is also checked between the prompt's passes of n_batch
  // rows, so a long prompt stops within one pass (done_reason Cancel, nothing generated; the rows already
  // evaluated stay reusable). on_text receives printable text as it is decided. Throws
  // std::length_error when the prompt does not fit the context.
  GenerateStats generate(const InputRows& prompt, const SamplingParams& sampling, const TextSink& on_text,
                         const std::atomic<bool>* cancel = nullptr,
                         std::unique_ptr<LogitsConstraint> constraint = nullptr);
  GenerateStats generate(std::span<const int32_t> prompt, const SamplingParams& sampling, const TextSink& on_text,
                         const std::atomic<bool>* cancel = nullptr) {
    return generate(InputRows(prompt), sampling, on_text, cancel);
  }

  // Speculative decoding for the following requests (docs/speculative.md): ngram and auto use prompt
  // lookup, draft and self the given model drafter (which must outlive the session). Throws
  // std::invalid_argument for draft or self without one.
  void set_speculation(SpecOptions opts, Drafter* model_drafter = nullptr);
  const SpecOptions& speculation() const { return spec_; }
  // Speculation statistics of the last request (zero when it did not speculate).
  const SpecStats& spec_stats() const { return spec_stats_; }

  // Keys (InputRows::keys) of the rows the context holds, in order.
  const std::vector<uint64_t>& keys() const { return keys_; }
  Context& context() { return ctx_; }
  const Tokenizer& tokenizer() const { return tok_; }
  int n_ctx() const { return ctx_.params().n_ctx; }
  void reset();

 private:
  // Makes the context hold exactly `prompt` and leaves its last logits ready, unless *cancel stops it
  // between two passes (then *complete is false and the context holds a prefix of it). Returns reused rows.
  int prefill(const InputRows& prompt, const std::atomic<bool>* cancel, bool* complete);

  Drafter* drafter_for(SpecMode m);

  const Tokenizer& tok_;
  Context ctx_;
  SpecOptions spec_;
  Drafter* model_drafter_ = nullptr;
  NgramDrafter ngram_;
  SpecStats spec_stats_;
  std::vector<uint64_t> keys_;  // what the context has evaluated, in order
};

}  // namespace g3n
