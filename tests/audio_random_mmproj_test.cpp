// Random-weight audio towers (tools/random_mmproj.h): the tiny audio preset reproduces the
// gemma3n-audio-tiny fixture's file layout (tensor names, shapes, types, order, keys); the real USM preset
// has the README's parameter counts; vision and audio towers share one combined file, as the converter
// writes a real checkpoint's projector.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "golden_util.h"
#include "tools/random_mmproj.h"
#include "vision/mmproj.h"

namespace g3n {
namespace {

std::string audio_models() { return test::fixtures_dir() + "/gemma3n-audio-tiny/models/"; }

std::string out_path(const std::string& name) {
  const std::string d = std::string(G3N_BINARY_DIR) + "/random-audio-mmproj-test";
  std::filesystem::create_directories(d);
  return d + "/" + name;
}

RandomMmprojSpec tiny_audio_only(const std::string& type) {
  RandomMmprojSpec s;
  s.vision = false;
  s.audio = random_audio_preset("tiny");
  s.text_width = 256;
  s.type = type;
  return s;
}

TEST(RandomAudioMmproj, TinyPresetHasTheFixtureLayout) {
  for (const std::string type : {"f16", "f32"}) {
    SCOPED_TRACE(type);
    const auto plan = plan_random_mmproj(tiny_audio_only(type));
    const auto doc = test::read_json(audio_models() + "gemma3n-audio-tiny-mmproj-" + type + ".tensors.json");
    const auto& tensors = doc["tensors"];
    ASSERT_EQ(plan.size(), tensors.size());
    for (size_t i = 0; i < plan.size(); ++i) {
      EXPECT_EQ(plan[i].name, tensors[i]["name"].get<std::string>()) << i;
      EXPECT_EQ(plan[i].ne, tensors[i]["ne"].get<std::vector<int64_t>>()) << plan[i].name;
      EXPECT_EQ(ggml_type_traits(plan[i].type).name, tensors[i]["type"].get<std::string>()) << plan[i].name;
    }
    const MmprojParamCount n = count_mmproj_params(plan);
    EXPECT_EQ(n.audio_tower, 302176);  // fixture README §1
    EXPECT_EQ(n.audio_embedder, 24704);
    EXPECT_EQ(n.tower + n.embedder, 0);
  }
}

// The written file has the fixture's keys with its values (names aside) and no others.
TEST(RandomAudioMmproj, TinyFileHasTheFixtureKeys) {
  const std::string path = out_path("tiny-audio-f16.gguf");
  auto spec = tiny_audio_only("f16");
  write_random_mmproj(spec, path, 2);
  const GgufFile f = GgufFile::open(path);
  const auto doc = test::read_json(audio_models() + "gemma3n-audio-tiny-mmproj-f16.tensors.json");
  size_t compared = 0;
  for (const auto& kv : doc["kv"]) {
    const std::string key = kv["key"].get<std::string>();
    if (key.rfind("GGUF.", 0) == 0 || key == "general.name") continue;
    const GgufValue* v = f.find(key);
    ASSERT_NE(v, nullptr) << key;
    ++compared;
    const auto& want = kv["value"];
    if (want.is_string()) EXPECT_EQ(v->s, want.get<std::string>()) << key;
    else if (want.is_boolean()) EXPECT_EQ(v->u, want.get<bool>() ? 1u : 0u) << key;
    else EXPECT_EQ(static_cast<float>(*v->as_double()), want.get<float>()) << key;
  }
  EXPECT_EQ(compared, 14u);
  size_t informational = 0;
  for (const auto& kv : f.metadata()) informational += kv.key == "general.name" || kv.key == "general.size_label";
  EXPECT_EQ(f.metadata().size(), compared + informational);
}

// README §1: the real audio tower and embedder; the converter's constant feed_forward_length.
TEST(RandomAudioMmproj, RealPresetParameterCounts) {
  RandomMmprojSpec s;
  s.vision = false;
  s.audio = random_audio_preset("usm");
  const MmprojParamCount n = count_mmproj_params(plan_random_mmproj(s));
  EXPECT_EQ(n.audio_tower, 681348640);
  EXPECT_EQ(n.audio_embedder, 3345408);
  EXPECT_EQ(random_audio_preset("real")->width, 1536);
  EXPECT_FALSE(random_audio_preset("nope"));
}

// Both towers in one file: the vision loader binds its part and ignores a.* / mm.a.*.
TEST(RandomAudioMmproj, CombinedFileHoldsBothTowers) {
  auto spec = *random_mmproj_preset("tiny");
  spec.audio = random_audio_preset("tiny");
  const std::string path = out_path("tiny-both.gguf");
  write_random_mmproj(spec, path, 2);
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.get_bool("clip.has_vision_encoder"), true);
  EXPECT_EQ(f.get_bool("clip.has_audio_encoder"), true);
  EXPECT_EQ(f.get_string("clip.audio.projector_type").value_or(""), "gemma3na");
  EXPECT_EQ(f.get_string("clip.vision.projector_type").value_or(""), "gemma3nv");
  EXPECT_NE(f.find_tensor("a.blk.1.conv_dw.weight"), nullptr);
  EXPECT_NE(f.find_tensor("mm.a.input_projection.weight"), nullptr);
  const Mmproj mm = load_mmproj(path);
  EXPECT_EQ(mm.tower.blocks.size(), 17u);
  const MmprojParamCount n = count_mmproj_params(plan_random_mmproj(spec));
  EXPECT_EQ(n.tower, 321864);
  EXPECT_EQ(n.audio_tower, 302176);
  spec.vision = false;
  spec.audio.reset();
  EXPECT_THROW(plan_random_mmproj(spec), std::invalid_argument);
}

}  // namespace
}  // namespace g3n
