// libFuzzer target for the audio path: decode (every accepted container and codec libsndfile has), down-mix,
// resample to 16 kHz, then the log-mel features of the first 30 s chunk. A MediaError is the expected outcome
// for most inputs; anything else (a crash, a sanitizer report, another exception, an inconsistent result)
// is a bug.
#include <cmath>
#include <cstdint>
#include <span>
#include <stdexcept>

#include "audio/clip.h"
#include "audio/features.h"
#include "media/audio.h"
#include "media/image.h"

using namespace g3n;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A 40 s limit keeps each run fast and its allocations bounded; the limit check is what's tested.
  const AudioLimits limits{.max_seconds = 40.0};
  Waveform w;
  try {
    w = decode_audio(std::span<const uint8_t>(data, size), limits);
  } catch (const MediaError&) {
    return 0;
  }
  if (w.samples.empty() || w.source_rate < kMinAudioRate || w.source_rate > kMaxAudioRate) __builtin_trap();
  if (w.source_channels < 1 || w.source_channels > kMaxAudioChannels) __builtin_trap();
  // The resampled length may exceed the limit by soxr's rounding only.
  if (w.seconds() > limits.max_seconds + 1.0) __builtin_trap();
  for (float v : w.samples)
    if (!std::isfinite(v)) __builtin_trap();
  // The first 30 s chunk; a recording under one frame (513 samples) has no chunk, and the extractor must
  // refuse it whole.
  const std::span<const float> all(w.samples);
  const std::span<const float> chunk = audio_chunk_count(static_cast<int64_t>(all.size())) > 0 ? audio_chunk(all, 0) : all;
  LogMelFeatures f;
  try {
    f = log_mel_features(chunk);
  } catch (const std::invalid_argument&) {
    if (chunk.size() > 512) __builtin_trap();  // only a clip shorter than one frame may be refused
    return 0;
  }
  if (f.frames < 1 || f.data.size() != static_cast<size_t>(f.frames * kAudioMelBins) || f.valid.size() != static_cast<size_t>(f.frames))
    __builtin_trap();
  for (float v : f.data)
    if (!std::isfinite(v) || v < -11.6f) __builtin_trap();
  return 0;
}
