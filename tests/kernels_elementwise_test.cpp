// The SIMD GELU and soft-cap (polynomial/exp tanh) against their std::tanh twins, over the whole range
// the model produces and the edges: signs, zero, tiny and huge values, the series/exp switch at 0.25,
// lengths that leave scalar tails.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/vec_dot.h"
#include "kernel_sets_util.h"

namespace g3n {
namespace {

std::vector<float> probe_values() {
  std::vector<float> v = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-6f, -1e-6f, 0.2499f, 0.25f, 0.2501f, -0.25f,
                          0.3f, 1.0f, -1.0f, 4.0f, 8.99f, 9.0f, 9.5f, -20.0f, 50.0f, 1e4f, -1e4f};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> wide(-12.0f, 12.0f), narrow(-0.5f, 0.5f);
  for (int i = 0; i < 4000; ++i) v.push_back(i % 2 ? wide(rng) : narrow(rng));
  for (float x = -6.0f; x <= 6.0f; x += 0.001f) v.push_back(x);
  return v;
}

TEST(KernelsElementwise, GeluMatchesScalarTwin) {
  for_each_kernel_set([&](const std::string&) {
    const std::vector<float> x = probe_values();
    std::vector<float> u(x.size());
    std::mt19937 rng(6);
    std::normal_distribution<float> nd(0.0f, 2.0f);
    for (auto& v : u) v = nd(rng);
    for (bool with_u : {false, true}) {
      for (size_t n : {x.size(), size_t(7), size_t(13)}) {
        std::vector<float> got(x.begin(), x.begin() + n), want(x.begin(), x.begin() + n);
        gelu_tanh_mul(got.data(), with_u ? u.data() : nullptr, int64_t(n));
        gelu_tanh_mul_ref(want.data(), with_u ? u.data() : nullptr, int64_t(n));
        for (size_t i = 0; i < n; ++i) {
          // 0.5 x (1 + tanh): tanh is within ~1e-7 absolute of std::tanh; scale by |0.5 x u| plus rounding.
          const float scale = 0.5f * std::fabs(x[i]) * (with_u ? std::fabs(u[i]) : 1.0f);
          ASSERT_NEAR(got[i], want[i], 2.5e-7f * scale + 2e-7f * std::fabs(want[i]) + 1e-30f)
              << "x=" << x[i] << (with_u ? " with u" : "");
        }
      }
    }
  });
}

TEST(KernelsElementwise, SoftCapMatchesScalarTwin) {
  for_each_kernel_set([&](const std::string&) {
    std::vector<float> x = probe_values();
    for (float& v : x) v *= 5.0f;  // logits reach well past the cap
    for (float cap : {30.0f, 1.0f}) {
      std::vector<float> got = x, want = x;
      soft_cap(got.data(), int64_t(got.size()), cap);
      soft_cap_ref(want.data(), int64_t(want.size()), cap);
      for (size_t i = 0; i < x.size(); ++i) {
        ASSERT_NEAR(got[i], want[i], cap * 2e-7f + 3e-7f * std::fabs(want[i])) << "x=" << x[i] << " cap=" << cap;
        ASSERT_LE(std::fabs(got[i]), cap) << "x=" << x[i];
        ASSERT_EQ(std::signbit(got[i]), std::signbit(x[i])) << "x=" << x[i];
      }
    }
  });
}

// Threads split these loops at arbitrary points; a value must not depend on where its chunk ends.
TEST(KernelsElementwise, ResultDoesNotDependOnSplit) {
  for_each_kernel_set([&](const std::string&) {
    const std::vector<float> x = probe_values();
    const int64_t n = int64_t(x.size());
    std::vector<float> whole = x, capped = x;
    gelu_tanh_mul(whole.data(), nullptr, n);
    soft_cap(capped.data(), n, 30.0f);
    for (int64_t split : {int64_t(1), int64_t(5), int64_t(13), n / 2 + 3}) {
      std::vector<float> a = x, b = x;
      gelu_tanh_mul(a.data(), nullptr, split);
      gelu_tanh_mul(a.data() + split, nullptr, n - split);
      soft_cap(b.data(), split, 30.0f);
      soft_cap(b.data() + split, n - split, 30.0f);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(a[size_t(i)], whole[size_t(i)]) << "gelu split " << split << " at " << i;
        ASSERT_EQ(b[size_t(i)], capped[size_t(i)]) << "soft_cap split " << split << " at " << i;
      }
    }
  });
}

}  // namespace
}  // namespace g3n
