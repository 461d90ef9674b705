// Grouped attention kernels (kernels/attention.h): SIMD against the scalar twins, for F16 and F32
// rows, every group size the dispatcher specializes (and one it does not), key counts that leave odd
// tails, head sizes with and without a multiple of 8, strided rows.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernel_sets_util.h"
#include "quant/fp16.h"

namespace g3n {
namespace {

struct Data {
  std::vector<float> k32, v32, q, p;
  std::vector<uint16_t> k16, v16;
};

Data make(int64_t n, int64_t stride, int G, int64_t d, int64_t ld, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::uniform_real_distribution<float> ud(0.0f, 1.0f);
  Data x;
  x.k32.resize(size_t(n * stride));
  x.v32.resize(size_t(n * stride));
  for (auto& v : x.k32) v = fp16_to_fp32(fp32_to_fp16(nd(rng)));  // representable in both types
  for (auto& v : x.v32) v = fp16_to_fp32(fp32_to_fp16(nd(rng)));
  for (float v : x.k32) x.k16.push_back(fp32_to_fp16(v));
  for (float v : x.v32) x.v16.push_back(fp32_to_fp16(v));
  x.q.resize(size_t(G * d));
  for (auto& v : x.q) v = nd(rng);
  x.p.resize(size_t(G * ld));
  for (auto& v : x.p) v = ud(rng);
  return x;
}

TEST(KernelsAttention, SimdMatchesScalarTwin) {
  for_each_kernel_set([&](const std::string&) {
    for (int G : {1, 2, 3, 4, 8}) {
      for (int64_t d : {int64_t(8), int64_t(64), int64_t(256), int64_t(13)}) {
        for (int64_t n : {int64_t(1), int64_t(2), int64_t(7), int64_t(100), int64_t(301)}) {
          const int64_t stride = d * 2 + 8, ld = n + 3;
          const Data x = make(n, stride, G, d, ld, uint32_t(G * 1000 + d * 10 + n));
          for (bool f16 : {true, false}) {
            std::vector<float> s(size_t(G * ld), -7.0f), s_ref = s;
            std::vector<float> o(size_t(G * d), 0.5f), o_ref = o;
            if (f16) {
              attn_scores_f16(x.k16.data(), stride, n, x.q.data(), G, d, s.data(), ld);
              attn_scores_f16_ref(x.k16.data(), stride, n, x.q.data(), G, d, s_ref.data(), ld);
              attn_values_f16(x.v16.data(), stride, n, x.p.data(), ld, G, d, o.data());
              attn_values_f16_ref(x.v16.data(), stride, n, x.p.data(), ld, G, d, o_ref.data());
            } else {
              attn_scores_f32(x.k32.data(), stride, n, x.q.data(), G, d, s.data(), ld);
              attn_scores_f32_ref(x.k32.data(), stride, n, x.q.data(), G, d, s_ref.data(), ld);
              attn_values_f32(x.v32.data(), stride, n, x.p.data(), ld, G, d, o.data());
              attn_values_f32_ref(x.v32.data(), stride, n, x.p.data(), ld, G, d, o_ref.data());
            }
            for (int h = 0; h < G; ++h) {
              for (int64_t j = 0; j < ld; ++j) {
                const float got = s[size_t(h * ld + j)], want = s_ref[size_t(h * ld + j)];
                if (j >= n) {
                  ASSERT_EQ(got, -7.0f) << "wrote past n";
                  continue;
                }
                double mag = 0;  // sum |k_i q_i| bounds the reordering error
                for (int64_t i = 0; i < d; ++i) mag += std::fabs(x.k32[size_t(j * stride + i)] * x.q[size_t(h * d + i)]);
                ASSERT_NEAR(got, want, 2e-6 * mag + 1e-30) << "scores G=" << G << " d=" << d << " n=" << n << " f16=" << f16;
              }
              for (int64_t i = 0; i < d; ++i) {
                double mag = 0.5;
                for (int64_t j = 0; j < n; ++j) mag += std::fabs(x.p[size_t(h * ld + j)] * x.v32[size_t(j * stride + i)]);
                ASSERT_NEAR(o[size_t(h * d + i)], o_ref[size_t(h * d + i)], 2e-6 * mag) << "values G=" << G << " d=" << d << " n=" << n;
              }
            }
          }
        }
      }
    }
  });
}

// The values kernels take keys in chunks, each output's sum passing through `out` between them: splitting a
// call anywhere (as the model does where the cache ring wraps) must give one call's bits, which is what keeps
// the model's batched and one-row evaluation identical.
TEST(KernelsAttention, ValuesSplitAnywhereEqualOneCall) {
  for_each_kernel_set([&](const std::string&) {
    for (int G : {1, 4, 8}) {
      const int64_t n = 301, d = 256, stride = 2 * d + 8, ld = n;
      const Data x = make(n, stride, G, d, ld, uint32_t(G + 77));
      for (bool f16 : {true, false}) {
        const auto run = [&](int64_t from, int64_t to, std::vector<float>& o) {
          if (f16)
            attn_values_f16(x.v16.data() + from * stride, stride, to - from, x.p.data() + from, ld, G, d, o.data());
          else
            attn_values_f32(x.v32.data() + from * stride, stride, to - from, x.p.data() + from, ld, G, d, o.data());
        };
        std::vector<float> whole(size_t(G * d), 0.25f);
        run(0, n, whole);
        for (int64_t m : {int64_t(1), int64_t(63), int64_t(64), int64_t(65), int64_t(150), int64_t(300)}) {
          std::vector<float> split(size_t(G * d), 0.25f);
          run(0, m, split);
          run(m, n, split);
          ASSERT_EQ(std::memcmp(split.data(), whole.data(), split.size() * sizeof(float)), 0)
              << "G=" << G << " f16=" << f16 << " split at " << m;
        }
      }
    }
  });
}

}  // namespace
}  // namespace g3n
