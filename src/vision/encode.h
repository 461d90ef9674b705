// One image through the tower and the embedder: the rows the decoder takes for an image.
#pragma once
#include <cstdint>
#include <span>
#include <vector>
#include "vision/mmproj.h"
#include "vision/mobilenet_v5.h"

namespace g3n {
class ThreadPool;

struct ImageEmbedding {
  VisionMap tower;          // [16, 16, vision width] HWC
  std::vector<float> soft;  // [n_tokens, text width] row-major: the soft-token rows
};

// pixels: [3, n, n] CHW in [0, 1] (media/preprocess.h's output). Throws std::runtime_error when the size
// is not 3·n·n or the tower refuses n.
ImageEmbedding encode_image(const Mmproj& mm, std::span<const float> chw, int64_t n, ThreadPool& pool,
                            const VisionTap& tap = {});

// Throws std::runtime_error unless the projector's text width is the model's embedding width.
void check_projector_width(const Mmproj& mm, int64_t n_embd);

// The embedder's row for <end_of_image> (hard row 0), [text width].
std::vector<float> end_of_image_row(const Mmproj& mm, ThreadPool& pool);
}  // namespace g3n
