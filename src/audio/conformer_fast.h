// Gemma 3n's audio tower, fast path: the steps of conformer.h (the exact twin, which stays the readable
// reference) with every Linear and the im2col'ed SSCP convs through the blocked SIMD GEMM of
// kernels/conv.h (audio_gemm.h), all frames of a layer in one GEMM (m = conformer frames), threaded over
// the pool. Activations stay f32. The attention runs the SIMD score/value kernels of kernels/attention.h
// over each query's 13 keys. Every split is by frames, rows or output columns with fixed arithmetic per
// value, so the result is the same for any thread count.
#pragma once
#include <atomic>
#include <functional>

#include "audio/audio_gemm.h"
#include "audio/audio_mmproj.h"
#include "audio/conformer.h"
#include "audio/features.h"

namespace g3n {

class ThreadPool;

struct FastAudioTowerOptions {
  const std::atomic<bool>* cancel = nullptr;  // polled before every stage, layer and module: throws AudioCancelled
  AudioTap tap;                               // as run_audio_tower's
  std::function<void(const char*)> lap;       // called after "sscp" and after "conformer" (all layers)
};

class FastAudioTower {
 public:
  FastAudioTower(const AudioMmproj& mm, ThreadPool& pool, const ConvKernelSet& ks);
  // Same input checks, errors and output as run_audio_tower.
  AudioFrames run(const LogMelFeatures& f, const FastAudioTowerOptions& opts = {});
  // The GEMM it runs (the embedder's projection reuses it).
  AudioGemm& gemm() { return gemm_; }

 private:
  struct Scratch {
    GemmScratch gemm;
    std::vector<float> col;
  };
  std::vector<float> sscp_conv(const AudioSscpConv& c, const std::vector<float>& x, int64_t T, int64_t F);
  void feed_forward(const WeightMatrix& up, const WeightMatrix& down, const std::vector<float>& pre, const std::vector<float>& post,
                    AudioFrames& fr);
  void attention(const AudioLayerWeights& l, AudioFrames& fr);
  void light_conv(const AudioLayerWeights& l, AudioFrames& fr);
  void block(const AudioLayerWeights& l, AudioFrames& fr, int index, const AudioTap& tap, const std::function<void()>& poll);
  // dst [n, D] = clamp(src) (when clamp) normalised with weight w, rows split across the pool.
  void norm_rows(const float* src, float* dst, int64_t n, const std::vector<float>& w, bool clamp);
  std::vector<float> linear(const float* x, int64_t n, const WeightMatrix& w);
  // The same into a reused buffer (sized, never shrunk: no fresh pages to fault in and zero per call).
  float* linear_into(const float* x, int64_t n, const WeightMatrix& w, std::vector<float>& out);

  // A layer's activations, reused by every layer of a run: each is [n, width] except `wide` ([n, FFN
  // width] or [n, 2·width]). What holds what is named at each use.
  struct Buffers {
    std::vector<float> norm, q, k, v, out, wide;
  };

  const AudioMmproj& mm_;
  ThreadPool& pool_;
  const ConvKernelSet& ks_;
  AudioGemm gemm_;
  std::vector<Scratch> scratch_;
  Buffers buf_;
};

}  // namespace g3n
