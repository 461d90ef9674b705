// Runs generation requests for one loaded model on a fixed set of slots (G3N_NUM_PARALLEL), each with
// its own KV cache. One worker thread admits queued jobs into free slots (the slot whose cached tokens
// share the longest prefix with the new prompt, so a continuing chat re-evaluates only its new turn) and
// then advances every active slot by one token per round: one batched forward pass (BatchEngine) decodes
// a token for every active slot (a speculating slot adds its draft rows to the same pass and keeps the
// rows the verification accepts: docs/speculative.md). Each slot's sampling, stop conditions and text are a Generator, the
// same loop `g3n run` uses.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "runtime/batch_engine.h"
#include "runtime/context.h"
#include "runtime/generator.h"
#include "runtime/input_rows.h"
#include "runtime/speculative.h"
#include "sampling/json_constraint.h"
#include "sampling/logprobs.h"
#include "sampling/tool_call_constraint.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace g3n::server {

// One generation request and the channel its results flow back through. The HTTP thread waits on it;
// the scheduler's worker fills it.
class Job {
 public:
  // Input (set before submit, then read-only).
  InputRows prompt;  // token ids and embedding rows
  SamplingParams sampling;
  SpecOptions spec;  // speculative decoding: none, auto, ngram, draft or self
  // The model that drafts for spec draft and spec self (ModelManager::draft_model); it outlives the job's slot.
  const Model* draft_model = nullptr;
  SpecStats spec_stats;  // worker side: set before finish() when the request speculated
  ContextParams ctx_params;
  std::shared_ptr<const JsonSchema> schema;  // null: unconstrained
  std::shared_ptr<const ToolCallGrammar> tools;  // tool calls' constraint (never with a schema)
  // An embedding job: the prompt is evaluated (the fast path, as generation) keeping every row's final hidden
  // vector and nothing is generated; `embedding` receives their mean (un-normalised, n_embd floats) before finish().
  bool embed = false;
  std::vector<float> embedding;
  // Each generated token's log-probability (Generator's LogprobOptions); they flow back with the text.
  LogprobOptions logprobs;
  // Non-zero for the n > 1 choices of one request (the same prompt): a choice admitted while a sibling holds
  // the prompt's KV cache copies it instead of evaluating the prompt again.
  uint64_t share_group = 0;

  // Set by the client side to stop generation (client gone); the worker notices within one token.
  std::atomic<bool> cancel{false};

  // Worker side.
  void push_text(std::string_view text);
  // Text and the log-probabilities of the tokens generated since the last push (either may be empty).
  void push(std::string_view text, std::span<const LogprobStep> logprobs);
  void finish(GenerateStats stats, std::string error = {});

  // Client side: waits up to `timeout` for text or the end. Moves new text into `text` (and the new
  // tokens' log-probabilities into `logprobs` when given); returns true once the job has finished and
  // every piece of text has been taken.
  bool wait(std::string& text, std::chrono::milliseconds timeout);
  bool wait(std::string& text, std::vector<LogprobStep>* logprobs, std::chrono::milliseconds timeout);
  const GenerateStats& stats() const { return stats_; }  // valid after the end
  const std::string& error() const { return error_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  std::vector<LogprobStep> logprobs_;
  bool finished_ = false;
  GenerateStats stats_;
  std::string error_;
};

struct SchedulerConfig {
  int num_parallel = 2;
  int max_queue = 16;
};

class Scheduler {
 public:
  Scheduler(const Model& model, const Tokenizer& tok, const TokenTexts& texts, SchedulerConfig cfg);
  ~Scheduler();  // cancels what is queued or running and joins the worker
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a job. False when the queue is full (the caller answers 503).
  bool submit(std::shared_ptr<Job> job);
  int queued() const { return n_queued_.load(); }
  int active() const { return n_active_.load(); }
  uint64_t kv_bytes() const { return kv_bytes_.load(); }

 private:
  struct Slot;
  void run();
  Slot* pick_slot(const Job& job);
  void begin(Slot& s);
  // One decode step for every begun slot but `except` (between a prompt's chunks); returns the seconds it took.
  double step_others(const Slot* except);
  // The drafter the job's spec mode asks for, or nullptr (spec none); a draft model's drafter is the slot's own,
  // kept between requests that draft with the same model (its sequence is reused as the target's is).
  Drafter* drafter_for(Slot& s);
  // n > 1: copies the KV cache of a sibling choice that holds more of the prompt than `have` rows; returns the
  // rows now reusable (the whole prompt when the sibling holds exactly it and its last logits).
  size_t borrow_sibling_prefix(Slot& s, size_t have);
  void push_logprobs(Slot& s, std::string_view text);
  void embed_prompt(Slot& s, std::chrono::steady_clock::time_point t0);  // an embedding job, start to end
  bool sample_next(Slot& s);  // false: the job is finished
  void end(Slot& s, DoneReason reason, const std::string& error = {});
  // Ends the job with an error and forgets the slot's sequence (it may be half-evaluated).
  void fail(Slot& s, const std::string& error);
  // The decode step: one forward pass evaluates every slot's pending token at its next position.
  void decode_step(const std::vector<Slot*>& batch);

  const Model& model_;
  const Tokenizer& tok_;
  const TokenTexts& texts_;
  SchedulerConfig cfg_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::deque<std::shared_ptr<Job>> queue_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  uint64_t tick_ = 0;
  std::atomic<int> n_queued_{0}, n_active_{0};
  std::atomic<uint64_t> kv_bytes_{0};

  std::unique_ptr<BatchEngine> engine_;  // created with the first job; owns the pool and buffers
  std::thread worker_;
};

}  // namespace g3n::server
