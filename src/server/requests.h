// Every request body, parsed once into a struct whose fields are all checked before a handler does any
// work: wrong types, bad options (against the parameter table), bad keep_alive, bad formats/schemas and
// unsupported features throw HttpError(400) here.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/parameters.h"
#include "sampling/json_constraint.h"
#include "sampling/logprobs.h"
#include "server/options.h"
#include "server/prompt.h"
#include "server/tool_requests.h"
#include "store/model_name.h"

namespace g3n::server {

// The body as a JSON object: 400 when empty, malformed or not an object.
nlohmann::json parse_json_body(const std::string& body);

// The parsers of requests that may carry a JSON schema (`format`, `response_format`, `tools`) take the body as
// sent too (`raw`): a schema's properties are generated in the order it declares them (declared_order.h);
// without it they come in key order.

// POST /api/generate
// What /api/generate and /api/chat share.
struct OllamaGenerationFields {
  std::string model;
  bool stream = true, truncate = true;
  std::shared_ptr<const JsonSchema> format;
  ParamList options;
  KeepAlive keep_alive;
  LogprobOptions logprobs;  // "logprobs" (bool) and "top_logprobs" (0..20, which turns logprobs on)
};

struct GenerateRequest : OllamaGenerationFields {
  std::string prompt;
  std::optional<std::string> system;
  bool raw = false;
  std::vector<int32_t> context;  // token ids from an earlier response
  std::vector<MediaInput> media;  // images, then audio; decoded from base64 (image headers checked, audio decoded)
};
GenerateRequest parse_generate(const nlohmann::json& body, std::string_view raw = {});

// POST /api/chat
struct ChatRequest : OllamaGenerationFields {
  std::vector<InMessage> messages;
  ToolRequest tools;  // with the g3n extensions tool_choice and parallel_tool_calls
};
ChatRequest parse_chat(const nlohmann::json& body, std::string_view raw = {});

// POST /api/show
struct ShowRequest {
  std::string model;
  bool verbose = false;
  std::optional<std::string> system;
};
ShowRequest parse_show(const nlohmann::json& body);

// POST /api/pull
struct PullRequest {
  store::ModelName name;
  bool stream = true, insecure = false;
};
PullRequest parse_pull(const nlohmann::json& body);

// DELETE /api/delete
struct DeleteRequest {
  std::string model;
  store::ModelName name;
};
DeleteRequest parse_delete(const nlohmann::json& body);

// POST /api/copy
struct CopyRequest {
  std::string source_text;
  store::ModelName source, destination;
};
CopyRequest parse_copy(const nlohmann::json& body);

// POST /v1/chat/completions and /v1/completions (chat = false: `prompt` instead of `messages`).
struct OpenAIRequest {
  std::string model;
  bool chat = true;
  std::vector<InMessage> messages;  // chat
  std::string prompt;               // completions
  ToolRequest tools;                // chat
  bool stream = false, include_usage = false;
  std::shared_ptr<const JsonSchema> format;
  ParamList options;  // the OpenAI fields mapped onto Ollama's options
  KeepAlive keep_alive;
  // chat: "logprobs" (bool) and "top_logprobs" (0..20, only with logprobs); completions: "logprobs" (0..20,
  // the number of top alternatives; null or absent: none).
  LogprobOptions logprobs;
  int n = 1;  // choices, 1..kMaxChoices
};
inline constexpr int kMaxChoices = 8;
inline constexpr int kMaxTopLogprobs = 20;
inline constexpr size_t kMaxEmbedInputs = 2048;  // strings in one embedding request (OpenAI's limit)
OpenAIRequest parse_openai_chat(const nlohmann::json& body, std::string_view raw = {});
OpenAIRequest parse_openai_completion(const nlohmann::json& body, std::string_view raw = {});

// POST /api/embed, /api/embeddings (the older one) and /v1/embeddings.
enum class EmbedApi { Embed, Embeddings, OpenAI };
struct EmbedRequest {
  EmbedApi api = EmbedApi::Embed;
  std::string model;
  std::vector<std::string> inputs;  // each one embedding; may be empty (Ollama: no input, no embeddings)
  bool truncate = true;             // false: an input longer than num_ctx is a 400
  int dimensions = 0;               // > 0: keep the first N values, then re-normalise
  bool base64 = false;              // OpenAI encoding_format "base64"
  ParamList options;
  KeepAlive keep_alive;
};
EmbedRequest parse_embed(const nlohmann::json& body, EmbedApi api);

}  // namespace g3n::server
