// src/audio/features: the log-mel features of the gemma3n-audio-tiny fixture's four waveforms against the
// goldens, at the fixture's criteria (README §7.2: max |Δ| ≤ 1e-2 everywhere, ≤ 1e-3 where the golden > −6,
// masks equal), and the extractor's errors.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "audio/clip.h"
#include "audio/features.h"
#include "golden_util.h"
#include "gtest/gtest.h"

using namespace g3n;

namespace {

std::string audio_fixture() { return test::fixtures_dir() + "/gemma3n-audio-tiny/"; }

std::vector<uint8_t> read_u8_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

struct Clip {
  const char* name;
  int64_t frames;
};
const Clip kClips[] = {
    {"a_speech_16k_mono_s16", 368},
    {"b_speech_44k1_stereo_s16", 297},
    {"c_long_34s_16k_mono_s16", 2997},
    {"d_short_0.15s_16k_mono_f32", 12},
};

class LogMelGolden : public ::testing::TestWithParam<Clip> {};

TEST_P(LogMelGolden, MatchesGoldenWithinFixtureCriteria) {
  const Clip clip = GetParam();
  const std::vector<float> wave = test::read_f32_file(audio_fixture() + "inputs/" + clip.name + ".f32.bin");
  const std::vector<float> golden = test::read_f32_file(audio_fixture() + "golden/" + clip.name + "/logmel.f32.bin");
  const std::vector<uint8_t> golden_valid = read_u8_file(audio_fixture() + "golden/" + clip.name + "/logmel_valid.u8.bin");

  const LogMelFeatures f = log_mel_features(wave);
  ASSERT_EQ(f.frames, clip.frames);
  ASSERT_EQ(f.data.size(), golden.size());
  EXPECT_EQ(f.valid, golden_valid);

  double max_all = 0, max_loud = 0;
  for (size_t i = 0; i < golden.size(); ++i) {
    const double d = std::fabs(static_cast<double>(f.data[i]) - golden[i]);
    max_all = std::max(max_all, d);
    if (golden[i] > -6.0f) max_loud = std::max(max_loud, d);
  }
  std::printf("log-mel %s: %lld frames, max|d| %.3g overall, %.3g where golden > -6\n", clip.name,
              static_cast<long long>(f.frames), max_all, max_loud);
  EXPECT_LE(max_all, 1e-2);
  EXPECT_LE(max_loud, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Clips, LogMelGolden, ::testing::ValuesIn(kClips),
                         [](const auto& info) { return std::string(1, info.param.name[0]); });

TEST(LogMelFeatures, SamplesPastThirtySecondsAreIgnored) {
  std::vector<float> wave = test::read_f32_file(audio_fixture() + "inputs/c_long_34s_16k_mono_s16.f32.bin");
  const LogMelFeatures whole = log_mel_features(wave);
  // Neither the values nor even the validity of what follows sample 480,000 matters (trap T11).
  wave[kAudioChunkSamples + 5] = std::numeric_limits<float>::quiet_NaN();
  wave.resize(kAudioChunkSamples + 1000);
  const LogMelFeatures cut = log_mel_features(wave);
  EXPECT_EQ(cut.frames, 2997);
  EXPECT_EQ(cut.data, whole.data);
}

TEST(LogMelFeatures, ShortestInputIsOneFrame) {
  // 512 samples pad to 512 < 513: no frame; 513 pad to 640: one frame, valid.
  EXPECT_THROW(log_mel_features(std::vector<float>(512, 0.1f)), std::invalid_argument);
  EXPECT_THROW(log_mel_features({}), std::invalid_argument);
  const LogMelFeatures one = log_mel_features(std::vector<float>(513, 0.1f));
  EXPECT_EQ(one.frames, 1);
  EXPECT_EQ(one.valid, std::vector<uint8_t>{1});
  EXPECT_EQ(one.data.size(), static_cast<size_t>(kAudioMelBins));
}

TEST(LogMelFeatures, SilenceSitsAtTheFloor) {
  const LogMelFeatures f = log_mel_features(std::vector<float>(1600, 0.0f));
  for (float v : f.data) ASSERT_FLOAT_EQ(v, std::log(1e-5f));
}

TEST(LogMelFeatures, NonFiniteSampleIsRefused) {
  std::vector<float> wave(4000, 0.25f);
  wave[1234] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(log_mel_features(wave), std::invalid_argument);
  wave[1234] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(log_mel_features(wave), std::invalid_argument);
}

TEST(LogMelFeatures, ConcurrentCallsAgree) {
  // The first calls race to build the shared FFT plan and filterbank; every thread must get the same bits.
  const std::vector<float> wave = test::read_f32_file(audio_fixture() + "inputs/a_speech_16k_mono_s16.f32.bin");
  std::vector<LogMelFeatures> results(4);
  std::vector<std::thread> threads;
  for (auto& r : results) threads.emplace_back([&r, &wave] { r = log_mel_features(wave); });
  for (auto& t : threads) t.join();
  for (const auto& r : results) EXPECT_EQ(r.data, results[0].data);
}

}  // namespace
