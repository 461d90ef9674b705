// POST /api/embed, /api/embeddings and /v1/embeddings: each input is tokenized as a plain prompt (BOS first,
// as the tokenizer adds it), run through the model's scheduler as a prompt-only job (the fast path, as
// generation), and its embedding is the mean of the final hidden rows (the LM head's input) over every token,
// BOS included. /api/embed and /v1/embeddings answer it L2-normalised; /api/embeddings answers the raw mean.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/base64.h"
#include "server/generation.h"
#include "server/handlers.h"
#include "server/options.h"
#include "server/requests.h"
#include "server/responses.h"
#include "server/scheduler.h"

namespace g3n::server {
namespace {
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct Embeddings {
  std::vector<std::vector<float>> vectors;  // raw means, one per input
  int64_t prompt_tokens = 0;
  double load_s = 0;
};

// Scales v to unit L2 norm (a zero vector stays zero).
void l2_normalize(std::vector<float>& v) {
  double ss = 0;
  for (float x : v) ss += static_cast<double>(x) * x;
  if (ss <= 0) return;
  const double inv = 1.0 / std::sqrt(ss);
  for (float& x : v) x = static_cast<float>(x * inv);
}

// Waits for a job to finish, ignoring its (empty) text stream.
void wait_done(Job& job) {
  std::string ignored;
  while (!job.wait(ignored, std::chrono::milliseconds(100))) {
  }
}

// Cancels the jobs in flight and waits for the worker to let them go (a cancelled embedding stops at its
// next batch of rows; a queued one is dropped).
void cancel_all(const std::vector<std::shared_ptr<Job>>& jobs, size_t from, size_t to) {
  for (size_t i = from; i < to; ++i) jobs[i]->cancel.store(true);
  for (size_t i = from; i < to; ++i) wait_done(*jobs[i]);
}

Embeddings compute(ServerState& s, const HttpRequest& req, const EmbedRequest& r) {
  Embeddings e;
  auto lease = s.models.acquire(r.model, r.keep_alive, &e.load_s);
  LoadedModel& m = **lease;
  const Parameters params = request_parameters(s.cfg, m, r.options);
  const ContextParams cp = context_params(m, params);
  std::vector<std::shared_ptr<Job>> jobs;
  for (const std::string& text : r.inputs) {
    std::vector<int32_t> tokens = m.tok->encode(text, m.tok->add_bos_default(), true);
    if (static_cast<int64_t>(tokens.size()) > cp.n_ctx) {
      if (!r.truncate) throw HttpError(400, "input length " + std::to_string(tokens.size()) + " exceeds maximum context length " + std::to_string(cp.n_ctx));
      tokens.resize(static_cast<size_t>(cp.n_ctx));
    }
    if (tokens.empty()) throw HttpError(400, "an input gives no tokens (the model adds no BOS to an empty string)");
    e.prompt_tokens += static_cast<int64_t>(tokens.size());
    auto job = std::make_shared<Job>();
    job->prompt = InputRows(std::move(tokens));
    job->ctx_params = cp;
    job->embed = true;
    jobs.push_back(std::move(job));
  }
  // The inputs go to the scheduler a window at a time (as many as it runs side by side), so a request of
  // any number of inputs neither fills the queue nor holds work for a client that has gone: between
  // inputs, and between an input's batches of rows, the request stops when the client hangs up.
  const size_t window = static_cast<size_t>(std::max(1, s.cfg.sched.num_parallel));
  size_t done = 0, submitted = 0;
  while (done < jobs.size()) {
    while (submitted < jobs.size() && submitted - done < window && m.sched->submit(jobs[submitted])) ++submitted;
    if (submitted == done) throw HttpError(503, "server busy, please try again.  maximum pending requests exceeded");
    std::string ignored;
    if (jobs[done]->wait(ignored, std::chrono::milliseconds(100))) {
      Job& job = *jobs[done++];
      if (!job.error().empty() || job.embedding.empty()) {
        cancel_all(jobs, done, submitted);
        throw HttpError(500, job.error().empty() ? "embedding cancelled" : job.error());
      }
      e.vectors.push_back(std::move(job.embedding));
      s.metrics.record_embed_input();
      continue;
    }
    const bool stopping = s.stopping.load();
    if (stopping || (req.client_gone && req.client_gone())) {
      cancel_all(jobs, done, submitted);
      s.metrics.record_embed_cancelled();
      if (s.cfg.log_requests)
        std::fprintf(stderr, "[g3n] %s %s: %s; cancelled after %zu of %zu inputs\n", req.method.c_str(), req.path.c_str(),
                     stopping ? "the server is stopping" : "the client closed the connection", done, jobs.size());
      if (stopping) throw HttpError(503, "server shutting down");
      throw HttpError(499, "the client closed the connection");
    }
  }
  return e;
}

// /api/embed and /v1/embeddings: the first `dimensions` values (when fewer than all), unit length.
void finish_normalised(std::vector<float>& v, int dimensions) {
  if (dimensions > 0 && static_cast<size_t>(dimensions) < v.size()) v.resize(static_cast<size_t>(dimensions));
  l2_normalize(v);
}

int64_t nanos(double seconds) { return static_cast<int64_t>(seconds * 1e9); }

}  // namespace

void ollama_embed(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const EmbedRequest r = parse_embed(parse_json_body(req.body), EmbedApi::Embed);
  Embeddings e = compute(s, req, r);
  json out = json::array();
  for (auto& v : e.vectors) {
    finish_normalised(v, r.dimensions);
    out.push_back(v);
  }
  set_json(res, 200, json{{"model", r.model}, {"embeddings", std::move(out)}, {"total_duration", nanos(seconds_since(req.stats->t0))},
                          {"load_duration", nanos(e.load_s)}, {"prompt_eval_count", e.prompt_tokens}});
}

void ollama_embeddings(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const EmbedRequest r = parse_embed(parse_json_body(req.body), EmbedApi::Embeddings);
  Embeddings e = compute(s, req, r);
  // The older endpoint answers the raw (un-normalised) mean, as Ollama does.
  set_json(res, 200, json{{"embedding", e.vectors.empty() ? json::array() : json(e.vectors[0])}});
}

void openai_embeddings(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const EmbedRequest r = parse_embed(parse_json_body(req.body), EmbedApi::OpenAI);
  Embeddings e = compute(s, req, r);
  json data = json::array();
  for (size_t i = 0; i < e.vectors.size(); ++i) {
    std::vector<float>& v = e.vectors[i];
    finish_normalised(v, r.dimensions);
    json item{{"object", "embedding"}, {"index", i}};
    if (r.base64) {
      // Little-endian f32, as OpenAI's clients decode it (this build targets little-endian hosts).
      item["embedding"] = base64_encode(std::string_view(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float)));
    } else {
      item["embedding"] = v;
    }
    data.push_back(std::move(item));
  }
  set_json(res, 200, json{{"object", "list"}, {"data", std::move(data)}, {"model", r.model},
                          {"usage", {{"prompt_tokens", e.prompt_tokens}, {"total_tokens", e.prompt_tokens}}}});
}

}  // namespace g3n::server
