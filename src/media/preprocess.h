// The Gemma 3n image processor's preprocessing (Hugging Face SiglipImageProcessorFast, as the vision fixture's
// README §3 pins it): stretch to N x N (aspect ratio not kept, no crop, no pad) with torchvision's
// antialiased bilinear resize of the uint8 image, rounded half to even back to uint8; then
// pixel = float32(u8) * float32(1/255); no normalisation.
//
// The resize reproduces torch 1.13's CPU kernel (_upsample_bilinear2d_aa on float32): per axis, output i
// has centre c = scale * (i + 0.5) with scale = n_in / n_out, support s = max(scale, 1), taps
// j = max(int(c - s + 0.5), 0) .. min(int(c + s + 0.5), n_in) - 1, weights max(0, 1 - |(j - c + 0.5) / s|)
// normalised to sum 1, all in float32 with torch's mixed float/double steps; width first, then height; each
// output a sequential float32 sum of the taps (first product, then fused multiply-adds). A same-size axis is
// the identity.
#pragma once
#include <cstdint>
#include <vector>

#include "media/image.h"

namespace g3n {

// Largest N accepted (the real model uses 768).
inline constexpr int kMaxPreprocessSize = 4096;

// The resized image as uint8 CHW [3, n, n] (R, G, B planes). Throws MediaError for n outside
// [1, kMaxPreprocessSize] or an empty image.
std::vector<uint8_t> resize_to_square_u8_chw(const RgbImage& img, int n);

// float32 CHW [3, n, n] in [0, 1]: pixel = float32(u8) * float32(1/255).
std::vector<float> rescale_u8_chw(const std::vector<uint8_t>& chw);

// resize_to_square_u8_chw then rescale_u8_chw: the model's pixel_values for one image.
std::vector<float> preprocess_image(const RgbImage& img, int n);

}  // namespace g3n
