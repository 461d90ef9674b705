// The f32 building blocks against independent double-precision formulas, and the thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <numeric>
#include <vector>

#include "base/thread_pool.h"
#include "kernels/ops.h"

namespace g3n {
namespace {

TEST(KernelsOps, RmsNormMatchesDefinition) {
  std::vector<float> x = {1, -2, 3, -4, 5, 0.5f}, w = {1, 2, 0.5f, 1, 1, 3}, y(6);
  rms_norm(x.data(), w.data(), y.data(), 6, 1e-6f);
  double ms = 0;
  for (float v : x) ms += double(v) * v;
  const double s = 1.0 / std::sqrt(ms / 6 + 1e-6);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(y[i], x[i] * s * w[i], 1e-6);
  rms_norm(x.data(), nullptr, y.data(), 6, 1e-6f);
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(y[i], x[i] * s, 1e-6);
}

TEST(KernelsOps, GeluTanhKnownValues) {
  for (double x : {-6.0, -1.0, -0.1, 0.0, 0.3, 1.0, 2.5, 8.0}) {
    const double want = 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    EXPECT_NEAR(gelu_tanh(static_cast<float>(x)), want, 1e-6 * std::max(1.0, std::fabs(x)));
  }
}

TEST(KernelsOps, RopeNeoxRotatesHalves) {
  const int d = 8;
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8}, y = x;
  const int pos = 37;
  const float base = 10000.0f;
  rope_neox(y.data(), d, pos, base);
  for (int i = 0; i < d / 2; ++i) {
    const double ang = pos * std::pow(double(base), -2.0 * i / d);
    EXPECT_NEAR(y[i], x[i] * std::cos(ang) - x[i + d / 2] * std::sin(ang), 1e-5);
    EXPECT_NEAR(y[i + d / 2], x[i + d / 2] * std::cos(ang) + x[i] * std::sin(ang), 1e-5);
  }
  std::vector<float> z = x;
  rope_neox(z.data(), d, 0, base);  // position 0 is the identity
  EXPECT_EQ(z, x);
}

TEST(KernelsOps, SoftmaxHandlesMaskedEntries) {
  std::vector<float> x = {1.0f, -INFINITY, 3.0f, 0.0f};
  softmax(x.data(), 4);
  const double z = std::exp(1.0) + std::exp(3.0) + 1.0;
  EXPECT_NEAR(x[0], std::exp(1.0) / z, 1e-6);
  EXPECT_EQ(x[1], 0.0f);
  EXPECT_NEAR(x[2], std::exp(3.0) / z, 1e-6);
  std::vector<float> all_masked = {-INFINITY, -INFINITY};
  softmax(all_masked.data(), 2);
  EXPECT_EQ(all_masked[0], 0.0f);
}

TEST(KernelsOps, DotMatchesDouble) {
  std::vector<float> a(1001), b(1001);
  for (int i = 0; i < 1001; ++i) { a[i] = std::sin(i * 0.37f); b[i] = std::cos(i * 0.11f); }
  double want = 0;
  for (int i = 0; i < 1001; ++i) want += double(a[i]) * b[i];
  EXPECT_NEAR(dot_f32(a.data(), b.data(), 1001), want, 1e-3);
}

TEST(ThreadPool, CoversRangeExactlyOnce) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 3, 17, 1000}) {
      std::vector<std::atomic<int>> hits(n);
      for (int rep = 0; rep < 20; ++rep)
        pool.parallel_for(n, [&](int64_t b, int64_t e, int) { for (int64_t i = b; i < e; ++i) hits[i]++; });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 20) << threads << " " << n << " " << i;
    }
  }
}

}  // namespace
}  // namespace g3n
