// vec_dot kernels: SIMD against the scalar twins, the twins against exact double arithmetic on the
// dequantized operands, and the end-to-end error against the float dot product.
//
// Tolerances (M = sum_i |w_i * a_i| over the dequantized operands):
//  (a) dispatched vs scalar twin:  |diff| <= 2e-6 * M. Integer block sums are identical; only float
//      accumulation order (SIMD lanes) and FMA rounding differ, observed ~1e-7 * M.
//  (b) scalar twin vs exact:       |diff| <= 2e-6 * M. The twin scales each exact int32 block sum in
//      float; dequantize_row rounds d*scale and the min term separately; both are float rounding.
//  (c) end-to-end vs dot(w, x):    |diff| <= sum_blocks (d_a / 2 * sum_block |w_i|) * (1 + 1e-5)
//      + 2e-6 * M, the activation rounding bound (each |x_i - a_i| <= d_a / 2, checked too), plus
//      for Q8_1 pairs the fp16 rounding of s, which ggml's format carries.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernel_sets_util.h"
#include "kernels/vec_dot.h"
#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

// Float-rounding tolerance relative to M (observed max 1.9e-7 over all types and lengths).
constexpr double kTol = 2e-6;

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0,
                              GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                              GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                              GgmlType::Q6_K};

std::string type_name(GgmlType t) { return std::string(ggml_type_traits(t).name); }
uint32_t block_size(GgmlType t) { return ggml_type_traits(t).block_size; }
bool is_float(GgmlType t) { return vec_dot_act_type(t) == GgmlType::F32; }

std::vector<float> randn(std::mt19937& rng, int64_t n, float scale) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  // A few outliers, as real activations have: they set the block scales.
  for (int64_t i = 0; i < n; i += 97) v[size_t(i)] *= 6.0f;
  return v;
}

std::vector<uint8_t> quantize(GgmlType t, const std::vector<float>& x) {
  std::vector<uint8_t> w(*ggml_row_bytes(t, x.size()));
  quantize_row(t, x.data(), w.data(), int64_t(x.size()));
  return w;
}

// Random bytes everywhere, then sane (small, finite) fp16 scales: exercises every bit of the packed
// quants and sub-block scales, which quantize_row's outputs may not.
std::vector<uint8_t> random_blocks(GgmlType t, int64_t n, std::mt19937& rng) {
  if (is_float(t)) return quantize(t, randn(rng, n, 1.0f));
  const auto tr = ggml_type_traits(t);
  std::vector<uint8_t> w(*ggml_row_bytes(t, uint64_t(n)));
  for (auto& b : w) b = uint8_t(rng());
  std::uniform_real_distribution<float> ud(0.001f, 0.05f);
  auto put = [&](size_t off) {
    const uint16_t h = fp32_to_fp16(ud(rng));
    std::memcpy(&w[off], &h, 2);
  };
  for (size_t b = 0; b < w.size() / tr.block_bytes; ++b) {
    const size_t base = b * tr.block_bytes;
    switch (t) {
      case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: put(base); break;
      case GgmlType::Q4_1: case GgmlType::Q5_1: put(base); put(base + 2); break;
      case GgmlType::Q4_K: case GgmlType::Q5_K: put(base); put(base + 2); break;
      case GgmlType::Q2_K: put(base + 80); put(base + 82); break;
      case GgmlType::Q3_K: put(base + 108); break;
      case GgmlType::Q6_K: put(base + 208); break;
      default: ADD_FAILURE() << "no layout for " << type_name(t);
    }
  }
  return w;
}

std::vector<int64_t> lengths(GgmlType t) {
  if (is_float(t)) return {1, 7, 8, 31, 33, 64, 257, 1000, 2048};
  if (block_size(t) == 32) return {32, 96, 1056, 2048};
  return {256, 768, 2304};
}

struct Case {
  std::vector<float> w;    // dequantized weights
  std::vector<float> x;    // original activations
  std::vector<float> a;    // dequantized activations (== x for float types)
  std::vector<uint8_t> qa; // quantized activations
  double exact = 0;        // sum w_i a_i in double
  double mag = 0;          // sum |w_i a_i|
};

Case make_case(GgmlType t, const std::vector<uint8_t>& wq, int64_t n, std::mt19937& rng) {
  Case c;
  c.w.resize(size_t(n));
  dequantize_row(t, wq.data(), c.w.data(), n);
  c.x = randn(rng, n, 0.7f);
  c.qa.resize(act_row_bytes(t, n));
  quantize_act_row(t, c.x.data(), c.qa.data(), n);
  // The dispatched quantizer must be byte-identical to the scalar twin.
  std::vector<uint8_t> qa_ref(c.qa.size());
  quantize_act_row_ref(t, c.x.data(), qa_ref.data(), n);
  EXPECT_EQ(0, std::memcmp(c.qa.data(), qa_ref.data(), c.qa.size())) << type_name(t) << " n=" << n;
  c.a.resize(size_t(n));
  const GgmlType at = vec_dot_act_type(t);
  if (at == GgmlType::F32) c.a = c.x;
  else dequantize_row(at, c.qa.data(), c.a.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    c.exact += double(c.w[size_t(i)]) * double(c.a[size_t(i)]);
    c.mag += std::fabs(double(c.w[size_t(i)]) * double(c.a[size_t(i)]));
  }
  // Q8_1 carries s = fp16(d * sum q): the twin uses it as stored, so the exact value does too.
  if (at == GgmlType::Q8_1) {
    const size_t wb = ggml_type_traits(t).block_bytes;
    const auto* ab = reinterpret_cast<const quant::BlockQ8_1*>(c.qa.data());
    for (int64_t b = 0; b < n / 32; ++b) {
      uint16_t mh;
      std::memcpy(&mh, &wq[size_t(b) * wb + 2], 2);
      int sq = 0;
      for (int j = 0; j < 32; ++j) sq += ab[b].qs[j];
      c.exact += double(fp16_to_fp32(mh)) *
                 (double(fp16_to_fp32(ab[b].s)) - double(fp16_to_fp32(ab[b].d)) * sq);
    }
  }
  return c;
}

class KernelsVecDotType : public ::testing::TestWithParam<GgmlType> {};

void check_twins(GgmlType t, const std::vector<uint8_t>& wq, int64_t n, const Case& c, double* worst_a,
                 double* worst_b) {
  const float simd = vec_dot(t, wq.data(), c.qa.data(), n);
  const float ref = vec_dot_ref(t, wq.data(), c.qa.data(), n);
  const double tol = kTol * c.mag + 1e-30;
  EXPECT_LE(std::fabs(double(simd) - ref), tol) << type_name(t) << " n=" << n << " simd vs scalar";
  EXPECT_LE(std::fabs(double(ref) - c.exact), tol) << type_name(t) << " n=" << n << " scalar vs exact";
  if (c.mag > 0) {
    *worst_a = std::max(*worst_a, std::fabs(double(simd) - ref) / c.mag);
    *worst_b = std::max(*worst_b, std::fabs(double(ref) - c.exact) / c.mag);
  }
}

TEST_P(KernelsVecDotType, QuantizedWeightsTwinsAndExact) {
  for_each_kernel_set([&](const std::string&) {
    const GgmlType t = GetParam();
    std::mt19937 rng(1234 + uint32_t(t));
    double wa = 0, wb = 0;
    for (int64_t n : lengths(t)) {
      for (int rep = 0; rep < 3; ++rep) {
        const auto wq = quantize(t, randn(rng, n, 0.05f));
        check_twins(t, wq, n, make_case(t, wq, n, rng), &wa, &wb);
      }
    }
    std::printf("  %-5s quantized weights: max |simd-ref|/M = %.2e, max |ref-exact|/M = %.2e\n",
                type_name(t).c_str(), wa, wb);
  });
}

TEST_P(KernelsVecDotType, RandomBlockBytesTwinsAndExact) {
  for_each_kernel_set([&](const std::string&) {
    const GgmlType t = GetParam();
    std::mt19937 rng(99 + uint32_t(t));
    double wa = 0, wb = 0;
    for (int64_t n : lengths(t)) {
      for (int rep = 0; rep < 3; ++rep) {
        const auto wq = random_blocks(t, n, rng);
        check_twins(t, wq, n, make_case(t, wq, n, rng), &wa, &wb);
      }
    }
    std::printf("  %-5s random blocks:     max |simd-ref|/M = %.2e, max |ref-exact|/M = %.2e\n",
                type_name(t).c_str(), wa, wb);
  });
}

TEST_P(KernelsVecDotType, EndToEndWithinActivationQuantizationBound) {
  for_each_kernel_set([&](const std::string&) {
    const GgmlType t = GetParam();
    std::mt19937 rng(7 + uint32_t(t));
    const GgmlType at = vec_dot_act_type(t);
    const int64_t ab = at == GgmlType::Q8_K ? 256 : 32;
    for (int64_t n : lengths(t)) {
      const auto wq = quantize(t, randn(rng, n, 0.05f));
      const Case c = make_case(t, wq, n, rng);
      double want = 0, bound = kTol * c.mag;
      for (int64_t i = 0; i < n; ++i) want += double(c.w[size_t(i)]) * c.x[size_t(i)];
      if (at != GgmlType::F32) {
        for (int64_t b = 0; b < n / ab; ++b) {
          float d = 0;
          if (at == GgmlType::Q8_K) d = reinterpret_cast<const quant::BlockQ8_K*>(c.qa.data())[b].d;
          else if (at == GgmlType::Q8_0) d = fp16_to_fp32(reinterpret_cast<const quant::BlockQ8_0*>(c.qa.data())[b].d);
          else d = fp16_to_fp32(reinterpret_cast<const quant::BlockQ8_1*>(c.qa.data())[b].d);
          double wsum = 0;
          for (int64_t i = b * ab; i < (b + 1) * ab; ++i) {
            wsum += std::fabs(c.w[size_t(i)]);
            // The per-element rounding bound that the dot-product bound rests on.
            ASSERT_LE(std::fabs(double(c.x[size_t(i)]) - c.a[size_t(i)]), 0.5 * d * (1 + 1e-5) + 1e-30)
                << type_name(t) << " element " << i;
          }
          bound += 0.5 * d * wsum * (1 + 1e-5);
        }
        if (at == GgmlType::Q8_1) bound += std::fabs(c.exact - [&] {
          double e = 0;
          for (int64_t i = 0; i < n; ++i) e += double(c.w[size_t(i)]) * c.a[size_t(i)];
          return e;
        }());
      }
      const float got = vec_dot(t, wq.data(), c.qa.data(), n);
      EXPECT_LE(std::fabs(got - want), bound) << type_name(t) << " n=" << n;
      // Realistic accuracy, well inside the worst case: int8 activations lose < 1% here.
      if (at != GgmlType::F32) {
        EXPECT_LE(std::fabs(got - want), 0.02 * c.mag) << type_name(t) << " n=" << n;
      }
    }
  });
}

TEST_P(KernelsVecDotType, RejectsPartialBlocks) {
  const GgmlType t = GetParam();
  if (is_float(t)) GTEST_SKIP() << "float types take any length";
  std::vector<uint8_t> buf(4096);
  std::vector<float> x(512);
  EXPECT_THROW(act_row_bytes(t, block_size(t) + 1), std::invalid_argument);
  EXPECT_THROW(quantize_act_row(t, x.data(), buf.data(), block_size(t) - 1), std::invalid_argument);
  EXPECT_THROW(vec_dot(t, buf.data(), buf.data(), block_size(t) + 3), std::invalid_argument);
}

TEST_P(KernelsVecDotType, ZeroLengthAndZeroActivations) {
  for_each_kernel_set([&](const std::string&) {
    const GgmlType t = GetParam();
    EXPECT_EQ(vec_dot(t, nullptr, nullptr, 0), 0.0f);
    const int64_t n = is_float(t) ? 40 : 2 * block_size(t);
    std::mt19937 rng(5);
    const auto wq = quantize(t, randn(rng, n, 1.0f));
    std::vector<float> zero(static_cast<size_t>(n), 0.0f);
    std::vector<uint8_t> qa(act_row_bytes(t, n));
    quantize_act_row(t, zero.data(), qa.data(), n);
    EXPECT_EQ(vec_dot(t, wq.data(), qa.data(), n), 0.0f);
    EXPECT_EQ(vec_dot_ref(t, wq.data(), qa.data(), n), 0.0f);
  });
}

INSTANTIATE_TEST_SUITE_P(KernelsVecDot, KernelsVecDotType, ::testing::ValuesIn(kAllTypes),
                         [](const auto& info) { return type_name(info.param); });

TEST(KernelsVecDotDispatch, ReportsChosenPath) {
  const CpuFeatures& f = cpu_features();
  const std::vector<std::string> sets = vec_dot_sets();
  std::string names;
  for (const auto& s : sets) names += (names.empty() ? "" : " ") + s;
  std::printf("  cpu features: %s\n  vec_dot path: %s\n  kernel sets: %s\n", cpu_features_string().c_str(),
              vec_dot_isa(), names.c_str());
  ASSERT_FALSE(sets.empty());
  EXPECT_EQ(sets.front(), "scalar");
  const auto has = [&](const char* name) { return std::find(sets.begin(), sets.end(), name) != sets.end(); };
  // Exactly the sets the features allow (a build for another architecture compiles none of them).
  std::string best = sets.back();
#if defined(__x86_64__)
  EXPECT_EQ(has("avx2+fma+f16c"), f.avx2 && f.fma && f.f16c);
  const bool avx512 = f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni;
  EXPECT_EQ(has("avx512vnni"), avx512);
  EXPECT_EQ(has("avx512vnni-256"), avx512);
  // Both run on such a CPU; the dispatcher takes the 256-bit one where 512-bit operations are split.
  if (avx512) best = f.avx512_split ? "avx512vnni-256" : "avx512vnni";
  EXPECT_EQ(has("avx-vnni"), f.avx2 && f.fma && f.f16c && f.avx_vnni);
  if (!avx512 && has("avx-vnni")) best = "avx-vnni";
  // The AMX tiles where the CPU has them and the OS granted the tile state (the probe asked).
  EXPECT_EQ(has("avx512vnni+amx"), avx512 && f.amx_int8);
  if (avx512 && f.amx_int8) best = "avx512vnni+amx";
  if (f.amx_refused) std::printf("  AMX: the CPU has it, the OS refused the tile state; running without\n");
#endif
#if defined(__aarch64__)
  EXPECT_EQ(has("neon"), f.neon);
  EXPECT_EQ(has("neon+dotprod"), f.neon && f.neon_dotprod);
  EXPECT_EQ(has("neon+i8mm"), f.neon && f.neon_dotprod && f.neon_i8mm);
#endif
  EXPECT_EQ(std::string(vec_dot_best_set()), best);
  const char* env = std::getenv("G3N_VEC_DOT");
  if (!env || !has(env)) EXPECT_EQ(vec_dot_isa(), vec_dot_best_set());
  else EXPECT_STREQ(vec_dot_isa(), env);
}

TEST(KernelsVecDotDispatch, UseSetSwitchesAndRefusesUnknownSets) {
  const std::string before = vec_dot_isa();
  for (const std::string& s : vec_dot_sets()) {
    ASSERT_TRUE(vec_dot_use_set(s));
    EXPECT_EQ(std::string(vec_dot_isa()), s);
  }
  EXPECT_FALSE(vec_dot_use_set("no-such-set"));
  EXPECT_FALSE(vec_dot_use_set(""));
  // A set of the other architecture family is never runnable here.
#if defined(__x86_64__)
  EXPECT_FALSE(vec_dot_use_set("neon"));
#else
  EXPECT_FALSE(vec_dot_use_set("avx2+fma+f16c"));
#endif
  EXPECT_EQ(std::string(vec_dot_isa()), vec_dot_sets().back()) << "a refused switch must not change the set";
  ASSERT_TRUE(vec_dot_use_set(before));
}

TEST(KernelsVecDotDispatch, ActivationTypesAndSizes) {
  EXPECT_EQ(vec_dot_act_type(GgmlType::Q4_K), GgmlType::Q8_K);
  EXPECT_EQ(vec_dot_act_type(GgmlType::Q6_K), GgmlType::Q8_K);
  EXPECT_EQ(vec_dot_act_type(GgmlType::Q2_K), GgmlType::Q8_K);
  EXPECT_EQ(vec_dot_act_type(GgmlType::Q8_0), GgmlType::Q8_0);
  EXPECT_EQ(vec_dot_act_type(GgmlType::Q4_0), GgmlType::Q8_0);
  EXPECT_EQ(vec_dot_act_type(GgmlType::Q5_0), GgmlType::Q8_0);
  EXPECT_EQ(vec_dot_act_type(GgmlType::Q4_1), GgmlType::Q8_1);
  EXPECT_EQ(vec_dot_act_type(GgmlType::Q5_1), GgmlType::Q8_1);
  EXPECT_EQ(vec_dot_act_type(GgmlType::F16), GgmlType::F32);
  EXPECT_EQ(vec_dot_act_type(GgmlType::BF16), GgmlType::F32);
  EXPECT_THROW(vec_dot_act_type(GgmlType::Q8_K), std::invalid_argument);
  EXPECT_FALSE(vec_dot_supported(GgmlType::Q8_1));
  EXPECT_EQ(act_row_bytes(GgmlType::Q4_K, 2048), 8u * 292u);
  EXPECT_EQ(act_row_bytes(GgmlType::Q8_0, 2048), 64u * 34u);
  EXPECT_EQ(act_row_bytes(GgmlType::Q5_1, 64), 2u * 36u);
  EXPECT_EQ(act_row_bytes(GgmlType::F16, 7), 28u);
  for (GgmlType t : kAllTypes) {
    EXPECT_NE(vec_dot_fn(t), nullptr) << type_name(t);
    EXPECT_NE(quantize_act_fn(t), nullptr) << type_name(t);
  }
}

// ---- KV-cache helpers --------------------------------------------------------------------------

TEST(KernelsVecDotHelpers, DotAndAxpyMatchTwinsAndExact) {
  for_each_kernel_set([&](const std::string&) {
    std::mt19937 rng(42);
    for (int64_t n : {0, 1, 7, 8, 9, 31, 32, 33, 100, 1001, 4096}) {
      const auto af = randn(rng, n, 1.0f), b = randn(rng, n, 1.0f);
      std::vector<uint16_t> ah(static_cast<size_t>(n));
      std::vector<float> ahf(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        ah[size_t(i)] = fp32_to_fp16(af[size_t(i)]);
        ahf[size_t(i)] = fp16_to_fp32(ah[size_t(i)]);
      }
      double e16 = 0, e32 = 0, m16 = 0, m32 = 0;
      for (int64_t i = 0; i < n; ++i) {
        e16 += double(ahf[size_t(i)]) * b[size_t(i)];
        m16 += std::fabs(double(ahf[size_t(i)]) * b[size_t(i)]);
        e32 += double(af[size_t(i)]) * b[size_t(i)];
        m32 += std::fabs(double(af[size_t(i)]) * b[size_t(i)]);
      }
      EXPECT_NEAR(dot_f16_f32(ah.data(), b.data(), n), dot_f16_f32_ref(ah.data(), b.data(), n), kTol * m16) << n;
      EXPECT_NEAR(dot_f16_f32_ref(ah.data(), b.data(), n), e16, kTol * m16) << n;
      EXPECT_NEAR(dot_f16_f32(ah.data(), b.data(), n), e16, kTol * m16) << n;
      EXPECT_NEAR(dot_f32_simd(af.data(), b.data(), n), dot_f32_ref(af.data(), b.data(), n), kTol * m32) << n;
      EXPECT_NEAR(dot_f32_simd(af.data(), b.data(), n), e32, kTol * m32) << n;

      const float alpha = -0.37f;
      std::vector<float> y1 = b, y2 = b, y3 = b, y4 = b;
      axpy_f16(alpha, ah.data(), y1.data(), n);
      axpy_f16_ref(alpha, ah.data(), y2.data(), n);
      axpy_f32(alpha, af.data(), y3.data(), n);
      axpy_f32_ref(alpha, af.data(), y4.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const size_t k = size_t(i);
        // One rounding (FMA) vs two: at most an ulp or so of the operands apart.
        const double w16 = double(b[k]) + double(alpha) * ahf[k];
        const double s16 = 2.5e-7 * (std::fabs(b[k]) + std::fabs(alpha * ahf[k])) + 1e-30;
        EXPECT_NEAR(y1[k], w16, s16) << n << " " << i;
        EXPECT_NEAR(y2[k], w16, s16) << n << " " << i;
        const double w32 = double(b[k]) + double(alpha) * af[k];
        const double s32 = 2.5e-7 * (std::fabs(b[k]) + std::fabs(alpha * af[k])) + 1e-30;
        EXPECT_NEAR(y3[k], w32, s32) << n << " " << i;
        EXPECT_NEAR(y4[k], w32, s32) << n << " " << i;
      }
    }
  });
}

}  // namespace
}  // namespace g3n
