// The audio front end on the gemma3n-audio-tiny fixture: log-mel features of a full 30 s chunk (clip c,
// 2,997 frames) and of clip a, and decoding of clip a (16 kHz, no resampling) and clip b (44.1 kHz stereo:
// down-mix + soxr VHQ). Reports audio seconds processed per second.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "audio/features.h"
#include "media/audio.h"

namespace {

const std::string kInputs = std::string(G3N_FIXTURES_DIR) + "/gemma3n-audio-tiny/inputs/";

std::vector<float> waveform(const std::string& clip) {
  std::ifstream f(kInputs + clip + ".f32.bin", std::ios::binary);
  std::vector<char> bytes{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

void features(benchmark::State& state, const std::string& clip) {
  const std::vector<float> w = waveform(clip);
  const double seconds = static_cast<double>(std::min<size_t>(w.size(), 480000)) / 16000;
  for (auto _ : state) benchmark::DoNotOptimize(g3n::log_mel_features(w).data.data());
  state.counters["audio_s_per_s"] = benchmark::Counter(seconds, benchmark::Counter::kIsIterationInvariantRate);
}

void decode(benchmark::State& state, const std::string& clip) {
  const std::vector<uint8_t> bytes = g3n::read_audio_file(kInputs + clip + ".wav");
  double seconds = 0;
  for (auto _ : state) {
    const g3n::Waveform w = g3n::decode_audio(bytes);
    seconds = w.seconds();
    benchmark::DoNotOptimize(w.samples.data());
  }
  state.counters["audio_s_per_s"] = benchmark::Counter(seconds, benchmark::Counter::kIsIterationInvariantRate);
}

BENCHMARK_CAPTURE(features, clip_c_30s, std::string("c_long_34s_16k_mono_s16"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(features, clip_a_3_7s, std::string("a_speech_16k_mono_s16"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(decode, clip_a_16k_mono, std::string("a_speech_16k_mono_s16"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(decode, clip_b_44k1_stereo, std::string("b_speech_44k1_stereo_s16"))->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
