// Turning API requests into prompt tokens: Ollama/OpenAI chat messages into Gemma turns (tools and tool
// results become text, since Gemma 3n has no tool format), generate prompts, and fitting a prompt into
// the context by dropping the oldest turns or tokens, as Ollama does.
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

struct BuiltPrompt {
  std::vector<int32_t> tokens;
  int dropped_messages = 0;  // oldest turns left out to fit
  int dropped_tokens = 0;    // oldest tokens cut when even that was not enough
};

// Renders a conversation. The request's system messages replace the model's default system prompt;
// `tools` (an array of tool definitions, may be null) is described in the system text. A trailing
// assistant message is continued rather than answered. Fits the result into n_ctx when `truncate`;
// otherwise throws HttpError(400) when it does not fit.
BuiltPrompt build_chat_prompt(const std::vector<InMessage>& messages, const std::optional<std::string>& default_system,
                              const nlohmann::json& tools, const Tokenizer& tok, int n_ctx, bool truncate);

// /api/generate: the prompt in a user turn (with the system prompt) unless raw; `context` tokens from an
// earlier response go first.
BuiltPrompt build_generate_prompt(const std::string& prompt, const std::optional<std::string>& system, bool raw,
                                  const std::vector<int32_t>& context, const Tokenizer& tok, int n_ctx, bool truncate);

// How many tokens a prompt may keep once it has to be cut: room is left for the answer.
int prompt_budget(int n_ctx);

}  // namespace g3n::server
