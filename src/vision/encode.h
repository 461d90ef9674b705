// One image through the tower and the embedder: the rows the decoder takes for an image.
#pragma once
#include <atomic>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <vector>
#include "vision/mmproj.h"
#include "vision/mobilenet_v5.h"
#include "vision/mobilenet_v5_fast.h"

namespace g3n {
class ThreadPool;

struct ImageEmbedding {
  VisionMap tower;          // [16, 16, vision width] HWC
  std::vector<float> soft;  // [n_tokens, text width] row-major: the soft-token rows
};

// How to run the tower and the embedder.
//  fast = false: the exact path (f32 activations, weights decoded to f32; the fixture's F32 tier).
//  fast = true:  the fast path (SIMD, blocked, tiled early stages; activations at least F16; the
//                fixture's F16 tier).
//  cancel:       polled between blocks; when it reads true the encode stops with VisionCancelled.
//  times:        fast path only: receives the tower's per-stage wall times when set.
struct VisionOptions {
  bool fast = false;
  const std::atomic<bool>* cancel = nullptr;
  std::vector<VisionStageTime>* times = nullptr;
};

// Thrown when VisionOptions::cancel was set during an encode.
class VisionCancelled : public std::runtime_error {
 public:
  VisionCancelled() : std::runtime_error("image encoding cancelled") {}
};

// pixels: [3, n, n] CHW in [0, 1] (media/preprocess.h's output). Throws std::runtime_error when the size
// is not 3·n·n or the tower refuses n.
ImageEmbedding encode_image(const Mmproj& mm, std::span<const float> chw, int64_t n, ThreadPool& pool,
                            const VisionOptions& opts = {}, const VisionTap& tap = {});

// Throws std::runtime_error unless the projector's text width is the model's embedding width.
void check_projector_width(const Mmproj& mm, int64_t n_embd);

// The embedder's row for <end_of_image> (hard row 0), [text width].
std::vector<float> end_of_image_row(const Mmproj& mm, ThreadPool& pool);
}  // namespace g3n
