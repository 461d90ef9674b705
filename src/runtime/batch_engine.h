// Continuous batching: several sequences (each with its own KV cache) evaluated together, their new
// tokens packed into shared forward passes. The server decodes one token for every active sequence
// per step this way; Context is the one-sequence case. A row's result never depends on what else
// shares its batch (per-row kernels with a fixed summation order), so batching changes no output.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/matmul.h"
#include "model/kv_cache.h"
#include "runtime/batch_size.h"
#include "runtime/input_rows.h"

namespace g3n {

class Model;
class ThreadPool;
struct ForwardBuffers;

struct EngineParams {
  int n_ctx = 4096;    // longest sequence (positions); sequences may be created shorter
  int n_batch = kDefaultBatchRows;  // rows per forward pass (as ContextParams; runtime/batch_size.h)
  KvType kv_type = KvType::F32;
  int n_threads = 0;   // 0: physical cores
  bool exact = false;  // see ContextParams::exact
  bool prefill_shortcut = true;  // docs/model.md §4.6; turned off only to measure what it saves
};

enum class LogitsFor { None, Last, All };

// One sequence's state: its KV cache and how many positions it holds.
class Sequence {
 public:
  int64_t n_past() const { return n_past_; }
  int n_ctx() const { return cache_.n_ctx(); }
  // Whether evaluation may continue at pos (== n_past, or a shorter prefix the sliding rings still hold).
  bool can_resume_at(int64_t pos) const { return pos == n_past_ || (pos < n_past_ && cache_.can_resume_at(pos)); }
  void reset();
  // Becomes a copy of `other` (a sequence of the same engine and context length): its KV cache, positions
  // and last logits. Sequences that share a prompt (a request's n > 1 choices) evaluate it once this way.
  void copy_from(const Sequence& other);
  // Rolls the sequence back to its first n positions (speculative decoding drops rejected draft rows):
  // positions >= n are forgotten and the next evaluation continues at n. Requires can_resume_at(n); the
  // rings keep every key the next rows need because they hold window + n_batch - 1 slots (docs/speculative.md).
  void truncate(int64_t n);
  // The cache itself (read-only: tests compare KV states).
  const KvCache& kv_cache() const { return cache_; }
  // Logit rows requested by the last evaluation of this sequence.
  int n_logit_rows() const { return n_rows_; }
  std::span<const float> logits(int i) const;
  std::span<const float> last_logits() const { return logits(n_rows_ - 1); }
  // Final hidden rows (the LM head's input, n_embd floats) requested by the last evaluation (SequenceWork::hidden).
  int n_hidden_rows() const { return n_hidden_rows_; }
  std::span<const float> hidden(int i) const;
  uint64_t kv_bytes() const { return cache_.bytes(); }

 private:
  friend class BatchEngine;
  Sequence(const Gemma3nConfig& c, int n_ctx, int n_batch, KvType type) : cache_(c, n_ctx, n_batch, type) {}
  KvCache cache_;
  int64_t n_past_ = 0;
  int n_vocab_ = 0;
  int n_rows_ = 0;
  std::vector<float> logits_;
  int n_embd_ = 0;
  int n_hidden_rows_ = 0;
  std::vector<float> hidden_;
};

// How many leading rows of `prompt` a sequence that holds `held` (row keys, InputRows::keys) can keep:
// their common prefix, never the whole prompt (the last row's logits choose the first new token), and
// only where the sequence can resume there (the sliding rings may have moved on); else 0.
size_t reusable_prefix(std::span<const uint64_t> held, std::span<const uint64_t> prompt, const Sequence& seq);

// New rows for one sequence (token ids or n_embd-wide vectors) at positions pos0, pos0+1, ...
struct SequenceWork {
  Sequence* seq = nullptr;
  RowsView rows;
  int64_t pos0 = 0;
  LogitsFor which = LogitsFor::Last;
  // Which rows' final hidden vectors to keep (Sequence::hidden); an embedding is LogitsFor::None here and All for hidden.
  LogitsFor hidden = LogitsFor::None;
};

class BatchEngine {
 public:
  BatchEngine(const Model& model, EngineParams params);
  ~BatchEngine();
  BatchEngine(const BatchEngine&) = delete;
  BatchEngine& operator=(const BatchEngine&) = delete;

  const Model& model() const { return model_; }
  const EngineParams& params() const { return params_; }
  int n_vocab() const;

  // A fresh sequence of up to n_ctx positions (0: the engine's n_ctx).
  std::unique_ptr<Sequence> new_sequence(int n_ctx = 0) const;

  // Evaluates all work items, packing their rows into forward passes of up to n_batch rows. Each item
  // continues its sequence at pos0 (== n_past, or a resumable shorter prefix). Checked up front: a bad
  // item (position, context overflow, token id, vector width, a sequence listed twice) throws before
  // anything runs.
  void eval(std::span<const SequenceWork> work);

 private:
  const Model& model_;
  EngineParams params_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ForwardBuffers> buffers_;
  // Per-pass row arrays and wanted-logit staging, reused across calls.
  std::vector<int32_t> tokens_;
  std::vector<const float*> vectors_;
  std::vector<int64_t> positions_;
  std::vector<KvCache*> caches_;
  std::vector<uint8_t> want_;
  std::vector<std::pair<Sequence*, int>> dest_;  // where each wanted row's logits go
  std::vector<float> staged_;
  std::vector<uint8_t> want_hidden_;
  std::vector<std::pair<Sequence*, int>> hidden_dest_;
  std::vector<float> staged_hidden_;
};

}  // namespace g3n
