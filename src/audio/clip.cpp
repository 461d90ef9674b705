#include "audio/clip.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace g3n {

int64_t audio_chunk_count(int64_t n_samples) {
  if (n_samples < kAudioMinSamples) return 0;
  const int64_t full = n_samples / kAudioChunkSamples, tail = n_samples % kAudioChunkSamples;
  return full + (tail >= kAudioMinSamples ? 1 : 0);
}

std::span<const float> audio_chunk(std::span<const float> samples, int64_t k) {
  const int64_t n = static_cast<int64_t>(samples.size());
  if (k < 0 || k >= audio_chunk_count(n))
    throw std::out_of_range("audio chunk " + std::to_string(k) + " of a recording with " + std::to_string(audio_chunk_count(n)) + " chunks");
  const int64_t begin = k * kAudioChunkSamples, end = std::min(n, begin + kAudioChunkSamples);
  return samples.subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin));
}

}  // namespace g3n
