// media/ImageEncoder: an image file's bytes to the decoder's rows (decode, the processor's resize, tower,
// embedder), its content-keyed cache, the projector width check and cancellation.
#include <atomic>
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "golden_util.h"
#include "gtest/gtest.h"
#include "media/image.h"
#include "media/image_encoder.h"
#include "vision/encode.h"

using namespace g3n;

namespace {

std::string vision_dir() { return test::fixtures_dir() + "/gemma3n-vision-tiny/"; }
std::string mmproj_f32() { return vision_dir() + "models/gemma3n-vision-tiny-mmproj-f32.gguf"; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

}  // namespace

// The PNG is already 512x512, so the processor's resize is the identity and the rows must match the
// soft-token golden at the exact path's F32 tier.
TEST(ImageEncoder, SquarePngMatchesSoftTokenGolden) {
  ImageEncoder enc(mmproj_f32(), 256, 2, /*fast=*/false);
  const auto img = enc.encode_file(vision_dir() + "inputs/gradient_shapes_512x512.png");
  const std::vector<float> golden = test::read_f32_file(vision_dir() + "golden/gradient_shapes_512x512.soft_tokens.f32.bin");
  ASSERT_EQ(img->soft.size(), golden.size());
  EXPECT_EQ(img->width, 256);
  EXPECT_EQ(img->source_width, 512);
  EXPECT_EQ(img->source_height, 512);
  float max_d = 0;
  for (size_t i = 0; i < golden.size(); ++i) max_d = std::max(max_d, std::fabs(img->soft[i] - golden[i]));
  EXPECT_LE(max_d, 5e-5f);
  EXPECT_EQ(enc.end_of_image_row().size(), 256u);
  EXPECT_EQ(enc.rows_per_image(), 258);
}

TEST(ImageEncoder, SameBytesComeFromTheCache) {
  ImageEncoder enc(mmproj_f32(), 256, 1, false);
  const std::vector<uint8_t> bytes = read_bytes(vision_dir() + "inputs/noise_photo_384x384.png");
  const auto a = enc.encode(bytes);
  const auto b = enc.encode(bytes);
  EXPECT_EQ(a.get(), b.get());  // not encoded again
  const auto c = enc.encode(read_bytes(vision_dir() + "inputs/wide_640x360.png"));
  EXPECT_NE(a->key, c->key);
  EXPECT_NE(a->soft, c->soft);
}

TEST(ImageEncoder, RefusesAProjectorOfAnotherWidth) {
  try {
    ImageEncoder enc(mmproj_f32(), 2048, 1, false);
    FAIL() << "a 256-wide projector was accepted for a 2048-wide model";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("does not belong to this model"), std::string::npos) << e.what();
  }
}

TEST(ImageEncoder, BadImagesAreMediaErrors) {
  ImageEncoder enc(mmproj_f32(), 256, 1, false);
  const std::vector<uint8_t> junk = {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'};
  EXPECT_THROW(enc.encode(junk), MediaError);
  std::vector<uint8_t> png = read_bytes(vision_dir() + "inputs/wide_640x360.png");
  png.resize(png.size() / 2);
  EXPECT_THROW(enc.encode(png), MediaError);
  EXPECT_THROW(enc.encode_file(vision_dir() + "inputs/no_such_file.png"), MediaError);
}

TEST(ImageEncoder, CancelStopsTheEncodeAndCachesNothing) {
  ImageEncoder enc(mmproj_f32(), 256, 1, false);
  const std::vector<uint8_t> bytes = read_bytes(vision_dir() + "inputs/scene_640x480.jpg");
  std::atomic<bool> cancel{true};
  EXPECT_THROW(enc.encode(bytes, &cancel), VisionCancelled);
  cancel = false;
  const auto img = enc.encode(bytes, &cancel);  // encodes now: nothing half-made was cached
  EXPECT_EQ(img->soft.size(), 256u * 256u);
}
