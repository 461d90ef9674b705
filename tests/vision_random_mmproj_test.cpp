// Random-weight vision projectors (tools/random_mmproj.h): the tiny preset reproduces the
// gemma3n-vision-tiny fixture's file layout exactly; the real mobilenetv5_300m_enc preset has the
// README's parameter counts and loads as 84 blocks; written files load and encode to finite,
// non-trivial rows. The full-size tower is never run here (too slow for the suite).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "golden_util.h"
#include "tools/random_mmproj.h"
#include "vision/encode.h"
#include "vision/mmproj.h"

namespace g3n {
namespace {

std::string vision_models() { return test::fixtures_dir() + "/gemma3n-vision-tiny/models/"; }

std::string out_path(const std::string& name) {
  const std::string d = std::string(G3N_BINARY_DIR) + "/random-mmproj-test";
  std::filesystem::create_directories(d);
  return d + "/" + name;
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// Pixels in [0, 1] with some structure (a gradient and a stripe pattern), CHW.
std::vector<float> test_pixels(int64_t n) {
  std::vector<float> px(static_cast<size_t>(3 * n * n));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t y = 0; y < n; ++y)
      for (int64_t x = 0; x < n; ++x)
        px[static_cast<size_t>((c * n + y) * n + x)] =
            static_cast<float>(0.5 * (double(x + c * y) / double(2 * n)) + 0.25 * (((x / 7 + y / 5 + c) % 3) == 0));
  return px;
}

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s / double(v.size()));
}

// Tensor names, shapes, types and order equal the fixture's (which llama.cpp's converter wrote), for the
// F16 and the F32 rule.
TEST(RandomMmproj, TinyPresetHasTheFixtureLayout) {
  for (const std::string type : {"f16", "f32"}) {
    SCOPED_TRACE(type);
    auto spec = *random_mmproj_preset("tiny");
    spec.type = type;
    const auto plan = plan_random_mmproj(spec);
    const auto doc = test::read_json(vision_models() + "gemma3n-vision-tiny-mmproj-" + type + ".tensors.json");
    const auto& tensors = doc["tensors"];
    ASSERT_EQ(plan.size(), tensors.size());
    for (size_t i = 0; i < plan.size(); ++i) {
      EXPECT_EQ(plan[i].name, tensors[i]["name"].get<std::string>()) << i;
      EXPECT_EQ(plan[i].ne, tensors[i]["ne"].get<std::vector<int64_t>>()) << plan[i].name;
      EXPECT_EQ(ggml_type_traits(plan[i].type).name, tensors[i]["type"].get<std::string>()) << plan[i].name;
    }
    const MmprojParamCount n = count_mmproj_params(plan);
    EXPECT_EQ(n.tower, 321864);  // fixture README §1
    EXPECT_EQ(n.embedder, 98816);
  }
}

// fixture README §1: the real tower and embedder.
TEST(RandomMmproj, RealPresetParameterCounts) {
  const auto spec = *random_mmproj_preset("mobilenetv5_300m_enc");
  const auto plan = plan_random_mmproj(spec);
  const MmprojParamCount n = count_mmproj_params(plan);
  EXPECT_EQ(n.tower, 294126912);
  EXPECT_EQ(n.embedder, 4460544);
  int blocks = 0, attention = 0, down = 0;
  for (const auto& t : plan) {
    if (t.name.find("attn.query.proj.weight") != std::string::npos) ++attention;
    if (t.name.find("attn.key.down_conv") != std::string::npos) ++down;
    if (t.name.find("layer_scale.gamma") != std::string::npos || t.name.find("bn1.weight") != std::string::npos) ++blocks;
    if (t.name.find("layer_scale") != std::string::npos) {
      EXPECT_EQ(t.ne, (std::vector<int64_t>{1, 1, t.ne[2], 1}));
    }
  }
  EXPECT_EQ(blocks, 84);     // each UIR/MQA block has a layer scale, each ER block a bn1
  EXPECT_EQ(attention, 33);  // 14 + 19 MQA blocks
  EXPECT_EQ(down, 14);       // K/V down-sampling in stage 2 only
}

TEST(RandomMmproj, BadArchStringsAreRejected) {
  for (const std::string bad : {"xx_r1_c8", "uir_r1_a4_k5_s2_e6_c32", "uir_r1_k5_s2_e6", "mqa_r1_k3_s2_h4_d16_c48", "uir_r1_a3_k5_s2_e6_c32_zz1"}) {
    SCOPED_TRACE(bad);
    auto spec = *random_mmproj_preset("tiny");
    spec.stages[1][0] = bad;
    EXPECT_THROW(plan_random_mmproj(spec), std::invalid_argument);
  }
}

// A written tiny-shaped file loads with the loader's rules, runs through encode_image, and gives finite,
// non-trivial rows; the F16 and F32 files hold the same values (fp16 grid) and give the same output;
// a seed reproduces its file byte for byte.
TEST(RandomMmproj, TinyFileLoadsAndEncodes) {
  auto spec = *random_mmproj_preset("tiny");
  spec.seed = 7;
  const std::string f16 = out_path("tiny-f16.gguf"), f32 = out_path("tiny-f32.gguf"), again = out_path("tiny-f16-again.gguf");
  write_random_mmproj(spec, f16, 2);
  write_random_mmproj(spec, again, 2);
  EXPECT_EQ(file_bytes(f16), file_bytes(again));
  spec.type = "f32";
  write_random_mmproj(spec, f32, 2);

  // The fixture's keys with its values (the informational names aside), and no others.
  for (const std::string type : {"f16", "f32"}) {
    SCOPED_TRACE(type);
    const GgufFile f = GgufFile::open(type == "f16" ? f16 : f32);
    const auto doc = test::read_json(vision_models() + "gemma3n-vision-tiny-mmproj-" + type + ".tensors.json");
    size_t compared = 0;
    for (const auto& kv : doc["kv"]) {
      const std::string key = kv["key"].get<std::string>();
      if (key == "general.name" || key == "general.finetune" || key == "general.basename" || key == "general.size_label") continue;
      const GgufValue* v = f.find(key);
      ASSERT_NE(v, nullptr) << key;
      ++compared;
      const auto& want = kv["value"];
      if (want.is_string()) EXPECT_EQ(v->s, want.get<std::string>()) << key;
      else if (want.is_boolean()) EXPECT_EQ(v->u, want.get<bool>() ? 1u : 0u) << key;
      else if (want.is_array()) {
        ASSERT_EQ(v->array.size(), want.size()) << key;
        for (size_t k = 0; k < want.size(); ++k) EXPECT_EQ(*v->array[k].as_double(), want[k].get<double>()) << key;
      } else {
        EXPECT_EQ(static_cast<float>(*v->as_double()), want.get<float>()) << key;
      }
    }
    EXPECT_EQ(compared, 16u);
    size_t general_names = 0;
    for (const auto& kv : f.metadata()) general_names += kv.key == "general.name" || kv.key == "general.size_label";
    EXPECT_EQ(f.metadata().size(), compared + general_names);
  }

  ThreadPool pool(2);
  const auto px = test_pixels(512);
  std::vector<float> out[2];
  int i = 0;
  for (const std::string& path : {f16, f32}) {
    SCOPED_TRACE(path);
    const Mmproj mm = load_mmproj(path);
    EXPECT_EQ(mm.config.image_size, 512);
    EXPECT_EQ(mm.config.n_tokens, 256);
    EXPECT_EQ(mm.config.text_width, 256);
    EXPECT_EQ(mm.tower.blocks.size(), 17u);
    EXPECT_EQ(mm.tower.stage_last, (std::vector<size_t>{1, 4, 11, 16}));
    const ImageEmbedding e = encode_image(mm, px, 512, pool);
    ASSERT_EQ(e.soft.size(), 256u * 256u);
    for (float x : e.tower.data) ASSERT_TRUE(std::isfinite(x));
    for (float x : e.soft) ASSERT_TRUE(std::isfinite(x));
    EXPECT_NEAR(rms(e.soft), 1.0, 0.01);  // the weightless final RMSNorm
    EXPECT_GT(rms(e.tower.data), 0.1);
    // Rows differ between tokens: the image reaches the output.
    double diff = 0;
    for (size_t c = 0; c < 256; ++c) diff += std::fabs(e.soft[c] - e.soft[255 * 256 + c]);
    EXPECT_GT(diff, 1.0);
    out[i++] = e.soft;
  }
  float max_diff = 0;
  for (size_t k = 0; k < out[0].size(); ++k) max_diff = std::max(max_diff, std::fabs(out[0][k] - out[1][k]));
  EXPECT_LE(max_diff, 5e-5f);

  spec.type = "f16";
  spec.seed = 8;
  write_random_mmproj(spec, again, 2);
  EXPECT_NE(file_bytes(f16), file_bytes(again));
}

// Layer scales written as the converter's 1-D [C] load too (fixture README §4.1: accept both).
TEST(RandomMmproj, FlatLayerScalesLoad) {
  auto spec = *random_mmproj_preset("tiny");
  spec.flat_layer_scale = true;
  const std::string path = out_path("tiny-flat.gguf");
  write_random_mmproj(spec, path, 2);
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.find_tensor("v.blk.1.0.layer_scale.gamma")->ne, (std::vector<int64_t>{32}));
  const Mmproj mm = load_mmproj(path);
  EXPECT_EQ(mm.tower.blocks[2].layer_scale.size(), 32u);
}

// The real shape, written and bound by the loader (not run): 84 blocks in 3 + 5 + 37 + 39, the stage
// widths, the attention heads and key dims, K/V down-sampling only in stage 2, the parameter counts.
TEST(RandomMmproj, RealShapeLoads) {
  auto spec = *random_mmproj_preset("mobilenetv5_300m_enc");
  const std::string path = out_path("real-f16.gguf");
  write_random_mmproj(spec, path, 2);
  {
    const Mmproj mm = load_mmproj(path);
    EXPECT_EQ(mm.config.image_size, 768);
    EXPECT_EQ(mm.config.n_tokens, 256);
    EXPECT_EQ(mm.config.vision_width, 2048);
    EXPECT_EQ(mm.config.text_width, 2048);
    EXPECT_EQ(mm.config.n_hard, 128);
    EXPECT_EQ(mm.tower.stem.out, 64);
    ASSERT_EQ(mm.tower.blocks.size(), 84u);
    EXPECT_EQ(mm.tower.stage_last, (std::vector<size_t>{2, 7, 44, 83}));
    EXPECT_EQ(mm.tower.msfa_in, 1920);
    EXPECT_EQ(mm.tower.msfa_exp.n_out, 3840);
    int mqa2 = 0, mqa3 = 0;
    for (const auto& b : mm.tower.blocks) {
      if (b.kind != VisionBlockKind::MultiQueryAttention) continue;
      if (b.stage == 2) {
        ++mqa2;
        EXPECT_EQ(b.heads, 12);
        EXPECT_EQ(b.head_dim, 64);
        EXPECT_FALSE(b.key_down.empty());
      } else {
        ++mqa3;
        EXPECT_EQ(b.stage, 3);
        EXPECT_EQ(b.heads, 16);
        EXPECT_EQ(b.head_dim, 96);
        EXPECT_TRUE(b.key_down.empty());
      }
    }
    EXPECT_EQ(mqa2, 14);
    EXPECT_EQ(mqa3, 19);
    const int64_t out_ch[] = {128, 256, 640, 1280};
    for (int s = 0; s < 4; ++s) EXPECT_EQ(mm.tower.blocks[mm.tower.stage_last[s]].out, out_ch[s]);
    int64_t tower = 0, embedder = 0;
    for (const auto& t : mm.file->tensors()) (t.name.rfind("v.", 0) == 0 ? tower : embedder) += t.n_elements();
    EXPECT_EQ(tower, 294126912);
    EXPECT_EQ(embedder, 4460544);
  }
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace g3n
