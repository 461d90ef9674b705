#include "audio/audio_embedder.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "audio/audio_gemm.h"
#include "audio/clip.h"
#include "base/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace g3n {
namespace {

// x [n, D], already normalised with its table's weight -> projection -> weightless RMSNorm.
std::vector<float> project(const AudioMmproj& mm, const std::vector<float>& x, int64_t n, ThreadPool& pool, AudioGemm* gemm) {
  const int64_t Ct = mm.config.text_width;
  std::vector<float> y(static_cast<size_t>(n * Ct));
  if (gemm) {
    gemm->run(x.data(), mm.config.width, n, mm.embedder.projection, y.data(), Ct);
  } else {
    MatmulScratch scratch;
    matmul(mm.embedder.projection, x.data(), mm.config.width, n, y.data(), Ct, pool, MatmulMode::Exact, scratch);
  }
  for (int64_t t = 0; t < n; ++t) rms_norm(y.data() + t * Ct, nullptr, y.data() + t * Ct, Ct, kAudioRmsEps);
  return y;
}

}  // namespace

std::vector<float> embed_audio_soft(const AudioMmproj& mm, const float* x, int64_t n, ThreadPool& pool, AudioGemm* gemm) {
  const int64_t D = mm.config.width;
  std::vector<float> h(x, x + n * D);
  for (int64_t t = 0; t < n; ++t) rms_norm(h.data() + t * D, mm.embedder.soft_norm.data(), h.data() + t * D, D, kAudioRmsEps);
  return project(mm, h, n, pool, gemm);
}

std::vector<float> embed_audio_hard(const AudioMmproj& mm, std::span<const int64_t> rows, ThreadPool& pool) {
  const int64_t D = mm.config.width, n = static_cast<int64_t>(rows.size());
  std::vector<float> h(static_cast<size_t>(n * D));
  for (int64_t t = 0; t < n; ++t) {
    const int64_t r = rows[static_cast<size_t>(t)];
    if (r < 0 || r >= mm.config.n_hard)
      throw std::runtime_error("audio embedder: hard row " + std::to_string(r) + " outside the table (0.." + std::to_string(mm.config.n_hard - 1) + ")");
    weight_row_f32(mm.embedder.hard_table, r, h.data() + t * D);
    rms_norm(h.data() + t * D, mm.embedder.hard_norm.data(), h.data() + t * D, D, kAudioRmsEps);
  }
  return project(mm, h, n, pool, nullptr);
}

std::vector<float> audio_clip_rows(const AudioMmproj& mm, const AudioFrames& tokens, ThreadPool& pool, AudioGemm* gemm) {
  const int64_t Ct = mm.config.text_width, n = tokens.n;
  if (n > kAudioSoftTokens)
    throw std::runtime_error("audio embedder: " + std::to_string(n) + " encoder tokens, a clip holds at most " + std::to_string(kAudioSoftTokens) +
                             " (30 s)");
  const std::vector<float> soft = embed_audio_soft(mm, tokens.x.data(), n, pool, gemm);
  const int64_t pad_row = mm.config.pad_row;
  const std::vector<float> pad = embed_audio_hard(mm, std::span<const int64_t>(&pad_row, 1), pool);
  std::vector<float> rows(static_cast<size_t>(kAudioSoftTokens * Ct));
  for (int64_t j = 0; j < kAudioSoftTokens; ++j) {
    const bool real = j < n && tokens.valid[static_cast<size_t>(j)];
    std::copy_n(real ? soft.data() + j * Ct : pad.data(), Ct, rows.data() + j * Ct);
  }
  return rows;
}

}  // namespace g3n
