// The rows of a prompt holding images and audio: rendered text with one placeholder per image and per 30 s
// audio chunk (chat/media_prompt.h), and the encodings, in the order the text marks them.
#pragma once
#include <memory>
#include <span>
#include <string_view>

#include "media/audio_encoder.h"
#include "media/image_encoder.h"
#include "runtime/input_rows.h"

namespace g3n {
class Tokenizer;

// Image placeholders take the images in order; audio placeholders take the clips' chunks in order (a clip of
// k chunks fills k placeholders). Throws std::invalid_argument when the text marks a different number of
// images or audio chunks than given. The end rows may be empty when no block of that kind is given.
InputRows media_prompt_rows(const Tokenizer& tok, std::string_view text, std::span<const std::shared_ptr<const EncodedImage>> images,
                            std::span<const float> end_of_image_row, std::span<const std::shared_ptr<const EncodedAudio>> audio,
                            std::span<const float> end_of_audio_row, bool add_bos = true);

}  // namespace g3n
