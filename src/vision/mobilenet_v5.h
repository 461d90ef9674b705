// Gemma 3n's vision tower (timm MobileNetV5 encoder + multi-scale fusion adapter), exact path: f32
// activations, weights decoded to f32, one named function per spec step (fixture gemma3n-vision-tiny
// README §1, §4.3; ../shared/docs/gemma3n-multimodal.md §1).
//
// Layout: HWC (pixel-major, channels contiguous). A 1×1 convolution is then the existing matmul with
// pixels as tokens, RmsNorm2d normalises a contiguous row, the attention reads q/k/v rows per pixel,
// and the 16×16 output is already the token-major [256, C] the embedder takes. The goldens are CHW;
// to_chw converts.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vision/mmproj.h"

namespace g3n {

class ThreadPool;

// An activation map, HWC: at(y, x)[c].
struct VisionMap {
  int64_t h = 0, w = 0, c = 0;
  std::vector<float> data;
  VisionMap() = default;
  VisionMap(int64_t h_, int64_t w_, int64_t c_) : h(h_), w(w_), c(c_), data(static_cast<size_t>(h_ * w_ * c_)) {}
  int64_t pixels() const { return h * w; }
  float* at(int64_t y, int64_t x) { return data.data() + (y * w + x) * c; }
  const float* at(int64_t y, int64_t x) const { return data.data() + (y * w + x) * c; }
};

VisionMap vision_map_from_chw(const float* chw, int64_t c, int64_t h, int64_t w);
std::vector<float> vision_map_to_chw(const VisionMap& m);

// Called with each stage's activation as the fixture names them: "stem", "blk.S.B", "msfa.ffn",
// "msfa.pooled" (debugging and tests).
using VisionTap = std::function<void(const std::string& name, const VisionMap& x)>;

// pixels: [H, W, 3] RGB in [0, 1] (no normalisation). Returns the tower output [16, 16, vision width].
// Throws std::runtime_error when the size does not give a fusion grid that is a multiple of 16 (timm
// would resize bilinearly there; not implemented) or the input has not 3 channels.
VisionMap run_vision_tower(const Mmproj& mm, const VisionMap& pixels, ThreadPool& pool, const VisionTap& tap = {});

// The steps, exposed for tests.
struct SamePad {
  int64_t before = 0, after = 0;
};
// TF "SAME": stride 1 pads k/2 each side; stride 2 pads max((ceil(n/2) - 1)·2 + k - n, 0), the odd pixel after.
SamePad same_padding(int64_t n, int64_t k, int stride);
VisionMap conv2d_full(const VisionMap& x, const ConvKernel& k, int stride, ThreadPool& pool);
VisionMap conv2d_depthwise(const VisionMap& x, const ConvKernel& k, int stride, ThreadPool& pool);
VisionMap conv2d_pointwise(const VisionMap& x, const WeightMatrix& w, ThreadPool& pool);
void rms_norm_2d(VisionMap& x, const std::vector<float>& weight, float eps, ThreadPool& pool);
void gelu_map(VisionMap& x, ThreadPool& pool);
VisionMap upsample_nearest(const VisionMap& x, int64_t factor);
VisionMap avg_pool(const VisionMap& x, int64_t factor);

}  // namespace g3n
