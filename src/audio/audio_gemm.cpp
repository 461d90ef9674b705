#include "audio/audio_gemm.h"

#include <algorithm>

#include "base/thread_pool.h"

namespace g3n {
namespace {

constexpr int64_t kColumnChunk = 8 * kGemmNR;  // output columns per task of a column split (one GEMM group: A read once per 128 columns)
constexpr int64_t kRowChunk = 96;              // rows per task of a row split (16 micro-kernel panels)

}  // namespace

AudioGemm::AudioGemm(const ConvKernelSet& ks, ThreadPool& pool) : ks_(ks), pool_(pool), scratch_(static_cast<size_t>(pool.size())) {}

void AudioGemm::run(const float* a, int64_t lda, int64_t m, const WeightMatrix& w, float* c, int64_t ldc) {
  if (m <= 0) return;
  const int64_t chunks = (w.n_out + kColumnChunk - 1) / kColumnChunk;
  // Too few columns to keep every thread busy, or too few rows to pack: split rows.
  if (w.n_out < kGemmPackAMinOut || chunks < 2 * pool_.size() || m < kGemmMR) {
    pool_.parallel_for_dynamic((m + kRowChunk - 1) / kRowChunk, [&](int64_t b, int64_t e, int t) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t i0 = r * kRowChunk, mi = std::min(kRowChunk, m - i0);
        gemm_weights_columns(ks_, a + i0 * lda, lda, mi, w, 0, w.n_out, c + i0 * ldc, ldc, scratch_[static_cast<size_t>(t)]);
      }
    }, 1);
    return;
  }
  const int64_t size = packed_activations_size(m, w.n_in);
  if (packed_.size() < static_cast<size_t>(size)) packed_.resize(static_cast<size_t>(size));
  float* packed = packed_.data();
  const int64_t panels = (m + kGemmMR - 1) / kGemmMR;
  pool_.parallel_for_dynamic(panels, [&](int64_t g0, int64_t g1, int) {
    ks_.pack_activations(a + g0 * kGemmMR * lda, lda, std::min(m, g1 * kGemmMR) - g0 * kGemmMR, w.n_in, packed + g0 * kGemmMR * w.n_in);
  }, 8);
  pool_.parallel_for_dynamic(chunks, [&](int64_t b, int64_t e, int t) {
    gemm_weights_packed_columns(ks_, packed, m, w, b * kColumnChunk, std::min(w.n_out, e * kColumnChunk), c, ldc,
                                scratch_[static_cast<size_t>(t)]);
  }, 1);
}

}  // namespace g3n
