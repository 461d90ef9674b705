// Drafting with a model: a separate Gemma 3n file with the target's vocabulary (e.g. E2B for E4B), or a
// MatFormer slice of the target's own file (self-speculation: Model::load(path, "e2b", &target) maps the
// same file, so the weights' pages, and the target's packed matrices, are shared; the draft owns only its
// KV cache and a few compacted slices). The draft runs its own sequence over the same rows (vector rows
// included) and proposes its greedy choices; after a verification it keeps the prefix it shares with the
// target and re-evaluates from there.
#pragma once
#include <cstdint>
#include <memory>

#include "runtime/context.h"
#include "runtime/drafter.h"

namespace g3n {

class Model;

class ModelDrafter final : public Drafter {
 public:
  // `draft` must outlive the drafter. kind names it in stats ("draft" or "self").
  ModelDrafter(const Model& draft, ContextParams params, const char* kind);
  void propose(const InputRows& history, int max, std::vector<int32_t>& out) override;
  void check_prompt(const InputRows& prompt) const override;
  void prefill(const InputRows& prompt) override;
  bool runs_model() const override { return true; }
  const char* name() const override { return kind_; }
  // Forget the draft's sequence (the next proposal re-evaluates the history).
  void reset();
  const Model& model() const { return ctx_.model(); }
  int n_ctx() const { return ctx_.params().n_ctx; }
  uint64_t kv_bytes() const { return ctx_.kv_bytes(); }
  int64_t n_past() const { return ctx_.n_past(); }  // rows the draft's sequence holds

 private:
  // Evaluates the rows of `history` the draft's sequence does not hold yet.
  void catch_up(const InputRows& history);

  Context ctx_;
  std::vector<uint64_t> keys_;  // the rows the draft's sequence holds
  const char* kind_;
};

// Throws std::invalid_argument unless `draft` can draft for `target`: the same vocabulary (token strings
// of the GGUF metadata; the same row count of the token table).
void check_draft_vocabulary(const Model& target, const Model& draft);

}  // namespace g3n
