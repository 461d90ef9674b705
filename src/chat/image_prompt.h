// Images in a prompt: chat/media_prompt.h's layout with image blocks only (the image-only callers' view).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "chat/media_prompt.h"
#include "runtime/input_rows.h"

namespace g3n {
class Tokenizer;
namespace chat {

struct ImageRows {
  std::span<const float> soft;     // [n_tokens, width] row-major
  std::span<const float> end_row;  // [width]: the embedder's <end_of_image> row
  int64_t width = 0;
};

// layout_media_prompt with one image block per ImageRows (the text must mark images only).
InputRows layout_image_prompt(const Tokenizer& tok, std::string_view text, std::span<const ImageRows> images, bool add_bos = true);

// A user message's content with images first, as Ollama renders them: one placeholder per image, then the text.
std::string images_then_text(size_t n_images, std::string_view text);

}  // namespace chat
}  // namespace g3n
