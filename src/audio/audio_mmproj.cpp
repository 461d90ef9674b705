#include "audio/audio_mmproj.h"

#include <set>
#include <stdexcept>
#include <utility>

#include "gguf/gguf.h"
#include "model/tensor_binder.h"

namespace g3n {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("audio mmproj: " + msg); }

// README §5 rule 5: F32 and F16 everywhere; the big matrices may also be BF16 or Q8_0.
using Binder = TensorBinder;
using Kind = TensorKind;

int64_t required_int(const GgufFile& f, const std::string& key) {
  auto v = f.get_int(key);
  if (!v) fail("missing key '" + key + "'");
  return *v;
}

// Rule 1: architecture, audio encoder flag, projector type.
void check_kind(const GgufFile& f) {
  const std::string arch = f.get_string("general.architecture").value_or("");
  if (arch != "clip") fail("general.architecture is '" + arch + "', expected 'clip'");
  if (f.get_bool("clip.has_audio_encoder") != true)
    fail("clip.has_audio_encoder is not true: this projector has no audio tower (a vision-only file?)");
  const std::string proj = f.get_string("clip.audio.projector_type").value_or("");
  if (proj != "gemma3na") fail("clip.audio.projector_type is '" + proj + "', expected 'gemma3na' (Gemma 3n audio)");
}

// Layers = distinct a.blk.<i>.*, which must be 0 .. n-1.
int64_t count_layers(const GgufFile& f) {
  std::set<int64_t> seen;
  for (const auto& t : f.tensors()) {
    if (t.name.rfind("a.blk.", 0) != 0) continue;
    size_t pos = 6;
    int64_t v = 0;
    while (pos < t.name.size() && t.name[pos] >= '0' && t.name[pos] <= '9' && pos < 10) v = v * 10 + (t.name[pos++] - '0');
    if (pos == 6 || pos >= t.name.size() || t.name[pos] != '.') fail("tensor '" + t.name + "': not an a.blk.<layer>.* name");
    seen.insert(v);
  }
  if (seen.empty()) fail("no conformer layers (no a.blk.<i>.* tensors)");
  int64_t i = 0;
  for (int64_t l : seen)
    if (l != i++) fail("conformer layer " + std::to_string(i - 1) + " is missing (a.blk." + std::to_string(l) + ".* exists)");
  return static_cast<int64_t>(seen.size());
}

// The group-norm scale of SSCP block b: the fixture's name, or the suffix-less form an upstream mapping of
// the bare HF parameter would give (README §5 rule 6: accept both).
std::string sscp_norm_name(const Binder& b, int block) {
  const std::string p = "a.conv1d." + std::to_string(block) + ".norm";
  return b.has(p + ".weight") || !b.has(p) ? p + ".weight" : p;
}

AudioSscpConv bind_sscp_conv(const Binder& b, int block, int64_t in) {
  const std::string name = "a.conv1d." + std::to_string(block) + ".weight";
  const auto ne = b.shape(name);
  // ne [3 (freq), 3 (time), Cin, Cout] = PyTorch [Cout][Cin][time][freq] (trap T16).
  if (ne[0] != kAudioSscpKernel || ne[1] != kAudioSscpKernel || ne[2] != in)
    fail("tensor '" + name + "' has shape " + shape_str(ne) + ", expected [3, 3, " + std::to_string(in) + ", C]");
  AudioSscpConv c;
  c.in = in;
  c.out = ne[3];
  const std::vector<float> src = b.decode(name);
  const int64_t K = 9 * in;
  c.w.resize(static_cast<size_t>(c.out * K));
  for (int64_t o = 0; o < c.out; ++o)
    for (int64_t ci = 0; ci < in; ++ci)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j)
          c.w[static_cast<size_t>(o * K + (i * 3 + j) * in + ci)] = src[static_cast<size_t>(((o * in + ci) * 3 + i) * 3 + j)];
  c.norm = b.vec(sscp_norm_name(b, block), c.out);
  return c;
}

AudioLayerWeights bind_layer(const Binder& b, const AudioConfig& c, int64_t i) {
  const std::string p = "a.blk." + std::to_string(i) + ".";
  const int64_t D = c.width, F = c.ffn_width;
  AudioLayerWeights l;
  l.ffn_norm = b.vec(p + "ffn_norm.weight", D);
  l.ffn_up = b.matrix(p + "ffn_up.weight", D, F);
  l.ffn_down = b.matrix(p + "ffn_down.weight", F, D);
  l.ffn_post_norm = b.vec(p + "ffn_post_norm.weight", D);
  l.attn_norm = b.vec(p + "ln1.weight", D);
  l.per_dim_scale = b.vec(p + "per_dim_scale", c.head_dim);
  l.pos = b.matrix(p + "linear_pos.weight", D, D);
  l.q = b.matrix(p + "attn_q.weight", D, D);
  l.k = b.matrix(p + "attn_k.weight", D, D);
  l.v = b.matrix(p + "attn_v.weight", D, D);
  l.out = b.matrix(p + "attn_out.weight", D, D);
  l.attn_post_norm = b.vec(p + "ln2.weight", D);
  l.conv_pre_norm = b.vec(p + "conv_norm.weight", D);
  l.conv_pw1 = b.matrix(p + "conv_pw1.weight", D, 2 * D);
  b.expect(p + "conv_dw.weight", {c.conv_kernel, 1, D}, Kind::Small);
  const std::vector<float> dw = b.decode(p + "conv_dw.weight");  // PyTorch [D][1][kernel]
  l.conv_dw.resize(dw.size());
  for (int64_t ch = 0; ch < D; ++ch)
    for (int64_t k = 0; k < c.conv_kernel; ++k) l.conv_dw[static_cast<size_t>(k * D + ch)] = dw[static_cast<size_t>(ch * c.conv_kernel + k)];
  l.conv_norm = b.vec(p + "norm_conv.weight", D);
  l.conv_pw2 = b.matrix(p + "conv_pw2.weight", D, D);
  l.ffn_norm_end = b.vec(p + "ffn_norm_1.weight", D);
  l.ffn_up_end = b.matrix(p + "ffn_up_1.weight", D, F);
  l.ffn_down_end = b.matrix(p + "ffn_down_1.weight", F, D);
  l.ffn_post_norm_end = b.vec(p + "ffn_post_norm_1.weight", D);
  l.final_norm = b.vec(p + "layer_pre_norm.weight", D);
  return l;
}

// Rule 2: geometry from shapes, cross-checked with the keys.
AudioConfig read_geometry(const GgufFile& f, const Binder& b) {
  AudioConfig c;
  c.mel_bins = required_int(f, "clip.audio.num_mel_bins");
  if (c.mel_bins != 128) fail("clip.audio.num_mel_bins is " + std::to_string(c.mel_bins) + ", expected 128");
  c.width = b.shape("a.blk.0.ln1.weight")[0];
  c.n_layers = count_layers(f);
  c.head_dim = b.shape("a.blk.0.per_dim_scale")[0];
  if (c.width % c.head_dim != 0)
    fail("width " + std::to_string(c.width) + " (a.blk.0.ln1.weight) is not a multiple of the head dim " + std::to_string(c.head_dim) +
         " (a.blk.0.per_dim_scale)");
  c.n_heads = c.width / c.head_dim;
  c.ffn_width = b.shape("a.blk.0.ffn_up.weight", Kind::Matrix)[1];
  c.conv_kernel = b.shape("a.blk.0.conv_dw.weight")[0];
  const auto pne = b.shape("mm.a.input_projection.weight", Kind::Matrix);
  c.text_width = pne[1];
  c.n_hard = b.shape("mm.a.embedding.weight", Kind::Matrix)[1];
  c.pad_row = c.n_hard - 1;
  auto cross = [&](const char* key, int64_t value, const char* from) {
    if (auto v = f.get_int(key); v && *v != value)
      fail(std::string(key) + " is " + std::to_string(*v) + " but " + from + " gives " + std::to_string(value));
  };
  cross("clip.audio.embedding_length", c.width, "a.blk.0.ln1.weight");
  cross("clip.audio.block_count", c.n_layers, "the a.blk.<i> tensors");
  cross("clip.audio.attention.head_count", c.n_heads, "a.blk.0.per_dim_scale");
  cross("clip.audio.projection_dim", c.text_width, "mm.a.input_projection.weight");
  c.sscp_freq[0] = c.mel_bins;
  for (int i = 0; i < 2; ++i) c.sscp_freq[i + 1] = (c.sscp_freq[i] + 2 - kAudioSscpKernel) / 2 + 1;
  return c;
}

}  // namespace

bool gguf_has_audio_tower(const GgufFile& f) {
  return f.get_bool("clip.has_audio_encoder").value_or(false) && f.get_string("clip.audio.projector_type").value_or("") == "gemma3na";
}

AudioMmproj load_audio_mmproj(GgufFile file) {
  AudioMmproj m;
  m.file = std::make_unique<GgufFile>(std::move(file));
  const GgufFile& f = *m.file;
  check_kind(f);
  const Binder b(f, "audio mmproj", /*quantized_small=*/false);
  AudioConfig& c = m.config;
  c = read_geometry(f, b);
  AudioTowerWeights& t = m.tower;
  t.conv[0] = bind_sscp_conv(b, 0, 1);
  t.conv[1] = bind_sscp_conv(b, 1, t.conv[0].out);
  c.sscp_channels[0] = t.conv[0].out;
  c.sscp_channels[1] = t.conv[1].out;
  t.input_proj = b.matrix("a.pre_encode.out.weight", c.sscp_freq[2] * c.sscp_channels[1], c.width);
  for (int64_t i = 0; i < c.n_layers; ++i) t.layers.push_back(bind_layer(b, c, i));
  AudioEmbedderWeights& e = m.embedder;
  e.hard_table = b.matrix("mm.a.embedding.weight", c.width, c.n_hard);
  e.hard_norm = b.vec("mm.a.hard_emb_norm.weight", c.width);
  e.soft_norm = b.vec("mm.a.soft_emb_norm.weight", c.width);
  e.projection = b.matrix("mm.a.input_projection.weight", c.width, c.text_width);
  return m;
}

AudioMmproj load_audio_mmproj(const std::string& path) { return load_audio_mmproj(GgufFile::open(path)); }

}  // namespace g3n
