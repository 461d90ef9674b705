#include "runtime/context.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "model/gemma3n_forward.h"
#include "model/model.h"
#include "runtime/thread_pool.h"

namespace g3n {
namespace {
ContextParams normalized(ContextParams p) {
  if (p.n_ctx <= 0) throw std::invalid_argument("context length must be positive");
  if (p.n_batch <= 0) p.n_batch = 512;
  p.n_batch = std::min(p.n_batch, p.n_ctx);
  if (p.n_threads <= 0) p.n_threads = default_thread_count();
  return p;
}
}  // namespace

Context::Context(const Model& model, ContextParams params)
    : model_(model),
      params_(normalized(params)),
      cache_(model.config(), params_.n_ctx, params_.n_batch, params_.kv_type),
      pool_(std::make_unique<ThreadPool>(params_.n_threads)),
      buffers_(std::make_unique<ForwardBuffers>(model, params_.n_batch, params_.n_ctx, params_.n_threads)) {}

Context::~Context() = default;

int Context::n_vocab() const { return model_.config().n_vocab; }

void Context::eval(std::span<const int32_t> tokens, int64_t pos0, LogitsFor which) {
  if (pos0 != n_past_ && !can_resume_at(pos0))
    throw std::invalid_argument("cannot evaluate at position " + std::to_string(pos0) + ": the sequence has " + std::to_string(n_past_) + " positions");
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (pos0 + n > params_.n_ctx)
    throw std::length_error(std::to_string(pos0 + n) + " tokens exceed the context length " + std::to_string(params_.n_ctx));
  n_past_ = pos0;
  const int V = n_vocab();
  const int64_t rows = which == LogitsFor::All ? n : (which == LogitsFor::Last && n > 0 ? 1 : 0);
  logits_.resize(static_cast<size_t>(rows) * V);
  n_rows_ = 0;
  for (int64_t start = 0; start < n; start += params_.n_batch) {
    const int64_t len = std::min<int64_t>(params_.n_batch, n - start);
    want_.assign(len, which == LogitsFor::All ? 1 : 0);
    if (which == LogitsFor::Last && start + len == n) want_[len - 1] = 1;
    gemma3n_forward(model_, tokens.subspan(start, len), pos0 + start, want_, cache_, *buffers_, *pool_,
                    params_.exact ? MatmulMode::Exact : MatmulMode::Fast, logits_.data() + static_cast<size_t>(n_rows_) * V);
    for (uint8_t w : want_) n_rows_ += w;
    n_past_ = pos0 + start + len;
  }
}

std::span<const float> Context::logits(int i) const {
  if (i < 0 || i >= n_rows_) throw std::out_of_range("no logits row " + std::to_string(i));
  return {logits_.data() + static_cast<size_t>(i) * n_vocab(), static_cast<size_t>(n_vocab())};
}

void Context::reset() {
  n_past_ = 0;
  n_rows_ = 0;
  cache_.clear();
}

}  // namespace g3n
