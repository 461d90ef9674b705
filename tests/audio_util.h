// Shared helpers of the audio tests: the gemma3n-audio-tiny fixture's files and comparisons.
#pragma once
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "audio/features.h"
#include "golden_util.h"

namespace g3n::test {

inline std::string audio_dir() { return fixtures_dir() + "/gemma3n-audio-tiny"; }
inline std::string audio_model(const std::string& type) { return audio_dir() + "/models/gemma3n-audio-tiny-mmproj-" + type + ".gguf"; }
inline std::string audio_golden(const std::string& clip) { return audio_dir() + "/golden/" + clip + "/"; }

inline const std::vector<std::string>& audio_clips() {
  static const std::vector<std::string> clips = {"a_speech_16k_mono_s16", "b_speech_44k1_stereo_s16", "c_long_34s_16k_mono_s16",
                                                 "d_short_0.15s_16k_mono_f32"};
  return clips;
}

inline std::vector<uint8_t> read_u8_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The golden log-mel features of a clip (README §2: logmel.f32.bin + logmel_valid.u8.bin).
inline LogMelFeatures golden_features(const std::string& clip) {
  LogMelFeatures f;
  f.data = read_f32_file(audio_golden(clip) + "logmel.f32.bin");
  f.valid = read_u8_file(audio_golden(clip) + "logmel_valid.u8.bin");
  f.frames = static_cast<int64_t>(f.valid.size());
  if (f.data.size() != f.valid.size() * kAudioMelBins) throw std::runtime_error(clip + ": logmel and mask sizes disagree");
  return f;
}

// max |a - b| (infinite for a size mismatch or a NaN).
inline float audio_max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const float d = std::fabs(a[i] - b[i]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

// README §7.2.
constexpr float kAudioTolExact = 2e-4f;
constexpr float kAudioTolHard = 1e-5f;
constexpr float kAudioTolFast = 3e-2f;

}  // namespace g3n::test
