// Issue 17 test (a), end to end: a tiny Hugging Face checkpoint written from the F16 text fixture and both
// F16 tower fixtures, converted by the same call `g3n create --from-hf DIR --layout llamacpp --quantize
// f16` makes, computes what the fixtures' goldens hold at their README tolerances: golden/exact/f16 and
// golden/multimodal *_f16 (gemma3n-tiny README §4.1, §8.3), the vision tower's per-block intermediates,
// tower outputs, soft and hard tokens (gemma3n-vision-tiny README §6) and the audio tower's intermediates,
// encoder outputs, embedded and hard rows (gemma3n-audio-tiny README §7.2). The checks are the ones the
// engine's own golden tests run on the fixture files (tests/*_util.h).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "audio_util.h"
#include "exact_golden_util.h"
#include "golden_util.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "multimodal_util.h"
#include "process_dir.h"
#include "tools/hf_convert.h"
#include "tools/hf_test_checkpoint.h"
#include "vision_util.h"

namespace g3n {
namespace {

namespace fs = std::filesystem;

// The conversion, once per test process (ctest runs each case as a process of its own).
const HfConvertReport& converted() {
  static const HfConvertReport report = [] {
    const std::string dir = test::process_dir("hf-convert-goldens");
    HfTestCheckpointOptions c;
    c.n_shards = 3;
    c.mmproj_from = {test::vision_dir() + "/models/gemma3n-vision-tiny-mmproj-f16.gguf", test::audio_model("f16")};
    write_hf_test_checkpoint(GgufFile::open(test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf"), dir + "/ckpt", c);
    HfConvertOptions o;
    o.target = QuantTarget::F16;
    o.layout = GgufLayout::LlamaCpp;
    o.n_threads = 2;
    return convert_hf_checkpoint(dir + "/ckpt", dir + "/staging", o);
  }();
  return report;
}

TEST(HfConvertGoldens, ConvertsTextAndBothTowers) {
  const HfConvertReport& r = converted();
  EXPECT_FALSE(r.reused);
  ASSERT_TRUE(fs::exists(r.text_gguf));
  ASSERT_FALSE(r.mmproj_gguf.empty());
  const auto mm = GgufFile::open(r.mmproj_gguf.string());
  EXPECT_EQ(mm.get_bool("clip.has_vision_encoder"), true);
  EXPECT_EQ(mm.get_bool("clip.has_audio_encoder"), true);
}

TEST(HfConvertGoldens, TextMeetsExactF16Goldens) {
  auto model = Model::load(converted().text_gguf.string());
  test::check_exact_golden(*model, "f16", KvType::F32, "hf-f16");
}

TEST(HfConvertGoldens, TextMeetsMultimodalF16Goldens) {
  auto model = Model::load(converted().text_gguf.string());
  test::check_multimodal_exact(*model, "f16", KvType::F32);
}

TEST(HfConvertGoldens, VisionTowerMeetsGoldens) {
  const std::string mm = converted().mmproj_gguf.string();
  test::check_vision_intermediates(mm, "hf-f16");
  test::check_vision_all_images(mm, "hf-f16");
  test::check_vision_hard_tokens(mm, "hf-f16");
}

TEST(HfConvertGoldens, AudioTowerMeetsGoldens) {
  const std::string mm = converted().mmproj_gguf.string();
  test::check_audio_intermediates(mm, "hf-f16");
  test::check_audio_all_clips(mm, "hf-f16");
  test::check_audio_hard_rows(mm, "hf-f16");
}

}  // namespace
}  // namespace g3n
