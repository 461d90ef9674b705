// A generation request's life after parsing, shared by the Ollama and OpenAI handlers: the parameters
// it runs with (defaults <- model layer <- request), its job on the model's scheduler, and the answer,
// streamed or whole.
#pragma once
#include <chrono>
#include <memory>
#include <vector>

#include "runtime/context.h"
#include "runtime/parameters.h"
#include "server/http_types.h"
#include "server/model_manager.h"
#include "server/prompt.h"
#include "server/responses.h"
#include "server/state.h"

namespace g3n::server {

// The table's defaults with the server's num_ctx and threads, then the model's params layer (a bad
// value there is skipped with a warning).
Parameters base_parameters(const ServerConfig& cfg, const LoadedModel& m);
// The base overlaid by the request's options. num_ctx is per sequence and always honoured (up to the
// model's trained length); num_thread and num_batch belong to the model's one engine, shared by every
// request, so a request may only repeat them: another value is a 400 that says so.
Parameters request_parameters(const ServerConfig& cfg, const LoadedModel& m, const ParamList& request);
ContextParams context_params(const LoadedModel& m, const Parameters& p);

// A generation in flight: the model lease keeps the model loaded until the response is written.
struct Generation {
  std::unique_ptr<ModelManager::Lease> lease;
  std::shared_ptr<Job> job;                 // the first choice (jobs[0])
  std::vector<std::shared_ptr<Job>> jobs;   // every choice, in index order
  std::shared_ptr<Output> out;
  std::shared_ptr<RequestStats> stats;
  double load_s = 0;
  std::chrono::steady_clock::time_point t0;
  int truncated = 0;
};

// Encodes the prompt's images, if any, in this (the request's) thread, then queues the prompt on the
// model's scheduler; HttpError(503) when its queue is full. At most one of `schema` (format) and
// `tools` (the tool calls' grammar) constrains it. `out->logprobs` says which log-probabilities to compute.
// n_choices > 1 queues that many jobs for the one prompt (the scheduler evaluates it once and copies its KV
// cache), each with its own sampler; with a seed, choice i samples with seed + i.
std::shared_ptr<Generation> submit(ServerState& state, std::unique_ptr<ModelManager::Lease> lease, double load_s, const HttpRequest& req,
                                   BuiltPrompt prompt, const Parameters& params, std::shared_ptr<const JsonSchema> schema,
                                   std::shared_ptr<Output> out, std::shared_ptr<const ToolCallGrammar> tools = nullptr,
                                   int n_choices = 1);

// Answers with the generation: streamed chunks, or one object when !stream. A client that goes away
// cancels it.
void respond(ServerState& state, HttpResponse& res, std::shared_ptr<Generation> g, bool stream);

// Waits for the whole answer in the request's thread (for endpoints that run several generations before
// they answer: /v1/audio/*). HttpError 499 when the client went away (the job is cancelled), 503 when the
// server stops, 500 for a failed job. `stats` receives the job's figures when set.
std::string finish(ServerState& state, const HttpRequest& req, Generation& g, GenerateStats* stats = nullptr);

}  // namespace g3n::server
