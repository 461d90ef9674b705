// Shared helpers of the audio tests: the gemma3n-audio-tiny fixture's files and comparisons.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "audio/audio_encode.h"
#include "audio/audio_mmproj.h"
#include "audio/features.h"
#include "base/thread_pool.h"
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

// The projector at `path` against every clip's golden encoder output and embedded rows (README §7.2
// exact criteria); `label` tags the printed figures. Shared with the Hugging Face conversion's test.
inline void check_audio_all_clips(const std::string& path, const std::string& label) {
  const AudioMmproj mm = load_audio_mmproj(path);
  ThreadPool pool(2);
  for (const std::string& clip : audio_clips()) {
    SCOPED_TRACE(clip);
    const AudioEncoding e = encode_audio(mm, golden_features(clip), pool);
    const std::vector<uint8_t> valid = read_u8_file(audio_golden(clip) + "encoder_valid.u8.bin");
    EXPECT_EQ(e.n_tokens, static_cast<int64_t>(valid.size()));
    EXPECT_EQ(e.valid, valid);
    EXPECT_EQ(e.width, 256);
    const float de = audio_max_diff(e.encoder_out, read_f32_file(audio_golden(clip) + "encoder_out.f32.bin"));
    const float dr = audio_max_diff(e.rows, read_f32_file(audio_golden(clip) + "embeddings_188.f32.bin"));
    std::printf("  [%s exact] %-28s tokens %3lld  encoder_out max|d| %.3g  embeddings_188 max|d| %.3g\n", label.c_str(), clip.c_str(),
                static_cast<long long>(e.n_tokens), de, dr);
    EXPECT_LE(de, kAudioTolExact);
    EXPECT_LE(dr, kAudioTolExact);
  }
}

// A tap that holds each stage of clip a (README §2: the 10 intermediates it stores) to its golden at
// `tol` and the mask exactly, recording the stages it checked in `seen`; `label` tags the printed figures.
inline AudioTap golden_stage_tap(const std::string& label, float tol, std::set<std::string>& seen) {
  const std::string idir = audio_golden(audio_clips()[0]) + "intermediate/";
  return [label, tol, idir, &seen](const std::string& name, std::span<const float> v) {
    const std::vector<float> got(v.begin(), v.end());
    if (name == "sscp_valid") {
      const std::vector<uint8_t> want = read_u8_file(idir + "sscp_valid.u8.bin");
      EXPECT_EQ(std::vector<float>(want.begin(), want.end()), got);
      seen.insert(name);
      return;
    }
    const std::string file = idir + name + ".f32.bin";
    if (!std::ifstream(file)) return;  // stages the fixture does not store (layer 1's inner steps)
    const float d = audio_max_diff(got, read_f32_file(file));
    std::printf("  [%s] %-32s max|d| %.3g\n", label.c_str(), name.c_str(), d);
    EXPECT_LE(d, tol) << name;
    seen.insert(name);
  };
}

// The 10 intermediates of clip a, exact path, each at the exact criterion; the mask exactly.
inline void check_audio_intermediates(const std::string& path, const std::string& label) {
  const AudioMmproj mm = load_audio_mmproj(path);
  ThreadPool pool(2);
  std::set<std::string> seen;
  encode_audio(mm, golden_features(audio_clips()[0]), pool, {}, golden_stage_tap(label + " exact", kAudioTolExact, seen));
  EXPECT_EQ(seen.size(), 10u);
}

// The 128 hard rows and the end-of-audio row.
inline void check_audio_hard_rows(const std::string& path, const std::string& label) {
  const AudioMmproj mm = load_audio_mmproj(path);
  ThreadPool pool(2);
  const std::vector<float> hard = audio_hard_rows(mm, pool);
  const float d = audio_max_diff(hard, read_f32_file(audio_dir() + "/golden/hard_embeddings.f32.bin"));
  std::printf("  [%s] hard_embeddings max|d| %.3g\n", label.c_str(), d);
  EXPECT_LE(d, kAudioTolHard);
  EXPECT_EQ(end_of_audio_row(mm, pool), std::vector<float>(hard.begin(), hard.begin() + 256));
}

}  // namespace g3n::test
