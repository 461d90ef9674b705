// The audio tower, fast path (see conformer_fast.h). Same step order as conformer.cpp; the comments
// there give the spec references.
#include "audio/conformer_fast.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "audio/audio_encode.h"
#include "base/thread_pool.h"
#include "kernels/attention.h"

namespace g3n {
namespace {

constexpr int64_t kConvTile = 96;  // SSCP output positions per im2col tile (16 micro-kernel panels)
constexpr int64_t kRowGrain = 16;  // frames per task of the element-wise loops

float clamp_clip(float v) { return std::clamp(v, -kAudioClip, kAudioClip); }

}  // namespace

FastAudioTower::FastAudioTower(const AudioMmproj& mm, ThreadPool& pool, const ConvKernelSet& ks)
    : mm_(mm), pool_(pool), ks_(ks), gemm_(ks, pool), scratch_(static_cast<size_t>(pool.size())) {}

std::vector<float> FastAudioTower::linear(const float* x, int64_t n, const WeightMatrix& w) {
  std::vector<float> y(static_cast<size_t>(n * w.n_out));
  gemm_.run(x, w.n_in, n, w, y.data(), w.n_out);
  return y;
}

float* FastAudioTower::linear_into(const float* x, int64_t n, const WeightMatrix& w, std::vector<float>& out) {
  if (out.size() < static_cast<size_t>(n * w.n_out)) out.resize(static_cast<size_t>(n * w.n_out));
  gemm_.run(x, w.n_in, n, w, out.data(), w.n_out);
  return out.data();
}

void FastAudioTower::norm_rows(const float* src, float* dst, int64_t n, const std::vector<float>& w, bool clamp) {
  const int64_t D = static_cast<int64_t>(w.size());
  pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b * D; i < e * D; ++i) dst[i] = clamp ? clamp_clip(src[i]) : src[i];
    ks_.rms_norm_rows(dst + b * D, D, e - b, D, w.data(), kAudioRmsEps, false);
  }, kRowGrain);
}

// 3x3 stride-2 conv as tiles of im2col rows (time tap, freq tap, channel) against the [out, 9·in] kernel
// matrix, then the cumulative group norm (sequential over time: the spec's own function) and ReLU.
std::vector<float> FastAudioTower::sscp_conv(const AudioSscpConv& c, const std::vector<float>& x, int64_t T, int64_t F) {
  const int64_t To = audio_sscp_out(T), Fo = audio_sscp_out(F), K = 9 * c.in, m = To * Fo;
  const WeightMatrix w = f32_weight_view(c.w.data(), c.out, K);
  std::vector<float> y(static_cast<size_t>(m * c.out));
  pool_.parallel_for_dynamic((m + kConvTile - 1) / kConvTile, [&](int64_t b, int64_t e, int thread) {
    Scratch& s = scratch_[static_cast<size_t>(thread)];
    if (s.col.size() < static_cast<size_t>(kConvTile * K)) s.col.resize(static_cast<size_t>(kConvTile * K));
    for (int64_t tile = b; tile < e; ++tile) {
      const int64_t p0 = tile * kConvTile, p1 = std::min(m, p0 + kConvTile);
      for (int64_t p = p0; p < p1; ++p) {
        const int64_t t = p / Fo, f = p % Fo;
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 3; ++j) {
            const int64_t ti = 2 * t + i, fj = 2 * f - 1 + j;
            float* dst = s.col.data() + (p - p0) * K + (i * 3 + j) * c.in;
            if (ti >= T || fj < 0 || fj >= F) std::fill_n(dst, c.in, 0.0f);
            else std::copy_n(x.data() + (ti * F + fj) * c.in, c.in, dst);
          }
      }
      gemm_weights_columns(ks_, s.col.data(), K, p1 - p0, w, 0, c.out, y.data() + p0 * c.out, c.out, s.gemm);
    }
  }, 1);
  cumulative_group_norm(y.data(), To, Fo * c.out, c.out, c.norm.data(), pool_);
  pool_.parallel_for(static_cast<int64_t>(y.size()), [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) y[static_cast<size_t>(i)] = std::max(y[static_cast<size_t>(i)], 0.0f);
  }, 4096);
  return y;
}

void FastAudioTower::feed_forward(const WeightMatrix& up, const WeightMatrix& down, const std::vector<float>& pre,
                                  const std::vector<float>& post, AudioFrames& fr) {
  const int64_t D = mm_.config.width, n = fr.n, Fw = up.n_out;
  buf_.norm.resize(fr.x.size());
  float* h = buf_.norm.data();
  norm_rows(fr.x.data(), h, n, pre, true);
  float* u = linear_into(h, n, up, buf_.wide);
  pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int) { ks_.silu(u + b * Fw, (e - b) * Fw); }, kRowGrain);
  float* y = linear_into(u, n, down, buf_.out);
  norm_rows(y, y, n, post, true);
  pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b * D; i < e * D; ++i) fr.x[static_cast<size_t>(i)] += kAudioResidualWeight * y[i];
  }, kRowGrain);
}

// Chunked local attention: per query frame and head, the 13 (or fewer) keys t-12 .. t are contiguous
// rows of K (stride D), and their relative-position rows are contiguous too once the 13 rows p_d are
// stored by falling distance (row r = p_{12-r}).
void FastAudioTower::attention(const AudioLayerWeights& l, AudioFrames& fr) {
  const int64_t D = mm_.config.width, H = mm_.config.head_dim, N = mm_.config.n_heads, n = fr.n, W = kAudioMaxPast + 1;
  buf_.norm.resize(fr.x.size());
  float* xn = buf_.norm.data();
  norm_rows(fr.x.data(), xn, n, l.attn_norm, true);
  float* q = linear_into(xn, n, l.q, buf_.q);
  const float* k = linear_into(xn, n, l.k, buf_.k);
  const float* v = linear_into(xn, n, l.v, buf_.v);
  const std::vector<float> tau = relative_timing_signal(D);
  const std::vector<float> p = linear(tau.data(), W, l.pos);
  std::vector<float> pr(p.size());
  for (int64_t r = 0; r < W; ++r) std::copy_n(p.data() + (W - 1 - r) * D, D, pr.data() + r * D);
  const std::vector<float> scale = query_scale(l, H);
  float* a = xn;  // the normalised input is spent: the heads' outputs go there (rows of dropped frames stay 0)
  std::fill_n(a, n * D, 0.0f);
  pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int) {
    float ac[kAudioMaxPast + 1], bd[kAudioMaxPast + 1];
    for (int64_t t = b; t < e; ++t) {
      float* qt = q + t * D;
      for (int64_t c = 0; c < D; ++c) qt[c] *= scale[static_cast<size_t>(c % H)];
      const int64_t s0 = std::max<int64_t>(0, t - kAudioMaxPast), cnt = t - s0 + 1;
      for (int64_t h = 0; h < N; ++h) {
        attn_scores_f32(k + s0 * D + h * H, D, cnt, qt + h * H, 1, H, ac, W);
        attn_scores_f32(pr.data() + (W - cnt) * D + h * H, D, cnt, qt + h * H, 1, H, bd, W);
        float mx = -INFINITY;
        for (int64_t j = 0; j < cnt; ++j) {
          ac[j] = fr.valid[static_cast<size_t>(s0 + j)] ? std::tanh((ac[j] + bd[j]) / kAudioLogitCap) * kAudioLogitCap : -INFINITY;
          mx = std::max(mx, ac[j]);
        }
        if (mx == -INFINITY) continue;  // no valid key: a padded frame, zeroed after the attention
        float sum = 0;
        for (int64_t j = 0; j < cnt; ++j) sum += (ac[j] = std::exp(ac[j] - mx));
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < cnt; ++j) ac[j] *= inv;
        attn_values_f32(v + s0 * D + h * H, D, cnt, ac, W, 1, H, a + t * D + h * H);
      }
    }
  }, kRowGrain);
  float* y = linear_into(a, n, l.out, buf_.out);
  norm_rows(y, y, n, l.attn_post_norm, true);
  pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b * D; i < e * D; ++i) fr.x[static_cast<size_t>(i)] += y[i];
    for (int64_t t = b; t < e; ++t)
      if (!fr.valid[static_cast<size_t>(t)]) std::fill_n(fr.x.data() + t * D, D, 0.0f);
  }, kRowGrain);
}

void FastAudioTower::light_conv(const AudioLayerWeights& l, AudioFrames& fr) {
  const int64_t D = mm_.config.width, K = mm_.config.conv_kernel, n = fr.n;
  buf_.norm.resize(fr.x.size());
  float* xn = buf_.norm.data();
  norm_rows(fr.x.data(), xn, n, l.conv_pre_norm, false);
  float* h2 = linear_into(xn, n, l.conv_pw1, buf_.wide);  // [n, 2D]
  // GLU in place into the first half of each row (value · sigmoid(gate)).
  pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      float* row = h2 + t * 2 * D;
      for (int64_t c = 0; c < D; ++c) row[c] = row[c] * (1.0f / (1.0f + std::exp(-row[D + c])));
    }
  }, kRowGrain);
  float* h = xn;  // the normalised input is spent: the depthwise conv's output goes there
  std::fill_n(h, n * D, 0.0f);
  pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      float* o = h + t * D;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t s = t - (K - 1) + k;
        if (s < 0) continue;
        const float* g = h2 + s * 2 * D;
        const float* w = l.conv_dw.data() + k * D;
        for (int64_t c = 0; c < D; ++c) o[c] += w[c] * g[c];
      }
    }
  }, kRowGrain);
  norm_rows(h, h, n, l.conv_norm, true);
  pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int) { ks_.silu(h + b * D, (e - b) * D); }, kRowGrain);
  const float* y = linear_into(h, n, l.conv_pw2, buf_.out);
  pool_.parallel_for_dynamic(n, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b * D; i < e * D; ++i) fr.x[static_cast<size_t>(i)] += y[i];
  }, kRowGrain);
}

void FastAudioTower::block(const AudioLayerWeights& l, AudioFrames& fr, int index, const AudioTap& tap,
                           const std::function<void()>& poll) {
  // A real-size layer takes about a second: the cancel is polled between its four modules too.
  const std::string p = "conformer_" + std::to_string(index) + "_";
  feed_forward(l.ffn_up, l.ffn_down, l.ffn_norm, l.ffn_post_norm, fr);
  if (tap) tap(p + "after_ffw_start", fr.x);
  poll();
  attention(l, fr);  // includes the zeroing of invalid frames
  if (tap) tap(p + "after_attention", fr.x);
  poll();
  light_conv(l, fr);
  if (tap) tap(p + "after_lconv", fr.x);
  poll();
  feed_forward(l.ffn_up_end, l.ffn_down_end, l.ffn_norm_end, l.ffn_post_norm_end, fr);
  if (tap) tap(p + "after_ffw_end", fr.x);
  norm_rows(fr.x.data(), fr.x.data(), fr.n, l.final_norm, true);
  if (tap) tap(p + "out", fr.x);
}

AudioFrames FastAudioTower::run(const LogMelFeatures& f, const FastAudioTowerOptions& opts) {
  const AudioConfig& c = mm_.config;
  if (f.frames <= 0 || f.data.size() != static_cast<size_t>(f.frames * c.mel_bins) || f.valid.size() != static_cast<size_t>(f.frames))
    throw std::runtime_error("audio tower: features are not " + std::to_string(f.frames) + " (>= 1) frames of " + std::to_string(c.mel_bins));
  const std::function<void()> poll = [&] {
    if (opts.cancel && opts.cancel->load(std::memory_order_relaxed)) throw AudioCancelled();
  };
  const AudioTap& tap = opts.tap;
  poll();
  // The layer buffers live for one run: an idle encoder holds no activations.
  struct Release {
    Buffers& b;
    ~Release() { b = Buffers{}; }
  } release{buf_};
  const int64_t T1 = audio_sscp_out(f.frames), T2 = audio_sscp_out(T1);
  const std::vector<float> y0 = sscp_conv(mm_.tower.conv[0], f.data, f.frames, c.sscp_freq[0]);
  if (tap) tap("sscp_conv0", y0);
  poll();
  const std::vector<float> y1 = sscp_conv(mm_.tower.conv[1], y0, T1, c.sscp_freq[1]);
  if (tap) tap("sscp_conv1", y1);
  AudioFrames fr;
  fr.n = T2;
  fr.x = linear(y1.data(), T2, mm_.tower.input_proj);
  fr.valid = conformer_valid(f, T2);
  if (tap) {
    tap("sscp_out", fr.x);
    const std::vector<float> v(fr.valid.begin(), fr.valid.end());
    tap("sscp_valid", v);
  }
  if (opts.lap) opts.lap("sscp");
  for (size_t i = 0; i < mm_.tower.layers.size(); ++i) {
    poll();
    block(mm_.tower.layers[i], fr, static_cast<int>(i), tap, poll);
  }
  if (opts.lap) opts.lap("conformer");
  return reduce_frames(fr, c.width);
}

}  // namespace g3n
