// `g3n bench --mmproj --image` and `g3n create-random --mmproj`: run as the binary with the tiny fixtures.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "golden_util.h"
#include "gguf/gguf.h"
#include "vision/mmproj.h"

namespace g3n {
namespace {

using test::kG3n;
using test::run_capture;

std::string tiny_model() { return test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf"; }
std::string vision_dir() { return test::fixtures_dir() + "/gemma3n-vision-tiny"; }
std::string fixture_mmproj() { return vision_dir() + "/models/gemma3n-vision-tiny-mmproj-f16.gguf"; }
std::string image() { return vision_dir() + "/inputs/gradient_shapes_512x512.png"; }
std::string out_dir() {
  const std::string d = std::string(G3N_BINARY_DIR) + "/bench-image-test";
  std::filesystem::create_directories(d);
  return d;
}
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }

const std::string kSmallText = " --prompt 8 --gen 2 --repeats 1 --threads 2";

// The JSON has the image figures with sane values: 256 tokens, every stage timed, the stages summing to
// the encode time, and a memory figure measured against a run without the image.
TEST(CliBenchImage, JsonHasImageFigures) {
  int status = -1;
  const std::string out = run_capture(kG3n + " bench " + tiny_model() + kSmallText + " --image-repeats 3 --mmproj " + fixture_mmproj() +
                                          " --image " + image() + " --json",
                                      status);
  ASSERT_EQ(exit_code(status), 0) << out;
  const auto j = nlohmann::json::parse(out);
  EXPECT_GT(j.at("gen_tokens_per_s").get<double>(), 0);  // the text figures are still there
  EXPECT_EQ(j.at("image_tokens").get<int>(), 256);
  EXPECT_EQ(j.at("image_size").get<int>(), 512);
  EXPECT_EQ(j.at("image_repeats").get<int>(), 3);
  EXPECT_EQ(j.at("image_vision_path").get<std::string>(), "fast");
  EXPECT_GT(j.at("image_preprocess_s").get<double>(), 0);
  const double encode = j.at("image_encode_s").get<double>();
  EXPECT_GT(encode, 0);
  const auto& stages = j.at("image_stage_s");
  double sum = 0;
  for (const std::string name : {"stem", "stage0", "stage1", "stage2", "stage3", "msfa", "embedder"}) {
    ASSERT_TRUE(stages.contains(name)) << name;
    EXPECT_GE(stages[name].get<double>(), 0) << name;
    sum += stages[name].get<double>();
  }
  EXPECT_EQ(stages.size(), 7u);
  EXPECT_GT(stages["stage2"].get<double>(), 0);
  EXPECT_GT(sum, 0);
  // Each run's stages sum to its encode time exactly (up to rounding), and every reported figure is the
  // median of the three runs' (a sum of per-stage medians need not be near the median encode on a busy
  // machine, so that is not asserted).
  ASSERT_EQ(j.at("image_runs").size(), 3u);
  auto median3 = [](double a, double b, double c) { return std::max(std::min(a, b), std::min(std::max(a, b), c)); };
  const auto& runs = j["image_runs"];
  for (const auto& run : runs) {
    double s = 0;
    for (const auto& [name, v] : run["stage_s"].items()) s += v.get<double>();
    EXPECT_NEAR(s, run["encode_s"].get<double>(), 1e-6 + 1e-6 * s);
  }
  EXPECT_EQ(encode, median3(runs[0]["encode_s"].get<double>(), runs[1]["encode_s"].get<double>(), runs[2]["encode_s"].get<double>()));
  for (const auto& [name, v] : stages.items())
    EXPECT_EQ(v.get<double>(), median3(runs[0]["stage_s"][name].get<double>(), runs[1]["stage_s"][name].get<double>(),
                                       runs[2]["stage_s"][name].get<double>()))
        << name;
  ASSERT_TRUE(j.at("image_peak_rss_delta_bytes").is_number_integer()) << out;
  ASSERT_TRUE(j.at("baseline_peak_rss_bytes").is_number_integer());
  const auto peak = j.at("peak_rss_bytes").get<int64_t>(), base = j.at("baseline_peak_rss_bytes").get<int64_t>();
  EXPECT_GT(base, 0);
  EXPECT_EQ(j["image_peak_rss_delta_bytes"].get<int64_t>(), peak - base);
  // The projector (0.9 MB) and the 512x512 activations (the stem output alone is 2 MB f32) add memory.
  EXPECT_GT(peak - base, 1 << 20);
}

TEST(CliBenchImage, TextOutputAndExactPath) {
  int status = -1;
  const std::string out = run_capture(kG3n + " bench " + tiny_model() + kSmallText + " --mmproj " + fixture_mmproj() + " --image " + image() +
                                          " --vision exact --no-rss-baseline 2>&1",
                                      status);
  ASSERT_EQ(exit_code(status), 0) << out;
  EXPECT_NE(out.find("256 tokens, exact vision path"), std::string::npos) << out;
  EXPECT_NE(out.find("stage3"), std::string::npos) << out;
  EXPECT_EQ(out.find("image RSS"), std::string::npos) << out;
}

TEST(CliBenchImage, BadArgumentsExitOne) {
  for (const std::string& args : std::initializer_list<std::string>{" --mmproj " + fixture_mmproj(), " --image " + image(),
                                 " --mmproj " + fixture_mmproj() + " --image /nonexistent.png",
                                 " --mmproj " + fixture_mmproj() + " --image " + image() + " --vision slow"}) {
    SCOPED_TRACE(args);
    int status = -1;
    const std::string out = run_capture(kG3n + " bench " + tiny_model() + kSmallText + args + " 2>&1", status);
    EXPECT_EQ(exit_code(status), 1) << out;
    EXPECT_NE(out.find("Error"), std::string::npos) << out;
  }
}

// create-random writes a model and its projector together, or the projector alone; the pair benches.
TEST(CliCreateRandom, WritesProjector) {
  const std::string d = out_dir();
  int status = -1;
  std::string out = run_capture(kG3n + " create-random " + d + "/m.gguf --preset tiny --quant f16 --threads 2 --mmproj " + d + "/mm.gguf 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << out;
  EXPECT_NE(out.find("tower 321864 + embedder 98816 parameters"), std::string::npos) << out;
  {
    const Mmproj mm = load_mmproj(d + "/mm.gguf");
    EXPECT_EQ(mm.tower.blocks.size(), 17u);
    EXPECT_EQ(mm.config.text_width, 256);
  }
  out = run_capture(kG3n + " bench " + d + "/m.gguf" + kSmallText + " --mmproj " + d + "/mm.gguf --image " + image() + " --json --no-rss-baseline",
                    status);
  ASSERT_EQ(exit_code(status), 0) << out;
  EXPECT_EQ(nlohmann::json::parse(out).at("image_tokens").get<int>(), 256);

  out = run_capture(kG3n + " create-random " + d + "/only.gguf --mmproj-only --mmproj-type f32 --mmproj-flat-gamma --threads 2 2>&1", status);
  ASSERT_EQ(exit_code(status), 0) << out;
  {
    const Mmproj mm = load_mmproj(d + "/only.gguf");
    EXPECT_EQ(mm.file->find_tensor("v.blk.1.0.pw_exp.conv.weight")->type, GgmlType::F32);
    EXPECT_EQ(mm.file->find_tensor("v.blk.1.0.layer_scale.gamma")->ne.size(), 1u);
  }
  out = run_capture(kG3n + " create-random " + d + "/x.gguf --mmproj-only --mmproj-arch nope 2>&1", status);
  EXPECT_EQ(exit_code(status), 1) << out;
}

}  // namespace
}  // namespace g3n

namespace g3n {
namespace {

// `g3n bench --mmproj --audio`: the audio figures, per chunk, with the work done and the memory added.
TEST(CliBenchAudio, JsonHasAudioFigures) {
  const std::string a = test::fixtures_dir() + "/gemma3n-audio-tiny";
  int status = -1;
  const std::string out = run_capture(kG3n + " bench " + tiny_model() + kSmallText + " --mmproj " + a +
                                          "/models/gemma3n-audio-tiny-mmproj-f16.gguf --audio " + a +
                                          "/inputs/c_long_34s_16k_mono_s16.wav --json --no-rss-baseline",
                                      status);
  ASSERT_EQ(exit_code(status), 0) << out;
  const nlohmann::json j = nlohmann::json::parse(out);
  EXPECT_EQ(j.at("audio_chunks").get<int>(), 2);
  EXPECT_EQ(j.at("audio_tokens").get<int>(), 2 * 188);
  EXPECT_DOUBLE_EQ(j.at("audio_seconds").get<double>(), 34.0);
  EXPECT_GT(j.at("audio_encode_s").get<double>(), 0.0);
  EXPECT_GT(j.at("audio_features_s").get<double>(), 0.0);
  EXPECT_GT(j.at("audio_gflops").get<double>(), 0.0);
  // Each run's stages sum to its encode (the stages are the encode's own parts).
  for (const auto& run : j.at("audio_runs")) {
    double sum = 0;
    for (const auto& [name, s] : run.at("stage_s").items()) sum += s.get<double>();
    EXPECT_LE(sum, run.at("encode_s").get<double>() * 1.001 + 1e-4);
    EXPECT_GT(sum, run.at("encode_s").get<double>() * 0.5);
  }
  EXPECT_TRUE(j.at("audio_peak_rss_delta_bytes").is_null());  // --no-rss-baseline
  const std::string bad = run_capture(kG3n + " bench " + tiny_model() + kSmallText + " --audio " + a + "/inputs/a_speech_16k_mono_s16.wav 2>&1", status);
  EXPECT_EQ(exit_code(status), 1) << bad;
}

}  // namespace
}  // namespace g3n
