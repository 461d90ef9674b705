#include "media/audio_benchmark.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "audio/audio_encode.h"
#include "audio/audio_mmproj.h"
#include "audio/clip.h"
#include "audio/features.h"
#include "base/thread_pool.h"
#include "media/audio.h"
#include "media/image.h"
#include "media/stage_times.h"
#include "runtime/benchmark.h"

namespace g3n {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

}  // namespace

double audio_encode_flops(const AudioConfig& c, int64_t t1, int64_t t2, int64_t tokens) {
  const double D = static_cast<double>(c.width), F = static_cast<double>(c.ffn_width), T1 = static_cast<double>(t1),
               T2 = static_cast<double>(t2);
  const double c0 = static_cast<double>(c.sscp_channels[0]), c1 = static_cast<double>(c.sscp_channels[1]);
  const double f1 = static_cast<double>(c.sscp_freq[1]), f2 = static_cast<double>(c.sscp_freq[2]);
  const double k = 9;  // 3x3 taps
  double flops = 2 * T1 * f1 * c0 * k * 1 + 2 * T2 * f2 * c1 * k * c0 + 2 * T2 * (f2 * c1) * D;  // SSCP
  const double window = static_cast<double>(kAudioMaxPast + 1);
  const double layer = 2 * (2 * 2 * T2 * D * F)               // two half-step FFNs, up and down
                       + 4 * 2 * T2 * D * D                    // q, k, v, output projections
                       + 2 * window * D * D                    // the relative-position projections
                       + 3 * 2 * T2 * window * D               // q.k, q.p, a.v over the 13-frame window
                       + 2 * T2 * D * 2 * D + 2 * T2 * D * D   // light conv: D -> 2D, D -> D
                       + 2 * T2 * D * static_cast<double>(c.conv_kernel);
  flops += static_cast<double>(c.n_layers) * layer;
  flops += 2 * static_cast<double>(tokens) * D * static_cast<double>(c.text_width);  // embedder projection
  return flops;
}

AudioBenchResult run_audio_benchmark(const AudioBenchParams& p) {
  if (p.repeats < 1) throw std::invalid_argument("audio bench: need repeats >= 1");
  AudioBenchResult r;
  auto t0 = Clock::now();
  const AudioMmproj mm = load_audio_mmproj(p.mmproj);
  r.load_s = seconds(t0, Clock::now());
  if (p.n_embd > 0) check_audio_projector_width(mm, p.n_embd);
  const std::vector<uint8_t> bytes = read_audio_file(p.audio);
  ThreadPool pool(std::max(1, p.n_threads));
  AudioOptions opts;
  opts.fast = p.fast;
  for (int rep = 0; rep < p.repeats; ++rep) {
    AudioBenchRun run;
    t0 = Clock::now();
    Waveform wave;
    try {
      wave = decode_audio(bytes);
    } catch (const MediaError& e) {
      throw MediaError(p.audio + ": " + e.what());
    }
    run.decode_s = seconds(t0, Clock::now());
    r.audio_seconds = wave.seconds();
    const int64_t n = audio_chunk_count(static_cast<int64_t>(wave.samples.size()));
    if (n == 0) throw MediaError(p.audio + ": audio too short (under 513 samples at 16 kHz)");
    r.chunks = n;
    r.tokens = n * kAudioSoftTokens;
    r.flops = 0;
    run.stages = {{"sscp", 0.0}, {"conformer", 0.0}, {"embedder", 0.0}};
    for (int64_t k = 0; k < n; ++k) {
      t0 = Clock::now();
      const LogMelFeatures f = log_mel_features(audio_chunk(wave.samples, k));
      run.features_s += seconds(t0, Clock::now());
      std::vector<AudioStageTime> times;
      opts.times = &times;
      t0 = Clock::now();
      const AudioEncoding e = encode_audio(mm, f, pool, opts);
      run.encode_s += seconds(t0, Clock::now());
      for (const AudioStageTime& t : times) add_stage_time(run.stages, t.name, t.seconds);
      const int64_t t1 = (f.frames - 1) / 2 + 1, t2 = (t1 - 1) / 2 + 1;
      r.flops += audio_encode_flops(mm.config, t1, t2, e.n_tokens);
    }
    r.runs.push_back(std::move(run));
  }
  std::vector<double> dec, fea, enc;
  for (const auto& run : r.runs) {
    dec.push_back(run.decode_s);
    fea.push_back(run.features_s);
    enc.push_back(run.encode_s);
  }
  r.decode_s = median(dec);
  r.features_s = median(fea);
  r.encode_s = median(enc);
  r.stages = median_stage_times(r.runs);
  return r;
}

}  // namespace g3n
