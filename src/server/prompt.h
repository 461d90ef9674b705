// Turning API requests into prompt rows: Ollama/OpenAI chat messages into Gemma turns (tools, calls and
// results in g3n's text format, chat/tool_prompt.h, since Gemma 3n has none) and generate prompts, fitted into the context
// by chat::fit_to_context (the one policy the CLI uses too).
//
// Images and audio: a message's content marks each image with chat::kImagePlaceholder and each 30 s chunk
// of a recording with chat::kAudioPlaceholder, in order (Ollama's messages put images, then audio, before
// the text; OpenAI's content parts stand where they are). A prompt with media is built in two steps:
// build_*_prompt renders and fits it, counting each block as the rows it will take (so media are never
// cut: older turns are dropped, with their media, and a prompt that still does not fit is a 400), and the
// caller encodes the media that remain and lays out the rows (media_prompt_rows) from `text`.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat.h"
#include "chat/media_prompt.h"
#include "media/audio.h"
#include "chat/tool_prompt.h"
#include "runtime/input_rows.h"

namespace g3n {
class Tokenizer;
}

namespace g3n::server {

// An image or a recording from a request: its file bytes and where it came from, for error messages
// ("messages[1].images[0]"). A recording is decoded when the request is read (a bad file is a 400 before
// anything loads), and its length gives the 30 s blocks it takes in the prompt.
struct MediaInput {
  chat::MediaKind kind = chat::MediaKind::Image;
  std::shared_ptr<const std::vector<uint8_t>> bytes;
  std::string where;
  std::shared_ptr<const Waveform> wave;  // audio only
  size_t blocks() const;                 // placeholders it takes: 1 per image, 1 per 30 s chunk
};

// A chat message after API-specific decoding.
struct InMessage {
  std::string role;  // system, user, assistant, tool
  std::string content;  // one placeholder per image and per audio chunk, in order
  std::vector<MediaInput> media;
};

struct BuiltPrompt {
  InputRows rows;  // text prompts: complete; media prompts: empty until the media are encoded
  size_t dropped_turns = 0;   // messages left out, oldest first
  size_t dropped_tokens = 0;  // tokens cut after BOS (never in a prompt with media)
  // Prompts with media: the rendered text (one placeholder per block), whether it starts with BOS, token
  // ids that go before it (/api/generate's context), and the media it keeps, in order.
  std::string text;
  bool add_bos = true;
  std::vector<int32_t> prefix;
  std::vector<MediaInput> media;
};

// Rows one image and one 30 s audio chunk take in a prompt and the soft-token rows among them (the
// encoders' figures); zero for a tower the model's projector lacks.
struct MediaShape {
  int64_t image_rows = 0, image_soft_rows = 0;
  int64_t audio_rows = 0, audio_soft_rows = 0;
};

// Whether any message carries media of that kind.
bool has_media(const std::vector<InMessage>& messages, chat::MediaKind kind);

// Renders a conversation. The request's system messages replace the model's default system prompt;
// `tools` (may be null: none) go in the first user turn, after the system text, under the preamble of
// chat::tools_preamble. A trailing
// assistant message is continued rather than answered. A prompt that does not fit n_ctx is cut when
// `truncate`, else throws HttpError(400). Messages with media need `shape` (the model's projector).
BuiltPrompt build_chat_prompt(const std::vector<InMessage>& messages, const std::optional<std::string>& default_system,
                              const std::vector<chat::ToolSpec>* tools, const Tokenizer& tok, int n_ctx, bool truncate, MediaShape shape = {});

// /api/generate: the prompt in a user turn (with the system prompt) unless raw; `context` tokens from an
// earlier response go first. Media go before the prompt's text, images first (raw: where the prompt marks
// them with the placeholders, else first).
BuiltPrompt build_generate_prompt(const std::string& prompt, const std::optional<std::string>& system, bool raw,
                                  const std::vector<int32_t>& context, const Tokenizer& tok, int n_ctx, bool truncate,
                                  const std::vector<MediaInput>& media = {}, MediaShape shape = {});

}  // namespace g3n::server
