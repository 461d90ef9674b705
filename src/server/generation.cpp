#include "server/generation.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/thread_pool.h"
#include "model/matformer.h"
#include "server/media.h"
#include "server/options.h"

namespace g3n::server {
namespace {

using Clock = std::chrono::steady_clock;


void record(ServerState& state, Generation& g) {
  int tokens = 0;
  for (const auto& j : g.jobs) {
    const GenerateStats& st = j->stats();
    state.metrics.record_generation(st);
    if (j->spec_stats.rounds > 0) state.metrics.record_speculation(j->spec_stats, st);
    tokens += st.gen_tokens;
  }
  g.stats->tokens.store(tokens);
}

// A client went away mid-answer: stop its generation, wait for the scheduler to let go of it, and
// account for what was generated.
void cancel_and_wait(ServerState& state, Generation& g) {
  for (const auto& j : g.jobs) j->cancel.store(true);
  std::string ignored;
  for (const auto& j : g.jobs)
    while (!j->wait(ignored, std::chrono::milliseconds(100))) {
    }
  record(state, g);
}

void cancel_all(const Generation& g) {
  for (const auto& j : g.jobs) j->cancel.store(true);
}

// Takes what every choice produced since the last call: a Piece per choice with something new (text or
// logprobs). Waits up to `timeout` when none has anything yet; true once every choice has finished and
// everything has been taken.
bool drain(Generation& g, std::vector<Piece>& pieces, std::chrono::milliseconds timeout) {
  pieces.clear();
  const auto take = [&](size_t i, std::chrono::milliseconds t) {
    Piece p;
    p.index = static_cast<int>(i);
    const bool done = g.jobs[i]->wait(p.text, &p.logprobs, t);
    if (!p.text.empty() || !p.logprobs.empty()) pieces.push_back(std::move(p));
    return done;
  };
  if (g.jobs.size() == 1) return take(0, timeout);
  // Several choices: poll them all; when none has anything new, sleep a little and poll once more.
  for (int round = 0;; ++round) {
    bool all_done = true;
    for (size_t i = 0; i < g.jobs.size(); ++i) all_done = take(i, std::chrono::milliseconds(0)) && all_done;
    if (all_done || !pieces.empty() || round == 1) return all_done;
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(10)));
  }
}

// Every choice's finished text and figures.
std::vector<ChoiceResult> results(const Generation& g, std::vector<std::string>& texts) {
  std::vector<ChoiceResult> out;
  for (size_t i = 0; i < g.jobs.size(); ++i) out.push_back({std::move(texts[i]), g.jobs[i]->stats()});
  return out;
}

// The first choice's error, if any choice failed.
std::string job_error(const Generation& g) {
  for (const auto& j : g.jobs)
    if (!j->error().empty()) return j->error();
  return {};
}

}  // namespace

Parameters base_parameters(const ServerConfig& cfg, const LoadedModel& m) {
  Parameters p = default_parameters();
  p.engine.num_ctx = cfg.num_ctx;
  p.engine.num_thread = cfg.num_threads;
  apply_parameters(p, parse_parameters(m.resolved.params, {}, [&](const std::string&, const std::string& msg) {
    std::fprintf(stderr, "warning: %s: model parameter ignored: %s\n", m.name.c_str(), msg.c_str());
  }));
  return p;
}

Parameters request_parameters(const ServerConfig& cfg, const LoadedModel& m, const ParamList& request) {
  Parameters p = base_parameters(cfg, m);
  for (const auto& [spec, v] : request) {
    // num_thread is the model's shared engine's: a request may only repeat it (0 = "the default"). num_ctx
    // (per sequence) and num_batch (an upper bound on rows per pass, which the scheduler honours by
    // splitting the prompt) are per request.
    if (spec->name == "num_thread") {
      const int64_t want = std::get<int64_t>(v);
      int64_t have = std::get<int64_t>(spec->get(p));
      if (have == 0) have = default_thread_count();  // what an engine built with "0" runs
      if (want == 0) continue;
      if (want != have)
        throw HttpError(400, "option \"" + std::string(spec->name) + "\" is " + std::to_string(want) + " but model '" + m.name +
                                 "' runs with " + std::to_string(have) +
                                 " (set when the server starts, or in the model's parameters); its engine is shared by all requests");
    }
    // The slice is the loaded model's (its parameters choose it); another one would need another model.
    bool same_slice = true;
    if (spec->name == "matformer") {
      // A request names a preset or repeats the model's own slice: anything else would be read as a path on
      // the server (a file's existence and contents would leak through the error).
      const std::string& want = std::get<std::string>(v);
      if (want != m.model->matformer() && (is_matformer_file(want) || (!want.empty() && !find_matformer_preset(want))))
        throw HttpError(400, "option \"matformer\": over HTTP a MatFormer slice is a preset (e2b, e2.54b, ...; docs/matformer.md), "
                             "not a file");
      try {
        same_slice = m.model->runs_slice(want);
      } catch (const std::invalid_argument& e) {
        throw HttpError(400, std::string("option \"matformer\": ") + e.what());
      }
    }
    if (!same_slice)
      throw HttpError(400, "option \"matformer\" is '" + std::get<std::string>(v) + "' but model '" + m.name + "' is loaded " +
                               (m.model->matformer().empty() ? std::string("whole") : "as slice '" + m.model->matformer() + "'") +
                               "; create a model with PARAMETER matformer " + std::get<std::string>(v) + " to serve that size");
    apply_parameter(p, *spec, v);
  }
  return p;
}

ContextParams context_params(const LoadedModel& m, const Parameters& par) {
  ContextParams p;
  p.n_ctx = par.engine.num_ctx;
  const int model_max = m.model->config().context_length;
  if (model_max > 0 && p.n_ctx > model_max) {
    std::fprintf(stderr, "warning: %s: num_ctx %d is over the model's trained context; using %d\n", m.name.c_str(), p.n_ctx, model_max);
    p.n_ctx = model_max;
  }
  p.n_threads = par.engine.num_thread;
  p.n_batch = par.engine.num_batch;
  p.kv_type = KvType::F16;
  return p;
}

std::shared_ptr<Generation> submit(ServerState& state, std::unique_ptr<ModelManager::Lease> lease, double load_s, const HttpRequest& req,
                                   BuiltPrompt prompt, const Parameters& params, std::shared_ptr<const JsonSchema> schema,
                                   std::shared_ptr<Output> out, std::shared_ptr<const ToolCallGrammar> tools, int n_choices) {
  // Off the scheduler's loop: the other sequences keep generating while this request's media encode, and a
  // draft model loads.
  encode_prompt_media(state, **lease, req, prompt);
  const Model* draft = nullptr;
  if (params.spec.mode == SpecMode::Draft || params.spec.mode == SpecMode::Self)
    draft = &state.models.draft_model(**lease, params.spec.mode, params.engine.draft,
                                      params.engine.draft == base_parameters(state.cfg, **lease).engine.draft);
  if (draft && prompt.rows.has_vectors() && prompt.rows.width() != draft->config().n_embd)
    throw HttpError(400, "spec " + std::string(spec_mode_name(params.spec.mode)) + ": the draft model's width (" +
                             std::to_string(draft->config().n_embd) + ") differs from the prompt's image/audio rows (" +
                             std::to_string(prompt.rows.width()) + "): it cannot draft for this prompt (use spec ngram or self)");
  auto g = std::make_shared<Generation>();
  n_choices = std::max(1, n_choices);
  const uint64_t group = n_choices > 1 ? (state.random_u64() | 1) : 0;
  for (int i = 0; i < n_choices; ++i) {
    auto job = std::make_shared<Job>();
    job->prompt = i + 1 < n_choices ? prompt.rows : std::move(prompt.rows);
    job->sampling = params.sampling;
    job->spec = params.spec;
    job->draft_model = draft;
    if (job->sampling.seed) *job->sampling.seed += static_cast<uint64_t>(i);  // choice i: seed + i
    job->ctx_params = context_params(**lease, params);
    job->schema = schema;
    job->tools = tools;
    job->logprobs = out->logprobs;
    job->share_group = group;
    g->jobs.push_back(std::move(job));
  }
  g->job = g->jobs.front();
  g->truncated = static_cast<int>(prompt.dropped_tokens + prompt.dropped_turns);
  if (g->truncated > 0)
    std::fprintf(stderr, "warning: prompt truncated to fit num_ctx %d: dropped %zu oldest message(s) and %zu token(s)\n",
                 g->job->ctx_params.n_ctx, prompt.dropped_turns, prompt.dropped_tokens);
  for (size_t i = 0; i < g->jobs.size(); ++i) {
    if ((*lease)->sched->submit(g->jobs[i])) continue;
    // A full queue: the choices already queued are withdrawn (the scheduler drops cancelled jobs).
    for (size_t k = 0; k < i; ++k) g->jobs[k]->cancel.store(true);
    throw HttpError(503, "server busy, please try again.  maximum pending requests exceeded");
  }
  g->lease = std::move(lease);
  g->out = std::move(out);
  g->stats = req.stats;
  g->load_s = load_s;
  g->t0 = req.stats->t0;
  return g;
}

std::string finish(ServerState& state, const HttpRequest& req, Generation& g, GenerateStats* stats) {
  std::string text;
  for (;;) {
    std::string piece;
    const bool done = g.job->wait(piece, std::chrono::milliseconds(100));
    text += piece;
    if (done) break;
    if (state.stopping.load() || (req.client_gone && req.client_gone())) {
      cancel_and_wait(state, g);
      if (state.stopping.load()) throw HttpError(503, "server shutting down");
      throw HttpError(499, "the client closed the connection");
    }
  }
  record(state, g);
  if (!g.job->error().empty()) throw HttpError(500, g.job->error());
  if (stats) *stats = g.job->stats();
  return text;
}

void respond(ServerState& state, HttpResponse& res, std::shared_ptr<Generation> g, bool stream) {
  ServerState* st = &state;
  if (g->truncated > 0) res.set_header("X-G3n-Prompt-Truncated", std::to_string(g->truncated));
  const ErrorStyle style = g->out->errors();
  if (!stream) {
    // Short generations are answered as a plain JSON body with their real status. One still running
    // after cfg.sync_answer switches to a chunked 200 body: it writes a space (insignificant before a JSON
    // value) every probe_every, and a failed write means the client hung up, which cancels it.
    const auto probe_every = std::min<std::chrono::milliseconds>(std::chrono::milliseconds(400), state.cfg.sync_answer);
    auto texts = std::make_shared<std::vector<std::string>>(g->jobs.size());
    const auto sync_until = Clock::now() + state.cfg.sync_answer;
    std::vector<Piece> pieces;
    bool done = false;
    while (!done && Clock::now() < sync_until) {
      done = drain(*g, pieces, std::chrono::milliseconds(100));
      for (Piece& p : pieces) (*texts)[static_cast<size_t>(p.index)] += p.text;
      if (!done && state.stopping.load()) cancel_all(*g);
    }
    if (done) {
      record(state, *g);
      if (const std::string e = job_error(*g); !e.empty()) return set_error(res, style, 500, e);
      set_json(res, 200, g->out->whole(results(*g, *texts), g->load_s, seconds_since(g->t0)));
      return;
    }
    res.content_type = "application/json; charset=utf-8";
    res.on_close = [g] { cancel_all(*g); };  // the response is gone: nothing more is wanted
    res.stream = [st, g, texts, probe_every, style](ChunkSink& sink) {
      auto probed = Clock::now();
      std::vector<Piece> pieces;
      for (;;) {
        const bool finished = drain(*g, pieces, std::chrono::milliseconds(100));
        for (Piece& p : pieces) (*texts)[static_cast<size_t>(p.index)] += p.text;
        if (finished) break;
        if (st->stopping.load()) cancel_all(*g);
        if (Clock::now() - probed >= probe_every) {
          probed = Clock::now();
          if (!sink.write(" ")) {  // the client went away: stop generating for it
            cancel_and_wait(*st, *g);
            return false;
          }
        }
      }
      record(*st, *g);
      const std::string e = job_error(*g);
      const std::string body = e.empty() ? dump(g->out->whole(results(*g, *texts), g->load_s, seconds_since(g->t0)))
                                         : dump(error_body(style, 500, e));  // the status is already 200
      sink.write(body);
      return true;
    };
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.content_type = g->out->content_type();
  res.on_close = [g] { cancel_all(*g); };
  res.stream = [st, g](ChunkSink& sink) {
    std::vector<Piece> pieces;
    for (;;) {
      const bool done = drain(*g, pieces, std::chrono::milliseconds(100));
      for (const Piece& p : pieces) {
        // A chunk may hold nothing yet (text that may begin a tool call waits): an empty write would end the body.
        const std::string chunk = g->out->chunk(p);
        if (!chunk.empty() && !sink.write(chunk)) {  // the client went away: stop generating for it
          cancel_and_wait(*st, *g);
          return false;
        }
      }
      if (pieces.empty() && !done && (!sink.writable() || st->stopping.load())) {
        cancel_and_wait(*st, *g);
        return false;
      }
      if (done) break;
    }
    record(*st, *g);
    const double total = seconds_since(g->t0);
    std::vector<std::string> no_text(g->jobs.size());
    const std::string e = job_error(*g);
    sink.write(e.empty() ? g->out->last_chunks(results(*g, no_text), g->load_s, total) : g->out->stream_error(e));
    return true;
  };
}

}  // namespace g3n::server
