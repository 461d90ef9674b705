// MobileNet-V5 tower, fast path (see mobilenet_v5_fast.h). One function per block kind, in the order of
// the fixture README's §1 block table; each works on tiles of kTile pixels (row-major over the output
// grid) with one thread's scratch, so nothing bigger than a tile of the expanded width is allocated.
#include "vision/mobilenet_v5_fast.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>

#include "base/thread_pool.h"
#include "kernels/conv.h"
#include "vision/encode.h"

namespace g3n {
namespace {

// Two ways to run a block's tiles, chosen by the map's size (both give the same bits: every value's
// arithmetic is fixed by the kernels, not by the tiling or the thread that runs it):
//  * many pixels (stages 0-1): tiles of kTile pixels, one per thread at a time, each thread packing the
//    (small) weights for its own tiles;
//  * few pixels (stages 2-3, fusion): big tiles of kBigTile pixels one after the other, each GEMM split
//    by output channels across threads, so the (large) weights are packed once per big tile, not once
//    per 96 pixels. Needs at most a kBigTile x expanded-width buffer (8.8 MB at 3840 channels).
constexpr int64_t kTile = 192;               // 32 micro-kernel row groups of 6; weights packed per 192 px
constexpr int64_t kBigTile = 576;            // the stage-3 grid at 768x768: one tile per block
constexpr int64_t kBigTileMaxPixels = 2304;  // the stage-2 grid at 768x768
constexpr int64_t kColumnChunk = 4 * kGemmNR;  // output columns per thread task in a split GEMM

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("vision tower: " + msg); }

int64_t conv_out_size(int64_t n, int64_t k, int stride, SamePad p) { return (n + p.before + p.after - k) / stride + 1; }

// One thread's buffers, grown on first use and reused by every tile it takes.
struct Scratch {
  GemmScratch gemm;
  std::vector<float> a, e, s, o, packed;
  static float* get(std::vector<float>& v, int64_t n) {
    if (v.size() < static_cast<size_t>(n)) v.resize(static_cast<size_t>(n));
    return v.data();
  }
};

// How one tile's steps run: on this thread with its scratch, or (parallel) each step split across the pool.
struct Exec {
  Scratch& s;  // the tile's buffers (a, e, o; and the GEMM packing buffer when not parallel)
  bool parallel;
};

class FastTower {
 public:
  FastTower(const Mmproj& mm, ThreadPool& pool, const ConvKernelSet& ks)
      : w_(mm.tower), cfg_(mm.config), ks_(ks), pool_(pool), scratch_(static_cast<size_t>(pool.size())) {}

  VisionMap run(std::span<const float> chw, int64_t n, const FastTowerOptions& opts);

 private:
  // ---- helpers over tiles and rows ----
  // fn(p0, p1, Scratch&) over tiles of `tile` pixels of [0, n), threads taking tiles on demand.
  template <class F>
  void for_tiles(int64_t n_pixels, int64_t tile, F&& fn) {
    const int64_t tiles = (n_pixels + tile - 1) / tile;
    pool_.parallel_for_dynamic(tiles, [&](int64_t b, int64_t e, int thread) {
      for (int64_t i = b; i < e; ++i) fn(i * tile, std::min(n_pixels, (i + 1) * tile), scratch_[static_cast<size_t>(thread)]);
    }, 1);
  }
  // fn(p0, p1, const Exec&) over the tiles of a map of n pixels, in the way its size calls for.
  template <class F>
  void for_each_tile(int64_t n_pixels, F&& fn) {
    if (n_pixels > kBigTileMaxPixels) {
      for_tiles(n_pixels, kTile, [&](int64_t p0, int64_t p1, Scratch& s) { fn(p0, p1, Exec{s, false}); });
      return;
    }
    for (int64_t p0 = 0; p0 < n_pixels; p0 += kBigTile) fn(p0, std::min(n_pixels, p0 + kBigTile), Exec{scratch_[0], pool_.size() > 1});
  }
  // fn(i0, i1, thread) over [0, n) rows, split across the pool when x.parallel (chunks handed out on
  // demand: a thread the OS delays takes fewer of them instead of holding up the tile).
  template <class F>
  void rows(const Exec& x, int64_t n, F&& fn, int64_t grain = 16) {
    if (x.parallel) pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int t) { fn(b, e, t); }, grain);
    else fn(0, n, -1);
  }
  void gemm(const Exec& x, const float* a, int64_t lda, int64_t m, const WeightMatrix& w, float* c, int64_t ldc) {
    if (!x.parallel) return gemm_weights(ks_, a, lda, m, w, c, ldc, x.s.gemm);
    const int64_t chunks = (w.n_out + kColumnChunk - 1) / kColumnChunk;
    if (w.n_out < kGemmPackAMinOut || m < kGemmMR) {
      pool_.parallel_for_dynamic(chunks, [&](int64_t b, int64_t e, int t) {
        gemm_weights_columns(ks_, a, lda, m, w, b * kColumnChunk, std::min(w.n_out, e * kColumnChunk), c, ldc,
                             scratch_[static_cast<size_t>(t)].gemm);
      }, 1);
      return;
    }
    // A packed once for all threads (by 6-row panels, in parallel), then split by columns.
    float* packed = Scratch::get(x.s.packed, packed_activations_size(m, w.n_in));
    const int64_t panels = (m + kGemmMR - 1) / kGemmMR;
    pool_.parallel_for_dynamic(panels, [&](int64_t g0, int64_t g1, int) {
      ks_.pack_activations(a + g0 * kGemmMR * lda, lda, std::min(m, g1 * kGemmMR) - g0 * kGemmMR, w.n_in,
                           packed + g0 * kGemmMR * w.n_in);
    }, 8);
    pool_.parallel_for_dynamic(chunks, [&](int64_t b, int64_t e, int t) {
      gemm_weights_packed_columns(ks_, packed, m, w, b * kColumnChunk, std::min(w.n_out, e * kColumnChunk), c, ldc,
                                  scratch_[static_cast<size_t>(t)].gemm);
    }, 1);
  }
  void norm(const Exec& x, float* v, int64_t ld, int64_t n_rows, const std::vector<float>& weight, bool gelu) {
    rows(x, n_rows, [&](int64_t b, int64_t e, int) {
      ks_.rms_norm_rows(v + b * ld, ld, e - b, static_cast<int64_t>(weight.size()), weight.data(), cfg_.eps, gelu);
    });
  }
  // y = y * layer_scale (when the block has one) + residual (when given), rows of C channels.
  void finish_rows(const Exec& x, const VisionBlock& b, float* y, int64_t n_rows, const float* residual) {
    const int64_t C = b.out;
    const float* ls = b.layer_scale.empty() ? nullptr : b.layer_scale.data();
    if (!ls && !residual) return;
    rows(x, n_rows, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) {
        float* v = y + r * C;
        if (ls)
          for (int64_t c = 0; c < C; ++c) v[c] *= ls[c];
        if (residual)
          for (int64_t c = 0; c < C; ++c) v[c] += residual[r * C + c];
      }
    }, 16);
  }
  // Output pixels [p0, p1) (row-major over a grid ow wide) of a depthwise conv of rows row(iy) of an
  // ih x iw x C input, into dst (p1 - p0 rows of C).
  template <class Row>
  void depthwise_pixels(const Exec& x, Row&& row, int64_t ih, int64_t iw, int64_t C, const ConvKernel& k, int stride, SamePad py,
                        SamePad px, int64_t ow, int64_t p0, int64_t p1, float* dst) {
    rows(x, p1 - p0, [&](int64_t b, int64_t e, int) {
      std::vector<const float*> rp(static_cast<size_t>(k.k));
      for (int64_t p = p0 + b; p < p0 + e;) {
        const int64_t oy = p / ow, ox = p % ow, nx = std::min(ow - ox, p0 + e - p);
        for (int64_t ky = 0; ky < k.k; ++ky) {
          const int64_t iy = oy * stride - py.before + ky;
          rp[static_cast<size_t>(ky)] = iy >= 0 && iy < ih ? row(iy) : nullptr;
        }
        ks_.depthwise_row(rp.data(), iw, C, k.w.data(), static_cast<int>(k.k), stride, px.before, ox, nx, dst + (p - p0) * C);
        p += nx;
      }
    }, 16);
  }
  VisionMap depthwise_map(const VisionMap& x, const ConvKernel& k, int stride, const std::vector<float>& norm_w);
  VisionMap pointwise_map(const VisionMap& x, const WeightMatrix& w);

  // ---- the spec's steps ----
  void stem_rows(std::span<const float> chw, int64_t n, int64_t y0, int64_t y1, float* dst);
  VisionMap stem(std::span<const float> chw, int64_t n);
  template <class Row>
  void edge_residual_tile(const Exec& x, const VisionBlock& b, Row&& row, int64_t ih, int64_t iw, int64_t ow, int64_t p0,
                          int64_t p1, float* out, const float* residual);
  VisionMap edge_residual(const VisionBlock& b, const VisionMap& x);
  VisionMap stem_and_edge_residual(const VisionBlock& b, std::span<const float> chw, int64_t n);
  VisionMap universal_inverted_residual(const VisionBlock& b, const VisionMap& x);
  VisionMap universal_inverted_residual_strided(const VisionBlock& b, const VisionMap& x);
  VisionMap multi_query_attention(const VisionBlock& b, const VisionMap& x);
  VisionMap fuse_multi_scale(const VisionMap& hi, const VisionMap& lo, const VisionTap& tap);

  const VisionTowerWeights& w_;
  const MmprojConfig& cfg_;
  const ConvKernelSet& ks_;
  ThreadPool& pool_;
  std::vector<Scratch> scratch_;
  double stem_seconds_ = 0;  // the stem's share of a streamed stem + first block (for the stage times)
};

VisionMap FastTower::depthwise_map(const VisionMap& x, const ConvKernel& k, int stride, const std::vector<float>& norm_w) {
  const SamePad py = same_padding(x.h, k.k, stride), px = same_padding(x.w, k.k, stride);
  VisionMap y(conv_out_size(x.h, k.k, stride, py), conv_out_size(x.w, k.k, stride, px), x.c);
  for_each_tile(y.pixels(), [&](int64_t p0, int64_t p1, const Exec& e) {
    float* dst = y.data.data() + p0 * y.c;
    depthwise_pixels(e, [&](int64_t iy) { return x.at(iy, 0); }, x.h, x.w, x.c, k, stride, py, px, y.w, p0, p1, dst);
    norm(e, dst, y.c, p1 - p0, norm_w, false);
  });
  return y;
}

VisionMap FastTower::pointwise_map(const VisionMap& x, const WeightMatrix& w) {
  VisionMap y(x.h, x.w, w.n_out);
  for_each_tile(x.pixels(), [&](int64_t p0, int64_t p1, const Exec& e) {
    gemm(e, x.data.data() + p0 * x.c, x.c, p1 - p0, w, y.data.data() + p0 * y.c, y.c);
  });
  return y;
}

// Stem rows [y0, y1): Conv2dSame k x k stride 2 with bias (trap 1, 16) as im2col + GEMM, RmsNorm2d, gelu.
// The pixels are read straight from the CHW input (no HWC copy of the image).
void FastTower::stem_rows(std::span<const float> chw, int64_t n, int64_t y0, int64_t y1, float* dst) {
  const ConvKernel& k = w_.stem;
  const SamePad pad = same_padding(n, k.k, 2);
  const int64_t ws = conv_out_size(n, k.k, 2, pad), C = k.out, K = k.k * k.k * k.in;
  const WeightMatrix wm = f32_weight_view(k.w.data(), C, K);  // [o][ky][kx][i]: the im2col order
  for_tiles((y1 - y0) * ws, kTile, [&](int64_t p0, int64_t p1, Scratch& s) {
    const Exec e{s, false};
    const int64_t m = p1 - p0;
    float* a = Scratch::get(s.a, m * K);
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t oy = y0 + p / ws, ox = p % ws;
      float* col = a + (p - p0) * K;
      for (int64_t ky = 0; ky < k.k; ++ky)
        for (int64_t kx = 0; kx < k.k; ++kx) {
          const int64_t iy = oy * 2 - pad.before + ky, ix = ox * 2 - pad.before + kx;
          const bool inside = iy >= 0 && iy < n && ix >= 0 && ix < n;
          for (int64_t i = 0; i < k.in; ++i) *col++ = inside ? chw[static_cast<size_t>((i * n + iy) * n + ix)] : 0.0f;
        }
    }
    float* y = dst + p0 * C;
    gemm(e, a, K, m, wm, y, C);
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < C; ++c) y[r * C + c] += w_.stem_bias[static_cast<size_t>(c)];
    norm(e, y, C, m, w_.stem_norm, true);
  });
}

VisionMap FastTower::stem(std::span<const float> chw, int64_t n) {
  const SamePad pad = same_padding(n, w_.stem.k, 2);
  const int64_t hs = conv_out_size(n, w_.stem.k, 2, pad);
  VisionMap y(hs, hs, w_.stem.out);
  stem_rows(chw, n, 0, hs, y.data.data());
  return y;
}

// Edge residual on output pixels [p0, p1): im2col of conv_exp's taps (HWC: each tap is a contiguous
// run of input channels), GEMM + norm + gelu into the tile's expanded rows, conv_pwl GEMM + norm (no
// activation, no layer scale: trap 6), residual. row(iy) gives input row iy (ih x iw x Cin).
template <class Row>
void FastTower::edge_residual_tile(const Exec& x, const VisionBlock& b, Row&& row, int64_t ih, int64_t iw, int64_t ow, int64_t p0,
                                   int64_t p1, float* out, const float* residual) {
  const ConvKernel& k = b.conv_exp;
  const SamePad py = same_padding(ih, k.k, b.stride), px = same_padding(iw, k.k, b.stride);
  const int64_t m = p1 - p0, Cin = k.in, K = k.k * k.k * Cin, mid = k.out;
  float* a = Scratch::get(x.s.a, m * K);
  rows(x, m, [&](int64_t r0, int64_t r1, int) {
    for (int64_t p = p0 + r0; p < p0 + r1; ++p) {
      const int64_t oy = p / ow, ox = p % ow;
      float* col = a + (p - p0) * K;
      for (int64_t ky = 0; ky < k.k; ++ky) {
        const int64_t iy = oy * b.stride - py.before + ky;
        const float* r = iy >= 0 && iy < ih ? row(iy) : nullptr;
        for (int64_t kx = 0; kx < k.k; ++kx, col += Cin) {
          const int64_t ix = ox * b.stride - px.before + kx;
          if (r && ix >= 0 && ix < iw) std::copy_n(r + ix * Cin, Cin, col);
          else std::fill_n(col, Cin, 0.0f);
        }
      }
    }
  });
  float* e = Scratch::get(x.s.e, m * mid);
  gemm(x, a, K, m, f32_weight_view(k.w.data(), mid, K), e, mid);
  norm(x, e, mid, m, b.bn1, true);
  gemm(x, e, mid, m, b.conv_pwl, out, b.out);
  norm(x, out, b.out, m, b.bn2, false);
  finish_rows(x, b, out, m, residual);
}

VisionMap FastTower::edge_residual(const VisionBlock& b, const VisionMap& x) {
  const ConvKernel& k = b.conv_exp;
  if (x.c != k.in) fail("conv input has " + std::to_string(x.c) + " channels, kernel expects " + std::to_string(k.in));
  const SamePad py = same_padding(x.h, k.k, b.stride), px = same_padding(x.w, k.k, b.stride);
  VisionMap y(conv_out_size(x.h, k.k, b.stride, py), conv_out_size(x.w, k.k, b.stride, px), b.out);
  for_each_tile(y.pixels(), [&](int64_t p0, int64_t p1, const Exec& e) {
    edge_residual_tile(e, b, [&](int64_t iy) { return x.at(iy, 0); }, x.h, x.w, y.w, p0, p1, y.data.data() + p0 * y.c,
                       b.residual ? x.data.data() + p0 * x.c : nullptr);
  });
  return y;
}

// The stem and stage 0's first (stride-2) edge residual, streamed: bands of the block's output rows,
// each from a band of stem rows made just before (the few rows two bands share are recomputed: the
// stem is ~0.5% of the tower's work). At 768x768 the whole stem map would be 38 MB.
VisionMap FastTower::stem_and_edge_residual(const VisionBlock& b, std::span<const float> chw, int64_t n) {
  const ConvKernel& k = b.conv_exp;
  const int64_t hs = conv_out_size(n, w_.stem.k, 2, same_padding(n, w_.stem.k, 2)), C0 = w_.stem.out;
  if (C0 != k.in) fail("conv input has " + std::to_string(C0) + " channels, kernel expects " + std::to_string(k.in));
  const SamePad py = same_padding(hs, k.k, b.stride);
  VisionMap y(conv_out_size(hs, k.k, b.stride, py), conv_out_size(hs, k.k, b.stride, same_padding(hs, k.k, b.stride)), b.out);
  const int64_t band = std::clamp<int64_t>((4 * kTile + y.w - 1) / y.w, 1, y.h);  // ~4 tiles per band
  std::vector<float> stem_band;
  for (int64_t oy0 = 0; oy0 < y.h; oy0 += band) {
    const int64_t oy1 = std::min(y.h, oy0 + band);
    const int64_t lo = std::max<int64_t>(0, oy0 * b.stride - py.before);
    const int64_t hi = std::min<int64_t>(hs, (oy1 - 1) * b.stride - py.before + k.k);
    float* sb = Scratch::get(stem_band, (hi - lo) * hs * C0);
    const auto t0 = std::chrono::steady_clock::now();
    stem_rows(chw, n, lo, hi, sb);
    stem_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for_tiles((oy1 - oy0) * y.w, kTile, [&](int64_t p0, int64_t p1, Scratch& s) {
      const int64_t g0 = oy0 * y.w + p0, g1 = oy0 * y.w + p1;
      edge_residual_tile(Exec{s, false}, b, [&](int64_t iy) { return sb + (iy - lo) * hs * C0; }, hs, hs, y.w, g0, g1,
                         y.data.data() + g0 * y.c, nullptr);
    });
  }
  return y;
}

// Universal inverted residual without dw_mid, per pixel tile: [dw_start + norm] (no act, trap 5),
// pw_exp + norm + gelu, pw_proj + norm, layer scale, residual.
VisionMap FastTower::universal_inverted_residual(const VisionBlock& b, const VisionMap& x) {
  if (x.c != b.in) fail("block input has " + std::to_string(x.c) + " channels, expected " + std::to_string(b.in));
  const int stride = b.dw_start.empty() ? 1 : b.stride;
  if (b.dw_start.empty() && b.stride != 1) fail("a stride-2 block without depthwise convolutions");
  const int64_t kd = b.dw_start.empty() ? 1 : b.dw_start.k;
  const SamePad py = same_padding(x.h, kd, stride), px = same_padding(x.w, kd, stride);
  VisionMap y(conv_out_size(x.h, kd, stride, py), conv_out_size(x.w, kd, stride, px), b.out);
  const int64_t Cin = x.c, mid = b.pw_exp.n_out;
  for_each_tile(y.pixels(), [&](int64_t p0, int64_t p1, const Exec& ex) {
    const int64_t m = p1 - p0;
    const float* a = x.data.data() + p0 * Cin;
    if (!b.dw_start.empty()) {
      float* d = Scratch::get(ex.s.a, m * Cin);
      depthwise_pixels(ex, [&](int64_t iy) { return x.at(iy, 0); }, x.h, x.w, Cin, b.dw_start, stride, py, px, y.w, p0, p1, d);
      norm(ex, d, Cin, m, b.dw_start_norm, false);
      a = d;
    }
    float* e = Scratch::get(ex.s.e, m * mid);
    gemm(ex, a, Cin, m, b.pw_exp, e, mid);
    norm(ex, e, mid, m, b.pw_exp_norm, true);
    float* out = y.data.data() + p0 * b.out;
    gemm(ex, e, mid, m, b.pw_proj, out, b.out);
    norm(ex, out, b.out, m, b.pw_proj_norm, false);
    finish_rows(ex, b, out, m, b.residual ? x.data.data() + p0 * Cin : nullptr);
  });
  return y;
}

// Universal inverted residual with dw_mid (the stride-2 first block of stages 1-3): the expanded map
// (input grid x mid channels: 113 MB at 768x768 in stage 1) exists only as a ring of its rows. Bands of
// output rows: the expanded rows the band's dw_mid window needs and no earlier band made are computed
// ([dw_start + norm], pw_exp + norm + gelu), then each output tile runs dw_mid + norm + gelu, pw_proj +
// norm, layer scale even without residual (trap 4).
VisionMap FastTower::universal_inverted_residual_strided(const VisionBlock& b, const VisionMap& x) {
  if (x.c != b.in) fail("block input has " + std::to_string(x.c) + " channels, expected " + std::to_string(b.in));
  const ConvKernel& km = b.dw_mid;
  const int stride = b.stride;
  const SamePad my = same_padding(x.h, km.k, stride), mx = same_padding(x.w, km.k, stride);
  VisionMap y(conv_out_size(x.h, km.k, stride, my), conv_out_size(x.w, km.k, stride, mx), b.out);
  const int64_t Cin = x.c, mid = b.pw_exp.n_out, row_len = x.w * mid;
  const int64_t band = std::clamp<int64_t>((192 + y.w - 1) / y.w, 1, y.h);  // ~192 output pixels
  const int64_t cap = stride * (band - 1) + km.k;  // rows of the ring: one band's whole window
  std::vector<float> ring(static_cast<size_t>(cap * row_len));
  auto ring_row = [&](int64_t iy) { return ring.data() + (iy % cap) * row_len; };
  const SamePad sy = same_padding(x.h, b.dw_start.k, 1), sx = same_padding(x.w, b.dw_start.k, 1);
  // Expanded rows [r0, r1), contiguous in the ring (no wrap), as one batch of pixels: one GEMM packs
  // pw_exp once for the batch, not once per row.
  auto expand_rows = [&](int64_t r0, int64_t r1) {
    float* dst = ring_row(r0);
    for_each_tile((r1 - r0) * x.w, [&](int64_t p0, int64_t p1, const Exec& ex) {
      const int64_t m = p1 - p0, g0 = r0 * x.w + p0;
      const float* a = x.data.data() + g0 * Cin;
      if (!b.dw_start.empty()) {
        float* d = Scratch::get(ex.s.a, m * Cin);
        depthwise_pixels(ex, [&](int64_t r) { return x.at(r, 0); }, x.h, x.w, Cin, b.dw_start, 1, sy, sx, x.w, g0, g0 + m, d);
        norm(ex, d, Cin, m, b.dw_start_norm, false);
        a = d;
      }
      float* e = dst + p0 * mid;
      gemm(ex, a, Cin, m, b.pw_exp, e, mid);
      norm(ex, e, mid, m, b.pw_exp_norm, true);
    });
  };
  int64_t made = 0;  // expanded rows [0, made) have been computed
  for (int64_t oy0 = 0; oy0 < y.h; oy0 += band) {
    const int64_t oy1 = std::min(y.h, oy0 + band);
    const int64_t lo = std::max<int64_t>(0, oy0 * stride - my.before);
    const int64_t hi = std::min<int64_t>(x.h, (oy1 - 1) * stride - my.before + km.k);
    for (int64_t r = std::max(made, lo); r < hi;) {
      const int64_t r_end = std::min(hi, (r / cap + 1) * cap);  // up to the ring's end
      expand_rows(r, r_end);
      r = r_end;
    }
    made = std::max(made, hi);
    for_each_tile((oy1 - oy0) * y.w, [&](int64_t p0, int64_t p1, const Exec& ex) {
      const int64_t g0 = oy0 * y.w + p0, g1 = oy0 * y.w + p1, m = p1 - p0;
      float* d = Scratch::get(ex.s.e, m * mid);
      depthwise_pixels(ex, ring_row, x.h, x.w, mid, km, stride, my, mx, y.w, g0, g1, d);
      norm(ex, d, mid, m, b.dw_mid_norm, true);
      float* out = y.data.data() + g0 * b.out;
      gemm(ex, d, mid, m, b.pw_proj, out, b.out);
      norm(ex, out, b.out, m, b.pw_proj_norm, false);
      finish_rows(ex, b, out, m, b.residual ? x.data.data() + g0 * Cin : nullptr);
    });
  }
  return y;
}

// Mobile multi-query attention: norm; K/V from the normalised map (down-sampled by a stride-2
// depthwise conv + RmsNorm2d each when the block has down_conv, trap 11), one shared head of D
// (trap 21); per query tile: q, then per head scores = q K^T (GEMM against K as a matrix of nkv rows),
// softmax(scores / sqrt(D)) (trap 10), values (GEMM against V^T), output projection, layer scale, residual.
VisionMap FastTower::multi_query_attention(const VisionBlock& b, const VisionMap& x) {
  const int64_t C = x.c, D = b.head_dim, H = b.heads, HD = H * D;
  VisionMap xn = x;
  for_each_tile(xn.pixels(), [&](int64_t p0, int64_t p1, const Exec& e) { norm(e, xn.data.data() + p0 * C, C, p1 - p0, b.norm, false); });
  VisionMap k, v;
  if (!b.key_down.empty()) {
    k = pointwise_map(depthwise_map(xn, b.key_down, 2, b.key_norm), b.key);
    v = pointwise_map(depthwise_map(xn, b.value_down, 2, b.value_norm), b.value);
  } else {
    k = pointwise_map(xn, b.key);
    v = pointwise_map(xn, b.value);
  }
  const int64_t n_kv = k.pixels();
  std::vector<float> vt(static_cast<size_t>(D * n_kv));  // V^T: the value GEMM's weight rows
  for (int64_t j = 0; j < n_kv; ++j)
    for (int64_t d = 0; d < D; ++d) vt[static_cast<size_t>(d * n_kv + j)] = v.data[static_cast<size_t>(j * D + d)];
  const WeightMatrix kw = f32_weight_view(k.data.data(), n_kv, D), vw = f32_weight_view(vt.data(), D, n_kv);
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  VisionMap y(x.h, x.w, b.out);
  for_each_tile(x.pixels(), [&](int64_t p0, int64_t p1, const Exec& ex) {
    const int64_t m = p1 - p0;
    float* q = Scratch::get(ex.s.a, m * HD);
    float* o = Scratch::get(ex.s.o, m * HD);
    gemm(ex, xn.data.data() + p0 * C, C, m, b.query, q, HD);
    // Head h: its scores in the running thread's buffer; its output to channels h*D .. h*D + D - 1.
    auto head = [&](int64_t h, Scratch& s) {
      float* sc = Scratch::get(s.s, m * n_kv);
      gemm_weights(ks_, q + h * D, HD, m, kw, sc, n_kv, s.gemm);
      ks_.softmax_rows(sc, n_kv, m, n_kv, scale);
      gemm_weights(ks_, sc, n_kv, m, vw, o + h * D, HD, s.gemm);
    };
    if (ex.parallel) {
      pool_.parallel_for_dynamic(H, [&](int64_t h0, int64_t h1, int t) {
        for (int64_t h = h0; h < h1; ++h) head(h, scratch_[static_cast<size_t>(t)]);
      }, 1);
    } else {
      for (int64_t h = 0; h < H; ++h) head(h, ex.s);
    }
    float* out = y.data.data() + p0 * b.out;
    gemm(ex, o, HD, m, b.output, out, b.out);
    finish_rows(ex, b, out, m, x.data.data() + p0 * C);
  });
  return y;
}

// Multi-scale fusion adapter: per band of rows, concat(stage[-2], nearest-up(stage[-1])) rows (traps 7,
// 8), pw_exp + norm + gelu, pw_proj + norm, then avg-pool (trap 9) straight into the 16x16 grid (the
// band is whole pooling windows high), and norm. With a tap the full-resolution map is kept for it.
VisionMap FastTower::fuse_multi_scale(const VisionMap& hi, const VisionMap& lo, const VisionTap& tap) {
  if (lo.h == 0 || lo.w == 0 || hi.h % lo.h != 0 || hi.w % lo.w != 0 || hi.h / lo.h != hi.w / lo.w)
    fail("fusion inputs " + std::to_string(hi.h) + "x" + std::to_string(hi.w) + " and " + std::to_string(lo.h) + "x" +
         std::to_string(lo.w) + " differ by no integer factor");
  const int64_t f = hi.h / lo.h, Cc = hi.c + lo.c, mid = w_.msfa_exp.n_out, Cp = w_.msfa_proj.n_out;
  if (Cc != w_.msfa_in) fail("fusion input has " + std::to_string(Cc) + " channels, expected " + std::to_string(w_.msfa_in));
  const int64_t G = cfg_.grid, pf = hi.h / G;  // pooling factor (hi.h is a multiple of G: checked by run)
  const int64_t band = std::clamp<int64_t>(kBigTile / (pf * hi.w), 1, G) * pf;  // rows: whole pooling windows
  VisionMap full;  // only with a tap
  if (tap) full = VisionMap(hi.h, hi.w, Cp);
  VisionMap y(G, G, Cp);
  const Exec ex{scratch_[0], pool_.size() > 1};
  for (int64_t r0 = 0; r0 < hi.h; r0 += band) {
    const int64_t r1 = std::min(hi.h, r0 + band), p0 = r0 * hi.w, m = (r1 - r0) * hi.w;
    float* a = Scratch::get(ex.s.a, m * Cc);
    rows(ex, m, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t py = (p0 + i) / hi.w, px = (p0 + i) % hi.w;
        std::copy_n(hi.at(py, px), hi.c, a + i * Cc);
        std::copy_n(lo.at(py / f, px / f), lo.c, a + i * Cc + hi.c);
      }
    });
    float* e = Scratch::get(ex.s.e, m * mid);
    gemm(ex, a, Cc, m, w_.msfa_exp, e, mid);
    norm(ex, e, mid, m, w_.msfa_exp_norm, true);
    float* out = tap ? full.data.data() + p0 * Cp : Scratch::get(ex.s.o, m * Cp);
    gemm(ex, e, mid, m, w_.msfa_proj, out, Cp);
    norm(ex, out, Cp, m, w_.msfa_proj_norm, false);
    if (tap) continue;
    // avg_pool's arithmetic (sum over dy, then dx, times 1/pf^2), for the windows of this band.
    const float inv = 1.0f / static_cast<float>(pf * pf);
    rows(ex, (r1 - r0) / pf * G, [&](int64_t b, int64_t e2, int) {
      for (int64_t i = b; i < e2; ++i) {
        const int64_t oy = r0 / pf + i / G, ox = i % G;
        float* o = y.at(oy, ox);
        for (int64_t dy = 0; dy < pf; ++dy)
          for (int64_t dx = 0; dx < pf; ++dx) {
            const float* in = out + ((oy * pf + dy - r0) * hi.w + ox * pf + dx) * Cp;
            for (int64_t c = 0; c < Cp; ++c) o[c] += in[c];
          }
        for (int64_t c = 0; c < Cp; ++c) o[c] *= inv;
      }
    }, 4);
  }
  if (tap) {
    tap("msfa.ffn", full);
    y = pf > 1 ? avg_pool(full, pf) : std::move(full);
    if (pf > 1) tap("msfa.pooled", y);
  }  // pf == 1 without a tap: each "window" is one pixel and x * 1.0f == x, so y is already the map
  norm(Exec{scratch_[0], false}, y.data.data(), y.c, y.pixels(), w_.msfa_norm, false);
  return y;
}

VisionMap FastTower::run(std::span<const float> chw, int64_t n, const FastTowerOptions& opts) {
  if (n <= 0 || chw.size() != static_cast<size_t>(3 * n * n))
    fail("input has " + std::to_string(chw.size()) + " values, expected 3 x " + std::to_string(n) + " x " + std::to_string(n));
  // Every stage halves the grid (ceil); the fusion grid (second-to-last stage) must be a multiple of 16.
  int64_t g = n;
  for (size_t s = 0; s < w_.stage_last.size(); ++s) g = (g + 1) / 2;
  const int64_t G = cfg_.grid;
  if (n > 8192 || g % G != 0)
    fail("input " + std::to_string(n) + "x" + std::to_string(n) + " gives a " + std::to_string(g) + "x" + std::to_string(g) +
         " fusion grid; only multiples of " + std::to_string(G) + " are supported");
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  // Each part's wall time; a streamed stem's share is taken out of stage 0 and reported as "stem".
  auto lap = [&](const std::string& name) {
    const auto now = Clock::now();
    double dt = std::chrono::duration<double>(now - t0).count();
    if (opts.times && name == "stage0" && stem_seconds_ > 0) {
      opts.times->push_back({"stem", stem_seconds_});
      dt -= stem_seconds_;
    }
    if (opts.times) opts.times->push_back({name, dt});
    t0 = now;
  };
  auto poll = [&] {
    if (opts.cancel && opts.cancel->load(std::memory_order_relaxed)) throw VisionCancelled();
  };
  const VisionTap& tap = opts.tap;
  VisionMap x, hi;
  size_t first = 0;
  poll();
  if (!tap && !w_.blocks.empty() && w_.blocks[0].kind == VisionBlockKind::EdgeResidual) {
    x = stem_and_edge_residual(w_.blocks[0], chw, n);
    first = 1;
  } else {
    x = stem(chw, n);
    lap("stem");
    if (tap) tap("stem", x);
  }
  size_t stage = 0;
  for (size_t i = 0; i < w_.blocks.size(); ++i) {
    const VisionBlock& b = w_.blocks[i];
    if (i >= first) {
      poll();
      switch (b.kind) {
        case VisionBlockKind::EdgeResidual: x = edge_residual(b, x); break;
        case VisionBlockKind::UniversalInvertedResidual:
          x = b.dw_mid.empty() ? universal_inverted_residual(b, x) : universal_inverted_residual_strided(b, x);
          break;
        case VisionBlockKind::MultiQueryAttention: x = multi_query_attention(b, x); break;
      }
    }
    if (tap) tap("blk." + std::to_string(b.stage) + "." + std::to_string(b.index), x);
    if (i == w_.stage_last[stage]) {
      if (stage + 2 == w_.stage_last.size()) hi = x;
      lap("stage" + std::to_string(stage));
      ++stage;
    }
  }
  poll();
  VisionMap out = fuse_multi_scale(hi, x, tap);
  lap("msfa");
  return out;
}

}  // namespace

VisionMap run_vision_tower_fast(const Mmproj& mm, std::span<const float> chw, int64_t n, ThreadPool& pool,
                                const FastTowerOptions& opts) {
  FastTower t(mm, pool, opts.kernels ? *opts.kernels : conv_kernels());
  return t.run(chw, n, opts);
}

}  // namespace g3n
