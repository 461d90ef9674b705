// The audio tower, exact path. Each function is one step of fixture gemma3n-audio-tiny README §4.1/§4.2;
// threading splits frames or output rows, so no value's arithmetic depends on the thread count.
#include "audio/conformer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "base/thread_pool.h"
#include "kernels/matmul.h"
#include "kernels/ops.h"

namespace g3n {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("audio tower: " + msg); }

float clamp_clip(float v) { return std::clamp(v, -kAudioClip, kAudioClip); }

// y [n, w.n_out] = x [n, w.n_in] · Wᵀ.
std::vector<float> linear(const WeightMatrix& w, const float* x, int64_t n, ThreadPool& pool) {
  std::vector<float> y(static_cast<size_t>(n * w.n_out));
  MatmulScratch scratch;
  matmul(w, x, w.n_in, n, y.data(), w.n_out, pool, MatmulMode::Exact, scratch);
  return y;
}

// RMS_w(clamp(x)) row by row into a new buffer (clamp = false: the light conv's pre-norm has none).
std::vector<float> rms_rows(const std::vector<float>& x, int64_t n, int64_t D, const std::vector<float>& w, bool clamp) {
  std::vector<float> y(x.size());
  for (int64_t t = 0; t < n; ++t) {
    float* row = y.data() + t * D;
    for (int64_t c = 0; c < D; ++c) row[c] = clamp ? clamp_clip(x[static_cast<size_t>(t * D + c)]) : x[static_cast<size_t>(t * D + c)];
    rms_norm(row, w.data(), row, D, kAudioRmsEps);
  }
  return y;
}

// Half-step FFN: x += 0.5 · RMS_post(clamp(down(silu(up(RMS_pre(clamp(x))))))).
void feed_forward(const WeightMatrix& up, const WeightMatrix& down, const std::vector<float>& pre, const std::vector<float>& post,
                  AudioFrames& fr, int64_t D, ThreadPool& pool) {
  const std::vector<float> h = rms_rows(fr.x, fr.n, D, pre, true);
  std::vector<float> u = linear(up, h.data(), fr.n, pool);
  for (float& v : u) v = silu(v);
  const std::vector<float> y = rms_rows(linear(down, u.data(), fr.n, pool), fr.n, D, post, true);
  for (size_t i = 0; i < fr.x.size(); ++i) fr.x[i] += kAudioResidualWeight * y[i];
}

// Chunked local attention with relative positions, direct form (README §4.2): query t sees keys
// t-12 .. t that exist and are valid; logit = q·k + q·p_{t-s}, capped at 50·tanh(·/50), softmax.
std::vector<float> local_attention(const AudioMmproj& mm, const AudioLayerWeights& l, const std::vector<float>& xn,
                                   const std::vector<uint8_t>& valid, int64_t n, ThreadPool& pool) {
  const int64_t D = mm.config.width, H = mm.config.head_dim, N = mm.config.n_heads;
  std::vector<float> q = linear(l.q, xn.data(), n, pool);
  const std::vector<float> k = linear(l.k, xn.data(), n, pool), v = linear(l.v, xn.data(), n, pool);
  const std::vector<float> tau = relative_timing_signal(D);
  const std::vector<float> p = linear(l.pos, tau.data(), kAudioMaxPast + 1, pool);  // [13, D], row d = distance d
  const std::vector<float> scale = query_scale(l, H);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < D; ++c) q[static_cast<size_t>(t * D + c)] *= scale[static_cast<size_t>(c % H)];
  std::vector<float> out(static_cast<size_t>(n * D), 0.0f);
  pool.parallel_for(n * N, [&](int64_t begin, int64_t end, int) {
    float logits[kAudioMaxPast + 1];
    for (int64_t i = begin; i < end; ++i) {
      const int64_t t = i / N, h = i % N;
      const float* qt = q.data() + t * D + h * H;
      const int64_t s0 = std::max<int64_t>(0, t - kAudioMaxPast);
      float mx = -INFINITY;
      for (int64_t s = s0; s <= t; ++s) {
        float& lg = logits[s - s0];
        if (!valid[static_cast<size_t>(s)]) {
          lg = -INFINITY;  // excluded key
          continue;
        }
        const float ac = dot_f32(qt, k.data() + s * D + h * H, H);
        const float bd = dot_f32(qt, p.data() + (t - s) * D + h * H, H);
        lg = std::tanh((ac + bd) / kAudioLogitCap) * kAudioLogitCap;
        mx = std::max(mx, lg);
      }
      // A query with no valid key is a padded frame, zeroed right after the attention: leave it 0.
      if (mx == -INFINITY) continue;
      float sum = 0;
      for (int64_t s = s0; s <= t; ++s) sum += (logits[s - s0] = std::exp(logits[s - s0] - mx));
      float* o = out.data() + t * D + h * H;
      for (int64_t s = s0; s <= t; ++s) {
        const float a = logits[s - s0] / sum;
        const float* vs = v.data() + s * D + h * H;
        for (int64_t d = 0; d < H; ++d) o[d] += a * vs[d];
      }
    }
  }, 8);
  return out;
}

// x += RMS_ln2(clamp(out(Attn(RMS_ln1(clamp(x)))))).
void attention_residual(const AudioMmproj& mm, const AudioLayerWeights& l, AudioFrames& fr, ThreadPool& pool) {
  const int64_t D = mm.config.width;
  const std::vector<float> xn = rms_rows(fr.x, fr.n, D, l.attn_norm, true);
  const std::vector<float> a = local_attention(mm, l, xn, fr.valid, fr.n, pool);
  const std::vector<float> y = rms_rows(linear(l.out, a.data(), fr.n, pool), fr.n, D, l.attn_post_norm, true);
  for (size_t i = 0; i < fr.x.size(); ++i) fr.x[i] += y[i];
}

void zero_invalid(AudioFrames& fr, int64_t D) {
  for (int64_t t = 0; t < fr.n; ++t)
    if (!fr.valid[static_cast<size_t>(t)]) std::fill_n(fr.x.data() + t * D, D, 0.0f);
}

// Light conv: x += pw2(silu(RMS_norm_conv(clamp(causal_dw(GLU(pw1(RMS_conv_norm(x)))))))) (trap T7: value =
// first half; the depthwise conv looks only into the past).
void light_conv(const AudioMmproj& mm, const AudioLayerWeights& l, AudioFrames& fr, ThreadPool& pool) {
  const int64_t D = mm.config.width, K = mm.config.conv_kernel, n = fr.n;
  const std::vector<float> xn = rms_rows(fr.x, n, D, l.conv_pre_norm, false);
  const std::vector<float> h2 = linear(l.conv_pw1, xn.data(), n, pool);  // [n, 2D]
  std::vector<float> g(static_cast<size_t>(n * D));
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < D; ++c) {
      const float val = h2[static_cast<size_t>(t * 2 * D + c)], gate = h2[static_cast<size_t>(t * 2 * D + D + c)];
      g[static_cast<size_t>(t * D + c)] = val * (1.0f / (1.0f + std::exp(-gate)));
    }
  std::vector<float> h(static_cast<size_t>(n * D), 0.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t s = t - (K - 1) + k;
      if (s < 0) continue;  // left zero padding
      for (int64_t c = 0; c < D; ++c) h[static_cast<size_t>(t * D + c)] += l.conv_dw[static_cast<size_t>(k * D + c)] * g[static_cast<size_t>(s * D + c)];
    }
  std::vector<float> hn = rms_rows(h, n, D, l.conv_norm, true);
  for (float& v : hn) v = silu(v);
  const std::vector<float> y = linear(l.conv_pw2, hn.data(), n, pool);
  for (size_t i = 0; i < fr.x.size(); ++i) fr.x[i] += y[i];
}

}  // namespace

int64_t audio_token_count(int64_t mel_frames) {
  const int64_t t2 = audio_sscp_out(audio_sscp_out(mel_frames));
  return (t2 + kAudioReduction - 1) / kAudioReduction;
}

namespace {

// Σ row[i] and Σ (row[i] - mean)² in double, four interleaved partial sums (vectorisable, order fixed
// by the code).
double row_sum(const float* row, int64_t n) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) acc[j] += row[i + j];
  for (; i < n; ++i) acc[0] += row[i];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}
double row_squared_deviation(const float* row, int64_t n, double mean) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int j = 0; j < 4; ++j) acc[j] += (row[i + j] - mean) * (row[i + j] - mean);
  for (; i < n; ++i) acc[0] += (row[i] - mean) * (row[i] - mean);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

}  // namespace

// Frame t's statistics need only the prefix sums of the per-frame sums, so the per-frame work runs in
// parallel and only the two prefix sums are sequential.
void cumulative_group_norm(float* y, int64_t T, int64_t FC, int64_t C, const float* w, ThreadPool& pool) {
  std::vector<double> mean(static_cast<size_t>(T)), ssd(static_cast<size_t>(T));
  pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) mean[static_cast<size_t>(t)] = row_sum(y + t * FC, FC);
  }, 8);
  double sum = 0;
  for (int64_t t = 0; t < T; ++t) {
    sum += mean[static_cast<size_t>(t)];
    mean[static_cast<size_t>(t)] = sum / static_cast<double>((t + 1) * FC);  // μ_t
  }
  pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) ssd[static_cast<size_t>(t)] = row_squared_deviation(y + t * FC, FC, mean[static_cast<size_t>(t)]);
  }, 8);
  double cum = 0;
  for (int64_t t = 0; t < T; ++t) {
    cum += ssd[static_cast<size_t>(t)];  // each frame's deviations from its own μ_τ (trap T1)
    ssd[static_cast<size_t>(t)] = 1.0 / std::sqrt(cum / static_cast<double>((t + 1) * FC) + kAudioGroupNormEps);
  }
  pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      float* row = y + t * FC;
      const float mu = static_cast<float>(mean[static_cast<size_t>(t)]), inv = static_cast<float>(ssd[static_cast<size_t>(t)]);
      for (int64_t i = 0; i < FC; i += C)
        for (int64_t c = 0; c < C; ++c) row[i + c] = (row[i + c] - mu) * inv * w[c];
    }
  }, 8);
}

std::vector<float> sscp_conv_block(const AudioSscpConv& c, const std::vector<float>& x, int64_t T, int64_t F, ThreadPool& pool) {
  const int64_t To = audio_sscp_out(T), Fo = audio_sscp_out(F), K = 9 * c.in;
  std::vector<float> y(static_cast<size_t>(To * Fo * c.out));
  pool.parallel_for(To, [&](int64_t begin, int64_t end, int) {
    std::vector<float> col(static_cast<size_t>(K));
    for (int64_t t = begin; t < end; ++t)
      for (int64_t f = 0; f < Fo; ++f) {
        // im2col: time taps 2t..2t+2 (zeros past the end), freq taps 2f-1..2f+1 (zeros outside).
        for (int64_t i = 0; i < 3; ++i)
          for (int64_t j = 0; j < 3; ++j) {
            const int64_t ti = 2 * t + i, fj = 2 * f - 1 + j;
            float* dst = col.data() + (i * 3 + j) * c.in;
            if (ti >= T || fj < 0 || fj >= F) std::fill_n(dst, c.in, 0.0f);
            else std::copy_n(x.data() + (ti * F + fj) * c.in, c.in, dst);
          }
        float* out = y.data() + (t * Fo + f) * c.out;
        for (int64_t o = 0; o < c.out; ++o) out[o] = dot_f32(c.w.data() + o * K, col.data(), K);
      }
  });
  cumulative_group_norm(y.data(), To, Fo * c.out, c.out, c.norm.data(), pool);
  for (float& v : y) v = std::max(v, 0.0f);
  return y;
}

std::vector<uint8_t> conformer_valid(const LogMelFeatures& f, int64_t n) {
  std::vector<uint8_t> v(static_cast<size_t>(n));
  for (int64_t t = 0; t < n; ++t) v[static_cast<size_t>(t)] = f.valid[static_cast<size_t>(std::min(4 * t, f.frames - 1))];
  return v;
}

std::vector<float> relative_timing_signal(int64_t D) {
  const int64_t half = D / 2;
  std::vector<float> tau(static_cast<size_t>((kAudioMaxPast + 1) * D));
  const double increment = std::log(1e4) / static_cast<double>(std::max<int64_t>(half - 1, 1));
  for (int64_t d = 0; d <= kAudioMaxPast; ++d)
    for (int64_t i = 0; i < half; ++i) {
      const float inv = static_cast<float>(std::exp(-static_cast<double>(i) * increment));
      const float angle = static_cast<float>(d) * inv;
      tau[static_cast<size_t>(d * D + i)] = std::sin(angle);
      tau[static_cast<size_t>(d * D + half + i)] = std::cos(angle);
    }
  return tau;
}

std::vector<float> query_scale(const AudioLayerWeights& l, int64_t head_dim) {
  const float base = (1.0f / std::sqrt(static_cast<float>(head_dim))) * (1.0f / std::log(2.0f));
  std::vector<float> s(static_cast<size_t>(head_dim));
  for (int64_t d = 0; d < head_dim; ++d) {
    const float x = l.per_dim_scale[static_cast<size_t>(d)];
    const float softplus = x > 20.0f ? x : std::log1p(std::exp(x));  // torch's threshold
    s[static_cast<size_t>(d)] = base * softplus;
  }
  return s;
}

AudioFrames run_sscp(const AudioMmproj& mm, const LogMelFeatures& f, ThreadPool& pool, const AudioTap& tap) {
  const AudioConfig& c = mm.config;
  if (f.frames <= 0) fail("no feature frames");
  if (f.data.size() != static_cast<size_t>(f.frames * c.mel_bins) || f.valid.size() != static_cast<size_t>(f.frames))
    fail("features hold " + std::to_string(f.data.size()) + " values and " + std::to_string(f.valid.size()) + " flags, expected " +
         std::to_string(f.frames) + " frames of " + std::to_string(c.mel_bins));
  const int64_t T1 = audio_sscp_out(f.frames), T2 = audio_sscp_out(T1);
  const std::vector<float> y0 = sscp_conv_block(mm.tower.conv[0], f.data, f.frames, c.sscp_freq[0], pool);
  if (tap) tap("sscp_conv0", y0);
  const std::vector<float> y1 = sscp_conv_block(mm.tower.conv[1], y0, T1, c.sscp_freq[1], pool);
  if (tap) tap("sscp_conv1", y1);
  AudioFrames fr;
  fr.n = T2;
  fr.x = linear(mm.tower.input_proj, y1.data(), T2, pool);  // rows flattened freq-major (f·C + c), trap T2
  fr.valid = conformer_valid(f, T2);
  if (tap) {
    tap("sscp_out", fr.x);
    const std::vector<float> v(fr.valid.begin(), fr.valid.end());
    tap("sscp_valid", v);
  }
  return fr;
}

void conformer_block(const AudioMmproj& mm, const AudioLayerWeights& l, AudioFrames& fr, ThreadPool& pool, int index, const AudioTap& tap) {
  const int64_t D = mm.config.width;
  const std::string p = "conformer_" + std::to_string(index) + "_";
  feed_forward(l.ffn_up, l.ffn_down, l.ffn_norm, l.ffn_post_norm, fr, D, pool);
  if (tap) tap(p + "after_ffw_start", fr.x);
  attention_residual(mm, l, fr, pool);
  if (tap) tap(p + "after_attention", fr.x);
  zero_invalid(fr, D);
  light_conv(mm, l, fr, pool);
  if (tap) tap(p + "after_lconv", fr.x);
  feed_forward(l.ffn_up_end, l.ffn_down_end, l.ffn_norm_end, l.ffn_post_norm_end, fr, D, pool);
  if (tap) tap(p + "after_ffw_end", fr.x);
  fr.x = rms_rows(fr.x, fr.n, D, l.final_norm, true);
  if (tap) tap(p + "out", fr.x);
}

AudioFrames reduce_frames(const AudioFrames& fr, int64_t D) {
  AudioFrames out;
  out.n = (fr.n + kAudioReduction - 1) / kAudioReduction;
  out.x.assign(static_cast<size_t>(out.n * D), 0.0f);
  out.valid.resize(static_cast<size_t>(out.n));
  for (int64_t j = 0; j < out.n; ++j) {
    const int64_t t = j * kAudioReduction;  // trap T10: frames 0, 4, 8, ...
    out.valid[static_cast<size_t>(j)] = fr.valid[static_cast<size_t>(t)];
    if (out.valid[static_cast<size_t>(j)]) std::copy_n(fr.x.data() + t * D, D, out.x.data() + j * D);
  }
  return out;
}

AudioFrames run_audio_tower(const AudioMmproj& mm, const LogMelFeatures& f, ThreadPool& pool, const AudioTap& tap) {
  AudioFrames fr = run_sscp(mm, f, pool, tap);
  for (size_t i = 0; i < mm.tower.layers.size(); ++i) conformer_block(mm, mm.tower.layers[i], fr, pool, static_cast<int>(i), tap);
  return reduce_frames(fr, mm.config.width);
}

}  // namespace g3n
