// The vision tower and embedder (src/vision/) against the gemma3n-vision-tiny fixture: every per-block
// intermediate, the tower output, the soft and hard tokens, from the golden preprocessed pixels, at the
// fixture README §6 F32-tier tolerances; and the loader's structure derivation and error handling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "base/thread_pool.h"
#include "golden_util.h"
#include "vision_util.h"
#include "gguf/gguf.h"
#include "quant/quantize.h"
#include "vision/embedder.h"
#include "vision/mmproj.h"
#include "vision/mobilenet_v5.h"

namespace g3n {
namespace {

using test::read_f32_file;

std::string vdir() { return test::vision_dir(); }
std::string model_path(const std::string& type) { return vdir() + "/models/gemma3n-vision-tiny-mmproj-" + type + ".gguf"; }

using test::golden_pixels;
constexpr float kTolFinal = test::kVisionTolFinal;
float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) { return test::vision_max_diff(a, b); }

// Copies a GGUF file, letting edit() rename, reshape or drop tensors (return false to drop).
struct TensorCopy {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  std::vector<uint8_t> data;
};
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

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "/vision_" + name + ".gguf"; }

// Expects load_mmproj(path) to throw a message containing `needle`.
void expect_load_error(const std::string& path, const std::string& needle) {
  try {
    load_mmproj(path);
    ADD_FAILURE() << "loading " << path << " did not fail";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(VisionMmproj, DerivesTheBlockStructureFromShapes) {
  const Mmproj mm = load_mmproj(model_path("f32"));
  EXPECT_EQ(mm.config.image_size, 512);
  EXPECT_EQ(mm.config.n_tokens, 256);
  EXPECT_EQ(mm.config.vision_width, 256);
  EXPECT_EQ(mm.config.text_width, 256);
  EXPECT_EQ(mm.config.n_hard, 128);
  EXPECT_FLOAT_EQ(mm.config.eps, 1e-6f);
  const auto& t = mm.tower;
  EXPECT_EQ(t.stem.out, 8);
  EXPECT_EQ(t.stem.k, 3);
  ASSERT_EQ(t.blocks.size(), 17u);
  EXPECT_EQ(t.stage_last, (std::vector<size_t>{1, 4, 11, 16}));
  using K = VisionBlockKind;
  const std::vector<K> kinds = {K::EdgeResidual, K::EdgeResidual,
                                K::UniversalInvertedResidual, K::UniversalInvertedResidual, K::UniversalInvertedResidual,
                                K::UniversalInvertedResidual, K::UniversalInvertedResidual, K::UniversalInvertedResidual,
                                K::MultiQueryAttention, K::UniversalInvertedResidual, K::MultiQueryAttention,
                                K::UniversalInvertedResidual,
                                K::UniversalInvertedResidual, K::MultiQueryAttention, K::UniversalInvertedResidual,
                                K::MultiQueryAttention, K::UniversalInvertedResidual};
  const std::vector<int64_t> outs = {24, 24, 32, 32, 32, 48, 48, 48, 48, 48, 48, 48, 64, 64, 64, 64, 64};
  for (size_t i = 0; i < kinds.size(); ++i) {
    EXPECT_EQ(t.blocks[i].kind, kinds[i]) << i;
    EXPECT_EQ(t.blocks[i].out, outs[i]) << i;
    EXPECT_EQ(t.blocks[i].stride, t.blocks[i].index == 0 ? 2 : 1) << i;
    EXPECT_EQ(t.blocks[i].layer_scale.empty(), t.blocks[i].kind == K::EdgeResidual) << i;
  }
  EXPECT_FALSE(t.blocks[0].residual);
  EXPECT_TRUE(t.blocks[1].residual);
  EXPECT_FALSE(t.blocks[2].residual);  // stride-2 UIR: layer scale but no skip (trap 4)
  EXPECT_EQ(t.blocks[2].dw_start.k, 3);
  EXPECT_EQ(t.blocks[2].dw_mid.k, 5);
  EXPECT_EQ(t.blocks[3].dw_start.k, 5);
  EXPECT_TRUE(t.blocks[3].dw_mid.empty());
  EXPECT_TRUE(t.blocks[7].dw_start.empty());  // 2.2: UIR e1 without depthwise convs (trap 22)
  EXPECT_TRUE(t.blocks[7].dw_mid.empty());
  EXPECT_EQ(t.blocks[7].pw_exp.n_out, 48);
  const VisionBlock& m2 = t.blocks[8];
  EXPECT_EQ(m2.heads, 4);
  EXPECT_EQ(m2.head_dim, 16);
  EXPECT_EQ(m2.key_down.k, 3);
  EXPECT_FALSE(m2.value_down.empty());
  const VisionBlock& m3 = t.blocks[13];
  EXPECT_EQ(m3.heads, 3);
  EXPECT_EQ(m3.head_dim, 24);
  EXPECT_TRUE(m3.key_down.empty());
  EXPECT_EQ(t.msfa_in, 112);
  EXPECT_EQ(t.msfa_exp.n_out, 224);
  EXPECT_EQ(t.msfa_proj.n_out, 256);
}

TEST(VisionTower, SamePadding) {
  // Conv2dSame at stride 2 on even sizes: k3 -> (0, 1), k5 -> (1, 2) (trap 1); stride 1 symmetric.
  EXPECT_EQ(same_padding(512, 3, 2).before, 0);
  EXPECT_EQ(same_padding(512, 3, 2).after, 1);
  EXPECT_EQ(same_padding(64, 5, 2).before, 1);
  EXPECT_EQ(same_padding(64, 5, 2).after, 2);
  EXPECT_EQ(same_padding(33, 3, 2).before, 1);
  EXPECT_EQ(same_padding(33, 3, 2).after, 1);
  EXPECT_EQ(same_padding(64, 5, 1).before, 2);
  EXPECT_EQ(same_padding(64, 5, 1).after, 2);
}

TEST(VisionTower, IntermediatesMatchGoldensF32) { test::check_vision_intermediates(model_path("f32"), "f32"); }
TEST(VisionTower, IntermediatesMatchGoldensF16) { test::check_vision_intermediates(model_path("f16"), "f16"); }

TEST(VisionTower, AllImagesMatchGoldensF32) { test::check_vision_all_images(model_path("f32"), "f32"); }
TEST(VisionTower, AllImagesMatchGoldensF16) { test::check_vision_all_images(model_path("f16"), "f16"); }

// The 768x768 input exercises the 3x3 average pool the real model uses (trap 9).
TEST(VisionTower, Res768MatchesGoldens) {
  const Mmproj mm = load_mmproj(model_path("f16"));
  ThreadPool pool(2);
  std::ifstream f(vdir() + "/inputs/gradient_shapes_512x512.res768.u8.bin", std::ios::binary);
  std::vector<uint8_t> u8(3 * 768 * 768);
  f.read(reinterpret_cast<char*>(u8.data()), static_cast<std::streamsize>(u8.size()));
  ASSERT_TRUE(f);
  std::vector<float> chw(u8.size());
  for (size_t i = 0; i < u8.size(); ++i) chw[i] = static_cast<float>(u8[i]) * (1.0f / 255.0f);
  const VisionMap out = run_vision_tower(mm, vision_map_from_chw(chw.data(), 3, 768, 768), pool);
  const std::string g = vdir() + "/golden/gradient_shapes_512x512.res768.";
  const float dt = max_abs_diff(vision_map_to_chw(out), read_f32_file(g + "tower.f32.bin"));
  const float ds = max_abs_diff(embed_soft_tokens(mm, out, pool), read_f32_file(g + "soft_tokens.f32.bin"));
  std::printf("  res768 tower max|d| %.3g, soft tokens max|d| %.3g\n", dt, ds);
  EXPECT_LE(dt, kTolFinal);
  EXPECT_LE(ds, kTolFinal);
}

TEST(VisionTower, HardTokensMatchGoldens) {
  for (const std::string type : {"f32", "f16"}) {
    test::check_vision_hard_tokens(model_path(type), type);
    const Mmproj mm = load_mmproj(model_path(type));
    ThreadPool pool(2);
    const std::vector<int32_t> bad = {kVisionHardTokenBase + 128};
    EXPECT_THROW(embed_hard_tokens(mm, bad, pool), std::runtime_error);
  }
}

TEST(VisionTower, RejectsUnsupportedInputSizes) {
  const Mmproj mm = load_mmproj(model_path("f32"));
  ThreadPool pool(1);
  EXPECT_THROW(run_vision_tower(mm, VisionMap(300, 300, 3), pool), std::runtime_error);  // fusion grid 19
  EXPECT_THROW(run_vision_tower(mm, VisionMap(512, 512, 4), pool), std::runtime_error);
}

// llama.cpp's converter writes layer scales as [C]; the fixture as [1,1,C,1]. Both load, same numbers.
TEST(VisionMmproj, OneDimensionalLayerScaleGivesTheSameResult) {
  const std::string path = temp_path("ls1d");
  int changed = 0;
  rewrite_gguf(model_path("f16"), path, [&](TensorCopy& t) {
    if (t.name.find(".layer_scale.gamma") != std::string::npos) {
      t.ne = {t.ne[2]};
      ++changed;
    }
    return true;
  });
  EXPECT_EQ(changed, 15);
  const Mmproj a = load_mmproj(model_path("f16"));
  const Mmproj b = load_mmproj(path);
  ThreadPool pool(2);
  const VisionMap px = golden_pixels("noise_photo_384x384");
  const VisionMap ya = run_vision_tower(a, px, pool), yb = run_vision_tower(b, px, pool);
  EXPECT_EQ(ya.data, yb.data);
  std::filesystem::remove(path);
}

// BF16 and Q8_0 tensors: the exact path decodes every weight to f32, so a file with those types must give
// the same bits as an F32 file holding the decoded values.
TEST(VisionMmproj, Bf16AndQ8_0TensorsDecodeExactly) {
  const std::string quant = temp_path("q8bf16"), decoded = temp_path("q8bf16_f32");
  auto requant = [](TensorCopy& t, bool back_to_f32) {
    // Q8_0 blocks run along ne[0]: only the embedder's matrices (ne[0] = 256) can take it.
    const GgmlType to = t.ne[0] % 32 == 0 ? GgmlType::Q8_0 : GgmlType::BF16;
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
  rewrite_gguf(model_path("f32"), quant, [&](TensorCopy& t) { return requant(t, false); });
  rewrite_gguf(model_path("f32"), decoded, [&](TensorCopy& t) { return requant(t, true); });
  const Mmproj a = load_mmproj(quant), b = load_mmproj(decoded);
  EXPECT_EQ(a.embedder.projection.type, GgmlType::Q8_0);
  EXPECT_EQ(a.tower.blocks[2].pw_exp.type, GgmlType::BF16);
  ThreadPool pool(2);
  const VisionMap px = golden_pixels("wide_640x360");
  const VisionMap ya = run_vision_tower(a, px, pool), yb = run_vision_tower(b, px, pool);
  EXPECT_EQ(ya.data, yb.data);
  EXPECT_EQ(embed_soft_tokens(a, ya, pool), embed_soft_tokens(b, yb, pool));
  const std::vector<int32_t> eoi = {kVisionHardTokenBase};
  EXPECT_EQ(embed_hard_tokens(a, eoi, pool), embed_hard_tokens(b, eoi, pool));
  // And the weights really changed (BF16 keeps 8 mantissa bits): the output moves, but stays close.
  const float d = max_abs_diff(vision_map_to_chw(ya), read_f32_file(vdir() + "/golden/wide_640x360.tower.f32.bin"));
  EXPECT_GT(d, kTolFinal);
  std::filesystem::remove(quant);
  std::filesystem::remove(decoded);
}

// Every split is by output rows or pixels: the thread count does not change a single bit.
TEST(VisionTower, ResultDoesNotDependOnThreadCount) {
  const Mmproj mm = load_mmproj(model_path("f16"));
  ThreadPool one(1), three(3);
  const VisionMap px = golden_pixels("scene_640x480");
  const VisionMap a = run_vision_tower(mm, px, one), b = run_vision_tower(mm, px, three);
  EXPECT_EQ(a.data, b.data);
  EXPECT_EQ(embed_soft_tokens(mm, a, one), embed_soft_tokens(mm, b, three));
}

TEST(VisionMmproj, TruncatedOrCorruptFileIsAClearError) {
  const std::string path = temp_path("trunc");
  std::ifstream in(model_path("f16"), std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (size_t keep : {size_t{0}, size_t{100}, bytes.size() / 2, bytes.size() - 1}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(keep));
    EXPECT_THROW(load_mmproj(path), std::runtime_error) << keep;
  }
  std::vector<char> bad = bytes;
  bad[0] = 'X';  // magic
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bad.data(), static_cast<std::streamsize>(bad.size()));
  EXPECT_THROW(load_mmproj(path), std::runtime_error);
  std::filesystem::remove(path);
}

// One byte flipped in the header, metadata and tensor table: every load either succeeds or throws, never crashes.
TEST(VisionMmproj, MutatedHeaderNeverCrashes) {
  const std::string path = temp_path("mutate");
  std::ifstream in(model_path("f16"), std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t header = GgufFile::open(model_path("f16")).data_offset();
  uint64_t state = 12345;
  auto next = [&] { state = state * 6364136223846793005ull + 1442695040888963407ull; return state >> 33; };
  int loaded = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<char> m = bytes;
    m[next() % header] = static_cast<char>(next());
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(m.data(), static_cast<std::streamsize>(m.size()));
    try {
      load_mmproj(path);
      ++loaded;
    } catch (const std::runtime_error&) {
    }
  }
  std::printf("  %d of 300 mutated files still loaded\n", loaded);
  std::filesystem::remove(path);
}

TEST(VisionMmproj, MissingOrIllShapedTensorsAreNamed) {
  const std::string path = temp_path("edit");
  auto with = [&](const std::function<bool(TensorCopy&)>& edit, const std::string& needle) {
    rewrite_gguf(model_path("f16"), path, edit);
    expect_load_error(path, needle);
  };
  // Missing norm of a down-sampled key (the down_conv is there).
  with([](TensorCopy& t) { return t.name != "v.blk.2.3.attn.key.norm.weight"; }, "v.blk.2.3.attn.key.norm.weight");
  with([](TensorCopy& t) { return t.name != "v.msfa.norm.weight"; }, "v.msfa.norm.weight");
  with([](TensorCopy& t) { return t.name != "mm.input_projection.weight"; }, "mm.input_projection.weight");
  // A whole block missing in the middle of a stage.
  with([](TensorCopy& t) { return t.name.rfind("v.blk.1.1.", 0) != 0; }, "v.blk.1.1");
  // A query width that is not a multiple of the key dim.
  with([](TensorCopy& t) {
    if (t.name == "v.blk.3.1.attn.key.proj.weight") {
      t.ne = {1, 1, 64, 20};
      t.data.resize(64 * 20 * 2);
    }
    return true;
  }, "v.blk.3.1.attn");
  // A 1-D gamma of the wrong length.
  with([](TensorCopy& t) {
    if (t.name == "v.blk.1.0.layer_scale.gamma") {
      t.ne = {16};
      t.data.resize(16 * 4);
    }
    return true;
  }, "v.blk.1.0.layer_scale.gamma");
  // Channel chain broken: pw_exp expects other input channels.
  with([](TensorCopy& t) {
    if (t.name == "v.blk.1.1.pw_exp.conv.weight") t.ne = {1, 1, 64, 64};
    return true;
  }, "v.blk.1.1.pw_exp.conv.weight");
  std::filesystem::remove(path);
}

TEST(VisionMmproj, WrongArchitectureOrProjectorIsRefused) {
  const std::string path = temp_path("keys");
  rewrite_gguf(model_path("f16"), path, [](TensorCopy&) { return true; },
               [](GgufWriter& w) { w.set_string("clip.vision.projector_type", "gemma3"); });
  expect_load_error(path, "gemma3nv");
  rewrite_gguf(model_path("f16"), path, [](TensorCopy&) { return true; },
               [](GgufWriter& w) { w.set_string("general.architecture", "gemma3n"); });
  expect_load_error(path, "clip");
  rewrite_gguf(model_path("f16"), path, [](TensorCopy&) { return true; },
               [](GgufWriter& w) { w.set_u32("clip.vision.projection_dim", 192); });
  expect_load_error(path, "projection_dim");
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace g3n
