// The `logprobs` fields of the generation responses, from the generation loop's LogprobStep values (see
// sampling/logprobs.h). A token's text is its piece as the detokenizer renders it ("▁" a space, a byte token
// its byte; bytes that are not whole UTF-8 characters are sent as U+FFFD in `token` and exactly in `bytes`).
// A log-probability that is -inf (never for the model's soft-capped logits) is sent as -9999.0, as OpenAI does.
#pragma once
#include <cstddef>
#include <span>

#include <nlohmann/json.hpp>

#include "sampling/logprobs.h"
#include "tokenizer/tokenizer.h"

namespace g3n::server {

// Ollama (/api/generate, /api/chat): [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob",
// "bytes"}]}], `bytes` and `top_logprobs` left out when empty (Go's omitempty).
nlohmann::json ollama_logprobs(const Tokenizer& tok, std::span<const LogprobStep> steps);

// OpenAI chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}], "refusal": null}.
nlohmann::json openai_chat_logprobs(const Tokenizer& tok, std::span<const LogprobStep> steps);

// OpenAI completions: {"tokens", "token_logprobs", "top_logprobs": [{token: logprob, ...}], "text_offset"}.
// text_offset counts bytes of the choice's text from its start; `offset` carries it across streamed chunks.
nlohmann::json openai_completion_logprobs(const Tokenizer& tok, std::span<const LogprobStep> steps, size_t& offset);

}  // namespace g3n::server
