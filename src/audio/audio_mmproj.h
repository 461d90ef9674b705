// A Gemma 3n audio projector ("mmproj") GGUF as llama.cpp's converter writes it: architecture "clip",
// audio projector type "gemma3na", the USM conformer tower under a.* and the audio embedder under mm.a.*.
// Real files combine vision and audio; the v.* part is ignored here (vision/mmproj.h reads it).
// Loader rule set = fixture gemma3n-audio-tiny README §5: geometry from tensor shapes, the file's
// feed_forward_length and layer_norm_epsilon ignored, the model's constants hard-coded.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"  // AudioMmproj owns a GgufFile
#include "kernels/matmul.h"

namespace g3n {


// Constants of the architecture (README §1 "constant"): the same in the tiny and the real model.
inline constexpr int64_t kAudioChunk = 12;          // attention query block
inline constexpr int64_t kAudioMaxPast = 12;        // left context 13 including the query itself
inline constexpr float kAudioLogitCap = 50.0f;
inline constexpr int64_t kAudioReduction = 4;       // keep conformer frames 0, 4, 8, ...
inline constexpr float kAudioResidualWeight = 0.5f; // half-step FFNs
inline constexpr float kAudioClip = 1e10f;          // gradient clipping clamps
inline constexpr float kAudioRmsEps = 1e-6f;        // every RMSNorm (the file's 1e-5 is wrong: trap T14)
inline constexpr float kAudioGroupNormEps = 1e-3f;  // SSCP cumulative group norm
inline constexpr int64_t kAudioSscpKernel = 3;      // SSCP convs: 3x3, stride 2x2

// The first id of the audio hard-token table (<end_of_audio> = row 0).
inline constexpr int32_t kAudioHardTokenBase = 262272;

struct AudioConfig {
  int64_t mel_bins = 128;
  int64_t width = 0;        // D (hidden size)
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t head_dim = 0;     // D / n_heads
  int64_t ffn_width = 0;    // from ffn_up's shape, never feed_forward_length
  int64_t sscp_channels[2] = {0, 0};
  int64_t sscp_freq[3] = {0, 0, 0};  // 128 -> 64 -> 32
  int64_t conv_kernel = 0;  // light conv depthwise taps (5)
  int64_t text_width = 0;   // embedder output width
  int64_t n_hard = 0;       // hard-token rows
  int64_t pad_row = 0;      // n_hard - 1: the padding embedding
};

// One SSCP conv block: a 3x3 stride-2 Conv2d without bias, decoded to f32 as an im2col matrix
// w[o·K + (i·3 + j)·in + ci] (K = 9·in; i = time tap, j = freq tap), plus the group-norm scale.
struct AudioSscpConv {
  int64_t in = 0, out = 0;
  std::vector<float> w;     // [out, 9·in]
  std::vector<float> norm;  // [out]
};

struct AudioLayerWeights {
  // Half-step FFN at the start and at the end (suffix _1 in the file).
  std::vector<float> ffn_norm, ffn_post_norm, ffn_norm_end, ffn_post_norm_end;
  WeightMatrix ffn_up, ffn_down, ffn_up_end, ffn_down_end;
  // Attention.
  std::vector<float> attn_norm, attn_post_norm;  // ln1, ln2
  std::vector<float> per_dim_scale;              // [head_dim]
  WeightMatrix q, k, v, out, pos;                // pos = linear_pos
  // Light conv.
  std::vector<float> conv_pre_norm, conv_norm;  // conv_norm (before pw1), norm_conv (after dw)
  WeightMatrix conv_pw1, conv_pw2;               // D -> 2D, D -> D
  std::vector<float> conv_dw;                    // [kernel, D]: conv_dw[k·D + c] multiplies frame t-(kernel-1)+k
  // The block's final norm (layer_pre_norm in the file).
  std::vector<float> final_norm;
};

struct AudioTowerWeights {
  AudioSscpConv conv[2];
  WeightMatrix input_proj;  // a.pre_encode.out: F·C (1024) -> D
  std::vector<AudioLayerWeights> layers;
};

struct AudioEmbedderWeights {
  WeightMatrix hard_table;  // mm.a.embedding: n_hard rows of D
  std::vector<float> hard_norm, soft_norm;
  WeightMatrix projection;  // mm.a.input_projection: D -> text width
};

struct AudioMmproj {
  std::unique_ptr<GgufFile> file;  // owns the mapping the WeightMatrix views point into
  AudioConfig config;
  AudioTowerWeights tower;
  AudioEmbedderWeights embedder;
};

// Whether the file carries a Gemma 3n audio tower (clip.has_audio_encoder and projector type gemma3na).
bool gguf_has_audio_tower(const GgufFile& f);

// Opens and validates an audio projector. Throws std::runtime_error (GgufError for a malformed
// container) naming the key or tensor on anything missing, ill-shaped or of an unsupported type
// (every tensor F32 or F16; the matrices also BF16 or Q8_0).
AudioMmproj load_audio_mmproj(const std::string& path);
AudioMmproj load_audio_mmproj(GgufFile file);

}  // namespace g3n
