// Random-weight Gemma 3n projectors: "mmproj" GGUFs as llama.cpp's converter writes them
// (general.architecture "clip"; the vision part: projector type "gemma3nv", the MobileNet-V5 tower under
// v.*, the vision embedder under mm.*, as the gemma3n-vision-tiny fixture (README §4); the audio part:
// projector type "gemma3na", the USM conformer under a.*, the audio embedder under mm.a.*, as the
// gemma3n-audio-tiny fixture (README §5)). Benchmarks run the real shapes without the real weights.
//
// The tower is described the way timm's mobilenetv5.py describes it: one arch-def string per block,
// e.g. "er_r1_k3_s2_e4_c128" (edge residual, kernel 3, stride 2, expansion 4, 128 channels),
// "uir_r1_a5_k0_s1_e4_c640" (universal inverted residual, dw_start 5x5, no dw_mid), or
// "mqa_r1_k3_h12_v2_s1_d64_c640" (multi-query attention, 12 heads of 64, K/V down-sampled by a 3x3
// stride-2 depthwise conv).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quant/ggml_type.h"

namespace g3n {

// The audio tower (USM conformer) and its embedder. Every non-width hyperparameter is Gemma 3n's (SSCP
// 128/32 channels, light-conv kernel 5, 128 mel bins, 128 hard rows).
struct RandomAudioSpec {
  std::string name = "usm";
  int64_t width = 1536;  // D
  int64_t layers = 12;
  int64_t heads = 8;
  int64_t ffn = 6144;    // both half-step FFNs (4 x D in HF)
  // clip.audio.feed_forward_length as the converter writes it: 6144 whatever the model (fixture README §5);
  // 0 writes the true width (what the tiny fixture holds).
  int64_t ffn_key = 6144;
};

// "tiny": the gemma3n-audio-tiny fixture's shape (D 64, 2 layers, 2 heads); "usm" (alias "real"): Gemma 3n's
// (D 1536, 12 layers, 8 heads; 681,348,640 tower + 3,345,408 embedder parameters at text width 2048).
std::optional<RandomAudioSpec> random_audio_preset(const std::string& name);

struct RandomMmprojSpec {
  std::string name = "mobilenetv5_300m_enc";
  int64_t image_size = 768;         // clip.vision.image_size, a multiple of 256 (patch_size = image_size / 256: 256 tokens)
  int64_t stem_channels = 64;
  std::vector<std::vector<std::string>> stages;  // timm arch-def strings, one list per stage
  int64_t msfa_expansion = 2;       // MSFA pw_exp width = expansion x (last two stages' channels)
  int64_t vision_width = 2048;      // MSFA output = clip.vision.embedding_length
  int64_t text_width = 2048;        // clip.vision.projection_dim: the text model's n_embd
  int64_t n_hard = 128;             // hard-token rows (mm.embedding)
  std::string type = "f16";         // "f16" (the converter's F16 rule: 1-D tensors, layer scales and the stem in F32) or "f32"
  bool flat_layer_scale = false;    // layer_scale.gamma as ne [C] (the converter's own output) instead of [1, 1, C, 1]
  float layer_scale = 0.1f;         // layer_scale.gamma ~ N(layer_scale, (layer_scale / 5)^2)
  uint64_t seed = 1;
  bool vision = true;                  // write the vision tower and embedder
  std::optional<RandomAudioSpec> audio;  // also (or only) the audio tower and embedder; text width = text_width
};

// "tiny": the gemma3n-vision-tiny fixture's shape (512 input, 17 blocks, widths 256; README §1).
// "mobilenetv5_300m_enc" (alias "real"): Gemma 3n's tower (768 input, 84 blocks, 294,126,912 parameters)
// and embedder (4,460,544 parameters at text width 2048).
std::optional<RandomMmprojSpec> random_mmproj_preset(const std::string& name);

// One tensor of the file: name, ggml shape, type, and the distribution of its values
// (mean + std * N(0, 1), rounded to the fp16 grid so the F32 and F16 variants hold the same values).
struct RandomTensorPlan {
  std::string name;
  std::vector<int64_t> ne;
  GgmlType type = GgmlType::F32;
  float mean = 0, std = 1;
  int64_t elements() const;
};

// Every tensor in file order (the converter's: sorted by the Hugging Face source name). Throws
// std::invalid_argument on a malformed arch string or an inconsistent spec.
std::vector<RandomTensorPlan> plan_random_mmproj(const RandomMmprojSpec& spec);

struct MmprojParamCount {
  int64_t tower = 0;           // v.*
  int64_t embedder = 0;        // mm.* (vision)
  int64_t audio_tower = 0;     // a.*
  int64_t audio_embedder = 0;  // mm.a.*
};
MmprojParamCount count_mmproj_params(const std::vector<RandomTensorPlan>& plan);

// Writes the projector (atomically: temp file + rename). n_threads: 0 = all cores.
void write_random_mmproj(const RandomMmprojSpec& spec, const std::string& path, int n_threads = 0);

}  // namespace g3n
