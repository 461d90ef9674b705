// An image file's bytes -> the rows the decoder takes: decode, the processor's resize and rescale, the
// vision tower and the embedder. Shared by `g3n run` and the server, so both place the same rows.
//
//   ImageEncoder enc(mmproj_path, model.config().n_embd, threads);
//   auto img = enc.encode(bytes);                       // cached by content: a second call is free
//   std::vector<std::shared_ptr<const EncodedImage>> images{img};
//   InputRows rows = image_prompt_rows(tok, rendered, images, enc.end_of_image_row());
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "media/content_cache.h"
#include "runtime/input_rows.h"
#include "vision/encode.h"
#include "vision/mmproj.h"

namespace g3n {
class ThreadPool;
class Tokenizer;

// One encoded image (immutable once made; shared between the cache and the prompts that use it).
struct EncodedImage {
  std::vector<float> soft;  // [n_tokens, width] soft-token rows
  int64_t width = 0;
  uint64_t key = 0;            // content hash of the file bytes
  int source_width = 0, source_height = 0;
  double preprocess_s = 0;     // decode + resize + rescale
  double encode_s = 0;         // tower + embedder
};

class ImageEncoder {
 public:
  // Loads the projector. Throws std::runtime_error on a bad file, and when n_embd > 0 and the projector's
  // text width differs from it (check_projector_width). threads: the encoder's own pool (it runs beside the
  // decode loop, not in it); fast: the fast vision path (false: the exact one).
  ImageEncoder(const std::string& mmproj_path, int64_t n_embd, int threads, bool fast = true);
  ~ImageEncoder();
  ImageEncoder(const ImageEncoder&) = delete;
  ImageEncoder& operator=(const ImageEncoder&) = delete;

  const Mmproj& projector() const { return mm_; }
  const std::string& path() const { return path_; }
  int64_t image_size() const { return mm_.config.image_size; }
  // Rows one image takes in a prompt: <start_of_image>, the soft rows and the <end_of_image> row.
  int64_t rows_per_image() const { return mm_.config.n_tokens + 2; }
  // The embedder's <end_of_image> row (hard row 0), computed once at construction.
  std::span<const float> end_of_image_row() const { return end_row_; }

  // Decodes (MediaError on a bad, unknown or too large image), preprocesses and encodes one image.
  // Results are cached by the bytes' content (the last kCacheImages images), so a conversation's earlier
  // images are not encoded again on the next turn. One encode runs at a time (the encoder's pool is not
  // reentrant); callers wait on a mutex. cancel: polled between tower blocks (VisionCancelled).
  std::shared_ptr<const EncodedImage> encode(std::span<const uint8_t> bytes, const std::atomic<bool>* cancel = nullptr);
  std::shared_ptr<const EncodedImage> encode_file(const std::string& path, const std::atomic<bool>* cancel = nullptr);
  // The cached encoding of these bytes (marked most recently used), or null: nothing is decoded or encoded.
  // Lets a caller tell a cache hit from an encode (the server counts them, and runs its hooks only
  // before real work).
  std::shared_ptr<const EncodedImage> cached(std::span<const uint8_t> bytes);

  static constexpr size_t kCacheImages = 16;

 private:
  std::string path_;
  Mmproj mm_;
  bool fast_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<float> end_row_;

  std::mutex mu_;  // guards the pool and the cache
  ContentCache<EncodedImage> cache_{kCacheImages};
};

// The prompt's rows: `text` is a rendered prompt with one chat::kImagePlaceholder per image, in order
// (chat::layout_image_prompt's rules). Throws std::invalid_argument when the counts differ.
InputRows image_prompt_rows(const Tokenizer& tok, std::string_view text, std::span<const std::shared_ptr<const EncodedImage>> images,
                            std::span<const float> end_of_image_row, bool add_bos = true);

}  // namespace g3n
