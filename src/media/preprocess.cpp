#include "media/preprocess.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace g3n {

namespace {

// One axis's taps: output i reads inputs start[i] .. start[i] + count[i] - 1 with weights w[i * stride ..].
struct AxisTaps {
  std::vector<int> start, count;
  std::vector<float> w;
  int stride = 0;
};

// torch 1.13 HelperInterpBase::_compute_indices_weights_aa for scalar_t = float, term by term: the casts
// between float and double below are where torch's expressions change type, and they decide .5 ties.
AxisTaps bilinear_aa_taps(int n_in, int n_out) {
  const float scale = static_cast<float>(n_in) / static_cast<float>(n_out);
  const float support = scale >= 1.0f ? static_cast<float>(1.0 * static_cast<double>(scale)) : 1.0f;
  const float invscale = scale >= 1.0f ? static_cast<float>(1.0 / static_cast<double>(scale)) : 1.0f;
  AxisTaps t;
  t.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.start.resize(n_out);
  t.count.resize(n_out);
  t.w.assign(static_cast<size_t>(n_out) * t.stride, 0.0f);
  for (int i = 0; i < n_out; ++i) {
    const float center = static_cast<float>(static_cast<double>(scale) * (i + 0.5));
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(static_cast<double>(center - support) + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(static_cast<double>(center + support) + 0.5), n_in);
    const int count = static_cast<int>(std::max<int64_t>(hi - lo, 1));  // >= 1 for any valid sizes
    float* w = &t.w[static_cast<size_t>(i) * t.stride];
    float total = 0.0f;
    for (int j = 0; j < count; ++j) {
      const float d = static_cast<float>(j + lo) - center;  // int64 - float: float
      float x = static_cast<float>((static_cast<double>(d) + 0.5) * static_cast<double>(invscale));
      x = std::fabs(x);
      w[j] = x < 1.0f ? static_cast<float>(1.0 - static_cast<double>(x)) : 0.0f;
      total += w[j];
    }
    if (total != 0.0f)
      for (int j = 0; j < count; ++j) w[j] /= total;
    t.start[i] = static_cast<int>(std::min<int64_t>(lo, n_in - 1));
    t.count[i] = std::min(count, n_in - t.start[i]);
  }
  return t;
}

// torch's inner loop: output = t0 * w0, then output += tj * wj, which its AVX2/AVX-512 builds of the
// kernel compile to fused multiply-adds; std::fma makes that independent of our own compiler flags.
inline float dot_taps(const float* src, size_t step, const float* w, int count) {
  float acc = src[0] * w[0];
  for (int j = 1; j < count; ++j) acc = std::fma(src[static_cast<size_t>(j) * step], w[j], acc);
  return acc;
}

uint8_t to_u8(float v) {
  const float r = std::nearbyint(v);  // round half to even (the default rounding mode), as torch.round
  return static_cast<uint8_t>(std::clamp(r, 0.0f, 255.0f));
}

}  // namespace

std::vector<uint8_t> resize_to_square_u8_chw(const RgbImage& img, int n) {
  if (n < 1 || n > kMaxPreprocessSize)
    throw MediaError("preprocess: size " + std::to_string(n) + " outside [1, " +
                     std::to_string(kMaxPreprocessSize) + "]");
  const int W = img.width, H = img.height;
  if (W <= 0 || H <= 0 || img.rgb.size() != static_cast<size_t>(W) * H * 3)
    throw MediaError("preprocess: empty or inconsistent image");
  const size_t plane = static_cast<size_t>(n) * n;
  std::vector<uint8_t> out(plane * 3);
  if (W == n && H == n) {  // torch copies a same-size input
    for (size_t p = 0; p < plane; ++p)
      for (int c = 0; c < 3; ++c) out[c * plane + p] = img.rgb[p * 3 + c];
    return out;
  }
  const AxisTaps tx = bilinear_aa_taps(W, n);
  const AxisTaps ty = bilinear_aa_taps(H, n);
  // Stream the input rows once: each row is resized along x, then added into the output rows whose y taps
  // include it, in tap order. Memory is O(n^2), whatever the input height.
  std::vector<float> acc(plane * 3, 0.0f);
  std::vector<float> src(static_cast<size_t>(W));
  std::vector<float> row(static_cast<size_t>(n) * 3);
  int first = 0;  // the lowest output row whose taps may still include the current input row
  for (int y = 0; y < H; ++y) {
    for (int c = 0; c < 3; ++c) {
      const uint8_t* in = &img.rgb[static_cast<size_t>(y) * W * 3 + c];
      for (int x = 0; x < W; ++x) src[x] = static_cast<float>(in[static_cast<size_t>(x) * 3]);
      float* r = &row[static_cast<size_t>(c) * n];
      for (int ox = 0; ox < n; ++ox)
        r[ox] = W == n ? src[ox] : dot_taps(&src[tx.start[ox]], 1, &tx.w[static_cast<size_t>(ox) * tx.stride], tx.count[ox]);
    }
    if (H == n) {  // identity along y
      for (int c = 0; c < 3; ++c)
        std::copy(&row[static_cast<size_t>(c) * n], &row[static_cast<size_t>(c + 1) * n],
                  &acc[c * plane + static_cast<size_t>(y) * n]);
      continue;
    }
    while (first < n && ty.start[first] + ty.count[first] <= y) ++first;
    for (int oy = first; oy < n && ty.start[oy] <= y; ++oy) {
      const int j = y - ty.start[oy];
      const float w = ty.w[static_cast<size_t>(oy) * ty.stride + j];
      for (int c = 0; c < 3; ++c) {
        float* a = &acc[c * plane + static_cast<size_t>(oy) * n];
        const float* r = &row[static_cast<size_t>(c) * n];
        if (j == 0) {
          for (int ox = 0; ox < n; ++ox) a[ox] = r[ox] * w;
        } else {
          for (int ox = 0; ox < n; ++ox) a[ox] = std::fma(r[ox], w, a[ox]);
        }
      }
    }
  }
  for (size_t k = 0; k < out.size(); ++k) out[k] = to_u8(acc[k]);
  return out;
}

std::vector<float> rescale_u8_chw(const std::vector<uint8_t>& chw) {
  const float inv255 = static_cast<float>(1.0 / 255.0);
  std::vector<float> out(chw.size());
  for (size_t k = 0; k < chw.size(); ++k) out[k] = static_cast<float>(chw[k]) * inv255;
  return out;
}

std::vector<float> preprocess_image(const RgbImage& img, int n) {
  return rescale_u8_chw(resize_to_square_u8_chw(img, n));
}

}  // namespace g3n
