#include "vision/encode.h"

#include <stdexcept>
#include <string>

#include "vision/embedder.h"

namespace g3n {

ImageEmbedding encode_image(const Mmproj& mm, std::span<const float> chw, int64_t n, ThreadPool& pool, const VisionOptions& opts,
                            const VisionTap& tap) {
  if (n <= 0 || chw.size() != static_cast<size_t>(3 * n * n))
    throw std::runtime_error("image pixels: " + std::to_string(chw.size()) + " floats, expected 3 x " + std::to_string(n) + " x " +
                             std::to_string(n));
  ImageEmbedding e;
  if (opts.fast) {
    e.tower = run_vision_tower_fast(mm, chw, n, pool, FastTowerOptions{opts.cancel, tap, opts.times});
    if (opts.cancel && opts.cancel->load(std::memory_order_relaxed)) throw VisionCancelled();
    e.soft = embed_soft_tokens_fast(mm, e.tower, pool);
    return e;
  }
  // The exact path: cancellation is polled at each tap.
  const VisionTap checked = [&](const std::string& name, const VisionMap& x) {
    if (opts.cancel && opts.cancel->load(std::memory_order_relaxed)) throw VisionCancelled();
    if (tap) tap(name, x);
  };
  e.tower = run_vision_tower(mm, vision_map_from_chw(chw.data(), 3, n, n), pool, checked);
  if (opts.cancel && opts.cancel->load(std::memory_order_relaxed)) throw VisionCancelled();
  e.soft = embed_soft_tokens(mm, e.tower, pool);
  return e;
}

void check_projector_width(const Mmproj& mm, int64_t n_embd) {
  if (mm.config.text_width != n_embd)
    throw std::runtime_error("the vision projector's text width is " + std::to_string(mm.config.text_width) + " but the model's embedding width is " +
                             std::to_string(n_embd) + ": this projector does not belong to this model");
}

std::vector<float> end_of_image_row(const Mmproj& mm, ThreadPool& pool) {
  const int32_t id = kVisionHardTokenBase;
  return embed_hard_tokens(mm, std::span<const int32_t>(&id, 1), pool);
}

}  // namespace g3n
