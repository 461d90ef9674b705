#include "chat/image_prompt.h"

#include <stdexcept>
#include <vector>

#include "chat/chat.h"
#include "tokenizer/tokenizer.h"

namespace g3n::chat {

InputRows layout_image_prompt(const Tokenizer& tok, std::string_view text, std::span<const ImageRows> images, bool add_bos) {
  std::vector<std::string_view> segments;
  for (size_t pos = 0;;) {
    const size_t at = text.find(kImagePlaceholder, pos);
    segments.push_back(text.substr(pos, at == std::string_view::npos ? std::string_view::npos : at - pos));
    if (at == std::string_view::npos) break;
    pos = at + kImagePlaceholder.size();
  }
  if (segments.size() != images.size() + 1)
    throw std::invalid_argument("the prompt marks " + std::to_string(segments.size() - 1) + " image(s), " + std::to_string(images.size()) +
                                " given");
  const std::optional<int32_t> boi = tok.find_token("<start_of_image>");
  const int64_t width = images.empty() ? 0 : images[0].width;
  for (const ImageRows& im : images)
    if (im.width <= 0 || im.width != width || im.soft.empty() || im.soft.size() % static_cast<size_t>(width) != 0 ||
        im.end_row.size() != static_cast<size_t>(width))
      throw std::invalid_argument("image rows are not whole vectors of one width");
  InputRows rows;
  for (size_t i = 0; i < segments.size(); ++i) {
    std::string seg(i > 0 ? "\n\n" : "");
    seg += segments[i];
    if (i < images.size()) {
      seg += "\n\n";
      if (!boi) seg += "<start_of_image>";
    }
    rows.push_tokens(tok.encode(seg, add_bos && i == 0, true));
    if (i == images.size()) break;
    if (boi) rows.push_token(*boi);
    rows.push_vectors(images[i].soft, width);
    rows.push_vectors(images[i].end_row, width);
  }
  return rows;
}

std::string images_then_text(size_t n_images, std::string_view text) {
  std::string s;
  for (size_t i = 0; i < n_images; ++i) s += kImagePlaceholder;
  s += trim(text);  // HF trims each text item
  return s;
}

}  // namespace g3n::chat
