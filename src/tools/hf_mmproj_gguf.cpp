#include "tools/hf_mmproj_gguf.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <utility>

#include "base/thread_pool.h"
#include "quant/fp16.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

const std::string kVision = "model.vision_tower.timm_model.", kAudio = "model.audio_tower.";

// Audio tower suffixes (multimodal spec §4.2), per conformer block and global.
const std::pair<const char*, const char*> kAudioBlock[] = {
    {"ffw_layer_start.pre_layer_norm.weight", "ffn_norm.weight"},
    {"ffw_layer_start.ffw_layer_1.weight", "ffn_up.weight"},
    {"ffw_layer_start.ffw_layer_2.weight", "ffn_down.weight"},
    {"ffw_layer_start.post_layer_norm.weight", "ffn_post_norm.weight"},
    {"attention.pre_attn_norm.weight", "ln1.weight"},
    {"attention.attn.per_dim_scale", "per_dim_scale"},
    {"attention.attn.relative_position_embedding.pos_proj.weight", "linear_pos.weight"},
    {"attention.attn.q_proj.weight", "attn_q.weight"},
    {"attention.attn.k_proj.weight", "attn_k.weight"},
    {"attention.attn.v_proj.weight", "attn_v.weight"},
    {"attention.post.weight", "attn_out.weight"},
    {"attention.post_norm.weight", "ln2.weight"},
    {"lconv1d.pre_layer_norm.weight", "conv_norm.weight"},
    {"lconv1d.linear_start.weight", "conv_pw1.weight"},
    {"lconv1d.depthwise_conv1d.weight", "conv_dw.weight"},
    {"lconv1d.conv_norm.weight", "norm_conv.weight"},
    {"lconv1d.linear_end.weight", "conv_pw2.weight"},
    {"ffw_layer_end.pre_layer_norm.weight", "ffn_norm_1.weight"},
    {"ffw_layer_end.ffw_layer_1.weight", "ffn_up_1.weight"},
    {"ffw_layer_end.ffw_layer_2.weight", "ffn_down_1.weight"},
    {"ffw_layer_end.post_layer_norm.weight", "ffn_post_norm_1.weight"},
    {"norm.weight", "layer_pre_norm.weight"},
};
const std::pair<const char*, const char*> kFixed[] = {
    {"model.audio_tower.subsample_conv_projection.conv_0.conv.weight", "a.conv1d.0.weight"},
    {"model.audio_tower.subsample_conv_projection.conv_0.norm.weight", "a.conv1d.0.norm.weight"},
    {"model.audio_tower.subsample_conv_projection.conv_1.conv.weight", "a.conv1d.1.weight"},
    {"model.audio_tower.subsample_conv_projection.conv_1.norm.weight", "a.conv1d.1.norm.weight"},
    {"model.audio_tower.subsample_conv_projection.input_proj_linear.weight", "a.pre_encode.out.weight"},
    {"model.embed_vision.embedding.weight", "mm.embedding.weight"},
    {"model.embed_vision.hard_embedding_norm.weight", "mm.hard_emb_norm.weight"},
    {"model.embed_vision.soft_embedding_norm.weight", "mm.soft_emb_norm.weight"},
    {"model.embed_vision.embedding_projection.weight", "mm.input_projection.weight"},
    {"model.embed_audio.embedding.weight", "mm.a.embedding.weight"},
    {"model.embed_audio.hard_embedding_norm.weight", "mm.a.hard_emb_norm.weight"},
    {"model.embed_audio.soft_embedding_norm.weight", "mm.a.soft_emb_norm.weight"},
    {"model.embed_audio.embedding_projection.weight", "mm.a.input_projection.weight"},
};

bool starts(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends(const std::string& s, const std::string& p) { return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0; }

// Scales and the stem bias are per-channel vectors that the runtime broadcasts over [W, H, C, N].
bool channel_vector(const std::string& g) { return ends(g, "layer_scale.gamma") || g == "v.conv_stem.conv.bias"; }

// The fixtures' (and llama.cpp's) F16 rule: 1-D, the stem, the SSCP convs, the depthwise 1-D convs and
// the layer scales stay F32; the other matrices and convs take the tower type.
GgmlType tower_type(const std::string& g, size_t n_dims, bool f32) {
  if (f32 || n_dims <= 1 || starts(g, "v.conv_stem.") || starts(g, "a.conv1d.") || ends(g, "conv_dw.weight") || channel_vector(g))
    return GgmlType::F32;
  return GgmlType::F16;
}

void decode(const std::string& dtype, const uint8_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (dtype == "F32") {
      std::memcpy(dst + i, src + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = dtype == "BF16" ? bf16_to_fp32(h) : fp16_to_fp32_fast(h);
    }
  }
}

}  // namespace

std::string hf_mmproj_name(const std::string& h) {
  for (const auto& [hf, g] : kFixed)
    if (h == hf) return g;
  if (starts(h, kVision)) {
    std::string s = h.substr(kVision.size());
    if (starts(s, "blocks.")) s = "blk." + s.substr(7);
    return "v." + s;
  }
  if (starts(h, kAudio + "conformer.")) {
    const std::string rest = h.substr(kAudio.size() + 10);
    const size_t dot = rest.find('.');
    if (dot == std::string::npos) return "";
    const std::string idx = rest.substr(0, dot), suffix = rest.substr(dot + 1);
    for (const auto& [hf, g] : kAudioBlock)
      if (suffix == hf) return "a.blk." + idx + "." + g;
  }
  return "";
}

std::string hf_mmproj_source(const std::string& g) {
  for (const auto& [hf, gg] : kFixed)
    if (g == gg) return hf;
  if (starts(g, "v.")) {
    std::string s = g.substr(2);
    if (starts(s, "blk.")) s = "blocks." + s.substr(4);
    return kVision + s;
  }
  if (starts(g, "a.blk.")) {
    const std::string rest = g.substr(6);
    const size_t dot = rest.find('.');
    if (dot == std::string::npos) return "";
    const std::string idx = rest.substr(0, dot), suffix = rest.substr(dot + 1);
    for (const auto& [hf, gg] : kAudioBlock)
      if (suffix == gg) return kAudio + "conformer." + idx + "." + hf;
  }
  return "";
}

std::vector<HfMmprojTensor> hf_mmproj_tensors(const HfCheckpoint& ck, const HfMmprojOptions& opt) {
  std::vector<HfMmprojTensor> out;
  for (const auto& n : ck.tensor_names()) {
    const std::string g = hf_mmproj_name(n);
    if (g.empty()) continue;
    const bool audio = starts(g, "a.") || starts(g, "mm.a.");
    if (audio ? !opt.audio : !opt.vision) continue;
    const HfTensorRef r = ck.get(n);
    std::vector<int64_t> ne(r.tensor->shape.rbegin(), r.tensor->shape.rend());
    // Safetensors allows scalars and empty dimensions; no tower tensor is either (the writer indexes ne[0],
    // the head count divides by a width).
    if (ne.empty() || std::find(ne.begin(), ne.end(), 0) != ne.end())
      throw HfCheckpointError(r.file->path() + ": tensor '" + n + "' is a scalar or has an empty dimension");
    if (channel_vector(g) && ne.size() == 1) ne = {1, 1, ne[0], 1};
    out.push_back({g, n, ne, tower_type(g, ne.size(), opt.f32)});
  }
  return out;
}

uint64_t hf_mmproj_bytes(const HfCheckpoint& ck, const HfMmprojOptions& opt) {
  uint64_t n = 0;
  for (const auto& t : hf_mmproj_tensors(ck, opt)) {
    const auto* st = ck.get(t.source).tensor;
    n += st->end - st->begin;
  }
  return n;
}

void write_hf_mmproj_gguf(const HfCheckpoint& ck, const std::string& out_path, const HfMmprojOptions& opt) {
  const auto tensors = hf_mmproj_tensors(ck, opt);
  auto has = [&](const char* prefix) {
    return std::any_of(tensors.begin(), tensors.end(), [&](const HfMmprojTensor& t) { return starts(t.name, prefix); });
  };
  const bool vision = opt.vision && has("v."), audio = opt.audio && has("a.");
  if (opt.vision && !vision) throw HfCheckpointError(ck.dir() + ": no vision tower tensors (" + kVision + "*); use --no-vision");
  if (opt.audio && !audio) throw HfCheckpointError(ck.dir() + ": no audio tower tensors (" + kAudio + "*); use --no-audio");
  auto dim = [&](const char* name, size_t i) -> int64_t {
    for (const auto& t : tensors)
      if (t.name == name && i < t.ne.size()) return t.ne[i];
    throw HfCheckpointError(ck.dir() + ": tensor " + hf_mmproj_source(name) + " is missing");
  };
  GgufWriter w;
  w.set_string("general.architecture", "clip");
  w.set_string("general.type", "mmproj");
  w.set_u32("general.file_type", opt.f32 ? 0 : 1);
  w.set_bool("clip.has_vision_encoder", vision);
  w.set_bool("clip.has_audio_encoder", audio);
  const HfMmprojConfig& mc = ck.mmproj_config();
  if (vision) {
    w.set_string("clip.vision.projector_type", "gemma3nv");
    w.set_u32("clip.vision.projection_dim", static_cast<uint32_t>(dim("mm.input_projection.weight", 1)));
    w.set_u32("clip.vision.embedding_length", static_cast<uint32_t>(dim("mm.input_projection.weight", 0)));
    w.set_u32("clip.vision.image_size", static_cast<uint32_t>(mc.image_size));
    w.set_u32("clip.vision.patch_size", static_cast<uint32_t>(mc.image_size / 256));
    w.set_array_f32("clip.vision.image_mean", {0, 0, 0});
    w.set_array_f32("clip.vision.image_std", {1, 1, 1});
    w.set_f32("clip.vision.attention.layer_norm_epsilon", static_cast<float>(mc.vision_eps));
  }
  if (audio) {
    w.set_string("clip.audio.projector_type", "gemma3na");
    w.set_u32("clip.audio.projection_dim", static_cast<uint32_t>(dim("mm.a.input_projection.weight", 1)));
    w.set_u32("clip.audio.embedding_length", static_cast<uint32_t>(dim("a.blk.0.ln1.weight", 0)));
    w.set_u32("clip.audio.feed_forward_length", static_cast<uint32_t>(dim("a.blk.0.ffn_up.weight", 1)));
    uint32_t blocks = 0;
    while (std::any_of(tensors.begin(), tensors.end(), [&](const HfMmprojTensor& t) { return starts(t.name, "a.blk." + std::to_string(blocks) + "."); })) ++blocks;
    w.set_u32("clip.audio.block_count", blocks);
    const int64_t width = dim("a.blk.0.ln1.weight", 0), head_dim = dim("a.blk.0.per_dim_scale", 0);
    if (width % head_dim != 0)
      throw HfCheckpointError(ck.dir() + ": the audio tower's width " + std::to_string(width) + " is not a multiple of its head size " +
                              std::to_string(head_dim));
    w.set_u32("clip.audio.attention.head_count", static_cast<uint32_t>(width / head_dim));
    w.set_u32("clip.audio.num_mel_bins", static_cast<uint32_t>(mc.audio_mel_bins));
    w.set_f32("clip.audio.attention.layer_norm_epsilon", static_cast<float>(mc.audio_eps));
  }
  w.set_u32("general.quantization_version", 2);
  auto pool = std::make_shared<ThreadPool>(opt.n_threads > 0 ? opt.n_threads : default_thread_count());
  auto done = std::make_shared<std::atomic<uint64_t>>(0);
  const auto progress = opt.progress;
  for (const auto& t : tensors) {
    const HfTensorRef r = ck.get(t.source);
    const std::string& dt = r.tensor->dtype;
    if (dt != "BF16" && dt != "F16" && dt != "F32")
      throw HfCheckpointError(r.file->path() + ": tensor '" + t.source + "' has dtype " + dt + "; expected BF16, F16 or F32");
    const int64_t n0 = t.ne[0];
    const uint64_t in_row = static_cast<uint64_t>(n0) * r.tensor->elem_bytes, out_row = *ggml_row_bytes(t.type, static_cast<uint64_t>(n0));
    const GgmlType type = t.type;
    w.add_tensor_lazy(t.name, t.type, t.ne, [=](int64_t r0, int64_t n, uint8_t* dst) {
      pool->parallel_for(n, [&](int64_t b, int64_t e, int) {
        std::vector<float> row(static_cast<size_t>(n0));
        for (int64_t i = b; i < e; ++i) {
          decode(dt, r.file->data(*r.tensor) + static_cast<uint64_t>(r0 + i) * in_row, row.data(), n0);
          quantize_row(type, row.data(), dst + i * out_row, n0);
        }
      }, 16);
      r.file->drop_pages(r.file->data(*r.tensor) + static_cast<uint64_t>(r0) * in_row, in_row * static_cast<uint64_t>(n));
      const uint64_t now = done->fetch_add(in_row * static_cast<uint64_t>(n)) + in_row * static_cast<uint64_t>(n);
      if (progress) progress(now);
    });
  }
  w.write(out_path);
}

}  // namespace g3n
