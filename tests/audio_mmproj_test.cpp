// The audio projector loader (src/audio/audio_mmproj.h): README §5's rule set on the gemma3n-audio-tiny
// files, and clear errors for hostile or foreign files (built with the project's GGUF writer).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "audio/audio_encode.h"
#include "audio/audio_mmproj.h"
#include "audio_util.h"
#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

using namespace test;

struct TensorCopy {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  std::vector<uint8_t> data;
};

// Copies a GGUF file, letting edit() rename, reshape or drop tensors (false: drop) and keys() change keys.
void rewrite_gguf(const std::string& src, const std::string& dst, const std::function<bool(TensorCopy&)>& edit,
                  const std::function<void(GgufWriter&)>& keys = {}) {
  const GgufFile f = GgufFile::open(src);
  GgufWriter w(f.alignment());
  for (const auto& kv : f.metadata())
    if (kv.key != "general.alignment") w.set(kv.key, kv.value);
  if (keys) keys(w);
  for (const auto& t : f.tensors()) {
    const uint8_t* p = f.tensor_data(t);
    TensorCopy c{t.name, t.type, t.ne, std::vector<uint8_t>(p, p + t.nbytes)};
    if (edit(c)) w.add_tensor(c.name, c.type, c.ne, std::move(c.data));
  }
  w.write(dst);
}

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/audio_mmproj_" + name + ".gguf"; }

void expect_load_error(const std::string& path, const std::string& needle) {
  try {
    load_audio_mmproj(path);
    ADD_FAILURE() << "loading " << path << " did not fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

std::vector<float> encode_rows(const AudioMmproj& mm, const std::string& clip) {
  ThreadPool pool(2);
  return encode_audio(mm, golden_features(clip), pool).rows;
}

TEST(AudioMmproj, DerivesTheGeometryFromShapes) {
  for (const std::string type : {"f32", "f16"}) {
    const AudioMmproj mm = load_audio_mmproj(audio_model(type));
    const AudioConfig& c = mm.config;
    EXPECT_EQ(c.width, 64);
    EXPECT_EQ(c.n_layers, 2);
    EXPECT_EQ(c.n_heads, 2);
    EXPECT_EQ(c.head_dim, 32);
    EXPECT_EQ(c.ffn_width, 256);
    EXPECT_EQ(c.sscp_channels[0], 128);
    EXPECT_EQ(c.sscp_channels[1], 32);
    EXPECT_EQ(c.sscp_freq[1], 64);
    EXPECT_EQ(c.sscp_freq[2], 32);
    EXPECT_EQ(c.conv_kernel, 5);
    EXPECT_EQ(c.text_width, 256);
    EXPECT_EQ(c.n_hard, 128);
    EXPECT_EQ(c.pad_row, 127);
    EXPECT_EQ(mm.tower.layers.size(), 2u);
    EXPECT_EQ(mm.tower.input_proj.type, GgmlType::F16);  // forced F16 by the converter even in the f32 file
    EXPECT_EQ(mm.tower.input_proj.n_in, 1024);
    EXPECT_EQ(mm.tower.layers[1].ffn_up.type, type == "f32" ? GgmlType::F32 : GgmlType::F16);
    EXPECT_EQ(mm.tower.conv[1].w.size(), 32u * 9 * 128);
    EXPECT_TRUE(gguf_has_audio_tower(*mm.file));
  }
}

// Rule 3: the converter's feed_forward_length (6144) and eps (1e-5) never reach the arithmetic.
TEST(AudioMmproj, IgnoresTheFilesFeedForwardLengthAndEps) {
  const std::string path = temp_path("keys");
  rewrite_gguf(audio_model("f16"), path, [](TensorCopy&) { return true; }, [](GgufWriter& w) {
    w.set_u32("clip.audio.feed_forward_length", 6144);
    w.set_f32("clip.audio.attention.layer_norm_epsilon", 1e-5f);
  });
  const AudioMmproj a = load_audio_mmproj(audio_model("f16")), b = load_audio_mmproj(path);
  EXPECT_EQ(b.config.ffn_width, 256);
  EXPECT_EQ(encode_rows(a, audio_clips()[3]), encode_rows(b, audio_clips()[3]));
  std::filesystem::remove(path);
}

// Rule 1: real files are combined vision + audio; the v.* tensors and clip.vision.* keys are ignored.
TEST(AudioMmproj, IgnoresTheVisionPartOfACombinedFile) {
  const std::string path = temp_path("combined");
  const GgufFile vision = GgufFile::open(test::fixtures_dir() + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f16.gguf");
  const GgufFile audio = GgufFile::open(audio_model("f16"));
  GgufWriter w;
  for (const auto& kv : vision.metadata()) w.set(kv.key, kv.value);
  for (const auto& kv : audio.metadata()) w.set(kv.key, kv.value);
  w.set_bool("clip.has_vision_encoder", true);
  for (const GgufFile* f : {&vision, &audio})
    for (const auto& t : f->tensors()) {
      const uint8_t* p = f->tensor_data(t);
      w.add_tensor(t.name, t.type, t.ne, std::vector<uint8_t>(p, p + t.nbytes));
    }
  w.write(path);
  const AudioMmproj a = load_audio_mmproj(audio_model("f16")), b = load_audio_mmproj(path);
  EXPECT_EQ(encode_rows(a, audio_clips()[3]), encode_rows(b, audio_clips()[3]));
  std::filesystem::remove(path);
}

// Rule 6: the group-norm scales under the fixture's name or the suffix-less one.
TEST(AudioMmproj, AcceptsBothGroupNormNames) {
  const std::string path = temp_path("normname");
  rewrite_gguf(audio_model("f32"), path, [](TensorCopy& t) {
    if (t.name == "a.conv1d.0.norm.weight" || t.name == "a.conv1d.1.norm.weight") t.name.resize(t.name.size() - 7);
    return true;
  });
  const AudioMmproj a = load_audio_mmproj(audio_model("f32")), b = load_audio_mmproj(path);
  EXPECT_EQ(a.tower.conv[0].norm, b.tower.conv[0].norm);
  EXPECT_EQ(a.tower.conv[1].norm, b.tower.conv[1].norm);
  std::filesystem::remove(path);
}

TEST(AudioMmproj, RefusesAVisionOnlyFile) {
  const std::string vision = test::fixtures_dir() + "/gemma3n-vision-tiny/models/gemma3n-vision-tiny-mmproj-f32.gguf";
  EXPECT_FALSE(gguf_has_audio_tower(GgufFile::open(vision)));
  expect_load_error(vision, "clip.has_audio_encoder");
}

// BF16 / Q8_0 matrices: decoded exactly, so a file of those types gives the bits of an F32 file holding
// the decoded values.
TEST(AudioMmproj, Bf16AndQ8_0MatricesDecodeExactly) {
  const std::string quant = temp_path("q8bf16"), decoded = temp_path("q8bf16_f32");
  auto requant = [](TensorCopy& t, bool back_to_f32) {
    const bool matrix = t.ne.size() == 2 && t.ne[1] > 1;
    if (!matrix || t.type != GgmlType::F32) return true;
    const GgmlType to = t.ne[0] % 32 == 0 && t.name.find("ffn") != std::string::npos ? GgmlType::Q8_0 : GgmlType::BF16;
    const int64_t n = static_cast<int64_t>(t.data.size() / 4);
    std::vector<float> f(static_cast<size_t>(n));
    std::memcpy(f.data(), t.data.data(), t.data.size());
    std::vector<uint8_t> q(*ggml_row_bytes(to, static_cast<uint64_t>(n)));
    quantize_row(to, f.data(), q.data(), n);
    if (back_to_f32) {
      dequantize_row(to, q.data(), f.data(), n);
      std::memcpy(t.data.data(), f.data(), t.data.size());
    } else {
      t.type = to;
      t.data = std::move(q);
    }
    return true;
  };
  rewrite_gguf(audio_model("f32"), quant, [&](TensorCopy& t) { return requant(t, false); });
  rewrite_gguf(audio_model("f32"), decoded, [&](TensorCopy& t) { return requant(t, true); });
  const AudioMmproj a = load_audio_mmproj(quant), b = load_audio_mmproj(decoded);
  EXPECT_EQ(a.tower.layers[0].ffn_up.type, GgmlType::Q8_0);
  EXPECT_EQ(a.tower.layers[0].q.type, GgmlType::BF16);
  EXPECT_EQ(encode_rows(a, audio_clips()[0]), encode_rows(b, audio_clips()[0]));
  std::filesystem::remove(quant);
  std::filesystem::remove(decoded);
}

// Hostile and ill-shaped files: each refused with a message naming the key or tensor.
TEST(AudioMmproj, IllShapedFilesGiveClearErrors) {
  struct Case {
    const char* what;
    std::function<bool(TensorCopy&)> edit;
    std::function<void(GgufWriter&)> keys;
    std::string needle;
  };
  const auto keep = [](TensorCopy&) { return true; };
  const std::vector<Case> cases = {
      {"missing tensor", [](TensorCopy& t) { return t.name != "a.blk.1.attn_v.weight"; }, {}, "'a.blk.1.attn_v.weight'"},
      {"missing group norm", [](TensorCopy& t) { return t.name != "a.conv1d.1.norm.weight"; }, {}, "'a.conv1d.1.norm.weight'"},
      {"wrong matrix shape",
       [](TensorCopy& t) {
         if (t.name == "a.blk.0.conv_pw1.weight") t.ne = {128, 64};
         return true;
       },
       {}, "'a.blk.0.conv_pw1.weight' has shape [128, 64, 1, 1], expected [64, 128, 1, 1]"},
      {"ffn widths disagree",
       [](TensorCopy& t) {
         if (t.name == "a.blk.1.ffn_down_1.weight") t.ne = {128, 128};
         return true;
       },
       {}, "'a.blk.1.ffn_down_1.weight'"},
      {"transposed sscp kernel",
       [](TensorCopy& t) {
         if (t.name == "a.conv1d.1.weight") t.ne = {3, 3, 32, 128};
         return true;
       },
       {}, "'a.conv1d.1.weight'"},
      {"quantized norm",
       [](TensorCopy& t) {
         if (t.name != "a.blk.0.ln1.weight") return true;
         std::vector<float> f(64);
         std::memcpy(f.data(), t.data.data(), 256);
         t.data.assign(*ggml_row_bytes(GgmlType::Q8_0, 64), 0);
         quantize_row(GgmlType::Q8_0, f.data(), t.data.data(), 64);
         t.type = GgmlType::Q8_0;
         return true;
       },
       {}, "'a.blk.0.ln1.weight' has type Q8_0"},
      {"layer gap",
       [](TensorCopy& t) {
         if (t.name.rfind("a.blk.1.", 0) == 0) t.name = "a.blk.2." + t.name.substr(8);
         return true;
       },
       {}, "layer 1 is missing"},
      {"head count disagrees", keep, [](GgufWriter& w) { w.set_u32("clip.audio.attention.head_count", 4); }, "clip.audio.attention.head_count"},
      {"wrong projector type", keep, [](GgufWriter& w) { w.set_string("clip.audio.projector_type", "whisper"); }, "'whisper'"},
      {"no audio encoder", keep, [](GgufWriter& w) { w.set_bool("clip.has_audio_encoder", false); }, "clip.has_audio_encoder"},
      {"wrong architecture", keep, [](GgufWriter& w) { w.set_string("general.architecture", "gemma3n"); }, "general.architecture"},
      {"head dim not dividing the width",
       [](TensorCopy& t) {
         if (t.name.find("per_dim_scale") == std::string::npos) return true;
         t.ne = {48};
         t.data.resize(48 * 4);
         return true;
       },
       {}, "head dim 48"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string path = temp_path("bad");
    rewrite_gguf(audio_model("f32"), path, c.edit, c.keys);
    expect_load_error(path, c.needle);
    std::filesystem::remove(path);
  }
}

}  // namespace
}  // namespace g3n
