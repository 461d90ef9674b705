// The towers of a Hugging Face checkpoint (vision + audio + embedders) converted to one mmproj equal the
// F16 vision and audio fixtures tensor for tensor (names, shapes, types, bytes; the vision layer scales
// and stem bias as [1, 1, C, 1], the audio SSCP norms llama.cpp lacks), metadata differences listed; the
// result loads as both towers.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "golden_util.h"
#include "process_dir.h"
#include "gguf/gguf.h"
#include "tools/hf_checkpoint.h"
#include "tools/hf_mmproj_gguf.h"
#include "tools/hf_test_checkpoint.h"
#include "tools/safetensors_writer.h"

namespace g3n {
namespace {

namespace fs = std::filesystem;

std::string vision_fixture() { return test::fixtures_dir() + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f16.gguf"; }
std::string audio_fixture() { return test::fixtures_dir() + "/gemma3n-audio-tiny/models/gemma3n-audio-tiny-mmproj-f16.gguf"; }

const std::string& checkpoint_with_towers() {
  static const std::string dir = [] {
    const std::string d = test::process_dir("hf-mmproj") + "/ckpt";
    fs::remove_all(d);
    HfTestCheckpointOptions o;
    o.mmproj_from = {vision_fixture(), audio_fixture()};
    write_hf_test_checkpoint(GgufFile::open(test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf"), d, o);
    return d;
  }();
  return dir;
}

// Every tensor of the fixture is in the output, equal; every output tensor of the fixture's tower is in it.
void expect_tower_equal(const GgufFile& got, const std::string& fixture, const std::string& prefix_v, const std::string& prefix_mm) {
  const auto want = GgufFile::open(fixture);
  size_t in_tower = 0;
  for (const auto& t : got.tensors())
    if (t.name.rfind(prefix_v, 0) == 0 || (t.name.rfind(prefix_mm, 0) == 0 && !(prefix_mm == "mm." && t.name.rfind("mm.a.", 0) == 0)))
      ++in_tower;
  EXPECT_EQ(in_tower, want.tensors().size()) << fixture;
  for (const auto& w : want.tensors()) {
    const auto* g = got.find_tensor(w.name);
    ASSERT_NE(g, nullptr) << w.name;
    EXPECT_EQ(g->ne, w.ne) << w.name;
    EXPECT_EQ(ggml_type_traits(g->type).name, ggml_type_traits(w.type).name) << w.name;
    ASSERT_EQ(g->nbytes, w.nbytes) << w.name;
    EXPECT_EQ(std::memcmp(got.tensor_data(*g), want.tensor_data(w), w.nbytes), 0) << w.name << " differs";
  }
  // Metadata: the clip.* keys the runtime reads agree; general.name/basename/finetune/size_label (the
  // fixtures' own), the vision fixture's placeholder block_count/feed_forward_length/head_count (llama.cpp's
  // fake values, not derivable from a checkpoint) and the audio fixture's has_vision_encoder (false in a
  // file of its own) are not reproduced. The audio eps comes from the config the test wrote from the fixture.
  const std::set<std::string> differ = {"general.name", "general.basename", "general.finetune", "general.size_label",
                                        "clip.vision.block_count", "clip.vision.feed_forward_length",
                                        "clip.vision.attention.head_count", "clip.has_vision_encoder", "clip.has_audio_encoder"};
  for (const auto& kv : want.metadata()) {
    if (differ.count(kv.key)) continue;
    const GgufValue* g = got.find(kv.key);
    ASSERT_NE(g, nullptr) << kv.key;
    EXPECT_EQ(g->type, kv.value.type) << kv.key;
    EXPECT_EQ(g->u, kv.value.u) << kv.key;
    EXPECT_EQ(g->f, kv.value.f) << kv.key;
    EXPECT_EQ(g->s, kv.value.s) << kv.key;
    EXPECT_EQ(g->array.size(), kv.value.array.size()) << kv.key;
  }
}

TEST(HfMmproj, TowersEqualTheFixtures) {
  const auto ck = HfCheckpoint::open(checkpoint_with_towers());
  EXPECT_TRUE(ck.find("model.vision_tower.timm_model.conv_stem.conv.weight"));
  EXPECT_TRUE(ck.find("model.vision_tower.timm_model.blocks.0.0.conv_exp.weight"));
  EXPECT_TRUE(ck.find("model.audio_tower.conformer.1.lconv1d.depthwise_conv1d.weight"));
  EXPECT_TRUE(ck.find("model.audio_tower.subsample_conv_projection.conv_0.norm.weight"));
  EXPECT_EQ(ck.get("model.vision_tower.timm_model.blocks.1.0.layer_scale.gamma").tensor->shape.size(), 1u);
  const std::string out = test::process_dir("hf-mmproj") + "/mmproj.gguf";
  HfMmprojOptions o;
  o.n_threads = 2;
  write_hf_mmproj_gguf(ck, out, o);
  const auto got = GgufFile::open(out);
  EXPECT_EQ(got.get_bool("clip.has_vision_encoder"), true);
  EXPECT_EQ(got.get_bool("clip.has_audio_encoder"), true);
  expect_tower_equal(got, vision_fixture(), "v.", "mm.");
  expect_tower_equal(got, audio_fixture(), "a.", "mm.a.");
}

TEST(HfMmproj, NoAudioLeavesTheAudioTowerOut) {
  const auto ck = HfCheckpoint::open(checkpoint_with_towers());
  const std::string out = test::process_dir("hf-mmproj") + "/vision-only.gguf";
  HfMmprojOptions o;
  o.audio = false;
  write_hf_mmproj_gguf(ck, out, o);
  const auto got = GgufFile::open(out);
  EXPECT_EQ(got.get_bool("clip.has_audio_encoder"), false);
  for (const auto& t : got.tensors()) EXPECT_NE(t.name.rfind("a.", 0), 0u) << t.name;
  expect_tower_equal(got, vision_fixture(), "v.", "mm.");
}

// A tower tensor that is a scalar, or has an empty dimension, is refused with its name (the writer indexed the
// first dimension of a scalar and divided the audio width by an empty per_dim_scale: SIGSEGV and SIGFPE).
TEST(HfMmproj, ScalarOrEmptyTowerTensorsAreRefused) {
  struct Case {
    std::string name;
    std::vector<int64_t> shape;
  };
  for (const Case& c : {Case{"model.vision_tower.timm_model.zz_scalar", {}},
                        Case{"model.vision_tower.timm_model.zz_zero", {0}},
                        Case{"model.vision_tower.timm_model.zz_empty", {4, 0}}}) {
    SCOPED_TRACE(c.name);
    const std::string d = test::process_dir("hf-mmproj") + "/damaged";
    fs::remove_all(d);
    fs::copy(checkpoint_with_towers(), d);
    SafetensorsWriter extra;
    extra.add_bytes(c.name, "F32", c.shape, std::vector<uint8_t>(c.shape.empty() ? 4 : 0, 0));
    extra.write(d + "/extra.safetensors");
    std::ifstream in(d + "/model.safetensors.index.json");
    nlohmann::json index = nlohmann::json::parse(in);
    in.close();
    index["weight_map"][c.name] = "extra.safetensors";
    std::ofstream(d + "/model.safetensors.index.json", std::ios::trunc) << index.dump();
    const auto ck = HfCheckpoint::open(d);
    try {
      write_hf_mmproj_gguf(ck, d + "/out.gguf", HfMmprojOptions{});
      ADD_FAILURE() << "converted";
    } catch (const HfCheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(c.name), std::string::npos) << e.what();
    }
  }
}

TEST(HfMmproj, NamesRoundTrip) {
  for (const char* g : {"v.blk.3.1.attn.key.down_conv.weight", "v.msfa.ffn.pw_exp.bn.weight", "a.blk.11.conv_dw.weight",
                        "a.conv1d.1.norm.weight", "mm.a.input_projection.weight", "mm.soft_emb_norm.weight"})
    EXPECT_EQ(hf_mmproj_name(hf_mmproj_source(g)), g);
  EXPECT_EQ(hf_mmproj_name("model.language_model.norm.weight"), "");
}

}  // namespace
}  // namespace g3n
