#include "server/media.h"

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "base/base64.h"
#include "media/audio.h"
#include "media/content_key.h"
#include "media/image.h"
#include "media/media_rows.h"
#include "server/options.h"
#include "server/state.h"

namespace g3n::server {
namespace {

using Clock = std::chrono::steady_clock;

// The bytes' header: a known format whose dimensions are within the decoder's pixel limit.
MediaInput checked(std::vector<uint8_t> bytes, std::string where) {
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
  return {chat::MediaKind::Image, std::make_shared<const std::vector<uint8_t>>(std::move(bytes)), std::move(where), nullptr};
}

MediaInput decoded_audio(std::vector<uint8_t> bytes, std::string where) {
  if (bytes.empty()) throw HttpError(400, "invalid audio in " + where + ": no data");
  if (bytes.size() > kMaxAudioFileBytes)
    throw HttpError(413, "audio too large in " + where + ": " + std::to_string(bytes.size() >> 20) + " MiB, above the limit of " +
                             std::to_string(kMaxAudioFileBytes >> 20) + " MiB");
  MediaInput in{chat::MediaKind::Audio, nullptr, std::move(where), nullptr};
  try {
    in.wave = std::make_shared<const Waveform>(decode_audio(bytes));
  } catch (const MediaError& e) {
    throw HttpError(400, "invalid audio in " + in.where + ": " + e.what());
  }
  if (in.blocks() == 0)
    throw HttpError(400, "invalid audio in " + in.where + ": too short (" + std::to_string(in.wave->samples.size()) +
                             " samples at 16 kHz; at least 513, 32 ms)");
  in.bytes = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  return in;
}

std::vector<uint8_t> decode_base64(std::string_view text, const std::string& where, const char* what = "image") {
  std::string why;
  auto bytes = base64_decode(text, &why);
  if (!bytes) throw HttpError(400, std::string("invalid ") + what + " in " + where + ": not base64 (" + why + ")");
  return std::move(*bytes);
}

// data:[<media type>][;parameters];base64,<data>
MediaInput from_data_url(std::string_view url, std::string where) {
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

// One recording (already decoded), through the model's audio encoder: a cache hit, or every 30 s chunk.
std::shared_ptr<const EncodedAudio> encode_audio_input(ServerState& s, AudioEncoder& enc, const MediaInput& in, std::atomic<bool>& cancel) {
  const uint64_t key = content_key(*in.bytes);
  if (auto hit = enc.cached(*in.bytes)) {
    s.metrics.record_audio_cached();
    return hit;
  }
  if (s.cfg.before_image_encode) s.cfg.before_image_encode(cancel);
  const auto t0 = Clock::now();
  try {
    auto clip = enc.encode_waveform(*in.wave, key, &cancel);
    s.metrics.record_audio_encoded(std::chrono::duration<double>(Clock::now() - t0).count(), in.wave->seconds());
    return clip;
  } catch (const AudioCancelled&) {
    s.metrics.record_audio_cancelled();
    if (s.stopping.load()) throw HttpError(503, "server shutting down");
    throw HttpError(499, "the client closed the connection while " + in.where + " was encoded");
  } catch (const MediaError& e) {
    throw HttpError(400, "invalid audio in " + in.where + ": " + e.what());
  }
}

}  // namespace

MediaInput image_from_base64(std::string_view text, std::string where) {
  if (starts_with_ci(text, "data:")) return from_data_url(text, std::move(where));
  std::vector<uint8_t> bytes = decode_base64(text, where);  // before `where` moves
  return checked(std::move(bytes), std::move(where));
}

MediaInput image_from_url(std::string_view url, std::string where) {
  if (starts_with_ci(url, "http://") || starts_with_ci(url, "https://"))
    throw HttpError(400, "image URLs are not fetched (" + where + "): the server makes no outbound requests; send the image inline as a "
                         "data URL (data:image/png;base64,...)");
  if (!starts_with_ci(url, "data:"))
    throw HttpError(400, "invalid image URL in " + where + ": expected a data URL (data:image/png;base64,...)");
  return from_data_url(url, std::move(where));
}

MediaInput audio_from_base64(std::string_view text, std::string where) {
  if (starts_with_ci(text, "data:")) {
    const size_t comma = text.find(',');
    const std::string_view head = text.substr(5, comma == std::string_view::npos ? 0 : comma - 5);
    if (comma == std::string_view::npos || head.size() < 7 || head.substr(head.size() - 7) != ";base64")
      throw HttpError(400, "invalid audio data URL in " + where + ": expected data:audio/wav;base64,...");
    text = text.substr(comma + 1);
  }
  std::vector<uint8_t> bytes = decode_base64(text, where, "audio");
  return decoded_audio(std::move(bytes), std::move(where));
}

MediaInput audio_from_bytes(std::vector<uint8_t> bytes, std::string where) { return decoded_audio(std::move(bytes), std::move(where)); }

MediaShape media_shape(const LoadedModel& m, bool need_images, bool need_audio) {
  MediaShape shape;
  if (need_images) (void)m.image_encoder();  // throws the reason there is none
  if (need_audio) (void)m.audio_encoder();
  if (m.images) {
    shape.image_rows = m.images->rows_per_image();
    shape.image_soft_rows = m.images->projector().config.n_tokens;
  }
  if (m.audio) {
    shape.audio_rows = AudioEncoder::rows_per_block();
    shape.audio_soft_rows = kAudioSoftTokens;
  }
  return shape;
}

void encode_prompt_media(ServerState& s, const LoadedModel& m, const HttpRequest& req, BuiltPrompt& bp) {
  if (bp.media.empty()) return;
  std::vector<std::shared_ptr<const EncodedImage>> encoded;
  std::vector<std::shared_ptr<const EncodedAudio>> clips;
  {
    std::atomic<bool> cancel{false};
    const DisconnectWatch watch(s, req, cancel);
    for (const MediaInput& im : bp.media) {
      if (im.kind == chat::MediaKind::Audio) {
        clips.push_back(encode_audio_input(s, m.audio_encoder(), im, cancel));
        continue;
      }
      ImageEncoder& enc = m.image_encoder();
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
  const std::span<const float> end_image = m.images ? m.images->end_of_image_row() : std::span<const float>();
  const std::span<const float> end_audio = m.audio ? m.audio->end_of_audio_row() : std::span<const float>();
  InputRows rows = media_prompt_rows(*m.tok, bp.text, encoded, end_image, clips, end_audio, bp.add_bos);
  bp.rows = bp.prefix.empty() ? std::move(rows) : after_tokens(bp.prefix, rows);
}

}  // namespace g3n::server
