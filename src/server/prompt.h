// Turning API requests into prompt rows: Ollama/OpenAI chat messages into Gemma turns (tools, calls and
// results in g3n's text format, chat/tool_prompt.h, since Gemma 3n has none) and generate prompts, fitted into the context
// by chat::fit_to_context (the one policy the CLI uses too).
//
// Images: a message's content marks each of its images with chat::kImagePlaceholder, in order (Ollama's
// messages put them before the text, OpenAI's content parts where they stand). A prompt with images is
// built in two steps: build_*_prompt renders and fits it, counting each image as the rows it will take
// (so images are never cut: older turns are dropped, with their images, and a prompt that still does not
// fit is a 400), and the caller encodes the images that remain and lays out the rows
// (image_prompt_rows) from `text`.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat.h"
#include "chat/tool_prompt.h"
#include "runtime/input_rows.h"

namespace g3n {
class Tokenizer;
}

namespace g3n::server {

// An image from a request: its file bytes and where it came from, for error messages
// ("messages[1].images[0]").
struct ImageInput {
  std::shared_ptr<const std::vector<uint8_t>> bytes;
  std::string where;
};

// A chat message after API-specific decoding.
struct InMessage {
  std::string role;  // system, user, assistant, tool
  std::string content;  // one chat::kImagePlaceholder per image, in order
  std::vector<ImageInput> images;
};

struct BuiltPrompt {
  InputRows rows;  // text prompts: complete; image prompts: empty until the images are encoded
  size_t dropped_turns = 0;   // messages left out, oldest first
  size_t dropped_tokens = 0;  // tokens cut after BOS (never in a prompt with images)
  // Prompts with images: the rendered text (one placeholder per image), whether it starts with BOS,
  // token ids that go before it (/api/generate's context), and the images it keeps, in order.
  std::string text;
  bool add_bos = true;
  std::vector<int32_t> prefix;
  std::vector<ImageInput> images;
  size_t image_rows = 0;  // rows each image takes (0: text only)
};

// Rows one image takes in a prompt and the soft-token rows among them (ImageEncoder's figures); both
// zero when the model has no projector.
struct ImageShape {
  int64_t rows = 0;
  int64_t soft_rows = 0;
};

inline bool has_images(const std::vector<InMessage>& messages) {
  for (const auto& m : messages)
    if (!m.images.empty()) return true;
  return false;
}

// Renders a conversation. The request's system messages replace the model's default system prompt;
// `tools` (may be null: none) go in the first user turn, after the system text, under the preamble of
// chat::tools_preamble. A trailing
// assistant message is continued rather than answered. A prompt that does not fit n_ctx is cut when
// `truncate`, else throws HttpError(400). Messages with images need `image` (the model's projector).
BuiltPrompt build_chat_prompt(const std::vector<InMessage>& messages, const std::optional<std::string>& default_system,
                              const std::vector<chat::ToolSpec>* tools, const Tokenizer& tok, int n_ctx, bool truncate, ImageShape image = {});

// /api/generate: the prompt in a user turn (with the system prompt) unless raw; `context` tokens from an
// earlier response go first. Images go before the prompt's text (raw: where the prompt marks them with
// chat::kImagePlaceholder, else first).
BuiltPrompt build_generate_prompt(const std::string& prompt, const std::optional<std::string>& system, bool raw,
                                  const std::vector<int32_t>& context, const Tokenizer& tok, int n_ctx, bool truncate,
                                  const std::vector<ImageInput>& images = {}, ImageShape image = {});

}  // namespace g3n::server
