// The gemma3n-vision-tiny goldens (README §6, F32 tier) and the tower checks against them, shared by the
// vision tower's test (vision_tower_test.cpp) and the Hugging Face conversion's
// (tools_hf_convert_goldens_test.cpp), which runs them on the converted projector.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "golden_util.h"
#include "vision/embedder.h"
#include "vision/mmproj.h"
#include "vision/mobilenet_v5.h"

namespace g3n::test {

inline std::string vision_dir() { return fixtures_dir() + "/gemma3n-vision-tiny"; }

// fixture README §6: F32 activations, weights decoded to F32.
constexpr float kVisionTolFinal = 5e-5f;         // soft tokens, tower, hard tokens
constexpr float kVisionTolIntermediate = 1e-4f;  // per-block activations

inline const std::vector<std::string>& vision_images() {
  static const std::vector<std::string> images = {"gradient_shapes_512x512", "noise_photo_384x384", "wide_640x360", "scene_640x480"};
  return images;
}

inline float vision_max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

inline VisionMap golden_pixels(const std::string& image) {
  const auto chw = read_f32_file(vision_dir() + "/inputs/" + image + ".pixel_values.f32.bin");
  EXPECT_EQ(chw.size(), 3u * 512 * 512);
  return vision_map_from_chw(chw.data(), 3, 512, 512);
}

// Every per-block activation of the gradient image, then the pooled MSFA map and the tower output, of the
// projector at `path` (`label` tags the printed figures).
inline void check_vision_intermediates(const std::string& path, const std::string& label) {
  const Mmproj mm = load_mmproj(path);
  ThreadPool pool(2);
  const std::string image = "gradient_shapes_512x512";
  const std::string idir = vision_dir() + "/golden/intermediates/" + image + "/";
  std::vector<std::string> seen;
  float worst = 0;
  const VisionMap out = run_vision_tower(mm, golden_pixels(image), pool, [&](const std::string& name, const VisionMap& x) {
    seen.push_back(name);
    const float d = vision_max_diff(vision_map_to_chw(x), read_f32_file(idir + name + ".f32.bin"));
    worst = std::max(worst, d);
    std::printf("  [%s] %-12s max|d| %.3g\n", label.c_str(), name.c_str(), d);
    EXPECT_LE(d, kVisionTolIntermediate) << name;
  });
  EXPECT_EQ(seen.size(), 20u);  // stem, 17 blocks, msfa.ffn, msfa.pooled
  const float d = vision_max_diff(vision_map_to_chw(out), read_f32_file(vision_dir() + "/golden/" + image + ".tower.f32.bin"));
  std::printf("  [%s] tower        max|d| %.3g (intermediates worst %.3g)\n", label.c_str(), d, worst);
  EXPECT_LE(d, kVisionTolFinal);
}

// Tower output and soft tokens of all four images.
inline void check_vision_all_images(const std::string& path, const std::string& label) {
  const Mmproj mm = load_mmproj(path);
  ThreadPool pool(2);
  for (const auto& image : vision_images()) {
    const VisionMap out = run_vision_tower(mm, golden_pixels(image), pool);
    const float dt = vision_max_diff(vision_map_to_chw(out), read_f32_file(vision_dir() + "/golden/" + image + ".tower.f32.bin"));
    const std::vector<float> soft = embed_soft_tokens(mm, out, pool);
    ASSERT_EQ(soft.size(), 256u * 256u);
    const float ds = vision_max_diff(soft, read_f32_file(vision_dir() + "/golden/" + image + ".soft_tokens.f32.bin"));
    std::printf("  [%s] %-24s tower max|d| %.3g, soft tokens max|d| %.3g\n", label.c_str(), image.c_str(), dt, ds);
    EXPECT_LE(dt, kVisionTolFinal) << image;
    EXPECT_LE(ds, kVisionTolFinal) << image;
  }
}

// The 128 hard-token rows.
inline void check_vision_hard_tokens(const std::string& path, const std::string& label) {
  const Mmproj mm = load_mmproj(path);
  ThreadPool pool(2);
  std::vector<int32_t> ids(128);
  std::iota(ids.begin(), ids.end(), kVisionHardTokenBase);
  const float d = vision_max_diff(embed_hard_tokens(mm, ids, pool), read_f32_file(vision_dir() + "/golden/hard_tokens.f32.bin"));
  std::printf("  [%s] hard tokens max|d| %.3g\n", label.c_str(), d);
  EXPECT_LE(d, kVisionTolFinal);
}

}  // namespace g3n::test
