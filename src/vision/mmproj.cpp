#include "vision/mmproj.h"

#include <cmath>
#include <map>
#include <stdexcept>
#include <utility>

#include "gguf/gguf.h"
#include "model/tensor_binder.h"

namespace g3n {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("mmproj: " + msg); }

// The fixture's rules: every tensor F32, F16, BF16 or Q8_0; the vision tower's conv kernels on top of the
// shared checks.
class Binder : public TensorBinder {
 public:
  explicit Binder(const GgufFile& f) : TensorBinder(f, "mmproj", /*quantized_small=*/true) {}

  // A 1×1 convolution (ne [1, 1, in, out]) as a matrix [in -> out], kept in the file's type.
  WeightMatrix pointwise(const std::string& name, int64_t in, int64_t out) const {
    expect(name, {1, 1, in, out});
    return rows_of(name, in, out);
  }

  // Kernel side of a k×k conv tensor (ne [k, k, ...]): odd, at most 15.
  int64_t kernel_side(const std::string& name) const {
    const auto ne = shape(name);
    if (ne[0] != ne[1] || ne[0] % 2 == 0 || ne[0] > 15)
      fail("tensor '" + name + "' has shape " + shape_str(ne) + ": expected an odd square kernel of side <= 15");
    return ne[0];
  }

  // Full conv ne [k, k, in, out] -> w[((o·k + ky)·k + kx)·in + i].
  ConvKernel full_conv(const std::string& name, int64_t in) const {
    const int64_t k = kernel_side(name);
    const auto ne = shape(name);
    if (ne[2] != in) fail("tensor '" + name + "' has shape " + shape_str(ne) + ": expected " + std::to_string(in) + " input channels");
    ConvKernel c;
    c.k = k;
    c.in = in;
    c.out = ne[3];
    const std::vector<float> src = decode(name);  // PyTorch [out][in][ky][kx]
    c.w.resize(src.size());
    for (int64_t o = 0; o < c.out; ++o)
      for (int64_t i = 0; i < in; ++i)
        for (int64_t ky = 0; ky < k; ++ky)
          for (int64_t kx = 0; kx < k; ++kx)
            c.w[static_cast<size_t>(((o * k + ky) * k + kx) * in + i)] = src[static_cast<size_t>(((o * in + i) * k + ky) * k + kx)];
    return c;
  }

  // Depthwise conv ne [k, k, 1, C] -> w[(ky·k + kx)·C + c].
  ConvKernel depthwise(const std::string& name, int64_t channels) const {
    const int64_t k = kernel_side(name);
    expect(name, {k, k, 1, channels});
    ConvKernel c;
    c.k = k;
    c.in = c.out = channels;
    c.depthwise = true;
    const std::vector<float> src = decode(name);  // PyTorch [C][1][ky][kx]
    c.w.resize(src.size());
    for (int64_t ch = 0; ch < channels; ++ch)
      for (int64_t t = 0; t < k * k; ++t) c.w[static_cast<size_t>(t * channels + ch)] = src[static_cast<size_t>(ch * k * k + t)];
    return c;
  }
};

int64_t required_int(const GgufFile& f, const std::string& key) {
  auto v = f.get_int(key);
  if (!v) fail("missing key '" + key + "'");
  return *v;
}

MmprojConfig read_config(const GgufFile& f) {
  if (f.get_string("general.architecture").value_or("") != "clip")
    fail("general.architecture is '" + f.get_string("general.architecture").value_or("") + "', expected 'clip'");
  if (f.get_bool("clip.has_vision_encoder") == false) fail("clip.has_vision_encoder is false: no vision tower");
  // Newer converters write clip.vision.projector_type; older ones clip.projector_type.
  auto proj = f.get_string("clip.vision.projector_type");
  if (!proj) proj = f.get_string("clip.projector_type");
  if (proj.value_or("") != "gemma3nv")
    fail("projector type is '" + proj.value_or("") + "', expected 'gemma3nv' (Gemma 3n vision)");
  MmprojConfig c;
  c.image_size = required_int(f, "clip.vision.image_size");
  const int64_t patch = required_int(f, "clip.vision.patch_size");
  if (c.image_size <= 0 || c.image_size > 8192 || patch <= 0 || c.image_size % patch != 0)
    fail("clip.vision.image_size " + std::to_string(c.image_size) + " / patch_size " + std::to_string(patch) + " is not a whole token count");
  c.n_tokens = c.image_size / patch;
  if (c.n_tokens != c.grid * c.grid)
    fail("image_size / patch_size = " + std::to_string(c.n_tokens) + " tokens; Gemma 3n's 16x16 grid gives 256");
  c.eps = static_cast<float>(f.get_float("clip.vision.attention.layer_norm_epsilon").value_or(1e-6));
  if (!(c.eps > 0 && c.eps < 1)) fail("clip.vision.attention.layer_norm_epsilon out of range");
  return c;
}

// Blocks present per stage: v.blk.<S>.<B>.* names, parsed strictly (small decimal numbers only).
std::map<int, std::map<int, bool>> find_blocks(const GgufFile& f) {
  std::map<int, std::map<int, bool>> found;
  auto number = [](const std::string& s, size_t& pos) -> int {
    size_t start = pos;
    int v = 0;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9' && pos - start < 4) v = v * 10 + (s[pos++] - '0');
    if (pos == start || pos >= s.size() || s[pos] != '.') return -1;
    ++pos;
    return v;
  };
  for (const auto& t : f.tensors()) {
    if (t.name.rfind("v.blk.", 0) != 0) continue;
    size_t pos = 6;
    const int s = number(t.name, pos);
    const int b = s < 0 ? -1 : number(t.name, pos);
    if (s < 0 || b < 0) fail("tensor '" + t.name + "': not a v.blk.<stage>.<block>.* name");
    found[s][b] = true;
  }
  return found;
}

// fixture README §4.3 rule 3: the block kind from which tensors exist, every width from shapes.
VisionBlock bind_block(const Binder& b, int stage, int index, int64_t in) {
  const std::string p = "v.blk." + std::to_string(stage) + "." + std::to_string(index) + ".";
  VisionBlock blk;
  blk.stage = stage;
  blk.index = index;
  blk.in = in;
  blk.stride = index == 0 ? 2 : 1;
  if (b.has(p + "conv_exp.weight")) {
    blk.kind = VisionBlockKind::EdgeResidual;
    blk.conv_exp = b.full_conv(p + "conv_exp.weight", in);
    const int64_t mid = blk.conv_exp.out;
    blk.bn1 = b.vec(p + "bn1.weight", mid);
    blk.out = b.shape(p + "conv_pwl.weight")[3];
    blk.conv_pwl = b.pointwise(p + "conv_pwl.weight", mid, blk.out);
    blk.bn2 = b.vec(p + "bn2.weight", blk.out);
    blk.residual = blk.stride == 1 && in == blk.out;
  } else if (b.has(p + "attn.query.proj.weight")) {
    blk.kind = VisionBlockKind::MultiQueryAttention;
    if (blk.stride != 1) fail("block " + p + "* is attention at a stage start, where a stride-2 block is needed");
    blk.out = in;
    blk.norm = b.vec(p + "norm.weight", in);
    blk.head_dim = b.shape(p + "attn.key.proj.weight")[3];
    const int64_t q_width = b.shape(p + "attn.query.proj.weight")[3];
    if (q_width % blk.head_dim != 0)
      fail("tensor '" + p + "attn.query.proj.weight': width " + std::to_string(q_width) +
           " is not a multiple of the key dim " + std::to_string(blk.head_dim));
    blk.heads = q_width / blk.head_dim;
    blk.query = b.pointwise(p + "attn.query.proj.weight", in, q_width);
    blk.key = b.pointwise(p + "attn.key.proj.weight", in, blk.head_dim);
    blk.value = b.pointwise(p + "attn.value.proj.weight", in, blk.head_dim);
    blk.output = b.pointwise(p + "attn.output.proj.weight", q_width, in);
    if (b.has(p + "attn.key.down_conv.weight") || b.has(p + "attn.value.down_conv.weight")) {
      blk.key_down = b.depthwise(p + "attn.key.down_conv.weight", in);
      blk.value_down = b.depthwise(p + "attn.value.down_conv.weight", in);
      blk.key_norm = b.vec(p + "attn.key.norm.weight", in);
      blk.value_norm = b.vec(p + "attn.value.norm.weight", in);
    }
    blk.residual = true;
  } else if (b.has(p + "pw_exp.conv.weight")) {
    blk.kind = VisionBlockKind::UniversalInvertedResidual;
    if (b.has(p + "dw_start.conv.weight")) {
      blk.dw_start = b.depthwise(p + "dw_start.conv.weight", in);
      blk.dw_start_norm = b.vec(p + "dw_start.bn.weight", in);
    }
    const int64_t mid = b.shape(p + "pw_exp.conv.weight")[3];
    blk.pw_exp = b.pointwise(p + "pw_exp.conv.weight", in, mid);
    blk.pw_exp_norm = b.vec(p + "pw_exp.bn.weight", mid);
    if (b.has(p + "dw_mid.conv.weight")) {
      blk.dw_mid = b.depthwise(p + "dw_mid.conv.weight", mid);
      blk.dw_mid_norm = b.vec(p + "dw_mid.bn.weight", mid);
    }
    // timm puts a stage start's stride in dw_start when there is no dw_mid; with neither it cannot stride.
    if (blk.stride == 2 && blk.dw_mid.empty() && blk.dw_start.empty())
      fail("block " + p + "* starts a stage but has no depthwise conv to stride with");
    blk.out = b.shape(p + "pw_proj.conv.weight")[3];
    blk.pw_proj = b.pointwise(p + "pw_proj.conv.weight", mid, blk.out);
    blk.pw_proj_norm = b.vec(p + "pw_proj.bn.weight", blk.out);
    blk.residual = blk.stride == 1 && in == blk.out;
  } else {
    fail("block " + p + "* has none of conv_exp.weight, attn.query.proj.weight, pw_exp.conv.weight");
  }
  // Layer scale: ER blocks have none in timm, but honour one if a file has it.
  if (b.has(p + "layer_scale.gamma")) blk.layer_scale = b.vec(p + "layer_scale.gamma", blk.out, true);
  return blk;
}

VisionTowerWeights bind_tower(const GgufFile& f, const MmprojConfig& c) {
  Binder b(f);
  VisionTowerWeights w;
  w.stem = b.full_conv("v.conv_stem.conv.weight", 3);
  const int64_t c0 = w.stem.out;
  w.stem_bias = b.vec("v.conv_stem.conv.bias", c0, true);
  w.stem_norm = b.vec("v.conv_stem.bn.weight", c0);

  const auto found = find_blocks(f);
  if (found.size() < 2) fail("the tower has " + std::to_string(found.size()) + " stages; the fusion adapter needs two");
  int stage_no = 0;
  int64_t ch = c0;
  std::vector<int64_t> stage_out;
  for (const auto& [s, blocks] : found) {
    if (s != stage_no) fail("stage " + std::to_string(stage_no) + " has no blocks (v.blk." + std::to_string(s) + ".* exists)");
    int block_no = 0;
    for (const auto& entry : blocks) {
      if (entry.first != block_no)
        fail("block v.blk." + std::to_string(s) + "." + std::to_string(block_no) + ".* is missing");
      VisionBlock blk = bind_block(b, s, block_no, ch);
      ch = blk.out;
      w.blocks.push_back(std::move(blk));
      ++block_no;
    }
    w.stage_last.push_back(w.blocks.size() - 1);
    stage_out.push_back(ch);
    ++stage_no;
  }

  w.msfa_in = stage_out[stage_out.size() - 2] + stage_out.back();
  const int64_t mid = b.shape("v.msfa.ffn.pw_exp.conv.weight")[3];
  w.msfa_exp = b.pointwise("v.msfa.ffn.pw_exp.conv.weight", w.msfa_in, mid);
  w.msfa_exp_norm = b.vec("v.msfa.ffn.pw_exp.bn.weight", mid);
  w.msfa_proj = b.pointwise("v.msfa.ffn.pw_proj.conv.weight", mid, c.vision_width);
  w.msfa_proj_norm = b.vec("v.msfa.ffn.pw_proj.bn.weight", c.vision_width);
  w.msfa_norm = b.vec("v.msfa.norm.weight", c.vision_width);
  return w;
}

VisionEmbedderWeights bind_embedder(const GgufFile& f, MmprojConfig& c) {
  Binder b(f);
  VisionEmbedderWeights e;
  // fixture README §4.3 rule 1: vision width = ne[0], text width = ne[1] of the projection.
  const auto pne = b.shape("mm.input_projection.weight");
  c.vision_width = pne[0];
  c.text_width = pne[1];
  if (pne[2] != 1 || pne[3] != 1) fail("tensor 'mm.input_projection.weight' has shape " + shape_str(pne) + ", expected 2 dims");
  if (auto cv = f.get_int("clip.vision.embedding_length"); cv && *cv != c.vision_width)
    fail("clip.vision.embedding_length " + std::to_string(*cv) + " differs from mm.input_projection.weight ne[0] " + std::to_string(c.vision_width));
  if (auto ct = f.get_int("clip.vision.projection_dim"); ct && *ct != c.text_width)
    fail("clip.vision.projection_dim " + std::to_string(*ct) + " differs from mm.input_projection.weight ne[1] " + std::to_string(c.text_width));
  e.projection = b.matrix("mm.input_projection.weight", c.vision_width, c.text_width);
  e.soft_norm = b.vec("mm.soft_emb_norm.weight", c.vision_width);
  e.hard_norm = b.vec("mm.hard_emb_norm.weight", c.vision_width);
  const auto ene = b.shape("mm.embedding.weight");
  c.n_hard = ene[1];
  e.hard_table = b.matrix("mm.embedding.weight", c.vision_width, c.n_hard);
  return e;
}

}  // namespace

Mmproj load_mmproj(GgufFile file) {
  Mmproj m;
  m.file = std::make_unique<GgufFile>(std::move(file));
  m.config = read_config(*m.file);
  m.embedder = bind_embedder(*m.file, m.config);  // first: it fixes the vision width the tower ends in
  m.tower = bind_tower(*m.file, m.config);
  return m;
}

Mmproj load_mmproj(const std::string& path) { return load_mmproj(GgufFile::open(path)); }

}  // namespace g3n
