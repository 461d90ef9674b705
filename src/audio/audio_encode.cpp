#include "audio/audio_encode.h"

#include <chrono>
#include <numeric>
#include <string>

#include "audio/audio_embedder.h"
#include "audio/audio_gemm.h"
#include "audio/clip.h"
#include "audio/conformer_fast.h"
#include "base/thread_pool.h"

namespace g3n {

AudioEncoding encode_audio(const AudioMmproj& mm, const LogMelFeatures& f, ThreadPool& pool, const AudioOptions& opts, const AudioTap& tap) {
  if (f.frames <= 0 || f.data.size() != static_cast<size_t>(f.frames * mm.config.mel_bins) || f.valid.size() != static_cast<size_t>(f.frames))
    throw std::runtime_error("audio features: " + std::to_string(f.data.size()) + " values and " + std::to_string(f.valid.size()) +
                             " flags are not " + std::to_string(f.frames) + " (>= 1) frames of " + std::to_string(mm.config.mel_bins) + " mel bins");
  if (const int64_t n = audio_token_count(f.frames); n > kAudioSoftTokens)
    throw std::runtime_error("audio features: " + std::to_string(f.frames) + " frames give " + std::to_string(n) + " tokens; a clip holds at most " +
                             std::to_string(kAudioSoftTokens) + " (30 s)");
  using Clock = std::chrono::steady_clock;
  auto poll = [&] {
    if (opts.cancel && opts.cancel->load(std::memory_order_relaxed)) throw AudioCancelled();
  };
  auto t0 = Clock::now();
  auto lap = [&](const char* name) {
    const auto now = Clock::now();
    if (opts.times) opts.times->push_back({name, std::chrono::duration<double>(now - t0).count()});
    t0 = now;
  };
  poll();
  AudioFrames tokens;
  AudioEncoding e;
  if (opts.fast) {
    FastAudioTower tower(mm, pool, conv_kernels());
    tokens = tower.run(f, FastAudioTowerOptions{opts.cancel, tap, lap});
    poll();
    e.rows = audio_clip_rows(mm, tokens, pool, &tower.gemm());
  } else {
    // The exact path: cancellation is polled at each tap; the stage times come from the taps too.
    const int64_t layers = static_cast<int64_t>(mm.tower.layers.size());
    const std::string last = "conformer_" + std::to_string(layers - 1) + "_out";
    const AudioTap checked = [&](const std::string& name, std::span<const float> v) {
      poll();
      if (tap) tap(name, v);
      if (name == "sscp_valid") lap("sscp");
      if (name == last) lap("conformer");
    };
    tokens = run_audio_tower(mm, f, pool, checked);
    poll();
    e.rows = audio_clip_rows(mm, tokens, pool);
  }
  lap("embedder");
  e.n_tokens = tokens.n;
  e.encoder_out = std::move(tokens.x);
  e.valid = std::move(tokens.valid);
  e.width = mm.config.text_width;
  return e;
}

std::vector<float> audio_hard_rows(const AudioMmproj& mm, ThreadPool& pool) {
  std::vector<int64_t> rows(static_cast<size_t>(mm.config.n_hard));
  std::iota(rows.begin(), rows.end(), 0);
  return embed_audio_hard(mm, rows, pool);
}

std::vector<float> end_of_audio_row(const AudioMmproj& mm, ThreadPool& pool) {
  const int64_t row = 0;
  return embed_audio_hard(mm, std::span<const int64_t>(&row, 1), pool);
}

void check_audio_projector_width(const AudioMmproj& mm, int64_t n_embd) {
  if (mm.config.text_width != n_embd)
    throw std::runtime_error("the audio projector's text width is " + std::to_string(mm.config.text_width) + " but the model's embedding width is " +
                             std::to_string(n_embd) + ": this projector does not belong to this model");
}

}  // namespace g3n
