// MobileNet-V5 tower, exact path. Each function is one step of the fixture README's §1 block table and
// §4.3 rule set; threading splits output rows or pixels, so every value's arithmetic is fixed by the
// code alone (no dependence on the thread count).
#include "vision/mobilenet_v5.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "base/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace g3n {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("vision tower: " + msg); }

int64_t conv_out_size(int64_t n, int64_t k, int stride, SamePad p) { return (n + p.before + p.after - k) / stride + 1; }

// y = x + layer_scale ⊙ branch (or just layer_scale ⊙ branch without a residual), in place in branch.
void finish_block(const VisionBlock& b, const VisionMap& x, VisionMap& branch, ThreadPool& pool) {
  const int64_t C = branch.c;
  pool.parallel_for(branch.pixels(), [&](int64_t begin, int64_t end, int) {
    for (int64_t p = begin; p < end; ++p) {
      float* y = branch.data.data() + p * C;
      if (!b.layer_scale.empty())
        for (int64_t c = 0; c < C; ++c) y[c] *= b.layer_scale[c];
      if (b.residual) {
        const float* s = x.data.data() + p * C;
        for (int64_t c = 0; c < C; ++c) y[c] += s[c];
      }
    }
  }, 64);
}

}  // namespace

VisionMap vision_map_from_chw(const float* chw, int64_t c, int64_t h, int64_t w) {
  VisionMap m(h, w, c);
  for (int64_t ch = 0; ch < c; ++ch)
    for (int64_t p = 0; p < h * w; ++p) m.data[static_cast<size_t>(p * c + ch)] = chw[ch * h * w + p];
  return m;
}

std::vector<float> vision_map_to_chw(const VisionMap& m) {
  std::vector<float> out(m.data.size());
  for (int64_t p = 0; p < m.pixels(); ++p)
    for (int64_t ch = 0; ch < m.c; ++ch) out[static_cast<size_t>(ch * m.pixels() + p)] = m.data[static_cast<size_t>(p * m.c + ch)];
  return out;
}

SamePad same_padding(int64_t n, int64_t k, int stride) {
  if (stride == 1) return {k / 2, k / 2};
  const int64_t total = std::max<int64_t>((( n + stride - 1) / stride - 1) * stride + k - n, 0);
  return {total / 2, total - total / 2};
}

// Dense k×k convolution (stem, edge-residual conv_exp), SAME padding.
VisionMap conv2d_full(const VisionMap& x, const ConvKernel& k, int stride, ThreadPool& pool) {
  if (x.c != k.in) fail("conv input has " + std::to_string(x.c) + " channels, kernel expects " + std::to_string(k.in));
  const SamePad py = same_padding(x.h, k.k, stride), px = same_padding(x.w, k.k, stride);
  VisionMap y(conv_out_size(x.h, k.k, stride, py), conv_out_size(x.w, k.k, stride, px), k.out);
  pool.parallel_for(y.h, [&](int64_t begin, int64_t end, int) {
    for (int64_t oy = begin; oy < end; ++oy)
      for (int64_t ox = 0; ox < y.w; ++ox) {
        float* out = y.at(oy, ox);
        for (int64_t o = 0; o < k.out; ++o) {
          float acc = 0;
          for (int64_t ky = 0; ky < k.k; ++ky) {
            const int64_t iy = oy * stride - py.before + ky;
            if (iy < 0 || iy >= x.h) continue;  // zero padding
            for (int64_t kx = 0; kx < k.k; ++kx) {
              const int64_t ix = ox * stride - px.before + kx;
              if (ix < 0 || ix >= x.w) continue;
              acc += dot_f32(k.w.data() + ((o * k.k + ky) * k.k + kx) * k.in, x.at(iy, ix), k.in);
            }
          }
          out[o] = acc;
        }
      }
  });
  return y;
}

// Depthwise k×k convolution (UIR dw_start/dw_mid, MQA K/V down_conv), SAME padding.
VisionMap conv2d_depthwise(const VisionMap& x, const ConvKernel& k, int stride, ThreadPool& pool) {
  if (x.c != k.in) fail("depthwise conv input has " + std::to_string(x.c) + " channels, kernel expects " + std::to_string(k.in));
  const SamePad py = same_padding(x.h, k.k, stride), px = same_padding(x.w, k.k, stride);
  VisionMap y(conv_out_size(x.h, k.k, stride, py), conv_out_size(x.w, k.k, stride, px), x.c);
  const int64_t C = x.c;
  pool.parallel_for(y.h, [&](int64_t begin, int64_t end, int) {
    for (int64_t oy = begin; oy < end; ++oy)
      for (int64_t ox = 0; ox < y.w; ++ox) {
        float* out = y.at(oy, ox);  // zero-initialised
        for (int64_t ky = 0; ky < k.k; ++ky) {
          const int64_t iy = oy * stride - py.before + ky;
          if (iy < 0 || iy >= x.h) continue;
          for (int64_t kx = 0; kx < k.k; ++kx) {
            const int64_t ix = ox * stride - px.before + kx;
            if (ix < 0 || ix >= x.w) continue;
            const float* in = x.at(iy, ix);
            const float* w = k.w.data() + (ky * k.k + kx) * C;
            for (int64_t c = 0; c < C; ++c) out[c] += w[c] * in[c];
          }
        }
      }
  });
  return y;
}

// 1×1 convolution = matmul with pixels as tokens (weights decoded to f32 row by row: the exact mode).
VisionMap conv2d_pointwise(const VisionMap& x, const WeightMatrix& w, ThreadPool& pool) {
  if (x.c != w.n_in) fail("1x1 conv input has " + std::to_string(x.c) + " channels, weight expects " + std::to_string(w.n_in));
  VisionMap y(x.h, x.w, w.n_out);
  MatmulScratch scratch;
  matmul(w, x.data.data(), x.c, x.pixels(), y.data.data(), y.c, pool, MatmulMode::Exact, scratch);
  return y;
}

// RmsNorm2d: per pixel over channels, no mean subtraction, with weight (trap 2).
void rms_norm_2d(VisionMap& x, const std::vector<float>& weight, float eps, ThreadPool& pool) {
  pool.parallel_for(x.pixels(), [&](int64_t begin, int64_t end, int) {
    for (int64_t p = begin; p < end; ++p) {
      float* v = x.data.data() + p * x.c;
      rms_norm(v, weight.data(), v, x.c, eps);
    }
  }, 64);
}

// tanh-approximated gelu (trap 3).
void gelu_map(VisionMap& x, ThreadPool& pool) {
  pool.parallel_for(static_cast<int64_t>(x.data.size()), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) x.data[static_cast<size_t>(i)] = gelu_tanh(x.data[static_cast<size_t>(i)]);
  }, 4096);
}

VisionMap upsample_nearest(const VisionMap& x, int64_t factor) {
  VisionMap y(x.h * factor, x.w * factor, x.c);
  for (int64_t oy = 0; oy < y.h; ++oy)
    for (int64_t ox = 0; ox < y.w; ++ox) std::copy_n(x.at(oy / factor, ox / factor), x.c, y.at(oy, ox));
  return y;
}

// Average pool, kernel = stride = factor, no padding (trap 9: not a bilinear resize).
VisionMap avg_pool(const VisionMap& x, int64_t factor) {
  VisionMap y(x.h / factor, x.w / factor, x.c);
  const float inv = 1.0f / static_cast<float>(factor * factor);
  for (int64_t oy = 0; oy < y.h; ++oy)
    for (int64_t ox = 0; ox < y.w; ++ox) {
      float* out = y.at(oy, ox);
      for (int64_t dy = 0; dy < factor; ++dy)
        for (int64_t dx = 0; dx < factor; ++dx) {
          const float* in = x.at(oy * factor + dy, ox * factor + dx);
          for (int64_t c = 0; c < x.c; ++c) out[c] += in[c];
        }
      for (int64_t c = 0; c < x.c; ++c) out[c] *= inv;
    }
  return y;
}

namespace {

// Stem: Conv2dSame k×k stride 2 with bias, RmsNorm2d, gelu (trap 1, 16).
VisionMap stem(const VisionTowerWeights& w, const VisionMap& pixels, float eps, ThreadPool& pool) {
  VisionMap y = conv2d_full(pixels, w.stem, 2, pool);
  for (int64_t p = 0; p < y.pixels(); ++p)
    for (int64_t c = 0; c < y.c; ++c) y.data[static_cast<size_t>(p * y.c + c)] += w.stem_bias[c];
  rms_norm_2d(y, w.stem_norm, eps, pool);
  gelu_map(y, pool);
  return y;
}

// Edge residual: conv_exp (k×k, stride) + norm + gelu, conv_pwl (1×1) + norm, no activation (trap 6).
VisionMap edge_residual(const VisionBlock& b, const VisionMap& x, float eps, ThreadPool& pool) {
  VisionMap y = conv2d_full(x, b.conv_exp, b.stride, pool);
  rms_norm_2d(y, b.bn1, eps, pool);
  gelu_map(y, pool);
  y = conv2d_pointwise(y, b.conv_pwl, pool);
  rms_norm_2d(y, b.bn2, eps, pool);
  finish_block(b, x, y, pool);
  return y;
}

// Universal inverted residual: [dw_start + norm] (no act, trap 5), pw_exp + norm + gelu,
// [dw_mid (stride) + norm + gelu], pw_proj + norm, layer scale even without residual (trap 4).
VisionMap universal_inverted_residual(const VisionBlock& b, const VisionMap& x, float eps, ThreadPool& pool) {
  const VisionMap* cur = &x;
  VisionMap y;
  if (!b.dw_start.empty()) {
    const int stride = b.dw_mid.empty() ? b.stride : 1;  // timm: the stride sits in dw_mid when it exists
    y = conv2d_depthwise(x, b.dw_start, stride, pool);
    rms_norm_2d(y, b.dw_start_norm, eps, pool);
    cur = &y;
  }
  VisionMap e = conv2d_pointwise(*cur, b.pw_exp, pool);
  rms_norm_2d(e, b.pw_exp_norm, eps, pool);
  gelu_map(e, pool);
  if (!b.dw_mid.empty()) {
    e = conv2d_depthwise(e, b.dw_mid, b.stride, pool);
    rms_norm_2d(e, b.dw_mid_norm, eps, pool);
    gelu_map(e, pool);
  }
  VisionMap out = conv2d_pointwise(e, b.pw_proj, pool);
  rms_norm_2d(out, b.pw_proj_norm, eps, pool);
  finish_block(b, x, out, pool);
  return out;
}

// Mobile multi-query attention: norm; q = 1×1(x̂); K/V from x̂ (down-sampled by a stride-2 depthwise conv
// + RmsNorm2d each when the block has down_conv, trap 11), one shared head of D (trap 21);
// softmax(q·k / sqrt(D)) v per query head (trap 10); 1×1 output; layer scale; residual.
VisionMap multi_query_attention(const VisionBlock& b, const VisionMap& x, float eps, ThreadPool& pool) {
  VisionMap xn = x;
  rms_norm_2d(xn, b.norm, eps, pool);
  const VisionMap q = conv2d_pointwise(xn, b.query, pool);
  VisionMap k, v;
  if (!b.key_down.empty()) {
    VisionMap kd = conv2d_depthwise(xn, b.key_down, 2, pool);
    rms_norm_2d(kd, b.key_norm, eps, pool);
    k = conv2d_pointwise(kd, b.key, pool);
    VisionMap vd = conv2d_depthwise(xn, b.value_down, 2, pool);
    rms_norm_2d(vd, b.value_norm, eps, pool);
    v = conv2d_pointwise(vd, b.value, pool);
  } else {
    k = conv2d_pointwise(xn, b.key, pool);
    v = conv2d_pointwise(xn, b.value, pool);
  }
  const int64_t D = b.head_dim, H = b.heads, n_kv = k.pixels();
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  VisionMap attn(x.h, x.w, H * D);  // head h's output in channels h·D .. h·D + D - 1
  std::vector<std::vector<float>> scores(static_cast<size_t>(pool.size()), std::vector<float>(static_cast<size_t>(n_kv)));
  pool.parallel_for(q.pixels() * H, [&](int64_t begin, int64_t end, int thread) {
    float* s = scores[static_cast<size_t>(thread)].data();
    for (int64_t i = begin; i < end; ++i) {
      const int64_t p = i / H, h = i % H;
      const float* qh = q.data.data() + p * q.c + h * D;
      for (int64_t j = 0; j < n_kv; ++j) s[j] = dot_f32(qh, k.data.data() + j * D, D) * scale;
      softmax(s, n_kv);
      float* o = attn.data.data() + p * attn.c + h * D;
      for (int64_t j = 0; j < n_kv; ++j) {
        const float* vj = v.data.data() + j * D;
        for (int64_t d = 0; d < D; ++d) o[d] += s[j] * vj[d];
      }
    }
  }, 16);
  VisionMap y = conv2d_pointwise(attn, b.output, pool);
  finish_block(b, x, y, pool);
  return y;
}

// Multi-scale fusion adapter: concat(stage[-2], nearest-up(stage[-1])) (traps 7, 8), 1×1 + norm + gelu,
// 1×1 + norm, avg-pool to the 16×16 grid (trap 9), norm.
VisionMap fuse_multi_scale(const VisionTowerWeights& w, const MmprojConfig& cfg, const VisionMap& hi, const VisionMap& lo,
                           float eps, ThreadPool& pool, const VisionTap& tap) {
  if (lo.h == 0 || lo.w == 0 || hi.h % lo.h != 0 || hi.w % lo.w != 0 || hi.h / lo.h != hi.w / lo.w)
    fail("fusion inputs " + std::to_string(hi.h) + "x" + std::to_string(hi.w) + " and " + std::to_string(lo.h) + "x" +
         std::to_string(lo.w) + " differ by no integer factor");
  const VisionMap up = upsample_nearest(lo, hi.h / lo.h);
  VisionMap cat(hi.h, hi.w, hi.c + up.c);
  for (int64_t p = 0; p < cat.pixels(); ++p) {
    std::copy_n(hi.data.data() + p * hi.c, hi.c, cat.data.data() + p * cat.c);
    std::copy_n(up.data.data() + p * up.c, up.c, cat.data.data() + p * cat.c + hi.c);
  }
  VisionMap e = conv2d_pointwise(cat, w.msfa_exp, pool);
  rms_norm_2d(e, w.msfa_exp_norm, eps, pool);
  gelu_map(e, pool);
  VisionMap y = conv2d_pointwise(e, w.msfa_proj, pool);
  rms_norm_2d(y, w.msfa_proj_norm, eps, pool);
  if (tap) tap("msfa.ffn", y);
  if (y.h != cfg.grid || y.w != cfg.grid) {
    y = avg_pool(y, y.h / cfg.grid);
    if (tap) tap("msfa.pooled", y);
  }
  rms_norm_2d(y, w.msfa_norm, eps, pool);
  return y;
}

}  // namespace

VisionMap run_vision_tower(const Mmproj& mm, const VisionMap& pixels, ThreadPool& pool, const VisionTap& tap) {
  const VisionTowerWeights& w = mm.tower;
  const float eps = mm.config.eps;
  if (pixels.c != 3) fail("input has " + std::to_string(pixels.c) + " channels, expected 3 (RGB)");
  // Every stage halves the grid (ceil); the fusion grid (second-to-last stage) must be a multiple of 16.
  int64_t gh = pixels.h, gw = pixels.w;
  for (size_t s = 0; s < w.stage_last.size(); ++s) {  // the stem and every stage but the last: one halving each
    gh = (gh + 1) / 2;
    gw = (gw + 1) / 2;
  }
  const int64_t G = mm.config.grid;
  if (pixels.h <= 0 || pixels.w <= 0 || pixels.h > 8192 || pixels.w > 8192 || gh % G != 0 || gw % G != 0 || gh / G != gw / G)
    fail("input " + std::to_string(pixels.h) + "x" + std::to_string(pixels.w) + " gives a " + std::to_string(gh) + "x" +
         std::to_string(gw) + " fusion grid; only equal multiples of " + std::to_string(G) + " are supported");

  VisionMap x = stem(w, pixels, eps, pool);
  if (tap) tap("stem", x);
  VisionMap hi;  // output of the second-to-last stage
  size_t stage = 0;
  for (size_t i = 0; i < w.blocks.size(); ++i) {
    const VisionBlock& b = w.blocks[i];
    switch (b.kind) {
      case VisionBlockKind::EdgeResidual: x = edge_residual(b, x, eps, pool); break;
      case VisionBlockKind::UniversalInvertedResidual: x = universal_inverted_residual(b, x, eps, pool); break;
      case VisionBlockKind::MultiQueryAttention: x = multi_query_attention(b, x, eps, pool); break;
    }
    if (tap) tap("blk." + std::to_string(b.stage) + "." + std::to_string(b.index), x);
    if (i == w.stage_last[stage]) {
      if (stage + 2 == w.stage_last.size()) hi = x;
      ++stage;
    }
  }
  return fuse_multi_scale(w, mm.config, hi, x, eps, pool, tap);
}

}  // namespace g3n
