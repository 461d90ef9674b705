// The conv kernel sets (kernels/conv.h) against a double-precision reference and against each other:
// every set this CPU runs (not only the dispatched one) is exercised and named in the output.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "kernels/conv.h"
#include "kernels/cpu_features.h"
#include "kernels/vec_dot.h"
#include "quant/fp16.h"
#include "quant/ggml_type.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

std::vector<float> randn(size_t n, uint32_t seed, float sd = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

// A weight matrix [n_out][n_in] of the given type, with its values decoded back to f32.
struct TestWeights {
  std::vector<uint8_t> bytes;
  std::vector<float> decoded;
  WeightMatrix w;
};
TestWeights make_weights(GgmlType type, int64_t n_out, int64_t n_in, uint32_t seed) {
  TestWeights t;
  const std::vector<float> f = randn(static_cast<size_t>(n_out * n_in), seed, 0.1f);
  const uint64_t rb = *ggml_row_bytes(type, static_cast<uint64_t>(n_in));
  t.bytes.resize(rb * n_out);
  t.decoded.resize(f.size());
  for (int64_t o = 0; o < n_out; ++o) {
    quantize_row(type, f.data() + o * n_in, t.bytes.data() + o * rb, n_in);
    dequantize_row(type, t.bytes.data() + o * rb, t.decoded.data() + o * n_in, n_in);
  }
  t.w = WeightMatrix{type, n_in, n_out, rb, t.bytes.data()};
  return t;
}

TEST(KernelsConv, SetsAvailable) {
  std::printf("  cpu features: %s\n  conv kernel sets:", cpu_features_string().c_str());
  for (const ConvKernelSet* s : conv_kernel_sets()) std::printf(" %s", s->name);
  std::printf("\n  dispatched: %s\n", conv_kernels().name);
#if defined(__x86_64__)
  const CpuFeatures& f = cpu_features();
  const bool avx2 = f.avx2 && f.fma && f.f16c;
  EXPECT_EQ(conv_kernel_sets().size(), 1u + avx2 + (avx2 && f.avx512f));
  // The set goes with the text decoder's: zmm where it computes with zmm.
  EXPECT_STREQ(conv_set_for("scalar").name, "scalar");
  if (avx2) {
    EXPECT_STREQ(conv_set_for("avx2+fma+f16c").name, "avx2+fma+f16c");
    EXPECT_STREQ(conv_set_for("avx512vnni-256").name, "avx2+fma+f16c");
    EXPECT_STREQ(conv_set_for("avx512vnni").name, f.avx512f ? "avx512f" : "scalar");
  }
#elif defined(__aarch64__)
  EXPECT_EQ(conv_kernel_sets().size(), cpu_features().neon ? 2u : 1u);
#endif
  // Every vec_dot set this CPU runs names a conv set this CPU runs (a new row in vec_dot.cpp's table
  // without one would leave the towers on the scalar set).
  for (const std::string& set : vec_dot_sets()) {
    std::printf("  %s -> conv %s\n", set.c_str(), conv_set_for(set).name);
    EXPECT_EQ(vec_dot_conv_set(set), conv_set_for(set).name) << set;
  }
  EXPECT_EQ(vec_dot_conv_set("no such set"), "");
}

TEST(KernelsConv, PackMatchesDecodedWeights) {
  for (const ConvKernelSet* ks : conv_kernel_sets())
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0})
      for (int64_t n_in : {int64_t(320), int64_t(300)}) {  // 300: a second block of 44 inputs (vector loop + tail)
        if (type == GgmlType::Q8_0 && n_in % 32 != 0) continue;
        const int64_t n_out = 45;
        const TestWeights t = make_weights(type, n_out, n_in, 3);
        for (int64_t k0 : {int64_t(0), int64_t(256)}) {
          const int64_t kc = std::min<int64_t>(kGemmKC, n_in - k0);
          for (int64_t n0 : {int64_t(0), int64_t(13)}) {
            const int64_t nn = n_out - n0, strips = (nn + 15) / 16;
            std::vector<float> p(static_cast<size_t>(strips * kc * 16), -1.0f);
            ks->pack_weights(t.w, n0, nn, k0, kc, p.data());
            for (int64_t s = 0; s < strips; ++s)
              for (int64_t k = 0; k < kc; ++k)
                for (int64_t j = 0; j < 16; ++j) {
                  const int64_t o = s * 16 + j;
                  const float want = o < nn ? t.decoded[static_cast<size_t>((n0 + o) * n_in + k0 + k)] : 0.0f;
                  ASSERT_EQ(p[static_cast<size_t>((s * kc + k) * 16 + j)], want)
                      << ks->name << " " << ggml_type_traits(type).name << " n_in" << n_in << " s" << s << " k" << k << " j" << j;
                }
          }
        }
      }
}

// pack_activations against the scalar set's layout, bit for bit: every row count of a panel (m % 6) and
// inputs that are not a multiple of any vector width (the tails).
TEST(KernelsConv, PackActivationsMatchesScalarTwin) {
  const ConvKernelSet& ref = conv_kernels_scalar();
  for (const ConvKernelSet* ks : conv_kernel_sets())
    for (int64_t m : {int64_t(1), int64_t(5), int64_t(6), int64_t(13), int64_t(18)})
      for (int64_t K : {int64_t(1), int64_t(3), int64_t(8), int64_t(37), int64_t(64)}) {
        const int64_t lda = K + 2;
        const std::vector<float> a = randn(static_cast<size_t>(m * lda), 9);
        std::vector<float> got(static_cast<size_t>(packed_activations_size(m, K)), -1.0f), want(got.size(), -2.0f);
        ks->pack_activations(a.data(), lda, m, K, got.data());
        ref.pack_activations(a.data(), lda, m, K, want.data());
        ASSERT_EQ(got, want) << ks->name << " m" << m << " K" << K;
      }
}

// gemm_weights over odd sizes (row remainders 1..5, column remainders, several input blocks, an input
// count no vector width divides; F32, F16 and Q8_0 weights), against a double reference; within one set,
// computing a subset of rows gives the same bits (what makes the vision tower independent of the thread
// count).
TEST(KernelsConv, GemmMatchesReference) {
  struct Shape {
    int64_t m, n_in, n_out;
  };
  for (const ConvKernelSet* ks : conv_kernel_sets()) {
    double worst = 0;
    for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0})
      for (const Shape sh : {Shape{1, 32, 16}, Shape{7, 64, 24}, Shape{13, 288, 40}, Shape{96, 608, 80}, Shape{11, 1152, 17}, Shape{50, 320, 130}, Shape{103, 544, 144}, Shape{17, 301, 40}}) {
        if (type == GgmlType::Q8_0 && sh.n_in % 32 != 0) continue;  // Q8_0 rows are whole 32-value blocks
        const TestWeights t = make_weights(type, sh.n_out, sh.n_in, 7);
        const int64_t lda = sh.n_in + 3, ldc = sh.n_out + 5;
        const std::vector<float> a = randn(static_cast<size_t>(sh.m * lda), 8);
        std::vector<float> c(static_cast<size_t>(sh.m * ldc), 123.0f);
        GemmScratch scratch;
        gemm_weights(*ks, a.data(), lda, sh.m, t.w, c.data(), ldc, scratch);
        for (int64_t i = 0; i < sh.m; ++i) {
          for (int64_t o = 0; o < sh.n_out; ++o) {
            double want = 0, mag = 0;
            for (int64_t k = 0; k < sh.n_in; ++k) {
              const double p = double(a[size_t(i * lda + k)]) * t.decoded[size_t(o * sh.n_in + k)];
              want += p;
              mag += std::fabs(p);
            }
            const double err = std::fabs(c[size_t(i * ldc + o)] - want);
            worst = std::max(worst, err / mag);
            ASSERT_LE(err, 2e-6 * mag + 1e-30) << ks->name << " m" << sh.m << " o" << o << " i" << i;
          }
          for (int64_t o = sh.n_out; o < ldc; ++o) ASSERT_EQ(c[size_t(i * ldc + o)], 123.0f);  // untouched
        }
        // Packed A (what gemm_weights does for wide outputs) and plain rows, by column ranges: same bits.
        std::vector<float> plain(c.size(), 123.0f), packed(c.size(), 123.0f);
        std::vector<float> ap(static_cast<size_t>(packed_activations_size(sh.m, sh.n_in)));
        ks->pack_activations(a.data(), lda, sh.m, sh.n_in, ap.data());
        for (int64_t o0 = 0; o0 < sh.n_out; o0 += 32) {
          const int64_t o1 = std::min(sh.n_out, o0 + 32);
          gemm_weights_columns(*ks, a.data(), lda, sh.m, t.w, o0, o1, plain.data(), ldc, scratch);
          gemm_weights_packed_columns(*ks, ap.data(), sh.m, t.w, o0, o1, packed.data(), ldc, scratch);
        }
        ASSERT_EQ(plain, c) << ks->name;
        ASSERT_EQ(packed, c) << ks->name;
        // The rows from 5 on, alone: bit-identical.
        if (sh.m > 5) {
          std::vector<float> part(static_cast<size_t>((sh.m - 5) * ldc), 0.0f);
          gemm_weights(*ks, a.data() + 5 * lda, lda, sh.m - 5, t.w, part.data(), ldc, scratch);
          for (int64_t i = 5; i < sh.m; ++i)
            for (int64_t o = 0; o < sh.n_out; ++o) ASSERT_EQ(part[size_t((i - 5) * ldc + o)], c[size_t(i * ldc + o)]) << ks->name;
        }
      }
    std::printf("  %-14s gemm: max |err| / sum|products| = %.2e\n", ks->name, worst);
  }
}

// The AVX2 and AVX-512F sets where this CPU runs both (else nullptrs).
std::pair<const ConvKernelSet*, const ConvKernelSet*> avx2_and_avx512_sets() {
  const ConvKernelSet* avx2 = nullptr;
  const ConvKernelSet* avx512 = nullptr;
  for (const ConvKernelSet* ks : conv_kernel_sets()) {
    if (std::string(ks->name) == "avx2+fma+f16c") avx2 = ks;
    if (std::string(ks->name) == "avx512f") avx512 = ks;
  }
  return {avx2, avx512};
}

// SiLU (and so exp) element for element; GELU through a norm whose rows have one value (every sum is that
// value's square in any order).
TEST(KernelsConv, Avx512ActivationsGiveTheAvx2Bits) {
  const auto [avx2, avx512] = avx2_and_avx512_sets();
  if (!avx2 || !avx512) GTEST_SKIP() << "this CPU runs no avx512f conv set";
  std::vector<float> x = randn(4099, 61, 12.0f);
  x[0] = -120.0f;
  x[1] = 95.0f;
  x[2] = 0.0f;
  std::vector<float> a = x, b = x;
  avx2->silu(a.data(), int64_t(a.size()));
  avx512->silu(b.data(), int64_t(b.size()));
  ASSERT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
  const std::vector<float> w = randn(x.size(), 62, 2.0f);
  for (size_t i = 0; i < x.size(); ++i) {  // rows of one value: x * rsqrt(x^2 + eps) * w, then gelu
    float p = x[i], q = x[i];
    avx2->rms_norm_rows(&p, 1, 1, 1, &w[i], 1e-6f, true);
    avx512->rms_norm_rows(&q, 1, 1, 1, &w[i], 1e-6f, true);
    ASSERT_EQ(0, std::memcmp(&p, &q, sizeof p)) << "x " << x[i] << " w " << w[i];
  }
}

// The AVX-512F GEMM (12 pixels per call on zmm) gives the AVX2 set's bits: the same FMA chain per output.
// Every row remainder of both kernels (1-11 of 12, 1-5 of 6), partial strips, several input blocks,
// packed and plain A. So does its depthwise kernel.
TEST(KernelsConv, Avx512GemmGivesTheAvx2Bits) {
  const auto [avx2, avx512] = avx2_and_avx512_sets();
  if (!avx2 || !avx512) GTEST_SKIP() << "this CPU runs no avx512f conv set";
  for (GgmlType type : {GgmlType::F32, GgmlType::F16})
    for (int64_t m = 1; m <= 26; ++m)
      for (const auto& [n_in, n_out] : {std::pair<int64_t, int64_t>{40, 16}, {300, 45}, {600, 136}}) {
        const TestWeights t = make_weights(type, n_out, n_in, 9);
        const int64_t lda = n_in + 1, ldc = n_out + 3;
        const std::vector<float> a = randn(static_cast<size_t>(m * lda), 10);
        std::vector<float> want(static_cast<size_t>(m * ldc), 5.0f), got(want);
        GemmScratch sa, sb;
        gemm_weights(*avx2, a.data(), lda, m, t.w, want.data(), ldc, sa);
        gemm_weights(*avx512, a.data(), lda, m, t.w, got.data(), ldc, sb);
        ASSERT_EQ(want, got) << "m " << m << " n_in " << n_in << " n_out " << n_out;
        std::fill(got.begin(), got.end(), 5.0f);
        gemm_weights_columns(*avx512, a.data(), lda, m, t.w, 0, n_out, got.data(), ldc, sb);  // plain rows
        ASSERT_EQ(want, got) << "plain, m " << m << " n_in " << n_in << " n_out " << n_out;
      }
  // Depthwise: 64-channel chunks, 16-channel ones and a masked tail against the AVX2 kernel's 32/8/1.
  for (int64_t C : {int64_t(8), int64_t(40), int64_t(77), int64_t(130), int64_t(256)})
    for (int k : {3, 5}) {
      const int64_t w_in = 13;
      std::vector<std::vector<float>> rows;
      for (int r = 0; r < k; ++r) rows.push_back(randn(static_cast<size_t>(w_in * C), 40 + r));
      const std::vector<float> wt = randn(static_cast<size_t>(k * k * C), 50);
      std::vector<const float*> ptrs;
      for (int r = 0; r < k; ++r) ptrs.push_back(r == k - 1 ? nullptr : rows[r].data());
      std::vector<float> want(static_cast<size_t>(w_in * C)), got(want.size());
      avx2->depthwise_row(ptrs.data(), w_in, C, wt.data(), k, 1, k / 2, 0, w_in, want.data());
      avx512->depthwise_row(ptrs.data(), w_in, C, wt.data(), k, 1, k / 2, 0, w_in, got.data());
      ASSERT_EQ(want, got) << "depthwise C " << C << " k " << k;
    }
}

TEST(KernelsConv, DepthwiseMatchesScalarTwin) {
  const ConvKernelSet& ref = conv_kernels_scalar();
  for (const ConvKernelSet* ks : conv_kernel_sets())
    for (int64_t C : {int64_t(8), int64_t(40), int64_t(77), int64_t(130)})
      for (int k : {3, 5})
        for (int stride : {1, 2}) {
          const int64_t w_in = 19;
          std::vector<std::vector<float>> rows;
          for (int r = 0; r < k; ++r) rows.push_back(randn(static_cast<size_t>(w_in * C), 20 + r));
          const std::vector<float> wt = randn(static_cast<size_t>(k * k * C), 30);
          std::vector<const float*> ptrs;
          for (int r = 0; r < k; ++r) ptrs.push_back(r == 1 ? nullptr : rows[r].data());  // one padding row
          const int64_t pad = stride == 1 ? k / 2 : (k - 1) / 2, nx = stride == 1 ? w_in : (w_in + 1) / 2;
          std::vector<float> got(static_cast<size_t>(nx * C)), want(got.size());
          ks->depthwise_row(ptrs.data(), w_in, C, wt.data(), k, stride, pad, 0, nx, got.data());
          ref.depthwise_row(ptrs.data(), w_in, C, wt.data(), k, stride, pad, 0, nx, want.data());
          for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-5f) << ks->name << " C" << C << " k" << k;
          // An output window [3, nx) on its own: same bits.
          std::vector<float> part(static_cast<size_t>((nx - 3) * C));
          ks->depthwise_row(ptrs.data(), w_in, C, wt.data(), k, stride, pad, 3, nx - 3, part.data());
          for (size_t i = 0; i < part.size(); ++i) ASSERT_EQ(part[i], got[i + 3 * C]) << ks->name;
        }
}

TEST(KernelsConv, RmsNormAndGeluMatchScalarTwin) {
  const ConvKernelSet& ref = conv_kernels_scalar();
  for (const ConvKernelSet* ks : conv_kernel_sets()) {
    float worst = 0;
    for (int64_t n : {int64_t(8), int64_t(27), int64_t(48), int64_t(640)})
      for (bool gelu : {false, true}) {
        const int64_t rows = 5, ld = n + 2;
        std::vector<float> x = randn(static_cast<size_t>(rows * ld), 40, 3.0f);
        x[0] = 1e4f;  // huge and tiny values through gelu
        x[1] = -1e4f;
        const std::vector<float> w = randn(static_cast<size_t>(n), 41);
        std::vector<float> got = x, want = x;
        ks->rms_norm_rows(got.data(), ld, rows, n, w.data(), 1e-6f, gelu);
        ref.rms_norm_rows(want.data(), ld, rows, n, w.data(), 1e-6f, gelu);
        for (size_t i = 0; i < x.size(); ++i) {
          const float err = std::fabs(got[i] - want[i]);
          worst = std::max(worst, err / (std::fabs(want[i]) + 1e-3f));
          ASSERT_LE(err, 2e-6f * std::fabs(want[i]) + 5e-7f) << ks->name << " n" << n << " gelu " << gelu << " at " << i;
        }
      }
    std::printf("  %-14s rms_norm(+gelu): max rel err %.2e\n", ks->name, worst);
  }
}

TEST(KernelsConv, SoftmaxMatchesScalarTwin) {
  const ConvKernelSet& ref = conv_kernels_scalar();
  for (const ConvKernelSet* ks : conv_kernel_sets())
    for (int64_t n : {int64_t(1), int64_t(13), int64_t(40), int64_t(576)}) {
      const int64_t rows = 4, ld = n + 1;
      std::vector<float> x = randn(static_cast<size_t>(rows * ld), 50, 8.0f);
      x[2 % n] = -200.0f;  // far below the max: underflows
      std::vector<float> got = x, want = x;
      ks->softmax_rows(got.data(), ld, rows, n, 0.125f);
      ref.softmax_rows(want.data(), ld, rows, n, 0.125f);
      for (int64_t r = 0; r < rows; ++r) {
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) {
          const float g = got[size_t(r * ld + i)], w = want[size_t(r * ld + i)];
          ASSERT_NEAR(g, w, 2e-6f * w + 1e-37f) << ks->name << " n" << n;
          sum += g;
        }
        ASSERT_NEAR(sum, 1.0, 1e-5) << ks->name;
      }
    }
}

TEST(KernelsConv, SiluMatchesScalarTwin) {
  const ConvKernelSet& ref = conv_kernels_scalar();
  for (const ConvKernelSet* ks : conv_kernel_sets()) {
    float worst = 0;
    for (int64_t n : {int64_t(1), int64_t(7), int64_t(8), int64_t(16), int64_t(33), int64_t(1000)}) {
      std::vector<float> x = randn(static_cast<size_t>(n), 60, 6.0f);
      x[0] = -120.0f;  // exp(120) overflows: silu is -0 in the scalar set, -1.9e-36 in SIMD (clamped exp)
      if (n > 1) x[1] = 95.0f;
      std::vector<float> got = x, want = x;
      ks->silu(got.data(), n);
      ref.silu(want.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const float err = std::fabs(got[size_t(i)] - want[size_t(i)]);
        ASSERT_LE(err, 2e-6f * std::fabs(want[size_t(i)]) + 1e-30f) << ks->name << " n" << n << " x " << x[size_t(i)];
        if (want[size_t(i)] != 0) worst = std::max(worst, err / std::fabs(want[size_t(i)]));
      }
    }
    std::printf("  %-14s silu: max rel err %.2e\n", ks->name, worst);
  }
}

}  // namespace
}  // namespace g3n
