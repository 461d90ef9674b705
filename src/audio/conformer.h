// Gemma 3n's audio tower (USM conformer, HF Gemma3nAudioEncoder), exact path: f32 activations, weights
// decoded to f32, one named function per step of fixture gemma3n-audio-tiny README §4.1-§4.2.
//
// Layout: frames are rows, channels contiguous. The SSCP maps are [time, freq, channel] (the fixture's
// intermediate layout), so a 3x3 conv is an im2col row of (time tap, freq tap, channel) per output.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "audio/audio_mmproj.h"
#include "audio/features.h"

namespace g3n {

class ThreadPool;

// Called with each stage's activation as the fixture names them (README §2, intermediate/): "sscp_conv0"
// [T1, 64, C0], "sscp_conv1" [T2, 32, C1], "sscp_out" [T2, D], "sscp_valid" [T2] (0/1 values),
// "conformer_<i>_after_ffw_start", "..._after_attention", "..._after_lconv", "..._after_ffw_end",
// "conformer_<i>_out" [T2, D].
using AudioTap = std::function<void(const std::string& name, std::span<const float> values)>;

// The conformer-rate sequence: n frames of the tower width, and which are real audio.
struct AudioFrames {
  int64_t n = 0;
  std::vector<float> x;        // [n, D]
  std::vector<uint8_t> valid;  // [n]
};

// Output length of one SSCP conv (3 taps, stride 2, padding 2 after in time / 1 each side in freq).
inline int64_t audio_sscp_out(int64_t n) { return (n - 1) / 2 + 1; }
// Encoder tokens of T mel frames: ceil(T2 / 4).
int64_t audio_token_count(int64_t mel_frames);

// ---- the steps, exposed for the fast path and tests ----
// One SSCP block on x [T, F, in]: 3x3 stride-2 conv, cumulative group norm, ReLU -> [T', F', out].
std::vector<float> sscp_conv_block(const AudioSscpConv& c, const std::vector<float>& x, int64_t T, int64_t F, ThreadPool& pool);
// Cumulative group norm in place over y [T, F·C] (C channels fastest), scale w [C] (trap T1: each frame's
// squared deviations are taken from its own cumulative mean). Statistics in double.
void cumulative_group_norm(float* y, int64_t T, int64_t FC, int64_t C, const float* w, ThreadPool& pool);
// valid_c[t] = logmel valid[min(4t, T-1)] for t < n.
std::vector<uint8_t> conformer_valid(const LogMelFeatures& f, int64_t n);
// τ(d) for d = 0..12: [sin(d·ι_i) ‖ cos(d·ι_i)], ι_i = exp(-i·ln(1e4)/(D/2 - 1)). [13, D].
std::vector<float> relative_timing_signal(int64_t D);
// The per-dimension query scale H^-0.5 / ln 2 · softplus(per_dim_scale). [head_dim].
std::vector<float> query_scale(const AudioLayerWeights& l, int64_t head_dim);
// SiLU: x · sigmoid(x).
inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

AudioFrames run_sscp(const AudioMmproj& mm, const LogMelFeatures& f, ThreadPool& pool, const AudioTap& tap = {});
// One conformer block in place on frames.x (README §4.1), tapping "conformer_<index>_...".
void conformer_block(const AudioMmproj& mm, const AudioLayerWeights& l, AudioFrames& fr, ThreadPool& pool, int index,
                     const AudioTap& tap = {});
// Every 4th frame, zeroed where invalid.
AudioFrames reduce_frames(const AudioFrames& fr, int64_t D);

// The whole tower: features -> [ceil(T2/4), D] with validity. Throws std::runtime_error for no frames or
// a feature matrix that is not [frames, 128].
AudioFrames run_audio_tower(const AudioMmproj& mm, const LogMelFeatures& f, ThreadPool& pool, const AudioTap& tap = {});

}  // namespace g3n
