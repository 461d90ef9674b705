#include "media/audio_encoder.h"

#include "audio/clip.h"
#include "audio/features.h"
#include "base/clock.h"
#include "base/thread_pool.h"
#include "media/audio.h"
#include "media/content_key.h"
#include "media/image.h"

namespace g3n {
AudioEncoder::AudioEncoder(const std::string& mmproj_path, int64_t n_embd, int threads, bool fast)
    : path_(mmproj_path), mm_(load_audio_mmproj(mmproj_path)), fast_(fast),
      pool_(std::make_unique<ThreadPool>(threads > 0 ? threads : default_thread_count())) {
  if (n_embd > 0) check_audio_projector_width(mm_, n_embd);
  end_row_ = g3n::end_of_audio_row(mm_, *pool_);
}

AudioEncoder::~AudioEncoder() = default;

std::shared_ptr<const EncodedAudio> AudioEncoder::cached(std::span<const uint8_t> bytes) {
  const uint64_t key = content_key(bytes);
  std::lock_guard<std::mutex> lock(mu_);
  return cache_.find(key);
}

std::shared_ptr<EncodedAudio> AudioEncoder::encode_locked(const Waveform& wave, uint64_t key, const std::atomic<bool>* cancel) {
  auto out = std::make_shared<EncodedAudio>();
  out->key = key;
  out->seconds = wave.seconds();
  out->source_rate = wave.source_rate;
  out->source_channels = wave.source_channels;
  out->width = mm_.config.text_width;
  const int64_t n = audio_chunk_count(static_cast<int64_t>(wave.samples.size()));
  if (n == 0)
    throw MediaError("audio too short: " + std::to_string(wave.samples.size()) + " samples at 16 kHz, at least " +
                     std::to_string(kAudioMinSamples) + " (32 ms) needed");
  AudioOptions opts;
  opts.fast = fast_;
  opts.cancel = cancel;
  for (int64_t k = 0; k < n; ++k) {
    auto t0 = SteadyClock::now();
    LogMelFeatures features;
    try {
      features = log_mel_features(audio_chunk(wave.samples, k));
    } catch (const std::invalid_argument& e) {  // non-finite samples
      throw MediaError(e.what());
    }
    out->features_s += seconds_since(t0);
    t0 = SteadyClock::now();
    AudioEncoding e = encode_audio(mm_, features, *pool_, opts);
    out->encode_s += seconds_since(t0);
    out->valid_tokens.push_back(e.n_tokens);
    out->chunks.push_back(std::move(e.rows));
  }
  return out;
}

std::shared_ptr<const EncodedAudio> AudioEncoder::encode_waveform(const Waveform& wave, uint64_t key, const std::atomic<bool>* cancel) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto hit = cache_.find(key)) return hit;
  auto out = encode_locked(wave, key, cancel);
  cache_.insert(out);
  return out;
}

std::shared_ptr<const EncodedAudio> AudioEncoder::encode(std::span<const uint8_t> bytes, const std::atomic<bool>* cancel) {
  const uint64_t key = content_key(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto hit = cache_.find(key)) return hit;
  }
  const auto t0 = SteadyClock::now();
  const Waveform wave = decode_audio(bytes);  // outside the lock: decoding needs no pool
  const double decode_s = seconds_since(t0);
  std::lock_guard<std::mutex> lock(mu_);
  if (auto hit = cache_.find(key)) return hit;
  auto out = encode_locked(wave, key, cancel);
  out->decode_s = decode_s;
  cache_.insert(out);
  return out;
}

std::shared_ptr<const EncodedAudio> AudioEncoder::encode_file(const std::string& path, const std::atomic<bool>* cancel) {
  const std::vector<uint8_t> bytes = read_audio_file(path);
  try {
    return encode(bytes, cancel);
  } catch (const MediaError& e) {
    throw MediaError(path + ": " + e.what());
  }
}

}  // namespace g3n
