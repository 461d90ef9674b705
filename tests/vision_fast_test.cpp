// The vision tower's fast path (vision/mobilenet_v5_fast.h through encode_image with fast = true)
// against the gemma3n-vision-tiny goldens at the fixture README §6 F16 tier (soft tokens max |d| <= 3e-2,
// rms <= 4e-3), for every image, both files, the 768x768 input, and every conv kernel set the CPU runs;
// its independence from the thread count, its taps and its cancellation.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "golden_util.h"
#include "gguf/gguf.h"
#include "kernels/conv.h"
#include "vision/embedder.h"
#include "vision/encode.h"
#include "vision/mmproj.h"
#include "vision/mobilenet_v5_fast.h"

namespace g3n {
namespace {

using test::read_f32_file;

std::string vdir() { return test::fixtures_dir() + "/gemma3n-vision-tiny"; }
std::string model_path(const std::string& type) { return vdir() + "/models/gemma3n-vision-tiny-mmproj-" + type + ".gguf"; }

// fixture README §6, F16 tier (soft tokens).
constexpr float kTolMax = 3e-2f;
constexpr float kTolRms = 4e-3f;

const std::vector<std::string> kImages = {"gradient_shapes_512x512", "noise_photo_384x384", "wide_640x360", "scene_640x480"};

struct Delta {
  float max = 0, rms = 0;
};
Delta delta(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  Delta d;
  double ss = 0;
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const float e = std::fabs(a[i] - b[i]);
    d.max = std::max(d.max, e);
    ss += double(e) * e;
  }
  d.rms = n ? static_cast<float>(std::sqrt(ss / double(n))) : 0.0f;
  return d;
}

std::vector<float> pixels(const std::string& image) { return read_f32_file(vdir() + "/inputs/" + image + ".pixel_values.f32.bin"); }

std::vector<float> pixels768() {
  std::ifstream f(vdir() + "/inputs/gradient_shapes_512x512.res768.u8.bin", std::ios::binary);
  std::vector<uint8_t> u8(3 * 768 * 768);
  f.read(reinterpret_cast<char*>(u8.data()), static_cast<std::streamsize>(u8.size()));
  EXPECT_TRUE(f);
  std::vector<float> chw(u8.size());
  for (size_t i = 0; i < u8.size(); ++i) chw[i] = static_cast<float>(u8[i]) * (1.0f / 255.0f);
  return chw;
}

// Soft tokens and tower of one input through the fast path with kernel set ks, against the goldens.
void check(const Mmproj& mm, const std::string& label, const std::vector<float>& chw, int64_t n, const std::string& golden,
           ThreadPool& pool, const ConvKernelSet& ks) {
  FastTowerOptions o;
  o.kernels = &ks;
  const VisionMap tower = run_vision_tower_fast(mm, chw, n, pool, o);
  const std::vector<float> soft = embed_soft_tokens_fast(mm, tower, pool);
  const Delta dt = delta(vision_map_to_chw(tower), read_f32_file(golden + "tower.f32.bin"));
  const Delta ds = delta(soft, read_f32_file(golden + "soft_tokens.f32.bin"));
  std::printf("  [%s] %-32s tower max %.2e rms %.2e | soft tokens max %.2e rms %.2e\n", ks.name, label.c_str(), dt.max, dt.rms,
              ds.max, ds.rms);
  EXPECT_LE(ds.max, kTolMax) << label;
  EXPECT_LE(ds.rms, kTolRms) << label;
}

TEST(VisionFast, AllImagesWithinF16TierEveryKernelSet) {
  ThreadPool pool(2);
  for (const std::string type : {"f16", "f32"}) {
    const Mmproj mm = load_mmproj(model_path(type));
    for (const ConvKernelSet* ks : conv_kernel_sets())
      for (const auto& image : kImages) check(mm, type + " " + image, pixels(image), 512, vdir() + "/golden/" + image + ".", pool, *ks);
  }
}

TEST(VisionFast, Res768WithinF16Tier) {
  ThreadPool pool(2);
  for (const std::string type : {"f16", "f32"}) {
    const Mmproj mm = load_mmproj(model_path(type));
    check(mm, type + " res768", pixels768(), 768, vdir() + "/golden/gradient_shapes_512x512.res768.", pool, conv_kernels());
  }
}

// Through encode_image: the fast flag selects this path (and it differs from the exact one).
TEST(VisionFast, EncodeImageFastFlag) {
  const Mmproj mm = load_mmproj(model_path("f16"));
  ThreadPool pool(2);
  const std::vector<float> px = pixels("scene_640x480");
  VisionOptions fast;
  fast.fast = true;
  const ImageEmbedding a = encode_image(mm, px, 512, pool, fast), b = encode_image(mm, px, 512, pool);
  const Delta d = delta(a.soft, read_f32_file(vdir() + "/golden/scene_640x480.soft_tokens.f32.bin"));
  EXPECT_LE(d.max, kTolMax);
  EXPECT_LE(d.rms, kTolRms);
  EXPECT_NE(a.soft, b.soft);
}

// Tiles are fixed by the grid, never by the thread count: 1 and 3 threads give the same bits.
TEST(VisionFast, ResultDoesNotDependOnThreadCount) {
  const Mmproj mm = load_mmproj(model_path("f16"));
  ThreadPool one(1), three(3);
  for (const auto& [px, n] : {std::pair{pixels("wide_640x360"), int64_t(512)}, std::pair{pixels768(), int64_t(768)}}) {
    const VisionMap a = run_vision_tower_fast(mm, px, n, one), b = run_vision_tower_fast(mm, px, n, three);
    EXPECT_EQ(a.data, b.data) << n;
    EXPECT_EQ(embed_soft_tokens_fast(mm, a, one), embed_soft_tokens_fast(mm, b, three));
  }
}

// With a tap the stem map is made whole instead of streamed into the first block: same bits; every
// stage is reported, and the per-block maps stay near the goldens.
TEST(VisionFast, TapsNameEveryStageAndDoNotChangeTheResult) {
  const Mmproj mm = load_mmproj(model_path("f16"));
  ThreadPool pool(2);
  const std::string image = "gradient_shapes_512x512";
  const std::string idir = vdir() + "/golden/intermediates/" + image + "/";
  std::vector<std::string> seen;
  FastTowerOptions o;
  o.tap = [&](const std::string& name, const VisionMap& x) {
    seen.push_back(name);
    const Delta d = delta(vision_map_to_chw(x), read_f32_file(idir + name + ".f32.bin"));
    std::printf("  %-12s max %.2e rms %.2e\n", name.c_str(), d.max, d.rms);
  };
  std::vector<VisionStageTime> times;
  const VisionMap tapped = run_vision_tower_fast(mm, pixels(image), 512, pool, o);
  FastTowerOptions timed;
  timed.times = &times;
  const VisionMap plain = run_vision_tower_fast(mm, pixels(image), 512, pool, timed);
  EXPECT_EQ(seen.size(), 20u);
  EXPECT_EQ(seen.front(), "stem");
  EXPECT_EQ(seen.back(), "msfa.pooled");
  EXPECT_EQ(tapped.data, plain.data);
  // The stem (streamed into the first block) is timed apart from stage 0.
  ASSERT_EQ(times.size(), 6u);
  EXPECT_EQ(times[0].name, "stem");
  EXPECT_EQ(times[1].name, "stage0");
  EXPECT_EQ(times.back().name, "msfa");
  for (const VisionStageTime& t : times) EXPECT_GE(t.seconds, 0.0) << t.name;
  // At 768 the fusion adapter pools 3x3 windows band by band when untapped: same bits as pooling the
  // tapped full-resolution map.
  FastTowerOptions quiet;
  quiet.tap = [](const std::string&, const VisionMap&) {};
  EXPECT_EQ(run_vision_tower_fast(mm, pixels768(), 768, pool, quiet).data, run_vision_tower_fast(mm, pixels768(), 768, pool).data);
}

TEST(VisionFast, CancelStopsTheEncode) {
  const Mmproj mm = load_mmproj(model_path("f16"));
  ThreadPool pool(2);
  std::atomic<bool> cancel{true};
  VisionOptions o;
  o.fast = true;
  o.cancel = &cancel;
  EXPECT_THROW(encode_image(mm, pixels("scene_640x480"), 512, pool, o), VisionCancelled);
  // Set from a tap, mid-tower.
  cancel = false;
  int blocks = 0;
  EXPECT_THROW(encode_image(mm, pixels("scene_640x480"), 512, pool, o,
                            [&](const std::string&, const VisionMap&) {
                              if (++blocks == 5) cancel = true;
                            }),
               VisionCancelled);
  EXPECT_EQ(blocks, 5);
}

TEST(VisionFast, RejectsUnsupportedInputSizes) {
  const Mmproj mm = load_mmproj(model_path("f32"));
  ThreadPool pool(1);
  const std::vector<float> px(3 * 300 * 300, 0.5f);
  EXPECT_THROW(run_vision_tower_fast(mm, px, 300, pool), std::runtime_error);  // fusion grid 19
  EXPECT_THROW(run_vision_tower_fast(mm, px, 299, pool), std::runtime_error);  // wrong size
}

}  // namespace
}  // namespace g3n
