// Context behaviour beyond the goldens: chunked batches, prefix reuse, limits, layouts and metadata
// variants of generated models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>

#include "base/file.h"
#include "golden_util.h"
#include "kernel_sets_util.h"
#include "kernels/vec_dot.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/context.h"
#include "tools/convert.h"
#include "tools/random_model.h"

namespace g3n {
namespace {

std::string tiny_f16() { return test::tiny_dir() + "/models/gemma3n-tiny-f16.gguf"; }

std::vector<float> golden_batch(const std::string& prompt) {
  return test::read_f32_file(test::tiny_dir() + "/golden/exact/f16/logits_" + prompt + "_exact-f16.bin");
}

// A prompt split into batches smaller than the sliding window still reproduces the golden: the ring
// of each sliding layer holds window + n_batch - 1 slots.
TEST(ModelContext, SmallBatchesMatchGolden) {
  auto model = Model::load(tiny_f16());
  const int V = model->config().n_vocab;
  const auto prompts = test::tiny_prompts();
  const auto& longp = prompts[2];
  ASSERT_EQ(longp.name, "long");
  const auto want = golden_batch("long");
  for (int nb : {1, 5, 16, 17, 40}) {
    ContextParams p;
  p.exact = true;
    p.exact = true;
    p.n_ctx = 128;
    p.n_batch = nb;
    p.n_threads = 2;
    Context ctx(*model, p);
    ctx.eval(longp.tokens, LogitsFor::All);
    ASSERT_EQ(ctx.n_logit_rows(), static_cast<int>(longp.tokens.size()));
    test::RowStats st;
    for (int i = 0; i < ctx.n_logit_rows(); ++i) st.add_row(ctx.logits(i).data(), &want[static_cast<size_t>(i) * V], V, 4e-3f);
    EXPECT_LE(st.max_abs, 2e-3) << "n_batch " << nb;
    EXPECT_EQ(st.top1_mismatch, 0) << "n_batch " << nb;
  }
}

// Results do not depend on the thread count (fixed per-row summation order).
TEST(ModelContext, ThreadCountInvariant) {
  auto model = Model::load(tiny_f16());
  const auto prompt = test::tiny_prompts()[3].tokens;
  std::vector<float> ref;
  for (int threads : {1, 2, 3}) {
    ContextParams p;
  p.exact = true;
    p.exact = true;
    p.n_ctx = 128;
    p.n_threads = threads;
    Context ctx(*model, p);
    ctx.eval(prompt, LogitsFor::All);
    std::vector<float> got;
    for (int i = 0; i < ctx.n_logit_rows(); ++i) got.insert(got.end(), ctx.logits(i).begin(), ctx.logits(i).end());
    if (ref.empty()) ref = got;
    else EXPECT_EQ(got, ref) << threads << " threads";
  }
}

// Rewinding to a shared prefix and continuing gives the same logits as a fresh evaluation.
TEST(ModelContext, PrefixReuse) {
  auto model = Model::load(tiny_f16());
  const auto prompt = test::tiny_prompts()[2].tokens;  // 99 tokens, > 6 windows
  ContextParams p;
  p.exact = true;
  p.n_ctx = 128;
  p.n_batch = 32;
  p.n_threads = 2;
  Context fresh(*model, p);
  fresh.eval(prompt, LogitsFor::Last);
  const std::vector<float> want(fresh.last_logits().begin(), fresh.last_logits().end());

  Context ctx(*model, p);
  std::vector<int32_t> other(prompt.begin(), prompt.begin() + 90);
  other[85] = 300;  // diverges at position 85
  ctx.eval(other, LogitsFor::Last);
  ASSERT_TRUE(ctx.can_resume_at(85));
  ctx.eval(std::span<const int32_t>(prompt).subspan(85), 85, LogitsFor::Last);
  EXPECT_EQ(ctx.n_past(), static_cast<int64_t>(prompt.size()));
  const auto got = ctx.last_logits();
  double max_diff = 0;
  for (size_t i = 0; i < want.size(); ++i) max_diff = std::max(max_diff, std::fabs(double(got[i]) - want[i]));
  EXPECT_LE(max_diff, 1e-4);
  // Too far back: the sliding rings no longer hold what the window needs.
  EXPECT_FALSE(ctx.can_resume_at(10));
  EXPECT_THROW(ctx.eval(std::span<const int32_t>(prompt).subspan(10, 5), 10), std::invalid_argument);
}

TEST(ModelContext, ContextOverflowAndBadTokensAreErrors) {
  auto model = Model::load(tiny_f16());
  ContextParams p;
  p.exact = true;
  p.n_ctx = 8;
  p.n_threads = 1;
  Context ctx(*model, p);
  std::vector<int32_t> nine(9, 2);
  EXPECT_THROW(ctx.eval(nine), std::length_error);
  EXPECT_EQ(ctx.n_past(), 0);
  std::vector<int32_t> bad = {2, 448};
  EXPECT_THROW(ctx.eval(bad), std::out_of_range);
  std::vector<int32_t> neg = {-1};
  EXPECT_THROW(ctx.eval(neg), std::out_of_range);
  std::vector<int32_t> ok = {2, 3};
  ctx.eval(ok);
  EXPECT_EQ(ctx.n_past(), 2);
}

TEST(ModelContext, RejectsOtherArchitectures) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  const std::string path = std::string(G3N_BINARY_DIR) + "/not-gemma3n.gguf";
  w.write(path);
  try {
    Model::load(path);
    FAIL() << "loaded a llama file";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("architecture is 'llama'"), std::string::npos) << e.what();
  }
}

// Config reading: the tiny fixtures in both metadata flavours give the same hyperparameters.
TEST(ModelConfig, BothFlavoursAgree) {
  auto a = Model::load(tiny_f16());
  auto b = Model::load(test::tiny_dir() + "/models/gemma3n-tiny-ollama.gguf");
  for (const Model* m : {a.get(), b.get()}) {
    const auto& c = m->config();
    EXPECT_EQ(c.n_layer, 25);
    EXPECT_EQ(c.n_embd, 256);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.n_layer_kv, 20);
    EXPECT_EQ(c.kv_source[20], 18);
    EXPECT_EQ(c.kv_source[24], 19);
    EXPECT_EQ(c.sliding_window, 16);
    EXPECT_FLOAT_EQ(c.rope_base_global, 1e6f);
    EXPECT_FLOAT_EQ(c.rope_base_local, 1e4f);
    EXPECT_FLOAT_EQ(c.final_logit_softcap, 30.0f);
    EXPECT_EQ(c.n_vocab_per_layer, 448);
    for (int l = 0; l < 25; ++l) {
      EXPECT_EQ(c.is_sliding[l], l % 5 != 4);
      EXPECT_EQ(c.sparsity_std_multiplier[l] > 0, l < 10);
      EXPECT_EQ(c.n_ff[l], 512);
    }
  }
  EXPECT_EQ(a->config().n_vocab, 448);
  EXPECT_EQ(b->config().n_vocab, 512);
}

// Early llama.cpp files store shared_kv_layers as f32 (docs/model.md §1.2); it must still mean sharing.
TEST(ModelConfig, SharedKvLayersAsFloat) {
  auto in = GgufFile::open(tiny_f16());
  GgufWriter w(in.alignment());
  for (const auto& kv : in.metadata()) {
    if (kv.key == "gemma3n.attention.shared_kv_layers") {
      GgufValue v;
      v.type = GgufValueType::FLOAT32;
      v.f = 5.0;
      w.set(kv.key, v);
    } else if (kv.key != "general.alignment") {
      w.set(kv.key, kv.value);
    }
  }
  for (const auto& t : in.tensors()) {
    const uint8_t* d = in.tensor_data(t);
    w.add_tensor(t.name, t.type, t.ne, std::vector<uint8_t>(d, d + t.nbytes));
  }
  const std::string path = std::string(G3N_BINARY_DIR) + "/tiny-f32-shared-kv.gguf";
  w.write(path);
  auto m = Model::load(path);
  EXPECT_EQ(m->config().n_layer_kv, 20);
}

// Generated models in both layouts load and run; the Ollama layout's extra token rows use
// per-layer row 0 (never out of bounds).
TEST(RandomModel, BothLayoutsLoadAndRun) {
  for (auto layout : {GgufLayout::LlamaCpp, GgufLayout::Ollama}) {
    auto spec = *random_model_preset("tiny");
    spec.layout = layout;
    if (layout == GgufLayout::Ollama) spec.n_vocab = 512;
    spec.quant = "q4_k_m";
    const std::string path = std::string(G3N_BINARY_DIR) + (layout == GgufLayout::Ollama ? "/rand-ollama.gguf" : "/rand-llama.gguf");
    write_random_gemma3n(spec, path, 2);
    auto m = Model::load(path);
    EXPECT_EQ(m->config().n_vocab, spec.n_vocab);
    EXPECT_EQ(m->config().n_vocab_per_layer, 448);
    const auto* ple = m->file().find_tensor("per_layer_token_embd.weight");
    ASSERT_NE(ple, nullptr);
    EXPECT_EQ(ple->type, layout == GgufLayout::Ollama ? GgmlType::F16 : GgmlType::Q4_K);
    ContextParams p;
  p.exact = true;
    p.exact = true;
    p.n_ctx = 64;
    p.n_threads = 2;
    Context ctx(*m, p);
    std::vector<int32_t> toks = {2, 5, 300, static_cast<int32_t>(spec.n_vocab - 1)};
    ctx.eval(toks, LogitsFor::All);
    for (int i = 0; i < 4; ++i)
      for (float x : ctx.logits(i)) ASSERT_TRUE(std::isfinite(x) && std::fabs(x) <= 30.0f);
  }
}

// The logits of `toks` on one model: batched (every row) or one token at a time.
std::vector<float> logits_of(const Model& m, const std::vector<int32_t>& toks, bool exact, bool one_at_a_time) {
  ContextParams p;
  p.exact = exact;
  p.n_ctx = 64;
  p.n_threads = 2;
  Context ctx(m, p);
  std::vector<float> got;
  if (one_at_a_time) {
    for (int32_t t : toks) {
      const std::vector<int32_t> one = {t};
      ctx.eval(one, LogitsFor::Last);
      got.insert(got.end(), ctx.logits(0).begin(), ctx.logits(0).end());
    }
  } else {
    ctx.eval(toks, LogitsFor::All);
    for (int i = 0; i < ctx.n_logit_rows(); ++i) got.insert(got.end(), ctx.logits(i).begin(), ctx.logits(i).end());
  }
  return got;
}

// F32 matrices holding bf16 values (what create-random writes, as a file widened from the bf16 checkpoint
// holds) are narrowed to BF16 at load (docs/model.md §2), and the logits keep every bit: both arithmetic
// paths, a batched prompt and one token at a time.
TEST(RandomModel, NarrowedFloatMatricesKeepTheLogits) {
  auto spec = *random_model_preset("tiny");
  const std::string path = std::string(G3N_BINARY_DIR) + "/rand-narrow.gguf";
  write_random_gemma3n(spec, path, 2);
  ::setenv("G3N_KEEP_F32", "1", 1);
  auto wide = Model::load(path);
  ::unsetenv("G3N_KEEP_F32");
  auto narrow = Model::load(path);
  EXPECT_EQ(wide->weights().altup_proj[0].type, GgmlType::F32);
  EXPECT_EQ(narrow->weights().altup_proj[0].type, GgmlType::BF16);
  EXPECT_EQ(narrow->weights().per_layer[0].model_proj.type, GgmlType::BF16);
  EXPECT_EQ(narrow->weights().layers[3].laurel_l.type, GgmlType::BF16);
  EXPECT_EQ(narrow->weights().layers[3].altup_predict_coef.type, GgmlType::BF16);
  const std::vector<int32_t> toks = {2, 5, 300, 17, 99, 400, 8, 31, 200};
  for (bool exact : {true, false})
    for (bool one_at_a_time : {false, true}) {
      SCOPED_TRACE(std::string(exact ? "exact" : "fast") + (one_at_a_time ? " incremental" : " batch"));
      const auto a = logits_of(*wide, toks, exact, one_at_a_time), b = logits_of(*narrow, toks, exact, one_at_a_time);
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
    }
}

// Q4_K matrices are packed at load where the kernel set has packed kernels (docs/model.md §2), Q6_K too in a
// model loaded for speculation: the logits keep every bit (both paths, batched and one token at a time, in
// every kernel set), and a self-speculation draft of the same file uses the target's packed matrices instead
// of packing its own.
TEST(RandomModel, PackedMatricesKeepTheLogits) {
  auto spec = *random_model_preset("e4b-mini");
  spec.quant = "q4_k_m";
  const std::string path = std::string(G3N_BINARY_DIR) + "/rand-packed.gguf";
  write_random_gemma3n(spec, path, 2);
  // rows: every matrix in the mapping. packed: Q4_K packed, and with huge pages forced on (where the kernel
  // has them) every other streamed matrix copied into the arena as it is.
  ::setenv("G3N_NO_PACK", "1", 1);
  ::setenv("G3N_HUGE_PAGES", "0", 1);
  auto rows = Model::load(path);
  ::unsetenv("G3N_NO_PACK");
  ::setenv("G3N_HUGE_PAGES", "1", 1);
  ::setenv("G3N_PACK_Q6K", "0", 1);  // the plain layout even where the set packs Q6_K for decoding (checked below)
  auto packed = Model::load(path);
  ::unsetenv("G3N_PACK_Q6K");
  ::unsetenv("G3N_HUGE_PAGES");
  EXPECT_FALSE(rows->weights().layers[12].ffn_gate.packed);
  const auto in_file = [](const Model& m, const WeightMatrix& w) {
    const GgufFile& f = m.file();
    const uint8_t* t = f.tensor_data(f.tensors().front());
    const uint8_t* base = t - (f.data_offset() + f.tensors().front().offset);
    return w.data >= base && w.data < base + f.file_size();
  };
  EXPECT_TRUE(in_file(*rows, rows->weights().output));
  EXPECT_TRUE(in_file(*rows, rows->weights().layers[0].ffn_up));
  if (transparent_huge_pages()) {  // copied: the tied head (also the input table) and a masked up projection
    EXPECT_FALSE(in_file(*packed, packed->weights().output));
    EXPECT_EQ(packed->weights().output.data, packed->weights().token_embd.data);
    EXPECT_FALSE(packed->weights().output.packed);
    EXPECT_FALSE(in_file(*packed, packed->weights().layers[0].ffn_up));
  }
  if (!vec_dot_packed_fn(GgmlType::Q4_K)) {
    EXPECT_FALSE(packed->weights().layers[12].ffn_gate.packed);
    GTEST_SKIP() << "kernel set " << vec_dot_isa() << " has no packed kernels: nothing is packed";
  }
  const auto& l12 = packed->weights().layers[12];
  EXPECT_TRUE(l12.ffn_gate.packed && l12.ffn_up.packed && l12.attn_q.packed);
  EXPECT_FALSE(packed->weights().layers[0].ffn_up.packed);  // sparse layer: masked up projection stays in rows
  // Loaded for speculation: the Q6_K matrices (the tied output head, also the input table) packed as well.
  auto packed6 = Model::load(path, Model::LoadOptions{.speculative = true});
  ASSERT_EQ(packed6->weights().output.type, GgmlType::Q6_K);
  EXPECT_TRUE(packed6->weights().output.packed);
  EXPECT_EQ(packed6->weights().output.data, packed6->weights().token_embd.data);
  EXPECT_FALSE(packed->weights().output.packed);
  // The environment overrides the option either way.
  ::setenv("G3N_PACK_Q6K", "0", 1);
  EXPECT_FALSE(Model::load(path, Model::LoadOptions{.speculative = true})->weights().output.packed);
  ::setenv("G3N_PACK_Q6K", "1", 1);
  EXPECT_TRUE(Model::load(path)->weights().output.packed);
  ::unsetenv("G3N_PACK_Q6K");
  // A plain load packs Q6_K too where the set in use decodes it faster packed.
  EXPECT_EQ(Model::load(path)->weights().output.packed, vec_dot_packs_q6k_for_decode());
  const std::vector<int32_t> toks = {2, 5, 300, 17, 99, 400, 8, 31, 200, 11, 3};
  for_each_kernel_set([&](const std::string&) {
    for (bool exact : {true, false})
      for (bool one_at_a_time : {false, true}) {
        SCOPED_TRACE(std::string(exact ? "exact" : "fast") + (one_at_a_time ? " incremental" : " batch"));
        const auto a = logits_of(*rows, toks, exact, one_at_a_time), b = logits_of(*packed, toks, exact, one_at_a_time);
        ASSERT_EQ(a.size(), b.size());
        ASSERT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
        const auto c = logits_of(*packed6, toks, exact, one_at_a_time);
        ASSERT_EQ(a.size(), c.size());
        ASSERT_EQ(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)), 0) << "Q6_K packed";
      }
  });
  // The e2b slice as a draft of the packed model: its kept matrices are the target's packed buffers (row
  // prefixes), and its logits are those of the same slice loaded on its own.
  ::setenv("G3N_PACK_Q6K", "0", 1);  // the layout `packed` was loaded with
  auto draft = Model::load(path, "e2b", packed.get());
  ::unsetenv("G3N_PACK_Q6K");
  auto alone = Model::load(path, "e2b");
  const auto& d12 = draft->weights().layers[12];
  EXPECT_TRUE(d12.ffn_gate.packed);
  EXPECT_EQ(d12.ffn_gate.data, l12.ffn_gate.data);
  EXPECT_EQ(d12.attn_q.data, l12.attn_q.data);
  if (!in_file(*packed, packed->weights().output)) {  // the copied head is shared too
    EXPECT_EQ(draft->weights().output.data, packed->weights().output.data);
  }
  EXPECT_NE(alone->weights().layers[12].ffn_gate.data, l12.ffn_gate.data);
  const auto a = logits_of(*draft, toks, false, false), b = logits_of(*alone, toks, false, false);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0);
  // Nothing of the draft's is its own: every matrix is read from the target's version (down projections as
  // column prefixes of the target's rows or packed groups, sparse layers' column copies shared), in both
  // layouts; a draft of the speculative load takes that layout (its Q6_K head packed), and its logits are
  // still the slice's.
  auto draft6 = Model::load(path, "e2b", packed6.get());
  EXPECT_TRUE(draft6->weights().output.packed);
  for (const auto& [d, target] : {std::pair{draft.get(), packed.get()}, std::pair{draft6.get(), packed6.get()}}) {
    int sparse = 0;
    for_each_matrix(d->weights(), [&](const WeightMatrix& m, const SparseColumns*) {
      if (!m.empty()) {
        EXPECT_FALSE(in_file(*d, m));
      }
    });
    for (int l = 0; l < d->config().n_layer; ++l) {
      const auto& dl = d->weights().layers[static_cast<size_t>(l)];
      const auto& tl = target->weights().layers[static_cast<size_t>(d->config().file_layer[static_cast<size_t>(l)])];
      EXPECT_LT(dl.ffn_down.n_in, tl.ffn_down.n_in) << "layer " << l;  // e2b's FFN: half the width
      EXPECT_EQ(dl.ffn_down.data, tl.ffn_down.data) << "layer " << l;
      EXPECT_EQ(dl.ffn_down.packed, tl.ffn_down.packed) << "layer " << l;
      EXPECT_TRUE(dl.ffn_down_compact.empty()) << "layer " << l;
      EXPECT_EQ(dl.ffn_down_cols.empty(), tl.ffn_down_cols.empty()) << "layer " << l;
      if (!dl.ffn_down_cols.empty()) {
        ++sparse;
        EXPECT_EQ(dl.ffn_down_cols.data(), tl.ffn_down_cols.data()) << "layer " << l;
        EXPECT_EQ(dl.ffn_down_cols.n_in, dl.ffn_down.n_in) << "layer " << l;
      }
    }
    EXPECT_GT(sparse, 0);
  }
  const auto c6 = logits_of(*draft6, toks, false, false);
  ASSERT_EQ(a.size(), c6.size());
  EXPECT_EQ(std::memcmp(a.data(), c6.data(), a.size() * sizeof(float)), 0);
  for (bool exact : {true, false}) {  // and one token at a time, both arithmetic paths
    const auto x = logits_of(*draft6, toks, exact, true), y = logits_of(*alone, toks, exact, true);
    ASSERT_EQ(x.size(), y.size());
    EXPECT_EQ(std::memcmp(x.data(), y.data(), x.size() * sizeof(float)), 0) << (exact ? "exact" : "fast");
  }
}

// Converting the F16 fixture to Q8_0 with our quantizer reproduces llama.cpp's Q8_0 file's logits.
TEST(RandomModel, ConvertedQ8MatchesFixtureGolden) {
  auto in = GgufFile::open(tiny_f16());
  const std::string path = std::string(G3N_BINARY_DIR) + "/tiny-q8_0-converted.gguf";
  convert_gguf(in, path, [](const GgufTensorInfo& t) {
    const bool keep = t.ne.size() < 2 || t.name.find("altup") != std::string::npos || t.name.find("laurel") != std::string::npos ||
                      t.name == "per_layer_model_proj.weight";
    return keep ? GgmlType::F32 : GgmlType::Q8_0;
  }, 7);
  auto m = Model::load(path);
  const int V = m->config().n_vocab;
  const auto prompt = test::tiny_prompts()[0];
  const auto want = test::read_f32_file(test::tiny_dir() + "/golden/exact/q8_0/logits_hello_exact-q8_0.bin");
  ContextParams p;
  p.exact = true;
  p.n_ctx = 64;
  p.n_threads = 2;
  Context ctx(*m, p);
  ctx.eval(prompt.tokens, LogitsFor::All);
  test::RowStats st;
  for (int i = 0; i < ctx.n_logit_rows(); ++i) st.add_row(ctx.logits(i).data(), &want[static_cast<size_t>(i) * V], V, 4e-3f);
  EXPECT_LE(st.max_abs, 2e-3);
}

}  // namespace
}  // namespace g3n

namespace g3n {
namespace {

// docs/model.md §4.6: running the KV-sharing layers only for the rows whose logits are wanted changes nothing.
TEST(ModelContext, PrefillShortcutIsExact) {
  auto model = Model::load(tiny_f16());
  const auto prompt = test::tiny_prompts()[2].tokens;
  std::vector<float> with, without;
  for (bool shortcut : {true, false}) {
    ContextParams p;
    p.exact = true;
    p.n_ctx = 128;
    p.n_threads = 2;
    p.prefill_shortcut = shortcut;
    Context ctx(*model, p);
    ctx.eval(prompt, LogitsFor::Last);
    (shortcut ? with : without).assign(ctx.last_logits().begin(), ctx.last_logits().end());
  }
  EXPECT_EQ(with, without);
}

}  // namespace
}  // namespace g3n
