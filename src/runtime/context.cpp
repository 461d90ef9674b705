#include "runtime/context.h"

#include "model/model.h"

namespace g3n {
namespace {
EngineParams engine_params(const ContextParams& p) {
  EngineParams e;
  e.n_ctx = p.n_ctx;
  e.n_batch = p.n_batch;
  e.kv_type = p.kv_type;
  e.n_threads = p.n_threads;
  e.exact = p.exact;
  e.prefill_shortcut = p.prefill_shortcut;
  return e;
}
}  // namespace

Context::Context(const Model& model, ContextParams params)
    : params_(params), engine_(model, engine_params(params)), seq_(engine_.new_sequence()) {
  params_.n_ctx = engine_.params().n_ctx;
  params_.n_batch = engine_.params().n_batch;
  params_.n_threads = engine_.params().n_threads;
}

void Context::eval(RowsView rows, int64_t pos0, LogitsFor which, LogitsFor hidden) {
  const SequenceWork w{seq_.get(), rows, pos0, which, hidden};
  engine_.eval(std::span<const SequenceWork>(&w, 1));
}

}  // namespace g3n
