// One sequence's inference state over a shared Model: KV cache, activation buffers and thread pool.
// This is the library API the CLI and server use: evaluate a batch of tokens at positions, read logits.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "runtime/kv_cache.h"

namespace g3n {

class Model;
class ThreadPool;
struct ForwardBuffers;

struct ContextParams {
  int n_ctx = 4096;    // maximum positions
  int n_batch = 512;   // tokens per forward pass; longer evals are split
  KvType kv_type = KvType::F32;
  int n_threads = 0;   // 0: physical cores
  // Exact arithmetic (weights decoded to f32, f32 activations: the reference numbers) instead of the
  // fast path (activations quantized to int8 per block for quantized weights, as llama.cpp does).
  bool exact = false;
};

enum class LogitsFor { None, Last, All };

class Context {
 public:
  Context(const Model& model, ContextParams params);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const Model& model() const { return model_; }
  const ContextParams& params() const { return params_; }
  int n_vocab() const;
  // Positions evaluated so far (the next token goes at this position).
  int64_t n_past() const { return n_past_; }

  // Evaluates tokens at positions pos0, pos0+1, ... . pos0 may be below n_past (the sequence is cut
  // back there first, e.g. to reuse a shared prompt prefix) if can_resume_at(pos0); otherwise it must
  // equal n_past. Logits of the requested rows are available afterwards via logits(i).
  void eval(std::span<const int32_t> tokens, int64_t pos0, LogitsFor which = LogitsFor::Last);
  // Convenience: continue at n_past.
  void eval(std::span<const int32_t> tokens, LogitsFor which = LogitsFor::Last) { eval(tokens, n_past_, which); }

  // Number of logit rows from the last eval and row i (n_vocab floats).
  int n_logit_rows() const { return n_rows_; }
  std::span<const float> logits(int i) const;
  std::span<const float> last_logits() const { return logits(n_rows_ - 1); }

  bool can_resume_at(int64_t pos) const { return pos == n_past_ || (pos < n_past_ && cache_.can_resume_at(pos)); }
  void reset();  // forget the sequence
  uint64_t kv_bytes() const { return cache_.bytes(); }

 private:
  const Model& model_;
  ContextParams params_;
  KvCache cache_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<ForwardBuffers> buffers_;
  std::vector<float> logits_;
  std::vector<uint8_t> want_;
  int n_rows_ = 0;
  int64_t n_past_ = 0;
};

}  // namespace g3n
