#include "chat/image_prompt.h"

#include <vector>

namespace g3n::chat {

InputRows layout_image_prompt(const Tokenizer& tok, std::string_view text, std::span<const ImageRows> images, bool add_bos) {
  std::vector<MediaRows> blocks;
  blocks.reserve(images.size());
  for (const ImageRows& im : images) blocks.push_back({MediaKind::Image, im.soft, im.end_row, im.width});
  return layout_media_prompt(tok, text, blocks, add_bos);
}

std::string images_then_text(size_t n_images, std::string_view text) { return media_then_text(n_images, 0, text); }

}  // namespace g3n::chat
