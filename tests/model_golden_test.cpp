// The engine against ../shared/fixtures/gemma3n-tiny goldens (README §4.1 tolerances):
// golden/exact is the primary reference (HF semantics); stock llama.cpp outputs are smoke checks.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <span>

#include "exact_golden_util.h"
#include "golden_util.h"
#include "process_dir.h"
#include "model/model.h"
#include "runtime/context.h"
#include "tools/convert.h"

namespace g3n {

void PrintTo(KvType t, std::ostream* os) { *os << (t == KvType::F32 ? "kv-f32" : "kv-f16"); }

namespace {

using test::RowStats;

struct Variant {
  std::string tag;        // golden/exact/<tag>
  std::string file;       // model file name under models/ ("" = F32 conversion of the F16 file)
};

const Variant kVariants[] = {
    {"f16", "gemma3n-tiny-f16.gguf"},
    {"q8_0", "gemma3n-tiny-q8_0.gguf"},
    {"q4_k_m", "gemma3n-tiny-q4_k_m.gguf"},
    {"ollama", "gemma3n-tiny-ollama.gguf"},
    {"f32", ""},
};

// The F32 copy of the F16 file (exact: every F16 value is representable), written once per run.
std::string f32_model_path() {
  static const std::string path = [] {
    const std::string p = test::process_dir("model-golden") + "/gemma3n-tiny-f32.gguf";
    auto in = GgufFile::open(test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf");
    convert_gguf(in, p, [](const GgufTensorInfo& t) { return t.type == GgmlType::F16 ? GgmlType::F32 : t.type; }, 0);
    return p;
  }();
  return path;
}

// Short names in test listings (CTest shows GetParam() otherwise as raw bytes).
void PrintTo(const Variant& v, std::ostream* os) { *os << v.tag; }

std::string model_path(const Variant& v) {
  return v.file.empty() ? f32_model_path() : test::tiny_dir() + "/models/" + v.file;
}
std::string golden_tag(const Variant& v) { return v.file.empty() ? "f16" : v.tag; }

class ExactGolden : public ::testing::TestWithParam<std::tuple<Variant, KvType>> {};

// Batch prefill, teacher-forced greedy continuation, and the token-by-token path, for every prompt.
TEST_P(ExactGolden, MatchesWithinTolerance) {
  const auto& [variant, kv] = GetParam();
  auto model = Model::load(model_path(variant));
  test::check_exact_golden(*model, golden_tag(variant), kv, variant.tag);
}

INSTANTIATE_TEST_SUITE_P(
    Gemma3nTiny, ExactGolden,
    ::testing::Values(std::make_tuple(kVariants[0], KvType::F32), std::make_tuple(kVariants[1], KvType::F32),
                      std::make_tuple(kVariants[2], KvType::F32), std::make_tuple(kVariants[3], KvType::F32),
                      std::make_tuple(kVariants[4], KvType::F32), std::make_tuple(kVariants[0], KvType::F16),
                      std::make_tuple(kVariants[2], KvType::F16), std::make_tuple(kVariants[3], KvType::F16)),
    [](const auto& info) {
      return std::get<0>(info.param).tag + (std::get<1>(info.param) == KvType::F32 ? "_kv_f32" : "_kv_f16");
    });

// Stock llama.cpp (fp16-table GELU, sample std, quantized activations): statistical smoke thresholds.
struct Smoke {
  std::string model_file, golden_dir, tag;
  double max_abs, rms, top1;
};

void PrintTo(const Smoke& s, std::ostream* os) { *os << s.golden_dir; }

class LlamacppSmoke : public ::testing::TestWithParam<Smoke> {};

TEST_P(LlamacppSmoke, WithinSmokeThresholds) {
  const Smoke& s = GetParam();
  const std::string path = s.model_file.empty() ? f32_model_path() : test::tiny_dir() + "/models/" + s.model_file;
  auto model = Model::load(path);
  const int V = model->config().n_vocab;
  RowStats stats;
  ContextParams p;
  p.exact = true;
  p.n_ctx = 256;
  p.n_threads = 2;
  for (const auto& prompt : test::tiny_prompts()) {
    const auto want = test::read_f32_file(test::tiny_dir() + "/golden/" + s.golden_dir + "/logits_" + prompt.name + "_" + s.tag + ".bin");
    Context ctx(*model, p);
    ctx.eval(prompt.tokens, LogitsFor::All);
    ASSERT_EQ(want.size(), prompt.tokens.size() * V);
    for (int i = 0; i < ctx.n_logit_rows(); ++i) stats.add_row(ctx.logits(i).data(), &want[static_cast<size_t>(i) * V], V, 0);
  }
  std::printf("[smoke %s] max %.3f rms %.4f top1 %.3f\n", s.tag.c_str(), stats.max_abs, stats.rms(), stats.top1_rate());
  EXPECT_LE(stats.max_abs, s.max_abs);
  EXPECT_LE(stats.rms(), s.rms);
  EXPECT_GE(stats.top1_rate(), s.top1);
}

INSTANTIATE_TEST_SUITE_P(
    Gemma3nTiny, LlamacppSmoke,
    ::testing::Values(Smoke{"gemma3n-tiny-f16.gguf", "llamacpp/f16", "f16", 0.5, 0.06, 0.98},
                      Smoke{"", "llamacpp/f32", "f32", 0.5, 0.06, 0.98},
                      Smoke{"gemma3n-tiny-q8_0.gguf", "llamacpp/q8_0", "q8_0", 3, 0.4, 0.93},
                      Smoke{"gemma3n-tiny-q4_k_m.gguf", "llamacpp/q4_k_m", "q4_k_m", 4, 0.6, 0.85},
                      Smoke{"gemma3n-tiny-q8_0.gguf", "dequant-f32/q8_0", "dequant-f32-q8_0", 0.5, 0.06, 0.97},
                      Smoke{"gemma3n-tiny-q4_k_m.gguf", "dequant-f32/q4_k_m", "dequant-f32-q4_k_m", 0.5, 0.06, 0.97}),
    [](const auto& info) {
      std::string n = info.param.tag;
      for (auto& ch : n) if (ch == '-') ch = '_';
      return n;
    });

}  // namespace
}  // namespace g3n

namespace g3n {
namespace {

// The fast path (activations quantized to int8 per block for quantized weights, as llama.cpp's CPU
// backend does) against golden/exact, held to the thresholds the fixture README gives for llama.cpp's
// own quantized path; F16/F32 and Q8_0 weights use f32 activations and stay within the exact tolerance.
struct FastCase {
  std::string model_file, tag;
  double max_abs, rms, top1;
};
void PrintTo(const FastCase& c, std::ostream* os) { *os << c.tag; }

class FastPath : public ::testing::TestWithParam<FastCase> {};

TEST_P(FastPath, WithinQuantizedPathThresholds) {
  const FastCase& fc = GetParam();
  auto model = Model::load(test::tiny_dir() + "/models/" + fc.model_file);
  const int V = model->config().n_vocab;
  RowStats stats;
  ContextParams p;
  p.n_ctx = 256;
  p.n_threads = 2;
  p.exact = false;
  for (const auto& prompt : test::tiny_prompts()) {
    const auto want = test::read_f32_file(test::tiny_dir() + "/golden/exact/" + fc.tag + "/logits_" + prompt.name + "_exact-" + fc.tag + ".bin");
    Context ctx(*model, p);
    ctx.eval(prompt.tokens, LogitsFor::All);
    for (int i = 0; i < ctx.n_logit_rows(); ++i) stats.add_row(ctx.logits(i).data(), &want[static_cast<size_t>(i) * V], V, 0);
  }
  std::printf("[fast %s] max %.3f rms %.4f top1 %.3f\n", fc.tag.c_str(), stats.max_abs, stats.rms(), stats.top1_rate());
  EXPECT_LE(stats.max_abs, fc.max_abs);
  EXPECT_LE(stats.rms(), fc.rms);
  EXPECT_GE(stats.top1_rate(), fc.top1);
}

INSTANTIATE_TEST_SUITE_P(Gemma3nTiny, FastPath,
                         ::testing::Values(FastCase{"gemma3n-tiny-f16.gguf", "f16", 2e-3, 2e-4, 1.0},
                                           FastCase{"gemma3n-tiny-q8_0.gguf", "q8_0", 2e-3, 2e-4, 1.0},
                                           FastCase{"gemma3n-tiny-q4_k_m.gguf", "q4_k_m", 4, 0.6, 0.85},
                                           FastCase{"gemma3n-tiny-ollama.gguf", "ollama", 4, 0.6, 0.85}),
                         [](const auto& info) { return info.param.tag; });

}  // namespace
}  // namespace g3n
