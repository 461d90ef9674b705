// Where an image's rows go in a prompt (Gemma3nProcessor's layout; ../shared/docs/gemma3n-multimodal.md §3.1):
//   ... text "\n\n" | <start_of_image> | 256 soft rows | <end_of_image> row | "\n\n" text ...
// <start_of_image> is a text token (id 255999 in the real vocabulary, found by its piece); <end_of_image> is
// never tokenized: its row is the vision embedder's hard row 0, given as a vector (HF's routing; trap V7
// of the same document).
// HF tokenizes the expanded string as a whole; the text between two special tokens is tokenized the same
// either way, so each text segment, with its "\n\n", is tokenized on its own ("user\n" + "\n\n" stays one
// "\n\n\n" piece, as in HF). A vocabulary without a <start_of_image> piece (the tiny fixtures) gets the string
// tokenized as text, at the end of the segment before the image.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "runtime/input_rows.h"

namespace g3n {
class Tokenizer;
namespace chat {

// Marks an image in rendered prompt text (the HF chat template's per-image placeholder).
inline constexpr std::string_view kImagePlaceholder = "<image_soft_token>";

struct ImageRows {
  std::span<const float> soft;     // [n_tokens, width] row-major
  std::span<const float> end_row;  // [width]: the embedder's <end_of_image> row
  int64_t width = 0;
};

// Rows for `text` (a rendered prompt holding one kImagePlaceholder per image, in order): BOS first when
// add_bos, text tokenized with special tokens parsed. Throws std::invalid_argument when the placeholder count
// differs from images.size() or an image's rows are not whole `width`-wide vectors of one common width.
InputRows layout_image_prompt(const Tokenizer& tok, std::string_view text, std::span<const ImageRows> images, bool add_bos = true);

// A user message's content with images first, as Ollama renders them: one placeholder per image, then the text.
std::string images_then_text(size_t n_images, std::string_view text);

}  // namespace chat
}  // namespace g3n
