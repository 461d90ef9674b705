#include "kernels/ops.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace g3n {

float dot_f32(const float* a, const float* b, int64_t n) {
  // Eight independent partial sums: lets the compiler keep the loop pipelined without -ffast-math.
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += a[i + k] * b[i + k];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float sum_squares(const float* x, int64_t n) { return dot_f32(x, x, n); }

float rms_scale(const float* x, int64_t n, float eps) {
  return 1.0f / std::sqrt(sum_squares(x, n) / static_cast<float>(n) + eps);
}

void rms_norm(const float* x, const float* w, float* y, int64_t n, float eps) {
  const float s = rms_scale(x, n, eps);
  if (w) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s * w[i];
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * s;
  }
}

float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
  return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + 0.044715f * x * x)));
}

void rope_angles(int64_t head_dim, int64_t pos, float base, float* cos_sin) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    // Angle in double: exact enough at 32K positions, where f32 accumulation drifts ~1e-3 rad.
    const double freq = std::pow(static_cast<double>(base), -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    const double angle = static_cast<double>(pos) * freq;
    cos_sin[i] = static_cast<float>(std::cos(angle));
    cos_sin[half + i] = static_cast<float>(std::sin(angle));
  }
}

void rope_neox_with(float* x, int64_t head_dim, const float* cos_sin) {
  const int64_t half = head_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float c = cos_sin[i], s = cos_sin[half + i];
    const float a = x[i], b = x[i + half];
    x[i] = a * c - b * s;
    x[i + half] = b * c + a * s;
  }
}

void rope_neox(float* x, int64_t head_dim, int64_t pos, float base) {
  float cs[1024];
  if (head_dim > 1024) throw std::invalid_argument("rope_neox: head_dim above 1024");
  rope_angles(head_dim, pos, base, cs);
  rope_neox_with(x, head_dim, cs);
}

void softmax(float* x, int64_t n) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i)  // fmax's NaN rule (a NaN entry is passed over), inline: fmax is a libm call
    if (x[i] > mx) mx = x[i];
  if (!std::isfinite(mx)) {  // nothing visible: define the result as all zeros
    for (int64_t i = 0; i < n; ++i) x[i] = 0;
    return;
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace g3n
