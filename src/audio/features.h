// The feature extractor of Gemma 3n's audio tower, exactly as Hugging Face's Gemma3nAudioFeatureExtractor
// computes it (fixture gemma3n-audio-tiny README §3): 16 kHz mono samples, truncated to 30 s and zero-padded
// to a multiple of 128, in 513-sample frames every 160 samples; HTK pre-emphasis, periodic Hann window,
// 1024-point FFT magnitude, 128 HTK mel bands from 125 to 7600 Hz, natural log with a 1e-5 floor.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace g3n {

inline constexpr int64_t kAudioMelBins = 128;

struct LogMelFeatures {
  int64_t frames = 0;
  std::vector<float> data;     // [frames, kAudioMelBins] row-major (HF input_features)
  std::vector<uint8_t> valid;  // [frames] 1 = valid frame (HF input_features_mask)
};

// The features of one clip. Samples past the first 480,000 (30 s) are ignored (the reference truncates;
// longer recordings are cut with audio_chunk first). Throws std::invalid_argument when fewer samples than
// one frame remain after padding (no frame at all) or a sample is not finite.
LogMelFeatures log_mel_features(std::span<const float> samples_16k);

}  // namespace g3n
