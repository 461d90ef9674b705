// `g3n debug embed-image`: the stable vision interface, run as a binary against the gemma3n-vision-tiny
// goldens (fixture README §6 F32 tier), and its errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_util.h"
#include "golden_util.h"

namespace g3n {
namespace {

using test::kG3n;
using test::read_f32_file;
using test::run_capture;

std::string vdir() { return test::fixtures_dir() + "/gemma3n-vision-tiny"; }
std::string mmproj(const std::string& type = "f32") { return vdir() + "/models/gemma3n-vision-tiny-mmproj-" + type + ".gguf"; }
// One directory per test: ctest runs these tests in parallel, and a shared soft.bin was overwritten by a
// neighbour between the run and the comparison.
std::string out_dir() {
  const std::string d = std::string(G3N_BINARY_DIR) + "/embed-image-test/" +
                        ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::create_directories(d);
  return d;
}
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

constexpr float kTolFinal = 5e-5f;
constexpr float kTolIntermediate = 1e-4f;

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

int run_g3n(const std::string& args, std::string* output = nullptr) {
  int status = -1;
  const std::string out = run_capture(kG3n + " debug embed-image " + args + " 2>&1", status);
  if (output) *output = out;
  return exit_code(status);
}

// Each image file, decoded and preprocessed by the binary: pixels, tower and soft tokens. The pixels are
// bit-exact (media tests), so the tower and soft tokens meet the F32 tier from the file too.
TEST(CliEmbedImage, ImageFilesMatchGoldens) {
  const std::string d = out_dir();
  for (const std::string file : {"gradient_shapes_512x512.png", "noise_photo_384x384.png", "wide_640x360.png", "scene_640x480.jpg"}) {
    SCOPED_TRACE(file);
    const std::string name = file.substr(0, file.find('.'));
    std::string log;
    ASSERT_EQ(run_g3n(mmproj() + " " + vdir() + "/inputs/" + file + " --threads 2 --out " + d + "/soft.bin --tower-out " + d +
                          "/tower.bin --pixels-out " + d + "/px.bin",
                      &log),
              0)
        << log;
    const float dp = max_abs_diff(read_f32_file(d + "/px.bin"), read_f32_file(vdir() + "/inputs/" + name + ".pixel_values.f32.bin"));
    const float dt = max_abs_diff(read_f32_file(d + "/tower.bin"), read_f32_file(vdir() + "/golden/" + name + ".tower.f32.bin"));
    const float ds = max_abs_diff(read_f32_file(d + "/soft.bin"), read_f32_file(vdir() + "/golden/" + name + ".soft_tokens.f32.bin"));
    std::printf("  %-28s pixels %.3g, tower %.3g, soft tokens %.3g\n", file.c_str(), dp, dt, ds);
    EXPECT_EQ(dp, 0.0f);
    EXPECT_LE(dt, kTolFinal);
    EXPECT_LE(ds, kTolFinal);
  }
}

// The golden preprocessed tensor in, with the hard tokens and every per-block map out (F16 file).
TEST(CliEmbedImage, PixelsInWithHardTokensAndIntermediates) {
  const std::string d = out_dir(), idir = d + "/intermediates";
  std::filesystem::remove_all(idir);
  const std::string image = "gradient_shapes_512x512";
  std::string log;
  ASSERT_EQ(run_g3n(mmproj("f16") + " --pixels-in " + vdir() + "/inputs/" + image + ".pixel_values.f32.bin --threads 2 --out " + d +
                        "/soft.bin --hard-out " + d + "/hard.bin --intermediates-dir " + idir,
                    &log),
            0)
      << log;
  EXPECT_LE(max_abs_diff(read_f32_file(d + "/soft.bin"), read_f32_file(vdir() + "/golden/" + image + ".soft_tokens.f32.bin")), kTolFinal);
  EXPECT_LE(max_abs_diff(read_f32_file(d + "/hard.bin"), read_f32_file(vdir() + "/golden/hard_tokens.f32.bin")), kTolFinal);
  size_t n = 0;
  float worst = 0;
  for (const auto& entry : std::filesystem::directory_iterator(vdir() + "/golden/intermediates/" + image)) {
    const std::string file = entry.path().filename().string();
    const float di = max_abs_diff(read_f32_file(idir + "/" + file), read_f32_file(entry.path().string()));
    worst = std::max(worst, di);
    EXPECT_LE(di, kTolIntermediate) << file;
    ++n;
  }
  std::printf("  %zu intermediates, worst %.3g\n", n, worst);
  EXPECT_EQ(n, 20u);
}

// The 768x768 uint8 input (3x3 average pool of the real model).
TEST(CliEmbedImage, U8ChwInAt768) {
  const std::string d = out_dir();
  std::string log;
  ASSERT_EQ(run_g3n(mmproj("f16") + " --u8-chw-in " + vdir() + "/inputs/gradient_shapes_512x512.res768.u8.bin --size 768 --threads 2 --out " +
                        d + "/soft768.bin --tower-out " + d + "/tower768.bin",
                    &log),
            0)
      << log;
  const std::string g = vdir() + "/golden/gradient_shapes_512x512.res768.";
  EXPECT_LE(max_abs_diff(read_f32_file(d + "/tower768.bin"), read_f32_file(g + "tower.f32.bin")), kTolFinal);
  EXPECT_LE(max_abs_diff(read_f32_file(d + "/soft768.bin"), read_f32_file(g + "soft_tokens.f32.bin")), kTolFinal);
}

// --fast: the fast tower (fixture README §6 F16 tier on the soft tokens), from an image file with the F32
// file and from the 768x768 uint8 input with the F16 file; --timings prints every stage.
constexpr float kTolFastMax = 3e-2f, kTolFastRms = 4e-3f;

float rms_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double ss = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) ss += double(a[i] - b[i]) * (a[i] - b[i]);
  return a.empty() ? 0.0f : static_cast<float>(std::sqrt(ss / double(a.size())));
}

TEST(CliEmbedImage, FastPathWithinF16Tier) {
  const std::string d = out_dir();
  struct Case {
    std::string args, golden;
  };
  const Case cases[] = {
      {mmproj() + " " + vdir() + "/inputs/scene_640x480.jpg", vdir() + "/golden/scene_640x480."},
      {mmproj("f16") + " --u8-chw-in " + vdir() + "/inputs/gradient_shapes_512x512.res768.u8.bin --size 768",
       vdir() + "/golden/gradient_shapes_512x512.res768."},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    std::string log;
    ASSERT_EQ(run_g3n(c.args + " --fast --timings --threads 2 --out " + d + "/fast-soft.bin --tower-out " + d + "/fast-tower.bin", &log), 0)
        << log;
    const std::vector<float> soft = read_f32_file(d + "/fast-soft.bin"), golden = read_f32_file(c.golden + "soft_tokens.f32.bin");
    const float ds = max_abs_diff(soft, golden), rs = rms_diff(soft, golden);
    const float dt = max_abs_diff(read_f32_file(d + "/fast-tower.bin"), read_f32_file(c.golden + "tower.f32.bin"));
    std::printf("  fast: tower max %.3g, soft tokens max %.3g rms %.3g\n", dt, ds, rs);
    EXPECT_LE(ds, kTolFastMax);
    EXPECT_LE(rs, kTolFastRms);
    for (const std::string stage : {"stage0", "stage1", "stage2", "stage3", "msfa", "encode"})
      EXPECT_NE(log.find(stage), std::string::npos) << log;
  }
}

TEST(CliEmbedImage, BadInputsExitOneWithoutOutput) {
  const std::string d = out_dir(), out = d + "/bad-out.bin", tower = d + "/bad-tower.bin";
  const std::string junk = d + "/junk.png";
  std::ofstream(junk, std::ios::binary) << "\x89PNG\r\n\x1a\n not really a png";
  struct Case {
    std::string args, message;
  };
  const Case cases[] = {
      {mmproj() + " " + junk, "junk.png"},
      {mmproj() + " /nonexistent/image.png", "/nonexistent/image.png"},
      {"/nonexistent/mmproj.gguf " + vdir() + "/inputs/wide_640x360.png", "/nonexistent/mmproj.gguf"},
      {mmproj() + " --pixels-in " + vdir() + "/inputs/scene_640x480.decoded_rgb.u8.bin", "[3, N, N]"},
      {mmproj() + " --u8-chw-in " + vdir() + "/inputs/gradient_shapes_512x512.res768.u8.bin", "--size"},
      {mmproj() + " " + vdir() + "/inputs/wide_640x360.png --size 300", "300"},
      {mmproj() + " " + vdir() + "/inputs/wide_640x360.png --pixels-in x.bin", "exactly one"},
      {mmproj() + " " + vdir() + "/inputs/wide_640x360.png --timings", "--fast"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    std::filesystem::remove(out);
    std::filesystem::remove(tower);
    std::string log;
    EXPECT_EQ(run_g3n(c.args + " --out " + out + " --tower-out " + tower, &log), 1) << log;
    EXPECT_NE(log.find(c.message), std::string::npos) << log;
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
    EXPECT_FALSE(std::filesystem::exists(out));
    EXPECT_FALSE(std::filesystem::exists(tower));
  }
}

}  // namespace
}  // namespace g3n
