#include "media/image_encoder.h"

#include "base/clock.h"
#include "base/thread_pool.h"
#include "chat/image_prompt.h"
#include "gguf/gguf.h"
#include "media/content_key.h"
#include "media/image.h"
#include "media/preprocess.h"

namespace g3n {
ImageEncoder::ImageEncoder(const std::string& mmproj_path, int64_t n_embd, int threads, bool fast)
    : path_(mmproj_path), mm_(load_mmproj(mmproj_path)), fast_(fast),
      pool_(std::make_unique<ThreadPool>(threads > 0 ? threads : default_thread_count())) {
  if (n_embd > 0) check_projector_width(mm_, n_embd);
  end_row_ = g3n::end_of_image_row(mm_, *pool_);
}

ImageEncoder::~ImageEncoder() = default;

std::shared_ptr<const EncodedImage> ImageEncoder::cached(std::span<const uint8_t> bytes) {
  const uint64_t key = content_key(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.find(key);
}

std::shared_ptr<const EncodedImage> ImageEncoder::encode(std::span<const uint8_t> bytes, const std::atomic<bool>* cancel) {
  const uint64_t key = content_key(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto hit = cache_.find(key)) return hit;
  auto out = std::make_shared<EncodedImage>();
  out->key = key;
  auto t0 = SteadyClock::now();
  std::vector<float> px;
  {  // the decoded image is freed before the encode: it is not needed there
    const RgbImage img = decode_image(bytes);
    out->source_width = img.width;
    out->source_height = img.height;
    px = preprocess_image(img, static_cast<int>(mm_.config.image_size));
  }
  out->preprocess_s = seconds_since(t0);
  t0 = SteadyClock::now();
  VisionOptions opts;
  opts.fast = fast_;
  opts.cancel = cancel;
  ImageEmbedding e = encode_image(mm_, px, mm_.config.image_size, *pool_, opts);
  out->encode_s = seconds_since(t0);
  out->soft = std::move(e.soft);
  out->width = mm_.config.text_width;
  cache_.insert(out);
  return out;
}

std::shared_ptr<const EncodedImage> ImageEncoder::encode_file(const std::string& path, const std::atomic<bool>* cancel) {
  const std::vector<uint8_t> bytes = read_image_file(path);
  try {
    return encode(bytes, cancel);
  } catch (const MediaError& e) {
    throw MediaError(path + ": " + e.what());
  }
}

InputRows image_prompt_rows(const Tokenizer& tok, std::string_view text, std::span<const std::shared_ptr<const EncodedImage>> images,
                            std::span<const float> end_of_image_row, bool add_bos) {
  std::vector<chat::ImageRows> rows;
  rows.reserve(images.size());
  for (const auto& im : images) rows.push_back({im->soft, end_of_image_row, im->width});
  return chat::layout_image_prompt(tok, text, rows, add_bos);
}

}  // namespace g3n
