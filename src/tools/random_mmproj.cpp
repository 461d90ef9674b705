#include "tools/random_mmproj.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>

#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "quant/fp16.h"
#include "quant/quantize.h"
#include "tools/random_values.h"

namespace g3n {
namespace {

[[noreturn]] void bad(const std::string& msg) { throw std::invalid_argument("random mmproj: " + msg); }

// One block of an arch-def string (timm notation), after expanding its repeat count.
struct BlockArch {
  std::string kind;  // "er", "uir", "mqa"
  int64_t k = 0;     // er: conv_exp kernel; uir: dw_mid kernel (0 = none); mqa: K/V down_conv kernel
  int64_t a = 0;     // uir: dw_start kernel (0 = none)
  int64_t s = 1;     // stride
  double e = 1;      // expansion
  int64_t c = 0;     // output channels
  int64_t h = 0, d = 0, v = 1;  // mqa: heads, key/value dim, K/V stride
};

std::vector<BlockArch> parse_block(const std::string& text) {
  std::vector<std::string> parts;
  size_t pos = 0;
  while (true) {
    const size_t us = text.find('_', pos);
    parts.push_back(text.substr(pos, us == std::string::npos ? std::string::npos : us - pos));
    if (us == std::string::npos) break;
    pos = us + 1;
  }
  BlockArch b;
  b.kind = parts[0];
  if (b.kind != "er" && b.kind != "uir" && b.kind != "mqa") bad("block '" + text + "': unknown kind '" + b.kind + "' (er, uir, mqa)");
  int64_t repeat = 1;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.size() < 2) bad("block '" + text + "': option '" + p + "'");
    const char key = p[0];
    const std::string value = p.substr(1);
    size_t used = 0;
    double x = 0;
    try {
      x = std::stod(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != value.size() || x < 0) bad("block '" + text + "': option '" + p + "' has no number");
    const auto n = static_cast<int64_t>(x);
    if (key != 'e' && static_cast<double>(n) != x) bad("block '" + text + "': option '" + p + "' is not an integer");
    switch (key) {
      case 'r': repeat = n; break;
      case 'k': b.k = n; break;
      case 'a': b.a = n; break;
      case 's': b.s = n; break;
      case 'e': b.e = x; break;
      case 'c': b.c = n; break;
      case 'h': b.h = n; break;
      case 'd': b.d = n; break;
      case 'v': b.v = n; break;
      default: bad("block '" + text + "': unknown option '" + p + "'");
    }
  }
  if (repeat < 1 || b.c < 1 || b.e <= 0 || (b.s != 1 && b.s != 2)) bad("block '" + text + "': needs r >= 1, c >= 1, e > 0, s 1 or 2");
  for (int64_t kk : {b.k, b.a})
    if (kk < 0 || (kk > 0 && kk % 2 == 0) || kk > 15) bad("block '" + text + "': kernels must be odd, at most 15 (0: none)");
  if (b.kind == "er" && b.k < 1) bad("block '" + text + "': an edge residual block needs a kernel");
  if (b.kind == "mqa" && (b.h < 1 || b.d < 1 || (b.v != 1 && b.v != 2) || (b.v == 2 && b.k < 1)))
    bad("block '" + text + "': attention needs h >= 1, d >= 1, v 1 or 2 (and a kernel k for v2)");
  return std::vector<BlockArch>(static_cast<size_t>(repeat), b);
}

// timm's make_divisible(v, 8): the nearest multiple of 8, never more than 10% below v.
int64_t make_divisible(double v) {
  int64_t n = std::max<int64_t>(8, static_cast<int64_t>(v + 4) / 8 * 8);
  if (static_cast<double>(n) < 0.9 * v) n += 8;
  return n;
}

class Planner {
 public:
  explicit Planner(const RandomMmprojSpec& s) : s_(s) {}

  // A k×k (or 1×1) convolution weight ne [k, k, in/groups, out]: N(0, 1/fan_in).
  void conv(const std::string& name, int64_t k, int64_t in_per_group, int64_t out) {
    const float fan_in = static_cast<float>(k * k * in_per_group);
    add(name, {k, k, in_per_group, out}, 0.0f, 1.0f / std::sqrt(fan_in));
  }
  void norm(const std::string& name, int64_t c) { add(name, {c}, 1.0f, 0.2f); }
  void layer_scale(const std::string& name, int64_t c) {
    add(name, s_.flat_layer_scale ? std::vector<int64_t>{c} : std::vector<int64_t>{1, 1, c, 1}, s_.layer_scale, s_.layer_scale / 5);
  }
  void add(const std::string& name, std::vector<int64_t> ne, float mean, float std) {
    RandomTensorPlan t;
    t.name = name;
    t.ne = std::move(ne);
    t.mean = mean;
    t.std = std;
    // The converter's F16 rule: 1-D tensors, layer scales and the stem stay F32 (fixture README §4.2).
    const bool keep_f32 = t.ne.size() == 1 || name.find("layer_scale") != std::string::npos || name.rfind("v.conv_stem.", 0) == 0;
    t.type = s_.type == "f32" || keep_f32 ? GgmlType::F32 : GgmlType::F16;
    plan_.push_back(std::move(t));
  }
  std::vector<RandomTensorPlan> take() { return std::move(plan_); }

 private:
  const RandomMmprojSpec& s_;
  std::vector<RandomTensorPlan> plan_;
};

}  // namespace

int64_t RandomTensorPlan::elements() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

std::optional<RandomMmprojSpec> random_mmproj_preset(const std::string& name) {
  RandomMmprojSpec s;
  if (name == "tiny") {
    s.name = "tiny";
    s.image_size = 512;
    s.stem_channels = 8;
    s.stages = {
        {"er_r1_k3_s2_e4_c24", "er_r1_k3_s1_e4_c24"},
        {"uir_r1_a3_k5_s2_e6_c32", "uir_r1_a5_k0_s1_e4_c32", "uir_r1_a3_k0_s1_e4_c32"},
        {"uir_r1_a5_k5_s2_e6_c48", "uir_r1_a5_k0_s1_e4_c48", "uir_r1_a0_k0_s1_e1_c48", "mqa_r1_k3_h4_v2_s1_d16_c48",
         "uir_r1_a0_k0_s1_e2_c48", "mqa_r1_k3_h4_v2_s1_d16_c48", "uir_r1_a0_k0_s1_e2_c48"},
        {"uir_r1_a5_k5_s2_e6_c64", "mqa_r1_k3_h3_s1_d24_c64", "uir_r1_a0_k0_s1_e2_c64", "mqa_r1_k3_h3_s1_d24_c64",
         "uir_r1_a0_k0_s1_e2_c64"},
    };
    s.vision_width = 256;
    s.text_width = 256;
    return s;
  }
  if (name == "mobilenetv5_300m_enc" || name == "real") {
    // timm mobilenetv5.py, _gen_mobilenet_v5 for 'mobilenetv5_300m_enc' (stem_size 64).
    s.stages = {
        {"er_r1_k3_s2_e4_c128", "er_r2_k3_s1_e4_c128"},
        {"uir_r1_a3_k5_s2_e6_c256", "uir_r1_a5_k0_s1_e4_c256", "uir_r1_a3_k0_s1_e4_c256", "uir_r1_a5_k0_s1_e4_c256",
         "uir_r1_a3_k0_s1_e4_c256"},
        {"uir_r1_a5_k5_s2_e6_c640", "uir_r7_a5_k0_s1_e4_c640", "uir_r1_a0_k0_s1_e1_c640"},
        {"uir_r1_a5_k5_s2_e6_c1280"},
    };
    for (int i = 0; i < 14; ++i) {
      s.stages[2].push_back("mqa_r1_k3_h12_v2_s1_d64_c640");
      s.stages[2].push_back("uir_r1_a0_k0_s1_e2_c640");
    }
    for (int i = 0; i < 19; ++i) {
      s.stages[3].push_back("mqa_r1_k3_h16_s1_d96_c1280");
      s.stages[3].push_back("uir_r1_a0_k0_s1_e2_c1280");
    }
    return s;
  }
  return std::nullopt;
}

std::optional<RandomAudioSpec> random_audio_preset(const std::string& name) {
  RandomAudioSpec a;
  if (name == "tiny") {
    a.name = "tiny";
    a.width = 64;
    a.layers = 2;
    a.heads = 2;
    a.ffn = 256;
    a.ffn_key = 0;
    return a;
  }
  if (name == "usm" || name == "real") return a;
  return std::nullopt;
}

namespace {

// The audio tower and embedder in the fixture's order (README §5): SSCP, the conformer blocks, mm.a.*.
// Types as the converter writes them: with F16, the convolution kernels and every 1-D tensor stay F32;
// a.pre_encode.out.weight is F16 even in an F32 file.
std::vector<RandomTensorPlan> plan_audio(const RandomMmprojSpec& s) {
  const RandomAudioSpec& a = *s.audio;
  if (a.width < 1 || a.layers < 1 || a.heads < 1 || a.ffn < 1 || a.width % a.heads != 0)
    bad("audio tower: width, layers, heads and ffn must be positive and heads must divide the width");
  constexpr int64_t kSscp0 = 128, kSscp1 = 32, kMel = 128, kConv = 5, kHard = 128;
  std::vector<RandomTensorPlan> plan;
  const auto add = [&](const std::string& name, std::vector<int64_t> ne, float mean, float std) {
    RandomTensorPlan t;
    t.name = name;
    t.ne = std::move(ne);
    t.mean = mean;
    t.std = std;
    const bool kernel = name.rfind("a.conv1d.", 0) == 0 || name.find(".conv_dw.") != std::string::npos;
    const bool keep_f32 = t.ne.size() == 1 || kernel;
    t.type = name == "a.pre_encode.out.weight" ? GgmlType::F16 : s.type == "f32" || keep_f32 ? GgmlType::F32 : GgmlType::F16;
    plan.push_back(std::move(t));
  };
  const auto norm = [&](const std::string& name, int64_t c) { add(name, {c}, 1.0f, 0.2f); };
  const auto linear = [&](const std::string& name, int64_t in, int64_t out) {
    add(name, {in, out}, 0.0f, 1.0f / std::sqrt(static_cast<float>(in)));
  };
  const int64_t D = a.width, H = D / a.heads;
  add("a.conv1d.0.weight", {3, 3, 1, kSscp0}, 0.0f, 1.0f / 3.0f);
  norm("a.conv1d.0.norm.weight", kSscp0);
  add("a.conv1d.1.weight", {3, 3, kSscp0, kSscp1}, 0.0f, 1.0f / std::sqrt(9.0f * kSscp0));
  norm("a.conv1d.1.norm.weight", kSscp1);
  linear("a.pre_encode.out.weight", kSscp1 * (kMel / 4), D);
  for (int64_t i = 0; i < a.layers; ++i) {
    const std::string pre = "a.blk." + std::to_string(i) + ".";
    const auto ffn = [&](const std::string& sfx) {
      norm(pre + "ffn_norm" + sfx + ".weight", D);
      linear(pre + "ffn_up" + sfx + ".weight", D, a.ffn);
      linear(pre + "ffn_down" + sfx + ".weight", a.ffn, D);
      norm(pre + "ffn_post_norm" + sfx + ".weight", D);
    };
    ffn("");
    norm(pre + "ln1.weight", D);
    add(pre + "per_dim_scale", {H}, 0.0f, 0.5f);
    linear(pre + "linear_pos.weight", D, D);
    for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_out"}) linear(pre + m + ".weight", D, D);
    norm(pre + "ln2.weight", D);
    norm(pre + "conv_norm.weight", D);
    linear(pre + "conv_pw1.weight", D, 2 * D);
    add(pre + "conv_dw.weight", {kConv, 1, D}, 0.0f, 0.4f);
    norm(pre + "norm_conv.weight", D);
    linear(pre + "conv_pw2.weight", D, D);
    ffn("_1");
    norm(pre + "layer_pre_norm.weight", D);
  }
  add("mm.a.embedding.weight", {D, kHard}, 0.0f, 1.0f);
  norm("mm.a.hard_emb_norm.weight", D);
  norm("mm.a.soft_emb_norm.weight", D);
  linear("mm.a.input_projection.weight", D, s.text_width);
  return plan;
}

}  // namespace

std::vector<RandomTensorPlan> plan_random_mmproj(const RandomMmprojSpec& s) {
  if (s.type != "f16" && s.type != "f32") bad("type '" + s.type + "' (f16 or f32)");
  if (s.text_width < 1) bad("widths must be positive");
  if (!s.vision && !s.audio) bad("neither a vision nor an audio tower");
  if (!s.vision) return plan_audio(s);
  if (s.stages.size() < 2) bad("the fusion adapter needs at least two stages");
  if (s.image_size < 256 || s.image_size % 256 != 0) bad("image_size must be a multiple of 256 (256 tokens = image_size / patch_size)");
  if (s.stem_channels < 1 || s.vision_width < 1 || s.text_width < 1 || s.n_hard < 1 || s.msfa_expansion < 1)
    bad("widths must be positive");
  Planner p(s);
  // Embedder (mm.*), in the converter's order (HF names: embedding, embedding_projection,
  // hard_embedding_norm, soft_embedding_norm).
  p.add("mm.embedding.weight", {s.vision_width, s.n_hard}, 0.0f, 1.0f);
  p.add("mm.input_projection.weight", {s.vision_width, s.text_width}, 0.0f, 1.0f / std::sqrt(static_cast<float>(s.vision_width)));
  p.norm("mm.hard_emb_norm.weight", s.vision_width);
  p.norm("mm.soft_emb_norm.weight", s.vision_width);
  std::vector<RandomTensorPlan> plan = p.take();

  Planner t(s);
  t.conv("v.conv_stem.conv.weight", 3, 3, s.stem_channels);
  t.add("v.conv_stem.conv.bias", {1, 1, s.stem_channels, 1}, 0.0f, 0.3f);
  t.norm("v.conv_stem.bn.weight", s.stem_channels);
  int64_t ch = s.stem_channels;
  std::vector<int64_t> stage_out;
  for (size_t si = 0; si < s.stages.size(); ++si) {
    std::vector<BlockArch> blocks;
    for (const std::string& text : s.stages[si])
      for (const BlockArch& b : parse_block(text)) blocks.push_back(b);
    if (blocks.empty()) bad("stage " + std::to_string(si) + " has no blocks");
    for (size_t bi = 0; bi < blocks.size(); ++bi) {
      const BlockArch& b = blocks[bi];
      const std::string pre = "v.blk." + std::to_string(si) + "." + std::to_string(bi) + ".";
      // The loaders (llama.cpp's and ours) stride every stage's first block and no other.
      if (b.s != (bi == 0 ? 2 : 1)) bad(pre + "*: stride " + std::to_string(b.s) + "; a stage strides (only) in its first block");
      if (b.kind == "er") {
        const int64_t mid = make_divisible(static_cast<double>(ch) * b.e);
        t.conv(pre + "conv_exp.weight", b.k, ch, mid);
        t.norm(pre + "bn1.weight", mid);
        t.conv(pre + "conv_pwl.weight", 1, mid, b.c);
        t.norm(pre + "bn2.weight", b.c);
      } else if (b.kind == "uir") {
        if (bi == 0 && b.k == 0) bad(pre + "*: a stage's first block needs dw_mid (k > 0) to stride");
        const int64_t mid = make_divisible(static_cast<double>(ch) * b.e);
        if (b.a > 0) {
          t.conv(pre + "dw_start.conv.weight", b.a, 1, ch);
          t.norm(pre + "dw_start.bn.weight", ch);
        }
        t.conv(pre + "pw_exp.conv.weight", 1, ch, mid);
        t.norm(pre + "pw_exp.bn.weight", mid);
        if (b.k > 0) {
          t.conv(pre + "dw_mid.conv.weight", b.k, 1, mid);
          t.norm(pre + "dw_mid.bn.weight", mid);
        }
        t.conv(pre + "pw_proj.conv.weight", 1, mid, b.c);
        t.norm(pre + "pw_proj.bn.weight", b.c);
        t.layer_scale(pre + "layer_scale.gamma", b.c);
      } else {
        if (bi == 0) bad(pre + "*: attention cannot start a stage");
        if (b.c != ch) bad(pre + "*: attention keeps its width (" + std::to_string(ch) + "), not c" + std::to_string(b.c));
        t.norm(pre + "norm.weight", ch);
        t.conv(pre + "attn.query.proj.weight", 1, ch, b.h * b.d);
        t.conv(pre + "attn.key.proj.weight", 1, ch, b.d);
        t.conv(pre + "attn.value.proj.weight", 1, ch, b.d);
        t.conv(pre + "attn.output.proj.weight", 1, b.h * b.d, ch);
        if (b.v == 2) {
          t.conv(pre + "attn.key.down_conv.weight", b.k, 1, ch);
          t.norm(pre + "attn.key.norm.weight", ch);
          t.conv(pre + "attn.value.down_conv.weight", b.k, 1, ch);
          t.norm(pre + "attn.value.norm.weight", ch);
        }
        t.layer_scale(pre + "layer_scale.gamma", ch);
      }
      ch = b.c;
    }
    stage_out.push_back(ch);
  }
  const int64_t msfa_in = stage_out[stage_out.size() - 2] + stage_out.back();
  const int64_t msfa_mid = msfa_in * s.msfa_expansion;
  t.conv("v.msfa.ffn.pw_exp.conv.weight", 1, msfa_in, msfa_mid);
  t.norm("v.msfa.ffn.pw_exp.bn.weight", msfa_mid);
  t.conv("v.msfa.ffn.pw_proj.conv.weight", 1, msfa_mid, s.vision_width);
  t.norm("v.msfa.ffn.pw_proj.bn.weight", s.vision_width);
  t.norm("v.msfa.norm.weight", s.vision_width);
  std::vector<RandomTensorPlan> tower = t.take();
  // HF names: blocks.S.B.* < conv_stem.* < msfa.*, compared as strings (so blocks.2.10 precedes
  // blocks.2.2); the v.* names sort the same way.
  std::sort(tower.begin(), tower.end(), [](const RandomTensorPlan& a, const RandomTensorPlan& b) { return a.name < b.name; });
  for (auto& x : tower) plan.push_back(std::move(x));
  if (s.audio)
    for (auto& x : plan_audio(s)) plan.push_back(std::move(x));
  return plan;
}

MmprojParamCount count_mmproj_params(const std::vector<RandomTensorPlan>& plan) {
  MmprojParamCount c;
  for (const auto& t : plan) {
    const bool audio_embedder = t.name.rfind("mm.a.", 0) == 0;
    (t.name.rfind("v.", 0) == 0 ? c.tower : t.name.rfind("a.", 0) == 0 ? c.audio_tower : audio_embedder ? c.audio_embedder : c.embedder) +=
        t.elements();
  }
  return c;
}

namespace {
void write_vision_keys(GgufWriter& out, const RandomMmprojSpec& s);
void write_tensors(GgufWriter& out, const RandomMmprojSpec& s, const std::vector<RandomTensorPlan>& plan, int n_threads);
}  // namespace

void write_random_mmproj(const RandomMmprojSpec& s, const std::string& path, int n_threads) {
  const std::vector<RandomTensorPlan> plan = plan_random_mmproj(s);
  const MmprojParamCount params = count_mmproj_params(plan);
  GgufWriter out;
  out.set_string("general.architecture", "clip");
  out.set_string("general.type", "mmproj");
  out.set_string("general.name", std::string(s.vision ? "gemma3n-vision" : "gemma3n") + (s.audio ? "-audio" : "") + "-random-" +
                                     (s.vision ? s.name : s.audio->name));
  const double total = static_cast<double>(params.tower + params.embedder + params.audio_tower + params.audio_embedder);
  char label[32];
  if (total >= 1e9) std::snprintf(label, sizeof label, "%.1fB", total / 1e9);
  else if (total >= 1e6) std::snprintf(label, sizeof label, "%.0fM", total / 1e6);
  else std::snprintf(label, sizeof label, "%.0fK", total / 1e3);
  out.set_string("general.size_label", label);
  out.set_u32("general.file_type", s.type == "f32" ? 0 : 1);
  out.set_bool("clip.has_vision_encoder", s.vision);
  if (s.audio) {
    // The audio keys as the converter writes them (the eps is its copied 1e-5, which the model does not
    // use: fixture README §5).
    const RandomAudioSpec& a = *s.audio;
    out.set_bool("clip.has_audio_encoder", true);
    out.set_u32("clip.audio.projection_dim", static_cast<uint32_t>(s.text_width));
    out.set_u32("clip.audio.embedding_length", static_cast<uint32_t>(a.width));
    out.set_u32("clip.audio.feed_forward_length", static_cast<uint32_t>(a.ffn_key > 0 ? a.ffn_key : a.ffn));
    out.set_u32("clip.audio.block_count", static_cast<uint32_t>(a.layers));
    out.set_u32("clip.audio.attention.head_count", static_cast<uint32_t>(a.heads));
    out.set_string("clip.audio.projector_type", "gemma3na");
    out.set_u32("clip.audio.num_mel_bins", 128);
    out.set_f32("clip.audio.attention.layer_norm_epsilon", 1e-5f);
  }
  if (s.vision) write_vision_keys(out, s);
  out.set_u32("general.quantization_version", 2);
  write_tensors(out, s, plan, n_threads);
  out.write(path);
}

namespace {
void write_vision_keys(GgufWriter& out, const RandomMmprojSpec& s) {
  out.set_u32("clip.vision.projection_dim", static_cast<uint32_t>(s.text_width));
  out.set_u32("clip.vision.image_size", static_cast<uint32_t>(s.image_size));
  out.set_u32("clip.vision.patch_size", static_cast<uint32_t>(s.image_size / 256));  // tokens = image_size / patch_size = 256 (16x16)
  out.set_u32("clip.vision.embedding_length", static_cast<uint32_t>(s.vision_width));
  // Written by the converter whatever the model; meaningless for gemma3nv (fixture README §4.2).
  out.set_u32("clip.vision.feed_forward_length", 8192);
  out.set_u32("clip.vision.block_count", 128);
  out.set_u32("clip.vision.attention.head_count", 8);
  out.set_array_f32("clip.vision.image_mean", {0.0f, 0.0f, 0.0f});
  out.set_array_f32("clip.vision.image_std", {1.0f, 1.0f, 1.0f});
  out.set_string("clip.vision.projector_type", "gemma3nv");
  out.set_f32("clip.vision.attention.layer_norm_epsilon", 1e-6f);
}

void write_tensors(GgufWriter& out, const RandomMmprojSpec& s, const std::vector<RandomTensorPlan>& plan, int n_threads) {
  auto pool = std::make_shared<ThreadPool>(n_threads > 0 ? n_threads : default_thread_count());
  for (const auto& t : plan) {
    const uint64_t key = tensor_key(s.seed, t.name);
    const int64_t n_in = t.ne[0];
    const size_t elem = t.type == GgmlType::F32 ? 4 : 2;  // F32 or F16: element-wise, rows are contiguous
    const GgmlType type = t.type;
    const float mean = t.mean, std = t.std;
    out.add_tensor_lazy(t.name, t.type, t.ne, [=](int64_t r0, int64_t n, uint8_t* dst) {
      const int64_t first = r0 * n_in, count = n * n_in;
      pool->parallel_for(count, [&](int64_t b, int64_t e, int) {
        std::vector<float> v(static_cast<size_t>(e - b));
        for (int64_t i = b; i < e; ++i) {
          // Rounded to the fp16 grid, so the F32 and F16 variants of a seed hold the same weights.
          const float x = mean + std * normal_at(key, static_cast<uint64_t>(first + i));
          v[static_cast<size_t>(i - b)] = fp16_to_fp32(fp32_to_fp16(x));
        }
        quantize_row(type, v.data(), dst + static_cast<size_t>(b) * elem, e - b);
      }, 4096);
    });
  }
}
}  // namespace

}  // namespace g3n
