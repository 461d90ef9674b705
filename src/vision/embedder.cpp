#include "vision/embedder.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "base/thread_pool.h"
#include "kernels/conv.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace g3n {
namespace {

// x [n, Cv] (already normalised with its table's weight) -> projection -> weightless RMSNorm -> [n, Ct].
std::vector<float> project(const Mmproj& mm, const std::vector<float>& x, int64_t n, ThreadPool& pool) {
  const int64_t Cv = mm.config.vision_width, Ct = mm.config.text_width;
  std::vector<float> y(static_cast<size_t>(n * Ct));
  MatmulScratch scratch;
  matmul(mm.embedder.projection, x.data(), Cv, n, y.data(), Ct, pool, MatmulMode::Exact, scratch);
  for (int64_t t = 0; t < n; ++t) rms_norm(y.data() + t * Ct, nullptr, y.data() + t * Ct, Ct, mm.config.eps);
  return y;
}

}  // namespace

namespace {

// Soft-token rows before the projection: T[t] = features at pixel t, scaled by sqrt(Cv), soft_emb_norm.
std::vector<float> soft_token_rows(const Mmproj& mm, const VisionMap& f) {
  const int64_t Cv = mm.config.vision_width;
  if (f.c != Cv || f.h != mm.config.grid || f.w != mm.config.grid)
    throw std::runtime_error("vision embedder: features are " + std::to_string(f.h) + "x" + std::to_string(f.w) + "x" +
                             std::to_string(f.c) + ", expected the tower's 16x16x" + std::to_string(Cv));
  std::vector<float> x = f.data;  // HWC is already token-major: row t = pixel (t / 16, t % 16)
  const float scale = std::sqrt(static_cast<float>(Cv));
  for (int64_t t = 0; t < f.pixels(); ++t) {
    float* row = x.data() + t * Cv;
    for (int64_t c = 0; c < Cv; ++c) row[c] *= scale;
    rms_norm(row, mm.embedder.soft_norm.data(), row, Cv, mm.config.eps);
  }
  return x;
}

}  // namespace

std::vector<float> embed_soft_tokens_fast(const Mmproj& mm, const VisionMap& f, ThreadPool& pool) {
  const std::vector<float> x = soft_token_rows(mm, f);
  const int64_t Cv = mm.config.vision_width, Ct = mm.config.text_width, n = f.pixels();
  std::vector<float> y(static_cast<size_t>(n * Ct));
  const ConvKernelSet& ks = conv_kernels();
  std::vector<GemmScratch> scratch(static_cast<size_t>(pool.size()));
  std::vector<float> packed(static_cast<size_t>(packed_activations_size(n, Cv)));
  ks.pack_activations(x.data(), Cv, n, Cv, packed.data());
  constexpr int64_t kChunk = 4 * kGemmNR;
  pool.parallel_for_dynamic((Ct + kChunk - 1) / kChunk, [&](int64_t b, int64_t e, int t) {
    gemm_weights_packed_columns(ks, packed.data(), n, mm.embedder.projection, b * kChunk, std::min(Ct, e * kChunk), y.data(), Ct,
                                scratch[static_cast<size_t>(t)]);
  }, 1);
  for (int64_t t = 0; t < n; ++t) rms_norm(y.data() + t * Ct, nullptr, y.data() + t * Ct, Ct, mm.config.eps);
  return y;
}

std::vector<float> embed_soft_tokens(const Mmproj& mm, const VisionMap& f, ThreadPool& pool) {
  const int64_t Cv = mm.config.vision_width;
  if (f.c != Cv || f.h != mm.config.grid || f.w != mm.config.grid)
    throw std::runtime_error("vision embedder: features are " + std::to_string(f.h) + "x" + std::to_string(f.w) + "x" +
                             std::to_string(f.c) + ", expected the tower's 16x16x" + std::to_string(Cv));
  // HWC is already token-major: row t = pixel (t / 16, t % 16).
  const int64_t n = f.pixels();
  std::vector<float> x = f.data;
  // HF multiplies by sqrt(hidden size) before soft_emb_norm. The weightless norm after the projection
  // cancels any per-token scale (trap 13), so only eps notices; kept for fidelity.
  const float scale = std::sqrt(static_cast<float>(Cv));
  for (int64_t t = 0; t < n; ++t) {
    float* row = x.data() + t * Cv;
    for (int64_t c = 0; c < Cv; ++c) row[c] *= scale;
    rms_norm(row, mm.embedder.soft_norm.data(), row, Cv, mm.config.eps);
  }
  return project(mm, x, n, pool);
}

std::vector<float> embed_hard_tokens(const Mmproj& mm, std::span<const int32_t> ids, ThreadPool& pool) {
  const int64_t Cv = mm.config.vision_width, n = static_cast<int64_t>(ids.size());
  std::vector<float> x(static_cast<size_t>(n * Cv));
  for (int64_t t = 0; t < n; ++t) {
    const int64_t r = static_cast<int64_t>(ids[static_cast<size_t>(t)]) - kVisionHardTokenBase;
    if (r < 0 || r >= mm.config.n_hard)
      throw std::runtime_error("vision embedder: token id " + std::to_string(ids[static_cast<size_t>(t)]) +
                               " is not a hard vision token (" + std::to_string(kVisionHardTokenBase) + ".." +
                               std::to_string(kVisionHardTokenBase + mm.config.n_hard - 1) + ")");
    float* row = x.data() + t * Cv;
    weight_row_f32(mm.embedder.hard_table, r, row);
    rms_norm(row, mm.embedder.hard_norm.data(), row, Cv, mm.config.eps);
  }
  return project(mm, x, n, pool);
}

}  // namespace g3n
