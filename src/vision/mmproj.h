// A Gemma 3n vision projector ("mmproj") GGUF as llama.cpp's converter writes it: architecture "clip",
// projector type "gemma3nv", the MobileNet-V5 tower under v.* and the vision embedder under mm.*.
// The block structure is derived from tensor names and shapes (fixture gemma3n-vision-tiny README §4.3),
// never from one model size: stages, block kinds, kernels, widths, heads, K/V down-sampling.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kernels/matmul.h"

namespace g3n {

class GgufFile;

// A k×k convolution kernel decoded to f32 at load (small next to the 1×1 convolutions, which stay in the
// file's type as WeightMatrix). Stored for an HWC inner loop over channels:
//   full (groups = 1):  w[((o·k + ky)·k + kx)·in + i]
//   depthwise:          w[(ky·k + kx)·channels + c]
struct ConvKernel {
  int64_t k = 0;         // kernel side (odd)
  int64_t in = 0;        // input channels (full) or channels (depthwise)
  int64_t out = 0;       // output channels (= in for depthwise)
  bool depthwise = false;
  std::vector<float> w;
  bool empty() const { return w.empty(); }
};

enum class VisionBlockKind { EdgeResidual, UniversalInvertedResidual, MultiQueryAttention };

// One block of the tower. Fields of the other kinds stay empty.
struct VisionBlock {
  VisionBlockKind kind = VisionBlockKind::UniversalInvertedResidual;
  int stage = 0, index = 0;  // v.blk.<stage>.<index>
  int64_t in = 0, out = 0;   // channels
  int stride = 1;            // 2 for the first block of every stage
  bool residual = false;     // ER/UIR: stride 1 and in == out; MQA: always
  std::vector<float> layer_scale;  // [out]; empty when the block has none
  // Edge residual: conv_exp (k×k, stride) + bn1 + gelu, conv_pwl (1×1) + bn2.
  ConvKernel conv_exp;
  std::vector<float> bn1;
  WeightMatrix conv_pwl;
  std::vector<float> bn2;
  // Universal inverted residual: [dw_start + norm], pw_exp + norm + gelu, [dw_mid + norm + gelu], pw_proj + norm.
  ConvKernel dw_start;
  std::vector<float> dw_start_norm;
  WeightMatrix pw_exp;
  std::vector<float> pw_exp_norm;
  ConvKernel dw_mid;
  std::vector<float> dw_mid_norm;
  WeightMatrix pw_proj;
  std::vector<float> pw_proj_norm;
  // Mobile multi-query attention: heads query heads of head_dim, one shared K/V head of head_dim.
  std::vector<float> norm;
  int64_t heads = 0, head_dim = 0;
  WeightMatrix query, key, value, output;  // [in -> heads·D], [in -> D], [in -> D], [heads·D -> out]
  ConvKernel key_down, value_down;         // depthwise, stride 2; empty: K/V on the full grid
  std::vector<float> key_norm, value_norm;
};

struct VisionTowerWeights {
  ConvKernel stem;  // 3 -> C0, stride 2, SAME, with bias
  std::vector<float> stem_bias, stem_norm;
  std::vector<VisionBlock> blocks;  // stage-major
  std::vector<size_t> stage_last;   // index in blocks of each stage's last block
  // Multi-scale fusion adapter over the last two stages' outputs.
  int64_t msfa_in = 0;
  WeightMatrix msfa_exp, msfa_proj;
  std::vector<float> msfa_exp_norm, msfa_proj_norm, msfa_norm;
};

struct VisionEmbedderWeights {
  WeightMatrix hard_table;  // mm.embedding: n_hard rows of vision width
  std::vector<float> hard_norm, soft_norm;
  WeightMatrix projection;  // mm.input_projection: vision width -> text width
};

struct MmprojConfig {
  int64_t image_size = 0;    // clip.vision.image_size (the preprocessor's square side)
  int64_t n_tokens = 0;      // image_size / patch_size (256)
  int64_t grid = 16;         // output grid side (fixed: llama.cpp and timm hard-code 16)
  int64_t vision_width = 0;  // Cv: MSFA output channels
  int64_t text_width = 0;    // Ct: projection output
  int64_t n_hard = 0;        // rows of the hard-token table
  float eps = 1e-6f;
};

// The first id of the hard-token table (<end_of_image> = row 0).
inline constexpr int32_t kVisionHardTokenBase = 262144;

struct Mmproj {
  std::unique_ptr<GgufFile> file;  // owns the mapping the WeightMatrix views point into
  MmprojConfig config;
  VisionTowerWeights tower;
  VisionEmbedderWeights embedder;
};

// Opens and validates an mmproj file. Throws std::runtime_error (GgufError for a malformed container)
// naming the key or tensor on anything missing, ill-shaped or of an unsupported type (tensors may be
// F32, F16, BF16 or Q8_0).
Mmproj load_mmproj(const std::string& path);
Mmproj load_mmproj(GgufFile file);

}  // namespace g3n
