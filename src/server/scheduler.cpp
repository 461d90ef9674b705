#include "server/scheduler.h"

#include <algorithm>
#include <stdexcept>

#include "base/clock.h"
#include "model/model.h"
#include "runtime/drafter_model.h"
#include "runtime/drafter_ngram.h"
#include "runtime/memory_estimate.h"
#include "runtime/parameters.h"

namespace g3n::server {
namespace {
using Clock = std::chrono::steady_clock;

// A slot's sequence can be reused when the context length matches (the engine fixes the rest).
bool same_params(const ContextParams& a, const ContextParams& b) { return a.n_ctx == b.n_ctx; }

// Throws unless a sequence of `model` with params p (KV cache and buffers) fits the available memory; `what`
// names it in the message.
void check_fits(const Model& model, const ContextParams& p, const std::string& what) {
  const MemoryEstimate est = estimate_memory(model, p);
  if (auto avail = available_memory_bytes(); avail && est.kv_cache + est.buffers > *avail)
    throw std::runtime_error("not enough memory for " + what + "num_ctx " + std::to_string(p.n_ctx) + ": needs about " +
                             std::to_string((est.kv_cache + est.buffers) >> 20) + " MiB");
}
}  // namespace

// ---- Job ----

void Job::push_text(std::string_view text) {
  if (text.empty()) return;
  {
    std::lock_guard lk(mu_);
    text_.append(text);
  }
  cv_.notify_all();
}

void Job::push(std::string_view text, std::span<const LogprobStep> logprobs) {
  if (text.empty() && logprobs.empty()) return;
  {
    std::lock_guard lk(mu_);
    text_.append(text);
    logprobs_.insert(logprobs_.end(), logprobs.begin(), logprobs.end());
  }
  cv_.notify_all();
}

void Job::finish(GenerateStats stats, std::string error) {
  {
    std::lock_guard lk(mu_);
    stats_ = std::move(stats);
    error_ = std::move(error);
    finished_ = true;
  }
  cv_.notify_all();
}

bool Job::wait(std::string& text, std::chrono::milliseconds timeout) { return wait(text, nullptr, timeout); }

bool Job::wait(std::string& text, std::vector<LogprobStep>* logprobs, std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, timeout, [&] { return finished_ || !text_.empty() || (logprobs && !logprobs_.empty()); });
  text = std::move(text_);
  text_.clear();
  if (logprobs) {
    *logprobs = std::move(logprobs_);
    logprobs_.clear();
  }
  return finished_;
}

// ---- Scheduler ----

struct Scheduler::Slot {
  std::unique_ptr<Sequence> seq;
  ContextParams params;
  std::vector<uint64_t> keys;  // the rows seq has evaluated, in order (InputRows::keys)
  std::shared_ptr<Job> job;
  std::optional<Generator> gen;
  int cached = 0;              // prompt rows reused from the slot's previous request
  double prompt_s = 0;
  int32_t pending = -1;
  uint64_t last_used = 0;
  size_t logprobs_sent = 0;    // of the generator's logprobs, how many went to the job
  // Speculation: the slot's drafter and decoder, this round's rows (pending, then the drafts) and whether
  // `pending` was already chosen by the last verification (then no new sampling is needed).
  NgramDrafter ngram;
  std::unique_ptr<ModelDrafter> model_drafter;
  std::optional<SpeculativeDecoder> spec;
  std::vector<int32_t> rows;
  bool ready = false;
  bool begun = false;  // begin() finished: the slot generates (admitted slots wait for theirs)
};

Scheduler::Scheduler(const Model& model, const Tokenizer& tok, const TokenTexts& texts, SchedulerConfig cfg)
    : model_(model), tok_(tok), texts_(texts), cfg_(cfg) {
  cfg_.num_parallel = std::max(1, cfg_.num_parallel);
  cfg_.max_queue = std::max(0, cfg_.max_queue);
  for (int i = 0; i < cfg_.num_parallel; ++i) slots_.push_back(std::make_unique<Slot>());
  worker_ = std::thread([this] { run(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

bool Scheduler::submit(std::shared_ptr<Job> job) {
  {
    std::lock_guard lk(mu_);
    if (stop_) return false;
    // Jobs a free slot takes at once never count against the queue's bound.
    int free_slots = cfg_.num_parallel - n_active_.load();
    if (static_cast<int>(queue_.size()) >= cfg_.max_queue + std::max(0, free_slots)) return false;
    queue_.push_back(std::move(job));
    n_queued_.store(static_cast<int>(queue_.size()));
  }
  cv_.notify_all();
  return true;
}

Scheduler::Slot* Scheduler::pick_slot(const Job& job) {
  Slot* best = nullptr;
  size_t best_common = 0;
  for (auto& sp : slots_) {
    Slot& s = *sp;
    if (s.job) continue;
    size_t common = 0;
    // An embedding job starts its sequence over whatever the prefix: it takes the least recently used slot.
    if (s.seq && !job.embed && same_params(s.params, job.ctx_params)) common = common_prefix(s.keys, job.prompt.keys());
    // Longest shared prefix first; among equals the least recently used, so other conversations'
    // caches survive longer.
    if (!best || common > best_common || (common == best_common && s.last_used < best->last_used)) {
      best = &s;
      best_common = common;
    }
  }
  return best;
}

void Scheduler::run() {
  for (;;) {
    std::vector<Slot*> admitted;
    std::vector<std::shared_ptr<Job>> dropped;
    bool stopping = false;
    {
      std::unique_lock lk(mu_);
      const auto any_active = [&] {
        return std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->job != nullptr; });
      };
      const auto any_free = [&] {
        return std::any_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->job == nullptr; });
      };
      cv_.wait(lk, [&] { return stop_ || any_active() || (!queue_.empty() && any_free()); });
      stopping = stop_;
      if (stop_) {
        for (auto& j : queue_) dropped.push_back(j);
        queue_.clear();
      } else {
        // Requests whose clients left while queued are dropped without touching a slot.
        for (auto it = queue_.begin(); it != queue_.end();) {
          if ((*it)->cancel.load()) {
            dropped.push_back(*it);
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
        while (!queue_.empty()) {
          Slot* s = pick_slot(*queue_.front());
          if (!s) break;
          s->job = std::move(queue_.front());
          queue_.pop_front();
          n_active_.fetch_add(1);
          admitted.push_back(s);
        }
      }
      n_queued_.store(static_cast<int>(queue_.size()));
    }
    for (auto& j : dropped) {
      GenerateStats st;
      st.done_reason = DoneReason::Cancel;
      j->finish(st, stopping ? "server shutting down" : "");
    }
    if (stopping) {
      for (auto& s : slots_)
        if (s->job) end(*s, DoneReason::Cancel, "server shutting down");
      return;
    }
    for (Slot* s : admitted) begin(*s);
    step_others(nullptr);
  }
}

double Scheduler::step_others(const Slot* except) {
  const Clock::time_point t0 = Clock::now();
  std::vector<Slot*> batch;
  for (auto& s : slots_)
    if (s.get() != except && s->job && s->begun && (s->ready || sample_next(*s))) batch.push_back(s.get());
  if (batch.empty()) return 0;
  decode_step(batch);
  return seconds_since(t0);
}

void Scheduler::begin(Slot& s) {
  Job& j = *s.job;
  const Clock::time_point t0 = Clock::now();
  double others_s = 0;  // the other slots' decode steps run between this prompt's chunks
  s.gen.reset();
  s.spec.reset();
  s.ready = false;
  s.begun = false;
  s.pending = -1;
  try {
    if (j.cancel.load()) {
      end(s, DoneReason::Cancel);
      return;
    }
    if (j.prompt.empty()) throw std::invalid_argument("empty prompt");
    if (!engine_) {
      // Every slot's sequence lives in one engine, so a decode step is one forward pass for all of them.
      // Its limits are the longest context a request may ask for and the first request's KV type/threads.
      EngineParams ep;
      ep.n_ctx = kMaxContext;
      ep.n_batch = EngineParams{}.n_batch;  // the pass size; a request's num_batch only lowers it
      ep.kv_type = j.ctx_params.kv_type;
      ep.n_threads = j.ctx_params.n_threads;
      ep.exact = j.ctx_params.exact;
      engine_ = std::make_unique<BatchEngine>(model_, ep);
    }
    if (j.ctx_params.n_ctx > kMaxContext) throw std::invalid_argument("num_ctx " + std::to_string(j.ctx_params.n_ctx) + " exceeds the maximum " + std::to_string(kMaxContext));
    if (!s.seq || !same_params(s.params, j.ctx_params)) {
      if (s.seq) kv_bytes_.fetch_sub(s.seq->kv_bytes());
      s.seq.reset();
      s.keys.clear();
      check_fits(model_, j.ctx_params, "");
      s.seq = engine_->new_sequence(j.ctx_params.n_ctx);
      s.params = j.ctx_params;
      kv_bytes_.fetch_add(s.seq->kv_bytes());
    }
    const int n_ctx = s.seq->n_ctx();
    if (j.embed) {
      embed_prompt(s, t0);
      return;
    }
    if (static_cast<int64_t>(j.prompt.size()) >= n_ctx)
      throw std::length_error("prompt of " + std::to_string(j.prompt.size()) + " tokens does not fit the context of " +
                              std::to_string(n_ctx));
    size_t common = reusable_prefix(s.keys, j.prompt.keys(), *s.seq);
    if (j.share_group != 0) common = borrow_sibling_prefix(s, common);
    if (common == 0) s.seq->reset();  // no usable prefix (e.g. the sliding rings wrapped): start clean
    s.keys.resize(common);
    // num_batch bounds the rows of one pass: longer prompts are read in chunks of at most that many. Between
    // chunks the other slots take a decode step (a long prompt does not stall their answers), and a client that
    // left ends the evaluation there (the rows read so far stay reusable).
    const size_t chunk = static_cast<size_t>(std::clamp(j.ctx_params.n_batch, 1, engine_->params().n_batch));
    for (size_t pos = common; pos < j.prompt.size(); pos += chunk) {
      if (pos > common) {
        others_s += step_others(&s);
        if (j.cancel.load()) {
          s.keys.assign(j.prompt.keys().begin(), j.prompt.keys().begin() + static_cast<std::ptrdiff_t>(pos));
          end(s, DoneReason::Cancel);
          return;
        }
      }
      const RowsView rows = j.prompt.view().subspan(pos, chunk);
      const bool last = pos + chunk >= j.prompt.size();
      const SequenceWork w{s.seq.get(), rows, static_cast<int64_t>(pos), last ? LogitsFor::Last : LogitsFor::None};
      engine_->eval(std::span<const SequenceWork>(&w, 1));
    }
    s.keys.assign(j.prompt.keys().begin(), j.prompt.keys().end());
    s.cached = static_cast<int>(common);

    std::unique_ptr<LogitsConstraint> constraint;
    if (j.schema) constraint = std::make_unique<JsonConstraint>(j.schema, texts_, tok_.stop_ids());
    else if (j.tools) constraint = std::make_unique<ToolCallConstraint>(j.tools, texts_, tok_.stop_ids());
    GeneratorOptions opts;
    opts.cancel = &j.cancel;
    opts.logprobs = j.logprobs;
    s.logprobs_sent = 0;
    s.gen.emplace(&tok_, j.sampling, std::move(constraint), opts, t0);
    s.gen->observe_prompt(j.prompt.tokens());
    if (Drafter* d = drafter_for(s)) {
      s.spec.emplace(*d, j.spec);
      s.spec->begin(j.prompt);
    }
    s.prompt_s = seconds_since(t0) - others_s;  // a draft model's prefill included
    s.begun = true;
  } catch (const std::exception& e) {
    fail(s, e.what());
  }
}

void Scheduler::fail(Slot& s, const std::string& error) {
  if (s.seq) s.seq->reset();
  s.keys.clear();
  end(s, DoneReason::Error, error);
}

Drafter* Scheduler::drafter_for(Slot& s) {
  const Job& j = *s.job;
  switch (j.spec.mode) {
    case SpecMode::None: return nullptr;
    case SpecMode::Auto:
    case SpecMode::Ngram: return &s.ngram;
    case SpecMode::Draft:
    case SpecMode::Self: break;
  }
  if (!j.draft_model)
    throw std::invalid_argument(std::string("spec ") + spec_mode_name(j.spec.mode) + " needs a draft model");
  const int n_ctx = s.seq->n_ctx();
  ModelDrafter* d = s.model_drafter.get();
  if (!d || &d->model() != j.draft_model || d->n_ctx() != n_ctx || std::string_view(d->name()) != spec_mode_name(j.spec.mode)) {
    if (d) kv_bytes_.fetch_sub(d->kv_bytes());
    s.model_drafter.reset();
    ContextParams dp = j.ctx_params;
    dp.n_ctx = n_ctx;
    // The engine's pass size, not the request's num_batch: plan() drafts up to the engine's, and the draft's
    // rings must hold a rejected round's rows to roll back (with num_batch 1 every rejection re-evaluated the
    // draft's whole history, one row per pass, on the thread all slots share).
    dp.n_batch = engine_->params().n_batch;
    check_fits(*j.draft_model, dp, "the draft model's sequence of ");
    s.model_drafter = std::make_unique<ModelDrafter>(*j.draft_model, dp, spec_mode_name(j.spec.mode));
    kv_bytes_.fetch_add(s.model_drafter->kv_bytes());
  }
  return s.model_drafter.get();
}

size_t Scheduler::borrow_sibling_prefix(Slot& s, size_t have) {
  const Job& j = *s.job;
  const std::span<const uint64_t> prompt = j.prompt.keys();
  for (auto& tp : slots_) {
    const Slot& t = *tp;
    if (&t == &s || !t.job || t.job->share_group != j.share_group || !t.gen || !t.seq || !same_params(t.params, j.ctx_params)) continue;
    // A sibling begun in this round holds exactly the prompt and its last logits: nothing is left to evaluate.
    const bool whole = t.keys.size() == prompt.size() && std::equal(t.keys.begin(), t.keys.end(), prompt.begin()) &&
                       t.seq->n_past() == static_cast<int64_t>(prompt.size()) && t.seq->n_logit_rows() > 0;
    const size_t rows = whole ? prompt.size() : reusable_prefix(t.keys, prompt, *t.seq);
    if (rows <= have) continue;
    s.seq->copy_from(*t.seq);
    s.keys = t.keys;
    return rows;
  }
  return have;
}

void Scheduler::push_logprobs(Slot& s, std::string_view text) {
  const std::vector<LogprobStep>& all = s.gen->stats().logprobs;
  const std::span<const LogprobStep> fresh = std::span<const LogprobStep>(all).subspan(std::min(s.logprobs_sent, all.size()));
  s.job->push(text, fresh);
  s.logprobs_sent = all.size();
}

void Scheduler::embed_prompt(Slot& s, Clock::time_point t0) {
  Job& j = *s.job;
  if (static_cast<int64_t>(j.prompt.size()) > s.seq->n_ctx())
    throw std::length_error("input of " + std::to_string(j.prompt.size()) + " tokens does not fit the context of " + std::to_string(s.seq->n_ctx()));
  // Every row's hidden vector is needed, so nothing cached is reused: the whole input runs from position 0.
  s.seq->reset();
  s.keys.clear();
  const int64_t D = model_.config().n_embd;
  std::vector<double> sum(static_cast<size_t>(D), 0.0);
  const size_t chunk = static_cast<size_t>(std::clamp(j.ctx_params.n_batch, 1, engine_->params().n_batch));
  double others_s = 0;  // as a prompt's: the other slots step between chunks
  for (size_t pos = 0; pos < j.prompt.size(); pos += chunk) {
    if (pos > 0) others_s += step_others(&s);
    if (j.cancel.load()) {  // the client went away: the rest of a long input is not worth evaluating
      end(s, DoneReason::Cancel);
      return;
    }
    const RowsView rows = j.prompt.view().subspan(pos, chunk);
    const SequenceWork w{s.seq.get(), rows, static_cast<int64_t>(pos), LogitsFor::None, LogitsFor::All};
    engine_->eval(std::span<const SequenceWork>(&w, 1));
    for (int r = 0; r < s.seq->n_hidden_rows(); ++r) {
      const auto h = s.seq->hidden(r);
      for (int64_t i = 0; i < D; ++i) sum[static_cast<size_t>(i)] += h[static_cast<size_t>(i)];
    }
  }
  j.embedding.resize(static_cast<size_t>(D));
  const double n = static_cast<double>(j.prompt.size());
  for (int64_t i = 0; i < D; ++i) j.embedding[static_cast<size_t>(i)] = static_cast<float>(sum[static_cast<size_t>(i)] / n);
  // The cache now holds the input: a later prompt that shares its prefix may reuse it.
  s.keys.assign(j.prompt.keys().begin(), j.prompt.keys().end());
  s.cached = 0;
  s.prompt_s = seconds_since(t0) - others_s;
  end(s, DoneReason::Stop);
}

bool Scheduler::sample_next(Slot& s) {
  // The tokens' log-probabilities go with the text they produced (or alone, when a stop string holds it back).
  const auto emit = [this, &s](std::string_view text) { push_logprobs(s, text); };
  std::optional<int32_t> id;
  try {
    id = s.gen->next(s.seq->last_logits(), s.seq->n_past(), s.seq->n_ctx(), emit);
    if (s.job->logprobs.enabled) push_logprobs(s, {});
  } catch (const std::exception& e) {  // a constraint or sampler failure ends this request, not the worker
    fail(s, e.what());
    return false;
  }
  if (!id) {
    end(s, s.gen->stats().done_reason);
    return false;
  }
  s.pending = *id;
  return true;
}

void Scheduler::decode_step(const std::vector<Slot*>& batch) {
  // One forward pass decodes every slot's pending token (continuous batching), with a speculating slot's
  // draft rows after its token. Rows are independent, so each answer is what it would be alone.
  std::vector<SequenceWork> work;
  work.reserve(batch.size());
  std::vector<Slot*> live;
  for (Slot* s : batch) {
    const int64_t pos0 = s->seq->n_past();
    if (s->spec) {
      try {  // a draft model's passes may fail (out of memory): that ends this request, not the worker
        const auto r = s->spec->plan(s->pending, *s->gen, pos0, s->seq->n_ctx(), engine_->params().n_batch);
        s->rows.assign(r.begin(), r.end());
      } catch (const std::exception& e) {
        fail(*s, e.what());
        continue;
      }
    } else {
      s->rows.assign(1, s->pending);
    }
    work.push_back({s->seq.get(), s->rows, pos0, s->spec ? LogitsFor::All : LogitsFor::Last});
    live.push_back(s);
  }
  if (live.empty()) return;
  std::vector<int64_t> pos0(live.size());
  for (size_t i = 0; i < live.size(); ++i) pos0[i] = work[i].pos0;
  // The pass's own time is each speculating slot's verify time (its draft-length controller's T_v), not the
  // span since its plan, which holds the other slots' drafting and, after the pass, the earlier slots' sampling.
  const auto pass_start = Clock::now();
  std::optional<double> pass_s;
  try {
    engine_->eval(work);
    pass_s = seconds_since(pass_start);
  } catch (const std::exception&) {
    // The engine checks every item before running any: evaluate one by one so only the bad one fails.
    for (size_t i = 0; i < live.size(); ++i) {
      Slot* s = live[i];
      try {
        engine_->eval(std::span<const SequenceWork>(&work[i], 1));
      } catch (const std::exception& e) {
        fail(*s, e.what());  // end() leaves pending < 0: skipped below
      }
    }
  }
  for (size_t i = 0; i < live.size(); ++i) {
    Slot* s = live[i];
    if (s->pending < 0) continue;  // ended above
    s->ready = false;
    if (!s->spec) {
      s->keys.push_back(token_key(s->pending));
      s->pending = -1;
      continue;
    }
    // Verification: the generator consumes the rows' logits; the sequence keeps the emitted rows.
    // The accepted tokens' log-probabilities go with their text, as sample_next sends them.
    const auto emit = [this, s](std::string_view text) { push_logprobs(*s, text); };
    std::optional<int32_t> id;
    try {
      id = s->spec->absorb(*s->gen, *s->seq, pos0[i], s->seq->n_ctx(), emit, pass_s);
      if (s->job->logprobs.enabled) push_logprobs(*s, {});
    } catch (const std::exception& e) {
      fail(*s, e.what());
      continue;
    }
    const int64_t kept = s->seq->n_past() - pos0[i];
    for (int64_t k = 0; k < kept; ++k) s->keys.push_back(token_key(s->rows[static_cast<size_t>(k)]));
    if (!id) {
      s->pending = -1;
      end(*s, s->gen->stats().done_reason);
      continue;
    }
    s->pending = *id;
    s->ready = true;
  }
}

void Scheduler::end(Slot& s, DoneReason reason, const std::string& error) {
  GenerateStats st;
  if (s.gen) {
    s.gen->finish(reason, [this, &s](std::string_view text) { push_logprobs(s, text); });  // no-op when it ended itself
    st = std::move(s.gen->stats());
  }
  st.done_reason = reason;
  st.prompt_tokens = static_cast<int>(s.job->prompt.size());
  st.cached_tokens = s.cached;
  st.prompt_s = s.prompt_s;
  if (s.spec) s.job->spec_stats = s.spec->stats();
  s.job->finish(std::move(st), error);
  s.job.reset();
  s.begun = false;
  s.gen.reset();
  s.spec.reset();
  s.ready = false;
  s.cached = 0;
  s.prompt_s = 0;
  s.pending = -1;
  s.logprobs_sent = 0;
  s.last_used = ++tick_;
  n_active_.fetch_sub(1);
}

}  // namespace g3n::server
