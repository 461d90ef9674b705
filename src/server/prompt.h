// Turning API requests into prompt tokens: Ollama/OpenAI chat messages into Gemma turns (tools and tool
// results become text, since Gemma 3n has no tool format) and generate prompts, fitted into the context
// by chat::fit_to_context (the one policy the CLI uses too).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat.h"

namespace g3n {
class Tokenizer;
}

namespace g3n::server {

// A chat message after API-specific decoding.
struct InMessage {
  std::string role;  // system, user, assistant, tool
  std::string content;
};

using BuiltPrompt = chat::FittedPrompt;

// Renders a conversation. The request's system messages replace the model's default system prompt;
// `tools` (an array of tool definitions, may be null) is described in the system text. A trailing
// assistant message is continued rather than answered. A prompt that does not fit n_ctx is cut when
// `truncate`, else throws HttpError(400).
BuiltPrompt build_chat_prompt(const std::vector<InMessage>& messages, const std::optional<std::string>& default_system,
                              const nlohmann::json& tools, const Tokenizer& tok, int n_ctx, bool truncate);

// /api/generate: the prompt in a user turn (with the system prompt) unless raw; `context` tokens from an
// earlier response go first.
BuiltPrompt build_generate_prompt(const std::string& prompt, const std::optional<std::string>& system, bool raw,
                                  const std::vector<int32_t>& context, const Tokenizer& tok, int n_ctx, bool truncate);

}  // namespace g3n::server
