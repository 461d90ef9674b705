#include "media/media_rows.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "chat/media_prompt.h"

namespace g3n {

InputRows media_prompt_rows(const Tokenizer& tok, std::string_view text, std::span<const std::shared_ptr<const EncodedImage>> images,
                            std::span<const float> end_of_image_row, std::span<const std::shared_ptr<const EncodedAudio>> audio,
                            std::span<const float> end_of_audio_row, bool add_bos) {
  std::vector<chat::MediaRows> blocks;
  size_t next_image = 0, next_clip = 0, next_chunk = 0, audio_blocks = 0;
  for (const auto& a : audio) audio_blocks += a->chunks.size();
  for (const chat::MediaKind kind : chat::find_placeholders(text)) {
    if (kind == chat::MediaKind::Image) {
      if (next_image == images.size()) throw std::invalid_argument("the prompt marks more images than the " + std::to_string(images.size()) + " given");
      const EncodedImage& im = *images[next_image++];
      blocks.push_back({kind, im.soft, end_of_image_row, im.width});
      continue;
    }
    while (next_clip < audio.size() && next_chunk == audio[next_clip]->chunks.size()) ++next_clip, next_chunk = 0;
    if (next_clip == audio.size())
      throw std::invalid_argument("the prompt marks more audio chunks than the " + std::to_string(audio_blocks) + " given");
    const EncodedAudio& a = *audio[next_clip];
    blocks.push_back({kind, a.chunks[next_chunk++], end_of_audio_row, a.width});
  }
  size_t used_audio = 0;
  for (const auto& b : blocks) used_audio += b.kind == chat::MediaKind::Audio;
  if (next_image != images.size() || used_audio != audio_blocks)
    throw std::invalid_argument("the prompt marks " + std::to_string(next_image) + " image(s) and " + std::to_string(used_audio) +
                                " audio chunk(s); " + std::to_string(images.size()) + " and " + std::to_string(audio_blocks) + " given");
  return chat::layout_media_prompt(tok, text, blocks, add_bos);
}

}  // namespace g3n
