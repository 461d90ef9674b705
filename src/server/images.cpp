#include "server/images.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/base64.h"
#include "media/image.h"
#include "server/options.h"
#include "server/state.h"

namespace g3n::server {
namespace {

using Clock = std::chrono::steady_clock;

// The bytes' header: a known format whose dimensions are within the decoder's pixel limit.
ImageInput checked(std::vector<uint8_t> bytes, std::string where) {
  if (bytes.empty()) throw HttpError(400, "invalid image in " + where + ": no data");
  try {
    const ImageInfo info = probe_image(bytes);
    const uint64_t pixels = static_cast<uint64_t>(info.width) * static_cast<uint64_t>(info.height);
    if (pixels > kDefaultMaxImagePixels)
      throw HttpError(400, "image too large in " + where + ": " + std::to_string(info.width) + "x" + std::to_string(info.height) + " is " +
                               std::to_string(pixels) + " pixels, above the limit of " + std::to_string(kDefaultMaxImagePixels) +
                               " (8192x8192)");
  } catch (const MediaError& e) {
    throw HttpError(400, "invalid image in " + where + ": " + e.what());
  }
  return {std::make_shared<const std::vector<uint8_t>>(std::move(bytes)), std::move(where)};
}

std::vector<uint8_t> decode_base64(std::string_view text, const std::string& where) {
  std::string why;
  auto bytes = base64_decode(text, &why);
  if (!bytes) throw HttpError(400, "invalid image in " + where + ": not base64 (" + why + ")");
  return std::move(*bytes);
}

// data:[<media type>][;parameters];base64,<data>
ImageInput from_data_url(std::string_view url, std::string where) {
  const size_t comma = url.find(',');
  if (comma == std::string_view::npos) throw HttpError(400, "invalid image data URL in " + where + ": no ',' before the data");
  const std::string_view head = url.substr(5, comma - 5);  // after "data:"
  if (head.size() < 7 || head.substr(head.size() - 7) != ";base64")
    throw HttpError(400, "invalid image data URL in " + where + ": the data must be base64 (data:image/png;base64,...)");
  const std::string_view type = head.substr(0, head.find(';'));
  if (!type.empty() && type.rfind("image/", 0) != 0 && type != "application/octet-stream")
    throw HttpError(400, "invalid image data URL in " + where + ": media type \"" + std::string(type) + "\" is not an image");
  std::vector<uint8_t> bytes = decode_base64(url.substr(comma + 1), where);  // before `where` moves
  return checked(std::move(bytes), std::move(where));
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
  return true;
}

// `rows` after `prefix` token ids (vector rows copied: runs of consecutive rows at once).
InputRows after_tokens(std::span<const int32_t> prefix, const InputRows& rows) {
  InputRows out(prefix);
  const RowsView v = rows.view();
  const size_t w = static_cast<size_t>(rows.width());
  for (size_t i = 0; i < v.size();) {
    const float* p = v.vector(i);
    if (!p) {
      out.push_token(v.tokens[i++]);
      continue;
    }
    size_t n = 1;
    while (i + n < v.size() && v.vector(i + n) == p + n * w) ++n;
    out.push_vectors(std::span<const float>(p, n * w), rows.width());
    i += n;
  }
  return out;
}

// Sets `cancel` when the client goes away or the server stops, until destroyed.
class DisconnectWatch {
 public:
  DisconnectWatch(ServerState& s, const HttpRequest& req, std::atomic<bool>& cancel)
      : thread_([this, &s, &req, &cancel] {
          std::unique_lock lk(mu_);
          while (!done_) {
            if (s.stopping.load() || (req.client_gone && req.client_gone())) {
              cancel.store(true);
              return;
            }
            cv_.wait_for(lk, std::chrono::milliseconds(25));
          }
        }) {}
  ~DisconnectWatch() {
    {
      std::lock_guard lk(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  DisconnectWatch(const DisconnectWatch&) = delete;
  DisconnectWatch& operator=(const DisconnectWatch&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the rest is built
};

}  // namespace

ImageInput image_from_base64(std::string_view text, std::string where) {
  if (starts_with_ci(text, "data:")) return from_data_url(text, std::move(where));
  std::vector<uint8_t> bytes = decode_base64(text, where);  // before `where` moves
  return checked(std::move(bytes), std::move(where));
}

ImageInput image_from_url(std::string_view url, std::string where) {
  if (starts_with_ci(url, "http://") || starts_with_ci(url, "https://"))
    throw HttpError(400, "image URLs are not fetched (" + where + "): the server makes no outbound requests; send the image inline as a "
                         "data URL (data:image/png;base64,...)");
  if (!starts_with_ci(url, "data:"))
    throw HttpError(400, "invalid image URL in " + where + ": expected a data URL (data:image/png;base64,...)");
  return from_data_url(url, std::move(where));
}

ImageShape image_shape(const LoadedModel& m, bool needed) {
  if (!needed && !m.images) return {};
  if (needed) (void)m.image_encoder();  // throws the reason there is none
  return {m.images->rows_per_image(), m.images->projector().config.n_tokens};
}

void encode_prompt_images(ServerState& s, const LoadedModel& m, const HttpRequest& req, BuiltPrompt& bp) {
  if (bp.images.empty()) return;
  ImageEncoder& enc = m.image_encoder();
  std::vector<std::shared_ptr<const EncodedImage>> encoded;
  {
    std::atomic<bool> cancel{false};
    const DisconnectWatch watch(s, req, cancel);
    for (const ImageInput& im : bp.images) {
      if (auto hit = enc.cached(*im.bytes)) {
        s.metrics.record_image_cached();
        encoded.push_back(std::move(hit));
        continue;
      }
      if (s.cfg.before_image_encode) s.cfg.before_image_encode(cancel);
      const auto t0 = Clock::now();
      try {
        encoded.push_back(enc.encode(*im.bytes, &cancel));
      } catch (const VisionCancelled&) {
        s.metrics.record_image_cancelled();
        if (s.stopping.load()) throw HttpError(503, "server shutting down");
        throw HttpError(499, "the client closed the connection while " + im.where + " was encoded");
      } catch (const MediaError& e) {
        throw HttpError(400, "invalid image in " + im.where + ": " + e.what());
      }
      s.metrics.record_image_encoded(std::chrono::duration<double>(Clock::now() - t0).count());
    }
  }
  InputRows rows = image_prompt_rows(*m.tok, bp.text, encoded, enc.end_of_image_row(), bp.add_bos);
  bp.rows = bp.prefix.empty() ? std::move(rows) : after_tokens(bp.prefix, rows);
}

}  // namespace g3n::server
