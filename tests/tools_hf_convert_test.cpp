// g3n's Hugging Face conversion on tiny checkpoints written from the fixtures' GGUFs (tools/
// hf_test_checkpoint.h): converting back gives the fixture files tensor for tensor (names, order, shapes,
// types, bytes), with the metadata differences listed here; bad checkpoints fail with the file and
// tensor named and nothing written.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>

#include "golden_util.h"
#include "process_dir.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/context.h"
#include "tools/hf_checkpoint.h"
#include "tools/hf_convert.h"
#include "tools/hf_mmproj_gguf.h"
#include "tools/hf_test_checkpoint.h"
#include "tools/hf_text_gguf.h"
#include "tools/hf_tokenizer.h"
#include "tools/random_mmproj.h"
#include "tools/random_model.h"

namespace g3n {
namespace {

namespace fs = std::filesystem;

std::string model(const std::string& v) { return test::tiny_dir() + "/models/gemma3n-tiny-" + v + ".gguf"; }
// This process's scratch directory (ctest runs each case as a process of its own, two at a time).
std::string work(const std::string& name) { return test::process_dir("hf-convert") + "/" + name; }

// The tiny checkpoint (F32 tensors in 3 shards) written once from the F16 fixture.
const std::string& tiny_checkpoint() {
  static const std::string dir = [] {
    const std::string d = work("tiny-ckpt");
    fs::remove_all(d);
    HfTestCheckpointOptions o;
    o.n_shards = 3;
    write_hf_test_checkpoint(GgufFile::open(model("f16")), d, o);
    return d;
  }();
  return dir;
}

std::string convert(const std::string& ckpt, QuantTarget target, GgufLayout layout, const std::string& out_name) {
  const auto ck = HfCheckpoint::open(ckpt);
  HfConvertOptions o;
  o.target = target;
  o.layout = layout;
  o.n_threads = 2;
  const std::string out = work(out_name);
  const HfVocab v = read_hf_vocab(ckpt, ck.text(), layout, ck.generation_eos());
  write_hf_text_gguf(ck, out, o, hf_vocab_kvs(v, layout));
  return out;
}

// Same tensors: names (and order when ordered), shapes, types and bytes.
void expect_same_tensors(const std::string& got_path, const std::string& want_path, bool ordered) {
  const auto got = GgufFile::open(got_path);
  const auto want = GgufFile::open(want_path);
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (size_t i = 0; i < want.tensors().size(); ++i) {
    const auto& w = want.tensors()[i];
    const auto* g = ordered ? &got.tensors()[i] : got.find_tensor(w.name);
    ASSERT_NE(g, nullptr) << w.name;
    ASSERT_EQ(g->name, w.name) << "tensor " << i;
    EXPECT_EQ(g->ne, w.ne) << w.name;
    EXPECT_EQ(ggml_type_traits(g->type).name, ggml_type_traits(w.type).name) << w.name;
    ASSERT_EQ(g->nbytes, w.nbytes) << w.name;
    EXPECT_EQ(std::memcmp(got.tensor_data(*g), want.tensor_data(w), w.nbytes), 0) << w.name << " differs";
  }
}

// Every key the fixture has, the conversion has with an equal value, except the listed ones.
void expect_same_metadata(const std::string& got_path, const std::string& want_path, const std::set<std::string>& differ) {
  const auto got = GgufFile::open(got_path);
  const auto want = GgufFile::open(want_path);
  for (const auto& kv : want.metadata()) {
    if (differ.count(kv.key)) continue;
    const GgufValue* g = got.find(kv.key);
    ASSERT_NE(g, nullptr) << "missing key " << kv.key;
    EXPECT_EQ(g->type, kv.value.type) << kv.key;
    if (kv.value.type == GgufValueType::ARRAY) {
      ASSERT_EQ(g->array.size(), kv.value.array.size()) << kv.key;
      for (size_t i = 0; i < g->array.size(); ++i) {
        EXPECT_EQ(g->array[i].u, kv.value.array[i].u) << kv.key << "[" << i << "]";
        EXPECT_EQ(g->array[i].i, kv.value.array[i].i) << kv.key << "[" << i << "]";
        EXPECT_EQ(g->array[i].f, kv.value.array[i].f) << kv.key << "[" << i << "]";
        EXPECT_EQ(g->array[i].s, kv.value.array[i].s) << kv.key << "[" << i << "]";
      }
    } else {
      EXPECT_EQ(g->u, kv.value.u) << kv.key;
      EXPECT_EQ(g->i, kv.value.i) << kv.key;
      EXPECT_EQ(g->f, kv.value.f) << kv.key;
      EXPECT_EQ(g->s, kv.value.s) << kv.key;
    }
  }
  for (const auto& kv : got.metadata())
    if (!differ.count(kv.key)) {
      EXPECT_NE(want.find(kv.key), nullptr) << "extra key " << kv.key;
    }
}

// Metadata a conversion cannot reproduce: the name (the fixture's is its own), and the scores and types
// of the tiny vocabulary, which is not a SentencePiece one: a tokenizer.json has neither, so the converter
// derives them by Gemma's rules (-rank, CONTROL for <unused...>), which tests/tools_hf_tokenizer_test.cpp
// checks on the real vocabulary. The token texts and special ids are equal.
const std::set<std::string> kNoTokenizerDiffers = {"general.name", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"};

TEST(HfConvert, CheckpointLooksLikeHuggingFace) {
  const auto ck = HfCheckpoint::open(tiny_checkpoint());
  EXPECT_EQ(ck.text().num_hidden_layers, 25);
  EXPECT_EQ(ck.text().intermediate_size.size(), 25u);
  EXPECT_TRUE(ck.find("model.language_model.layers.3.altup.correct_output_scale"));
  EXPECT_TRUE(ck.find("model.language_model.altup_projections.2.weight"));
  EXPECT_EQ(ck.get("model.language_model.embed_tokens.weight").tensor->shape, (std::vector<int64_t>{448, 256}));
  EXPECT_EQ(ck.generation_eos(), (std::vector<int>{1, 6}));  // <eos>, <end_of_turn> of the tiny vocabulary
}

TEST(HfConvert, LlamaCppF16EqualsF16Fixture) {
  const std::string out = convert(tiny_checkpoint(), QuantTarget::F16, GgufLayout::LlamaCpp, "f16.gguf");
  expect_same_tensors(out, model("f16"), true);
  expect_same_metadata(out, model("f16"), kNoTokenizerDiffers);
}

TEST(HfConvert, LlamaCppQ8_0EqualsQ8_0Fixture) {
  const std::string out = convert(tiny_checkpoint(), QuantTarget::Q8_0, GgufLayout::LlamaCpp, "q8_0.gguf");
  expect_same_tensors(out, model("q8_0"), false);
  expect_same_metadata(out, model("q8_0"), kNoTokenizerDiffers);
}

TEST(HfConvert, LlamaCppQ4_K_MEqualsQ4_K_MFixture) {
  const std::string out = convert(tiny_checkpoint(), QuantTarget::Q4_K_M, GgufLayout::LlamaCpp, "q4_k_m.gguf");
  expect_same_tensors(out, model("q4_k_m"), false);
  expect_same_metadata(out, model("q4_k_m"), kNoTokenizerDiffers);
}

// (c) The Ollama layout from a checkpoint with 512 embedding rows (the F16 fixture's 448, then the Ollama
// fixture's rows 448-511 dequantized from Q6_K) and 448 per-layer rows equals gemma3n-tiny-ollama.gguf in
// tensor names, order, types and shapes, and in bytes except token_embd rows 448-511: their source is
// a dequantized Q6_K, which need not re-quantize to the same blocks.
TEST(HfConvert, OllamaQ4_K_MEqualsOllamaFixture) {
  const std::string d = work("tiny-ckpt-512");
  fs::remove_all(d);
  HfTestCheckpointOptions o;
  o.n_shards = 2;
  o.extra_embedding_rows_from = model("ollama");
  write_hf_test_checkpoint(GgufFile::open(model("f16")), d, o);
  const std::string out = convert(d, QuantTarget::Q4_K_M, GgufLayout::Ollama, "ollama.gguf");
  const auto got = GgufFile::open(out);
  const auto want = GgufFile::open(model("ollama"));
  ASSERT_EQ(got.tensors().size(), want.tensors().size());
  for (size_t i = 0; i < want.tensors().size(); ++i) {
    const auto& w = want.tensors()[i];
    const auto& g = got.tensors()[i];
    ASSERT_EQ(g.name, w.name) << "tensor " << i;
    EXPECT_EQ(g.ne, w.ne) << w.name;
    EXPECT_EQ(ggml_type_traits(g.type).name, ggml_type_traits(w.type).name) << w.name;
    ASSERT_EQ(g.nbytes, w.nbytes) << w.name;
    const uint64_t n = w.name == "token_embd.weight" ? 448 * *ggml_row_bytes(w.type, 256) : w.nbytes;
    EXPECT_EQ(std::memcmp(got.tensor_data(g), want.tensor_data(w), n), 0) << w.name << " differs";
  }
  std::set<std::string> got_keys, want_keys;
  for (const auto& kv : got.metadata()) got_keys.insert(kv.key);
  for (const auto& kv : want.metadata()) want_keys.insert(kv.key);
  EXPECT_EQ(got_keys, want_keys);
  // Keys sorted, as Ollama's writer does.
  for (size_t i = 1; i < got.metadata().size(); ++i) EXPECT_LT(got.metadata()[i - 1].key, got.metadata()[i].key);
  // Also the model: Ollama's converter writes "gpt2" (vocab-ollama.gguf), the fixture "llama".
  expect_same_metadata(out, model("ollama"), {"tokenizer.ggml.model", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"});
}

// A finished conversion is found again by its stamp (what a rerun after kill -9 does); a leftover
// temporary file of an interrupted one is not mistaken for it; changed options convert anew.
TEST(HfConvert, RerunReusesAFinishedConversion) {
  const std::string staging = work("staging");
  fs::remove_all(staging);
  fs::create_directories(staging);
  std::ofstream(staging + "/0123456789abcdef-text.gguf.tmp-interrupted") << "partial";
  HfConvertOptions o;
  o.target = QuantTarget::Q8_0;
  o.layout = GgufLayout::LlamaCpp;
  o.n_threads = 2;
  const auto first = convert_hf_checkpoint(tiny_checkpoint(), staging, o);
  EXPECT_FALSE(first.reused);
  EXPECT_EQ(first.stale_removed, 1);  // the interrupted run's temporary file
  EXPECT_FALSE(fs::exists(staging + "/0123456789abcdef-text.gguf.tmp-interrupted"));
  EXPECT_GT(first.bytes_read, 0u);
  EXPECT_GT(first.peak_rss_bytes, 0);
  expect_same_tensors(first.text_gguf.string(), model("q8_0"), false);
  const auto again = convert_hf_checkpoint(tiny_checkpoint(), staging, o);
  EXPECT_TRUE(again.reused);
  EXPECT_EQ(again.text_gguf, first.text_gguf);
  o.target = QuantTarget::F16;
  const auto other = convert_hf_checkpoint(tiny_checkpoint(), staging, o);
  EXPECT_FALSE(other.reused);
  EXPECT_NE(other.text_gguf, first.text_gguf);
  // Under the lock, another stamp's finished output is a leftover of a run killed before storing it.
  EXPECT_EQ(other.stale_removed, 1);
  EXPECT_FALSE(fs::exists(first.text_gguf));
  fs::remove_all(staging);
}

// The converted files compute the fixture's golden/exact logits (batch rows of every prompt) within its
// 2e-3 tolerance: what byte-equal tensors and equal metadata imply, checked end to end.
void expect_golden(const std::string& path, const std::string& tag) {
  auto m = Model::load(path);
  const int V = m->config().n_vocab;
  for (const auto& prompt : test::tiny_prompts()) {
    const auto want = test::read_f32_file(test::tiny_dir() + "/golden/exact/" + tag + "/logits_" + prompt.name + "_exact-" + tag + ".bin");
    ContextParams p;
    p.exact = true;
    p.n_ctx = 256;
    p.n_threads = 2;
    Context ctx(*m, p);
    ctx.eval(prompt.tokens, LogitsFor::All);
    ASSERT_EQ(want.size(), prompt.tokens.size() * static_cast<size_t>(V)) << tag;
    float worst = 0;
    for (int i = 0; i < ctx.n_logit_rows(); ++i)
      for (int j = 0; j < V; ++j) worst = std::max(worst, std::abs(ctx.logits(i)[j] - want[static_cast<size_t>(i) * V + j]));
    EXPECT_LE(worst, 2e-3f) << tag << "/" << prompt.name;
  }
}

TEST(HfConvert, ConvertedModelsMeetTheExactGoldens) {
  expect_golden(convert(tiny_checkpoint(), QuantTarget::F16, GgufLayout::LlamaCpp, "golden-f16.gguf"), "f16");
  expect_golden(convert(tiny_checkpoint(), QuantTarget::Q8_0, GgufLayout::LlamaCpp, "golden-q8_0.gguf"), "q8_0");
  expect_golden(convert(tiny_checkpoint(), QuantTarget::Q4_K_M, GgufLayout::LlamaCpp, "golden-q4_k_m.gguf"), "q4_k_m");
}

// A copy of the tiny checkpoint to damage.
std::string damaged_copy(const std::string& name) {
  const std::string d = work(name);
  fs::remove_all(d);
  fs::copy(tiny_checkpoint(), d);
  return d;
}

void expect_refused(const std::string& dir, const std::string& needle1, const std::string& needle2 = "") {
  const std::string out = work("refused.gguf");
  fs::remove(out);
  try {
    const auto ck = HfCheckpoint::open(dir);
    HfConvertOptions o;
    o.target = QuantTarget::F16;
    o.layout = GgufLayout::LlamaCpp;
    const HfVocab v = read_hf_vocab(dir, ck.text(), o.layout, ck.generation_eos());
    write_hf_text_gguf(ck, out, o, hf_vocab_kvs(v, o.layout));
    FAIL() << "accepted " << dir;
  } catch (const HfCheckpointError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(needle1), std::string::npos) << m;
    if (!needle2.empty()) {
      EXPECT_NE(m.find(needle2), std::string::npos) << m;
    }
  }
  EXPECT_FALSE(fs::exists(out));
  for (const auto& e : fs::directory_iterator(work("")))
    EXPECT_EQ(e.path().filename().string().find("refused.gguf"), std::string::npos) << e.path();
}

void rewrite(const std::string& path, const std::string& from, const std::string& to) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), {});
  const auto at = s.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
  std::ofstream(path, std::ios::trunc | std::ios::binary) << s;
}

TEST(HfConvert, RefusesBadCheckpoints) {
  {
    const auto d = damaged_copy("missing-shard");
    fs::remove(d + "/model-00002-of-00003.safetensors");
    expect_refused(d, "model-00002-of-00003.safetensors", "missing");
  }
  {
    const auto d = damaged_copy("truncated-shard");
    const std::string p = d + "/model-00003-of-00003.safetensors";
    fs::resize_file(p, fs::file_size(p) - 1000);
    expect_refused(d, "model-00003-of-00003.safetensors", "truncated");
  }
  {
    const auto d = damaged_copy("wrong-arch");
    rewrite(d + "/config.json", "\"model_type\": \"gemma3n\"", "\"model_type\": \"llama\"");
    expect_refused(d, "config.json", "not Gemma 3n");
  }
  {
    const auto d = damaged_copy("inconsistent-config");
    rewrite(d + "/config.json", "\"hidden_size\": 256", "\"hidden_size\": 512");
    expect_refused(d, "model.language_model.embed_tokens.weight", "config.json implies");
  }
  {
    const auto d = damaged_copy("no-config");
    fs::remove(d + "/config.json");
    expect_refused(d, "config.json", "cannot open");
  }
  {
    // Same element size, so the shard itself stays valid: only the dtype is a surprise.
    const auto d = damaged_copy("dtype-surprise");
    rewrite(d + "/model-00003-of-00003.safetensors", "\"model.language_model.norm.weight\":{\"dtype\":\"F32\"",
            "\"model.language_model.norm.weight\":{\"dtype\":\"I32\"");
    expect_refused(d, "model-00003-of-00003.safetensors: tensor 'model.language_model.norm.weight' has dtype I32");
  }
  {
    const auto d = damaged_copy("no-tokenizer");
    fs::remove(d + "/tokenizer.json");
    expect_refused(d, "tokenizer.json", "cannot open");
  }
  {
    const auto d = damaged_copy("index-names-missing-tensor");
    rewrite(d + "/model.safetensors.index.json", "\"model.language_model.norm.weight\"", "\"model.language_model.norm2.weight\"");
    expect_refused(d, "model.language_model.norm2.weight", "missing");
  }
}

// The real E2B's shapes, counted without writing anything: the text tensors `create --from-hf` reads
// from a checkpoint of Google's E2B config (vocab_size 262,400, per-layer 262,144 rows, 30 layers of
// 8192) and the towers `create-random --hf --mmproj` writes into its random checkpoint (Gemma 3n's
// MobileNet-V5 and USM conformer at text width 2048) hold issue 17's parameter counts, the ones
// `g3n show` prints for a converted E2B.
TEST(HfConvert, RealE2BShapesHoldTheRealParameterCount) {
  const auto e2b = random_model_preset("e2b");
  ASSERT_TRUE(e2b);
  HfTextConfig c;
  c.hidden_size = e2b->n_embd;
  c.num_hidden_layers = e2b->n_layer;
  c.num_attention_heads = e2b->n_head;
  c.num_key_value_heads = e2b->n_head_kv;
  c.head_dim = e2b->head_dim;
  c.intermediate_size.assign(static_cast<size_t>(e2b->n_layer), e2b->n_ff);
  c.vocab_size = 262400;
  c.vocab_size_per_layer_input = e2b->n_vocab_per_layer;
  c.hidden_size_per_layer_input = e2b->n_embd_per_layer;
  c.altup_num_inputs = e2b->n_altup;
  c.laurel_rank = e2b->laurel_rank;
  auto count = [](const std::vector<HfTextTensor>& ts) {
    int64_t n = 0;
    for (const auto& t : ts) {
      int64_t k = 1;
      for (int64_t d : t.ne) k *= d;
      n += k;
    }
    return n;
  };
  // The Ollama layout keeps all 262,400 token rows (the registry blob's count); llama.cpp's 262,144.
  EXPECT_EQ(count(hf_text_tensors(c, GgufLayout::Ollama)), 4456156768);
  EXPECT_EQ(count(hf_text_tensors(c, GgufLayout::LlamaCpp)), 4456156768 - int64_t(256) * 2048);

  auto towers = random_mmproj_preset("mobilenetv5_300m_enc");
  ASSERT_TRUE(towers);
  towers->text_width = e2b->n_embd;
  towers->audio = random_audio_preset("usm");
  const auto plan = plan_random_mmproj(*towers);
  const MmprojParamCount n = count_mmproj_params(plan);
  EXPECT_EQ(n.tower, 294126912);
  EXPECT_EQ(n.embedder, 4460544);
  EXPECT_EQ(n.audio_tower, 681348640);
  EXPECT_EQ(n.audio_embedder, 3345408);
}

// Every tensor of the real towers has a Hugging Face name the converter maps back to it: what lets
// `create-random --hf --mmproj` write them into a checkpoint and `create --from-hf` read them out.
TEST(HfConvert, RealTowerNamesRoundTrip) {
  auto towers = random_mmproj_preset("mobilenetv5_300m_enc");
  ASSERT_TRUE(towers);
  towers->audio = random_audio_preset("usm");
  const auto plan = plan_random_mmproj(*towers);
  ASSERT_GT(plan.size(), 800u);  // 825: 84 vision blocks, MSFA, 12 conformer blocks, both embedders
  std::set<std::string> sources;
  for (const auto& t : plan) {
    const std::string hf = hf_mmproj_source(t.name);
    ASSERT_FALSE(hf.empty()) << t.name;
    EXPECT_EQ(hf_mmproj_name(hf), t.name) << hf;
    EXPECT_TRUE(hf.rfind("model.vision_tower.timm_model.", 0) == 0 || hf.rfind("model.audio_tower.", 0) == 0 ||
                hf.rfind("model.embed_vision.", 0) == 0 || hf.rfind("model.embed_audio.", 0) == 0)
        << hf;
    EXPECT_TRUE(sources.insert(hf).second) << "two tensors named " << hf;
  }
}

// One conversion at a time per staging directory: a second waits (told once) until the first lets go.
TEST(HfConvert, StagingLockIsExclusive) {
  const std::string staging = work("locked");
  std::atomic<bool> waited{false}, acquired{false};
  std::thread second;
  {
    const HfStaging first(staging);
    EXPECT_TRUE(fs::is_directory(staging));
    EXPECT_FALSE(FileLock::try_lock(staging + ".lock").held());
    second = std::thread([&] {
      const HfStaging s(staging, [&] { waited = true; });
      acquired = true;
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_FALSE(acquired);
  }
  second.join();
  EXPECT_TRUE(waited);
  EXPECT_TRUE(acquired);
  EXPECT_TRUE(FileLock::try_lock(staging + ".lock").held());
}

}  // namespace
}  // namespace g3n
