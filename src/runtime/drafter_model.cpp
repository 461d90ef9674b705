#include "runtime/drafter_model.h"

#include <stdexcept>
#include <string>

#include "model/model.h"
#include "sampling/sampler.h"

namespace g3n {

ModelDrafter::ModelDrafter(const Model& draft, ContextParams params, const char* kind) : ctx_(draft, params), kind_(kind) {}

void ModelDrafter::reset() {
  ctx_.reset();
  keys_.clear();
}

void ModelDrafter::check_prompt(const InputRows& prompt) const {
  if (prompt.has_vectors() && prompt.width() != ctx_.model().config().n_embd)
    throw std::invalid_argument("the draft model's width (" + std::to_string(ctx_.model().config().n_embd) +
                                ") differs from the prompt's image/audio rows (" + std::to_string(prompt.width()) +
                                "): it cannot draft for this prompt (use --spec ngram or self)");
}

void ModelDrafter::catch_up(const InputRows& history) {
  // Keep what the draft's sequence shares with the history (never all of it: the last row's logits are
  // needed) and evaluate the rest.
  const size_t common = reusable_prefix(keys_, history.keys(), ctx_.sequence());
  keys_.resize(common);
  ctx_.eval(history.view().subspan(common), static_cast<int64_t>(common), LogitsFor::Last);
  keys_.assign(history.keys().begin(), history.keys().end());
}

void ModelDrafter::prefill(const InputRows& prompt) {
  if (!prompt.empty() && static_cast<int64_t>(prompt.size()) < ctx_.params().n_ctx) catch_up(prompt);
}

void ModelDrafter::propose(const InputRows& history, int max, std::vector<int32_t>& out) {
  if (max <= 0 || history.empty()) return;
  const int n_ctx = ctx_.params().n_ctx;
  if (static_cast<int64_t>(history.size()) + max > n_ctx) return;  // the draft's context is full: no guess
  catch_up(history);
  for (int k = 0; k < max; ++k) {
    const int32_t d = sampling::argmax(ctx_.last_logits());
    if (d < 0) break;
    out.push_back(d);
    if (k + 1 == max) break;  // the last guess needs no evaluation
    ctx_.eval(std::span<const int32_t>(&d, 1), LogitsFor::Last);
    keys_.push_back(token_key(d));
  }
}

void check_draft_vocabulary(const Model& target, const Model& draft) {
  if (target.config().n_vocab != draft.config().n_vocab)
    throw std::invalid_argument("the draft model's vocabulary has " + std::to_string(draft.config().n_vocab) +
                                " rows, the model's " + std::to_string(target.config().n_vocab) + ": it cannot draft for it");
  const GgufValue* a = target.file().find("tokenizer.ggml.tokens");
  const GgufValue* b = draft.file().find("tokenizer.ggml.tokens");
  if (!a || !b || a->elem_type() != GgufValueType::STRING || b->elem_type() != GgufValueType::STRING ||
      a->array.size() != b->array.size())
    throw std::invalid_argument("the draft model's token list differs from the model's: it cannot draft for it");
  for (size_t i = 0; i < a->array.size(); ++i)
    if (a->array.string_at(i) != b->array.string_at(i))
      throw std::invalid_argument("the draft model's token " + std::to_string(i) + " differs from the model's: it cannot draft for it");
}

}  // namespace g3n
