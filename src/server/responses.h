// Response formats: JSON bodies and errors in each API's shape, and the generation outputs, whole or
// streamed (Ollama: NDJSON lines; OpenAI: server-sent events ending in "data: [DONE]").
#pragma once
#include <cstdint>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/session.h"
#include "sampling/logprobs.h"
#include "tokenizer/tokenizer.h"
#include "server/http_types.h"
#include "server/tool_responses.h"

namespace g3n::server {

// JSON text as the server sends it (invalid UTF-8 replaced, never an exception).
std::string dump(const nlohmann::json& j);

void set_json(HttpResponse& res, int status, const nlohmann::json& body);
nlohmann::json error_body(ErrorStyle style, int status, const std::string& msg);
void set_error(HttpResponse& res, ErrorStyle style, int status, const std::string& msg);
// The status and message an exception is answered with (HttpError's status, 404 for a missing model,
// 400 for a bad name, else 500).
std::pair<int, std::string> error_status(std::exception_ptr e);

// A piece of one choice's stream: its new text and the log-probabilities of the tokens generated with it.
struct Piece {
  int index = 0;  // the choice (n > 1 in the OpenAI endpoints)
  std::string text;
  std::vector<LogprobStep> logprobs;
};

// One finished choice: its whole text and figures (stats.logprobs: every token's, when asked for).
struct ChoiceResult {
  std::string text;
  GenerateStats stats;
};

// The streaming and whole-response shapes of one generation endpoint. `choices` has one entry per
// choice (always one for Ollama's endpoints), in index order.
class Output {
 public:
  virtual ~Output() = default;
  virtual const char* content_type() const = 0;
  virtual std::string chunk(const Piece& p) = 0;
  virtual std::string last_chunks(std::span<const ChoiceResult> choices, double load_s, double total_s) = 0;
  virtual std::string stream_error(const std::string& msg) = 0;
  virtual nlohmann::json whole(std::span<const ChoiceResult> choices, double load_s, double total_s) = 0;
  virtual ErrorStyle errors() const = 0;

  // Set by the handler when the request asks for logprobs: the model's tokenizer renders the tokens (the
  // generation's model lease keeps it alive while the response is written).
  const Tokenizer* tok = nullptr;
  LogprobOptions logprobs;
};

// /api/generate.
class OllamaGenerateOutput : public Output {
 public:
  std::string model;
  bool with_context = false;     // return prompt + output tokens as "context"
  std::vector<int32_t> prompt;
  int truncated = 0;             // prompt tokens or messages cut to fit
  const char* content_type() const override { return "application/x-ndjson"; }
  std::string chunk(const Piece& p) override;
  std::string last_chunks(std::span<const ChoiceResult> choices, double load_s, double total_s) override;
  std::string stream_error(const std::string& msg) override;
  nlohmann::json whole(std::span<const ChoiceResult> choices, double load_s, double total_s) override;
  ErrorStyle errors() const override { return ErrorStyle::Ollama; }

 private:
  nlohmann::json final_object(const std::string& text, const GenerateStats& st, double load_s, double total_s) const;
};

// /api/chat.
class OllamaChatOutput : public Output {
 public:
  std::string model;
  int truncated = 0;
  std::shared_ptr<ToolCallOutput> tools;  // the request's tools are active: calls are parsed out
  const char* content_type() const override { return "application/x-ndjson"; }
  std::string chunk(const Piece& p) override;
  std::string last_chunks(std::span<const ChoiceResult> choices, double load_s, double total_s) override;
  std::string stream_error(const std::string& msg) override;
  nlohmann::json whole(std::span<const ChoiceResult> choices, double load_s, double total_s) override;
  ErrorStyle errors() const override { return ErrorStyle::Ollama; }

 private:
  std::string tool_chunks(const chat::ToolCallParser::Update& u, const std::vector<LogprobStep>& logprobs) const;
};

// /v1/chat/completions (chat) and /v1/completions.
class OpenAIOutput : public Output {
 public:
  std::string model, id;
  bool chat = true;
  bool include_usage = false;  // stream_options.include_usage: a usage chunk before [DONE]
  int64_t created = 0;
  // chat with active tools: calls are parsed out of each choice's text (one parser per choice).
  std::vector<std::shared_ptr<ToolCallOutput>> tools;
  const char* content_type() const override { return "text/event-stream"; }
  std::string chunk(const Piece& p) override;
  std::string last_chunks(std::span<const ChoiceResult> choices, double load_s, double total_s) override;
  std::string stream_error(const std::string& msg) override;
  nlohmann::json whole(std::span<const ChoiceResult> choices, double load_s, double total_s) override;
  ErrorStyle errors() const override { return ErrorStyle::OpenAI; }

 private:
  nlohmann::json head(bool chunked) const;
  nlohmann::json choice(int index, const std::string& text, const nlohmann::json& reason) const;
  nlohmann::json logprobs_json(int index, std::span<const LogprobStep> steps);
  std::string tool_chunks(int index, const chat::ToolCallParser::Update& u, const std::vector<LogprobStep>& logprobs);
  nlohmann::json finish_reason(int index, const GenerateStats& st) const;  // "tool_calls" once a call was made
  std::vector<size_t> text_offsets_;  // completions' text_offset per choice, across chunks
};

}  // namespace g3n::server
