// Response formats: JSON bodies and errors in each API's shape, and the generation outputs, whole or
// streamed (Ollama: NDJSON lines; OpenAI: server-sent events ending in "data: [DONE]").
#pragma once
#include <cstdint>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/session.h"
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

// The streaming and whole-response shapes of one generation endpoint.
class Output {
 public:
  virtual ~Output() = default;
  virtual const char* content_type() const = 0;
  virtual std::string chunk(const std::string& text) = 0;
  virtual std::string last_chunks(const GenerateStats& st, double load_s, double total_s) = 0;
  virtual std::string stream_error(const std::string& msg) = 0;
  virtual nlohmann::json whole(const std::string& text, const GenerateStats& st, double load_s, double total_s) = 0;
  virtual ErrorStyle errors() const = 0;
};

// /api/generate.
class OllamaGenerateOutput : public Output {
 public:
  std::string model;
  bool with_context = false;     // return prompt + output tokens as "context"
  std::vector<int32_t> prompt;
  int truncated = 0;             // prompt tokens or messages cut to fit
  const char* content_type() const override { return "application/x-ndjson"; }
  std::string chunk(const std::string& text) override;
  std::string last_chunks(const GenerateStats& st, double load_s, double total_s) override;
  std::string stream_error(const std::string& msg) override;
  nlohmann::json whole(const std::string& text, const GenerateStats& st, double load_s, double total_s) override;
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
  std::string chunk(const std::string& text) override;
  std::string last_chunks(const GenerateStats& st, double load_s, double total_s) override;
  std::string stream_error(const std::string& msg) override;
  nlohmann::json whole(const std::string& text, const GenerateStats& st, double load_s, double total_s) override;
  ErrorStyle errors() const override { return ErrorStyle::Ollama; }

 private:
  std::string tool_chunks(const chat::ToolCallParser::Update& u) const;
};

// /v1/chat/completions (chat) and /v1/completions.
class OpenAIOutput : public Output {
 public:
  std::string model, id;
  bool chat = true;
  bool include_usage = false;  // stream_options.include_usage: a usage chunk before [DONE]
  int64_t created = 0;
  std::shared_ptr<ToolCallOutput> tools;  // chat with active tools: calls are parsed out
  const char* content_type() const override { return "text/event-stream"; }
  std::string chunk(const std::string& text) override;
  std::string last_chunks(const GenerateStats& st, double load_s, double total_s) override;
  std::string stream_error(const std::string& msg) override;
  nlohmann::json whole(const std::string& text, const GenerateStats& st, double load_s, double total_s) override;
  ErrorStyle errors() const override { return ErrorStyle::OpenAI; }

 private:
  nlohmann::json head(bool chunked) const;
  nlohmann::json choice(const std::string& text, const nlohmann::json& reason) const;
  std::string tool_chunks(const chat::ToolCallParser::Update& u) const;
  nlohmann::json finish_reason(const GenerateStats& st) const;  // "tool_calls" once a call was made
};

}  // namespace g3n::server
