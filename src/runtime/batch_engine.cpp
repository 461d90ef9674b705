#include "runtime/batch_engine.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "model/gemma3n_forward.h"
#include "model/model.h"
#include "base/thread_pool.h"

namespace g3n {
namespace {
EngineParams normalized(EngineParams p) {
  if (p.n_ctx <= 0) throw std::invalid_argument("context length must be positive");
  if (p.n_batch <= 0) p.n_batch = 512;
  p.n_batch = std::min(p.n_batch, p.n_ctx);
  if (p.n_threads <= 0) p.n_threads = default_thread_count();
  return p;
}
}  // namespace

void Sequence::truncate(int64_t n) {
  if (!can_resume_at(n))
    throw std::invalid_argument("cannot truncate to position " + std::to_string(n) + ": the sequence has " + std::to_string(n_past_) + " positions");
  n_past_ = n;
}

void Sequence::reset() {
  n_past_ = 0;
  n_rows_ = 0;
  cache_.clear();
}

void Sequence::copy_from(const Sequence& other) {
  if (&other == this) return;
  if (other.n_ctx() != n_ctx() || other.cache_.type() != cache_.type() || other.n_vocab_ != n_vocab_)
    throw std::invalid_argument("copy_from: the sequences differ in context length, KV type or vocabulary");
  cache_ = other.cache_;  // same shapes: the vectors are overwritten in place, nothing is allocated
  n_past_ = other.n_past_;
  n_rows_ = other.n_rows_;
  logits_.assign(other.logits_.begin(), other.logits_.begin() + static_cast<std::ptrdiff_t>(other.n_rows_) * n_vocab_);
  n_hidden_rows_ = 0;
}

std::span<const float> Sequence::logits(int i) const {
  if (i < 0 || i >= n_rows_) throw std::out_of_range("no logits row " + std::to_string(i));
  return {logits_.data() + static_cast<size_t>(i) * n_vocab_, static_cast<size_t>(n_vocab_)};
}

std::span<const float> Sequence::hidden(int i) const {
  if (i < 0 || i >= n_hidden_rows_) throw std::out_of_range("no hidden row " + std::to_string(i));
  return {hidden_.data() + static_cast<size_t>(i) * n_embd_, static_cast<size_t>(n_embd_)};
}

size_t reusable_prefix(std::span<const uint64_t> held, std::span<const uint64_t> prompt, const Sequence& seq) {
  if (prompt.empty()) return 0;
  const size_t common = std::min(common_prefix(held, prompt), prompt.size() - 1);
  return seq.can_resume_at(static_cast<int64_t>(common)) ? common : 0;
}

BatchEngine::BatchEngine(const Model& model, EngineParams params)
    : model_(model),
      params_(normalized(params)),
      pool_(std::make_unique<ThreadPool>(params_.n_threads)),
      buffers_(std::make_unique<ForwardBuffers>(model, params_.n_batch, params_.n_ctx, params_.n_threads)) {}

BatchEngine::~BatchEngine() = default;

int BatchEngine::n_vocab() const { return model_.config().n_vocab; }

std::unique_ptr<Sequence> BatchEngine::new_sequence(int n_ctx) const {
  if (n_ctx <= 0) n_ctx = params_.n_ctx;
  if (n_ctx > params_.n_ctx) throw std::invalid_argument("sequence context " + std::to_string(n_ctx) + " exceeds the engine's " + std::to_string(params_.n_ctx));
  auto seq = std::unique_ptr<Sequence>(new Sequence(model_.config(), n_ctx, params_.n_batch, params_.kv_type));
  seq->n_vocab_ = n_vocab();
  seq->n_embd_ = static_cast<int>(model_.config().n_embd);
  return seq;
}

void BatchEngine::eval(std::span<const SequenceWork> work) {
  const int V = n_vocab();
  bool any_vectors = false;
  bool any_hidden = false;
  const int64_t D = model_.config().n_embd;
  // Validate everything first, so a bad request cannot leave another sequence half-advanced.
  for (size_t i = 0; i < work.size(); ++i) {
    const SequenceWork& w = work[i];
    if (!w.seq) throw std::invalid_argument("work item without a sequence");
    for (size_t j = 0; j < i; ++j)
      if (work[j].seq == w.seq) throw std::invalid_argument("a sequence appears twice in one evaluation");
    if (w.pos0 != w.seq->n_past_ && !w.seq->can_resume_at(w.pos0))
      throw std::invalid_argument("cannot evaluate at position " + std::to_string(w.pos0) + ": the sequence has " + std::to_string(w.seq->n_past_) + " positions");
    if (w.pos0 + static_cast<int64_t>(w.rows.size()) > w.seq->n_ctx())
      throw std::length_error(std::to_string(w.pos0 + w.rows.size()) + " tokens exceed the context length " + std::to_string(w.seq->n_ctx()));
    if (!w.rows.vectors.empty()) {
      if (w.rows.vectors.size() != w.rows.size()) throw std::invalid_argument("rows: vector list and token list differ in length");
      if (w.rows.width != model_.config().n_embd)
        throw std::invalid_argument("embedding rows have " + std::to_string(w.rows.width) + " floats; the model's n_embd is " +
                                    std::to_string(model_.config().n_embd));
    }
    for (size_t k = 0; k < w.rows.size(); ++k) {
      const int32_t id = w.rows.tokens[k];
      if (!w.rows.vector(k) && (id < 0 || id >= V))
        throw std::out_of_range("token id " + std::to_string(id) + " outside the vocabulary (0.." + std::to_string(V - 1) + ")");
    }
    any_vectors = any_vectors || !w.rows.vectors.empty();
  }
  for (const SequenceWork& w : work) {
    Sequence& s = *w.seq;
    const int64_t n = static_cast<int64_t>(w.rows.size());
    s.n_rows_ = 0;
    s.n_hidden_rows_ = 0;
    const int64_t rows = w.which == LogitsFor::All ? n : (w.which == LogitsFor::Last && n > 0 ? 1 : 0);
    s.logits_.resize(static_cast<size_t>(rows) * V);
    const int64_t hidden_rows = w.hidden == LogitsFor::All ? n : (w.hidden == LogitsFor::Last && n > 0 ? 1 : 0);
    s.hidden_.resize(static_cast<size_t>(hidden_rows) * s.n_embd_);
    any_hidden = any_hidden || hidden_rows > 0;
    // Starting over: what the cache held is rewritten from position 0, so its high-water mark starts again
    // (kept, it would refuse rollbacks the new rows allow: a speculative round after /clear, a draft's catch-up).
    if (w.pos0 == 0) s.cache_.clear();
    s.n_past_ = w.pos0;
  }
  // Pack rows item by item into passes of n_batch rows.
  size_t item = 0;
  int64_t offset = 0;  // next token of work[item]
  while (item < work.size()) {
    tokens_.clear();
    vectors_.clear();
    positions_.clear();
    caches_.clear();
    want_.clear();
    dest_.clear();
    want_hidden_.clear();
    hidden_dest_.clear();
    while (item < work.size() && static_cast<int>(tokens_.size()) < params_.n_batch) {
      const SequenceWork& w = work[item];
      const int64_t n = static_cast<int64_t>(w.rows.size());
      const int64_t take = std::min<int64_t>(n - offset, params_.n_batch - static_cast<int64_t>(tokens_.size()));
      for (int64_t k = offset; k < offset + take; ++k) {
        tokens_.push_back(w.rows.tokens[k]);
        if (any_vectors) vectors_.push_back(w.rows.vector(k));
        positions_.push_back(w.pos0 + k);
        caches_.push_back(&w.seq->cache_);
        const bool want = w.which == LogitsFor::All || (w.which == LogitsFor::Last && k == n - 1);
        want_.push_back(want);
        if (want) dest_.push_back({w.seq, w.which == LogitsFor::All ? static_cast<int>(k) : 0});
        if (any_hidden) {
          const bool keep = w.hidden == LogitsFor::All || (w.hidden == LogitsFor::Last && k == n - 1);
          want_hidden_.push_back(keep);
          if (keep) hidden_dest_.push_back({w.seq, w.hidden == LogitsFor::All ? static_cast<int>(k) : 0});
        }
      }
      offset += take;
      if (offset >= n) {
        ++item;
        offset = 0;
      }
    }
    if (tokens_.empty()) break;
    staged_.resize(dest_.size() * static_cast<size_t>(V));
    staged_hidden_.resize(hidden_dest_.size() * static_cast<size_t>(D));
    ForwardBatch batch{tokens_, vectors_, positions_, caches_, want_, want_hidden_, params_.prefill_shortcut};
    gemma3n_forward(model_, batch, *buffers_, *pool_, params_.exact ? MatmulMode::Exact : MatmulMode::Fast, staged_.data(),
                    staged_hidden_.data());
    for (size_t r = 0; r < hidden_dest_.size(); ++r) {
      auto [seq, row] = hidden_dest_[r];
      std::memcpy(seq->hidden_.data() + static_cast<size_t>(row) * D, staged_hidden_.data() + r * D, sizeof(float) * D);
      seq->n_hidden_rows_ = std::max(seq->n_hidden_rows_, row + 1);
    }
    for (size_t r = 0; r < dest_.size(); ++r) {
      auto [seq, row] = dest_[r];
      std::memcpy(seq->logits_.data() + static_cast<size_t>(row) * V, staged_.data() + r * V, sizeof(float) * V);
      seq->n_rows_ = std::max(seq->n_rows_, row + 1);
    }
    // Sequences advance by the rows this pass held.
    for (size_t r = 0; r < tokens_.size(); ++r) {
      Sequence* seq = nullptr;
      for (const SequenceWork& w : work)
        if (&w.seq->cache_ == caches_[r]) { seq = w.seq; break; }
      seq->n_past_ = std::max(seq->n_past_, positions_[r] + 1);
    }
  }
}

}  // namespace g3n
