// One sequence's inference state over a shared Model: the simple library API the CLI uses — evaluate
// a batch of tokens at positions, read logits. (The server batches many sequences with BatchEngine.)
#pragma once
#include <cstdint>
#include <memory>
#include <span>

#include "runtime/batch_engine.h"

namespace g3n {

class Model;

struct ContextParams {
  int n_ctx = 4096;    // maximum positions
  int n_batch = kDefaultBatchRows;  // tokens per forward pass; longer evals are split (runtime/batch_size.h)
  KvType kv_type = KvType::F32;
  int n_threads = 0;   // 0: physical cores
  // Exact arithmetic (weights decoded to f32, f32 activations: the reference numbers) instead of the
  // fast path (activations quantized to int8 per block for quantized weights, as llama.cpp does).
  bool exact = false;
  bool prefill_shortcut = true;  // docs/model.md §4.6 (exact); off only to measure what it saves
};

class Context {
 public:
  Context(const Model& model, ContextParams params);

  const Model& model() const { return engine_.model(); }
  const ContextParams& params() const { return params_; }
  int n_vocab() const { return engine_.n_vocab(); }
  // Positions evaluated so far (the next token goes at this position).
  int64_t n_past() const { return seq_->n_past(); }

  // Evaluates tokens at positions pos0, pos0+1, ... . pos0 may be below n_past (the sequence is cut
  // back there first, e.g. to reuse a shared prompt prefix) if can_resume_at(pos0); otherwise it must
  // equal n_past. Logits of the requested rows are available afterwards via logits(i).
  // Rows may be token ids or n_embd-wide vectors (RowsView); a token span or vector converts to it.
  // `hidden` selects rows whose final hidden vectors (the LM head's input) are kept, read via hidden(i).
  void eval(RowsView rows, int64_t pos0, LogitsFor which = LogitsFor::Last, LogitsFor hidden = LogitsFor::None);
  // Convenience: continue at n_past.
  void eval(RowsView rows, LogitsFor which = LogitsFor::Last, LogitsFor hidden = LogitsFor::None) {
    eval(rows, n_past(), which, hidden);
  }

  // Number of logit rows from the last eval and row i (n_vocab floats).
  int n_logit_rows() const { return seq_->n_logit_rows(); }
  std::span<const float> logits(int i) const { return seq_->logits(i); }
  std::span<const float> last_logits() const { return seq_->last_logits(); }
  // Hidden rows from the last eval (n_embd floats each: after the AltUp un-embedding and the final RMSNorm).
  int n_hidden_rows() const { return seq_->n_hidden_rows(); }
  std::span<const float> hidden(int i) const { return seq_->hidden(i); }

  bool can_resume_at(int64_t pos) const { return seq_->can_resume_at(pos); }
  const Sequence& sequence() const { return *seq_; }
  Sequence& sequence() { return *seq_; }
  void reset() { seq_->reset(); }  // forget the sequence
  void truncate(int64_t n) { seq_->truncate(n); }  // keep the first n positions (Sequence::truncate)
  uint64_t kv_bytes() const { return seq_->kv_bytes(); }

 private:
  ContextParams params_;
  BatchEngine engine_;
  std::unique_ptr<Sequence> seq_;
};

}  // namespace g3n
