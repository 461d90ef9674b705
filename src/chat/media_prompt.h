// Where image and audio rows go in a prompt (Gemma3nProcessor's layout; ../shared/docs/gemma3n-multimodal.md
// §3, fixture gemma3n-audio-tiny README §4.3). Each block, image or 30 s audio chunk, is expanded in place of
// its placeholder as
//   ... text "\n\n" | <start_of_X> | soft rows | <end_of_X> row | "\n\n" text ...
// <start_of_image> / <start_of_audio> are text tokens (ids 255999 / 256000 in the real vocabulary, found by
// their pieces); <end_of_image> / <end_of_audio> are never tokenized: their rows are the embedders' hard
// row 0, given as vectors (HF's routing). Each text segment, with its "\n\n", is tokenized on its own (the
// text between two special tokens tokenizes the same either way). A vocabulary without the start piece (the
// llama.cpp-style tiny fixtures) gets the string tokenized as text, at the end of the segment before it.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/input_rows.h"

namespace g3n {
class Tokenizer;
namespace chat {

// Mark an image and an audio block in rendered prompt text (the HF chat template's placeholders).
inline constexpr std::string_view kImagePlaceholder = "<image_soft_token>";
inline constexpr std::string_view kAudioPlaceholder = "<audio_soft_token>";

enum class MediaKind { Image, Audio };

std::string_view placeholder(MediaKind kind);
std::string_view start_piece(MediaKind kind);  // "<start_of_image>" / "<start_of_audio>"

struct MediaRows {
  MediaKind kind = MediaKind::Image;
  std::span<const float> soft;     // [n_soft, width] row-major
  std::span<const float> end_row;  // [width]: the embedder's <end_of_X> row
  int64_t width = 0;
};

// Rows for `text` (a rendered prompt holding one placeholder per block, in order): BOS first when add_bos,
// text tokenized with special tokens parsed. Throws std::invalid_argument when the placeholders do not match
// the blocks (count or kind, in order) or a block's rows are not whole `width`-wide vectors of one common
// width.
InputRows layout_media_prompt(const Tokenizer& tok, std::string_view text, std::span<const MediaRows> blocks, bool add_bos = true);

// The placeholders of `text` in order (for callers that count or check them).
std::vector<MediaKind> find_placeholders(std::string_view text);

// A user message's content with its media first, as Ollama renders images: one placeholder per image, then
// one per audio block, then the (trimmed) text.
std::string media_then_text(size_t n_images, size_t n_audio_blocks, std::string_view text);

}  // namespace chat
}  // namespace g3n
