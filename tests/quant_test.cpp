// Tests of the tensor-type layer: fp16/bf16 conversions, block (de)quantizers, and bit-exactness of the
// quantizers against the fixture files llama.cpp's llama_model_quantize wrote.
//
// Expected values in the hand-built-block tests are computed here from the format definition by element
// index (which byte, which bits), independently of the loop structure of src/quant/dequantize.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "quant/fp16.h"
#include "quant/ggml_type.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

// ---------------------------------------------------------------- fp16 / bf16

uint16_t h16(float f) { return fp32_to_fp16(f); }

TEST(Fp16, ExhaustiveRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = fp16_to_fp32(uint16_t(h));
    const uint16_t back = fp32_to_fp16(f);
    const bool is_nan = (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu) != 0;
    if (is_nan) {
      ASSERT_TRUE(std::isnan(f)) << h;
      ASSERT_EQ(back & 0x7C00u, 0x7C00u) << h;
      ASSERT_NE(back & 0x3FFu, 0u) << h;
      ASSERT_EQ(back & 0x8000u, h & 0x8000u) << h;
    } else {
      ASSERT_EQ(back, h) << "half 0x" << std::hex << h;
    }
  }
}

TEST(Fp16, DecodesKnownValues) {
  EXPECT_EQ(fp16_to_fp32(0x3C00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0xC000), -2.0f);
  EXPECT_EQ(fp16_to_fp32(0x7BFF), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(fp16_to_fp32(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_EQ(fp16_to_fp32(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(fp16_to_fp32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(fp16_to_fp32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::signbit(fp16_to_fp32(0x8000)));
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.333251953125f);
}

TEST(Fp16, RoundsToNearestEven) {
  const float ulp1 = std::ldexp(1.0f, -10);  // spacing of halves in [1, 2)
  EXPECT_EQ(h16(1.0f + ulp1 / 2), 0x3C00);              // tie -> even (1.0)
  EXPECT_EQ(h16(1.0f + 3 * ulp1 / 2), 0x3C02);          // tie -> even (1 + 2 ulp)
  EXPECT_EQ(h16(std::nextafter(1.0f + ulp1 / 2, 2.f)), 0x3C01);  // just above the tie
  EXPECT_EQ(h16(std::nextafter(1.0f + 3 * ulp1 / 2, 0.f)), 0x3C01);  // just below the tie
  EXPECT_EQ(h16(-(1.0f + ulp1 / 2)), 0xBC00);
  EXPECT_EQ(h16(2047.5f), 0x6800);  // halves in [1024, 2048) step by 1: tie between 2047 (odd) and 2048
  // Mantissa overflow carries into the exponent: largest value below 2 rounds up to 2.0.
  EXPECT_EQ(h16(std::nextafter(2.0f, 0.f)), 0x4000);
  // Overflow: 65504 is the max; 65520 is the tie between 65504 and 65536 (odd mantissa) -> inf.
  EXPECT_EQ(h16(65504.0f), 0x7BFF);
  EXPECT_EQ(h16(65519.996f), 0x7BFF);
  EXPECT_EQ(h16(65520.0f), 0x7C00);
  EXPECT_EQ(h16(1e10f), 0x7C00);
  EXPECT_EQ(h16(-1e10f), 0xFC00);
  EXPECT_EQ(h16(std::numeric_limits<float>::infinity()), 0x7C00);
  // Subnormal results: ties at multiples of 2^-25.
  const float s = std::ldexp(1.0f, -24);
  EXPECT_EQ(h16(s), 0x0001);
  EXPECT_EQ(h16(s / 2), 0x0000);                        // tie -> even (0)
  EXPECT_EQ(h16(std::nextafter(s / 2, 1.f)), 0x0001);
  EXPECT_EQ(h16(3 * s / 2), 0x0002);                    // tie -> even (2)
  EXPECT_EQ(h16(5 * s / 2), 0x0002);                    // tie -> even (2)
  EXPECT_EQ(h16(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(h16(-std::ldexp(1.0f, -30)), 0x8000);
  // Largest subnormal + half ulp rounds up into the smallest normal.
  EXPECT_EQ(h16(1023.5f * s), 0x0400);
  EXPECT_EQ(h16(std::ldexp(1.0f, -14) - s / 4), 0x0400);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(h16(std::numeric_limits<float>::quiet_NaN()))));
}

// Every float32 rounds to the nearest half (ties even): checks random bit patterns against a
// brute-force choice between the two neighbouring halves, computed in double.
TEST(Fp16, RandomFloatsRoundToNearest) {
  std::mt19937 rng(7);
  for (int it = 0; it < 200000; ++it) {
    uint32_t bits = rng();
    // Concentrate on the half range: exponents 2^-26 .. 2^16.
    const uint32_t e = 101 + rng() % 42;
    bits = (bits & 0x807FFFFFu) | (e << 23);
    const float f = fp32_from_bits(bits);
    const uint16_t h = fp32_to_fp16(f);
    const double a = std::fabs(double(f));
    const uint16_t mag = h & 0x7FFF;
    ASSERT_EQ(h & 0x8000u, (bits >> 16) & 0x8000u);
    if (mag == 0x7C00) {
      ASSERT_GE(a, 65520.0) << f;
      continue;
    }
    const double v = fp16_to_fp32(mag);
    const double lo = mag > 0 ? double(fp16_to_fp32(uint16_t(mag - 1))) : -1.0;
    const double hi = mag < 0x7BFF ? double(fp16_to_fp32(uint16_t(mag + 1))) : 65536.0;
    const double err = std::fabs(a - v);
    ASSERT_LE(err, std::fabs(a - hi)) << f;
    ASSERT_LE(err, std::fabs(a - lo)) << f;
    if (err == std::fabs(a - hi) || err == std::fabs(a - lo)) {
      ASSERT_EQ(mag & 1, 0) << f;  // a tie went to the even neighbour
    }
  }
}

// The row conversion (F16C where the CPU has it) against its scalar twin, bit for bit: every half's value,
// the midpoints between neighbouring halves (ties to even), the overflow edge, subnormals, infinities and
// NaNs with payloads of either sign, at every offset of the 8-value steps and their scalar tail.
TEST(Fp16, RowConversionMatchesTheScalarTwin) {
  std::printf("  fp32_to_fp16_row: %s\n", fp32_to_fp16_row_is_f16c() ? "f16c" : "scalar");
  std::vector<float> x;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_fp32(uint16_t(h));
    x.push_back(f);
    const uint32_t b = fp32_to_bits(f);
    if ((h & 0x7C00) != 0x7C00) x.push_back(fp32_from_bits(b + 0x1000));  // midway to the next half up
  }
  for (uint32_t b : {0x477FEFFFu, 0x477FF000u, 0x477FF001u, 0x7F800000u, 0x7F800001u, 0x7FC12345u, 0xFFC00001u,
                     0xFF812345u, 0x33000000u, 0x33000001u, 0x337FFFFFu, 0x38800000u, 0x387FFFFFu, 0x00000001u})
    for (uint32_t sign : {0u, 0x80000000u}) x.push_back(fp32_from_bits(b | sign));
  std::mt19937 rng(11);
  for (int i = 0; i < 100000; ++i) x.push_back(fp32_from_bits(uint32_t(rng())));
  for (int64_t off : {0, 1, 3, 7}) {
    const int64_t n = int64_t(x.size()) - off;
    std::vector<uint16_t> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
    fp32_to_fp16_row(x.data() + off, got.data(), n);
    fp32_to_fp16_row_ref(x.data() + off, want.data(), n);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(got[size_t(i)], want[size_t(i)]) << "offset " << off << " value bits " << std::hex << fp32_to_bits(x[size_t(off + i)]);
  }
}

TEST(Fp16, Bf16RoundTripAndRounding) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_fp32(uint16_t(h));
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(f))));
    } else {
      ASSERT_EQ(fp32_to_bf16(f), h);
    }
  }
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F808000u)), 0x3F80);  // tie -> even
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F818000u)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F808001u)), 0x3F81);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x3F807FFFu)), 0x3F80);
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0x7F7FFFFFu)), 0x7F80);  // FLT_MAX rounds to inf
  EXPECT_EQ(fp32_to_bf16(fp32_from_bits(0xFF800000u)), 0xFF80);
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(fp32_from_bits(0x7F800001u)))));  // NaN stays NaN
}

// ---------------------------------------------------------------- round trips on random data

const GgmlType kAllTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                              GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q2_K,
                              GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K};

std::vector<float> random_normal(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

std::vector<float> round_trip(GgmlType t, const std::vector<float>& x) {
  std::vector<uint8_t> q(*ggml_row_bytes(t, x.size()));
  quantize_row(t, x.data(), q.data(), int64_t(x.size()));
  std::vector<float> y(x.size());
  dequantize_row(t, q.data(), y.data(), int64_t(x.size()));
  return y;
}

TEST(QuantRoundTrip, AllTypesQuantizable) {
  for (GgmlType t : kAllTypes) EXPECT_TRUE(can_quantize(t)) << ggml_type_traits(t).name;
}

// Relative RMS error (error RMS / data RMS) on N(0,1) data, and for the legacy types a per-element bound
// in units of the block's max |x|: half a quantization step (a full step for Q4_0/Q5_0, whose top
// level is clamped), plus the error from storing d (and m) as fp16 (relative 2^-11, times the largest
// quant).
TEST(QuantRoundTrip, ErrorWithinTypeBounds) {
  struct Case {
    GgmlType t;
    double max_rel_rmse;
    double max_err_of_amax;  // per-block max |error| / max |x| of the block; 0 = not checked
  };
  const double u = 1.0 / 2048;  // fp16 relative rounding bound
  const Case cases[] = {
      {GgmlType::F32, 0.0, 0.0},
      {GgmlType::F16, 3e-4, 0.0},
      {GgmlType::BF16, 2.5e-3, 0.0},
      {GgmlType::Q8_0, 0.0065, (0.5 + 127 * u) / 127},
      {GgmlType::Q8_1, 0.0065, (0.5 + 127 * u) / 127},
      {GgmlType::Q4_0, 0.11, (1.0 + 8 * u) / 8},
      {GgmlType::Q5_0, 0.055, (1.0 + 16 * u) / 16},
      // Range <= 2*amax: step = range/15 (or /31), plus fp16 error of d (times 15/31) and of m.
      {GgmlType::Q4_1, 0.10, 2.0 / 15 * (0.5 + 15 * u) + u},
      {GgmlType::Q5_1, 0.05, 2.0 / 31 * (0.5 + 31 * u) + u},
      {GgmlType::Q2_K, 0.36, 0.0},
      {GgmlType::Q3_K, 0.19, 0.0},
      {GgmlType::Q4_K, 0.09, 0.0},
      {GgmlType::Q5_K, 0.045, 0.0},
      {GgmlType::Q6_K, 0.023, 0.0},
      {GgmlType::Q8_K, 0.009, 0.0},
  };
  const auto x = random_normal(256 * 64, 11);
  for (const auto& c : cases) {
    const auto y = round_trip(c.t, x);
    double se = 0, sx = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      se += double(y[i] - x[i]) * (y[i] - x[i]);
      sx += double(x[i]) * x[i];
    }
    const double rel = std::sqrt(se / sx);
    EXPECT_LE(rel, c.max_rel_rmse) << ggml_type_traits(c.t).name;
    if (c.t == GgmlType::F32) {
      EXPECT_EQ(x, y);
    }
    if (c.max_err_of_amax > 0) {
      const uint32_t bs = ggml_type_traits(c.t).block_size;
      for (size_t b = 0; b < x.size(); b += bs) {
        double amax = 0, emax = 0, mn = 1e30, mx = -1e30;
        for (size_t i = b; i < b + bs; ++i) {
          amax = std::max(amax, double(std::fabs(x[i])));
          emax = std::max(emax, double(std::fabs(y[i] - x[i])));
          mn = std::min(mn, double(x[i]));
          mx = std::max(mx, double(x[i]));
        }
        // Types with a minimum are bounded relative to the range (max - min) <= 2*amax.
        ASSERT_LE(emax, c.max_err_of_amax * amax + 1e-6) << ggml_type_traits(c.t).name << " block " << b / bs;
      }
    }
    // Print the measured error so bounds can be reviewed.
    std::printf("  %-5s rel rmse %.5f\n", std::string(ggml_type_traits(c.t).name).c_str(), rel);
  }
}

TEST(QuantRoundTrip, ZeroAndConstantBlocks) {
  for (GgmlType t : kAllTypes) {
    const uint32_t bs = std::max<uint32_t>(ggml_type_traits(t).block_size, 32);
    std::vector<float> zero(bs * 2, 0.f);
    const auto y = round_trip(t, zero);
    for (float v : y) ASSERT_EQ(v, 0.f) << ggml_type_traits(t).name;
    // A constant block: every type must reproduce a constant within its step.
    std::vector<float> c(bs, 0.75f);
    const auto yc = round_trip(t, c);
    for (float v : yc) ASSERT_NEAR(v, 0.75f, 0.75 * 0.15) << ggml_type_traits(t).name;
  }
}

TEST(QuantRoundTrip, RejectsPartialBlocks) {
  std::vector<float> x(48), y(48);
  std::vector<uint8_t> q(1024);
  EXPECT_THROW(quantize_row(GgmlType::Q8_0, x.data(), q.data(), 48), std::invalid_argument);
  EXPECT_THROW(dequantize_row(GgmlType::Q4_K, q.data(), y.data(), 48), std::invalid_argument);
  EXPECT_NO_THROW(dequantize_row(GgmlType::F16, q.data(), y.data(), 48));
}

// Quantizing an exactly representable grid reproduces it (checks the legacy layouts end to end).
TEST(QuantRoundTrip, Q8_0ExactGrid) {
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = float(i - 16) * 0.125f;  // amax 2 -> d = 2/127, stored as fp16
  const auto y = round_trip(GgmlType::Q8_0, x);
  const float d = 2.0f / 127;
  const float dh = fp16_to_fp32(fp32_to_fp16(d));
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], std::round(x[i] * (1.0f / d)) * dh) << i;
}

// ---------------------------------------------------------------- hand-built blocks

// Random half with a sane magnitude (no inf/NaN) for scales.
uint16_t rand_half(std::mt19937& rng) { return fp32_to_fp16(std::ldexp(float(rng() % 1000 + 1), -12) * ((rng() & 1) ? -1.f : 1.f)); }

struct Bytes {
  std::vector<uint8_t> b;
  void put16(size_t off, uint16_t v) { b[off] = uint8_t(v); b[off + 1] = uint8_t(v >> 8); }
};
float h(const std::vector<uint8_t>& b, size_t off) { return fp16_to_fp32(uint16_t(b[off] | (b[off + 1] << 8))); }
int bits(const std::vector<uint8_t>& b, size_t byte, int shift, int width) { return (b[byte] >> shift) & ((1 << width) - 1); }

// Builds nblocks of random bytes with finite fp16 scales at the given offsets, dequantizes them, and
// compares each element with expect(block_bytes, element_index).
template <typename F>
void check_blocks(GgmlType t, std::vector<size_t> half_offsets, F expect, int nblocks = 8) {
  const auto tr = ggml_type_traits(t);
  std::mt19937 rng(1234 + uint32_t(t));
  std::vector<uint8_t> all(size_t(tr.block_bytes) * nblocks);
  for (auto& v : all) v = uint8_t(rng());
  for (int bl = 0; bl < nblocks; ++bl)
    for (size_t off : half_offsets) {
      const uint16_t hv = rand_half(rng);
      all[bl * tr.block_bytes + off] = uint8_t(hv);
      all[bl * tr.block_bytes + off + 1] = uint8_t(hv >> 8);
    }
  std::vector<float> y(size_t(tr.block_size) * nblocks);
  dequantize_row(t, all.data(), y.data(), int64_t(y.size()));
  for (int bl = 0; bl < nblocks; ++bl) {
    std::vector<uint8_t> blk(all.begin() + bl * tr.block_bytes, all.begin() + (bl + 1) * tr.block_bytes);
    for (uint32_t e = 0; e < tr.block_size; ++e)
      ASSERT_EQ(y[bl * tr.block_size + e], expect(blk, int(e))) << tr.name << " block " << bl << " element " << e;
  }
}

TEST(QuantBlocks, LegacyTypesFromDefinition) {
  // Q4_0: d | qs[16]; element e: nibble (e < 16 ? low of qs[e] : high of qs[e-16]) - 8.
  check_blocks(GgmlType::Q4_0, {0}, [](const std::vector<uint8_t>& b, int e) {
    const int q = e < 16 ? bits(b, 2 + e, 0, 4) : bits(b, 2 + e - 16, 4, 4);
    return float(q - 8) * h(b, 0);
  });
  // Q4_1: d | m | qs[16]; value q*d + m.
  check_blocks(GgmlType::Q4_1, {0, 2}, [](const std::vector<uint8_t>& b, int e) {
    const int q = e < 16 ? bits(b, 4 + e, 0, 4) : bits(b, 4 + e - 16, 4, 4);
    return float(q) * h(b, 0) + h(b, 2);
  });
  // Q5_0: d | qh[4] (bit e of the LE u32) | qs[16]; (q | hi<<4) - 16.
  check_blocks(GgmlType::Q5_0, {0}, [](const std::vector<uint8_t>& b, int e) {
    const int lo = e < 16 ? bits(b, 6 + e, 0, 4) : bits(b, 6 + e - 16, 4, 4);
    const int hi = bits(b, 2 + e / 8, e % 8, 1);
    return float((lo | (hi << 4)) - 16) * h(b, 0);
  });
  check_blocks(GgmlType::Q5_1, {0, 2}, [](const std::vector<uint8_t>& b, int e) {
    const int lo = e < 16 ? bits(b, 8 + e, 0, 4) : bits(b, 8 + e - 16, 4, 4);
    const int hi = bits(b, 4 + e / 8, e % 8, 1);
    return float(lo | (hi << 4)) * h(b, 0) + h(b, 2);
  });
  check_blocks(GgmlType::Q8_0, {0}, [](const std::vector<uint8_t>& b, int e) {
    return float(int8_t(b[2 + e])) * h(b, 0);
  });
  check_blocks(GgmlType::Q8_1, {0, 2}, [](const std::vector<uint8_t>& b, int e) {
    return float(int8_t(b[4 + e])) * h(b, 0);
  });
}

TEST(QuantBlocks, Q2_KFromDefinition) {
  // scales[16] @0 | qs[64] @16 | d @80 | dmin @82. Element e: half = e/128, r = e%128, shift pair
  // s = r/32, byte 16 + 32*half + r%32, bits 2s; group e/16: scale low nibble, min high nibble.
  check_blocks(GgmlType::Q2_K, {80, 82}, [](const std::vector<uint8_t>& b, int e) {
    const int half = e / 128, r = e % 128;
    const int q = bits(b, 16 + 32 * half + r % 32, 2 * (r / 32), 2);
    const int g = e / 16;
    const float dl = h(b, 80) * float(b[g] & 0xF), ml = h(b, 82) * float(b[g] >> 4);
    return dl * float(q) - ml;
  });
}

TEST(QuantBlocks, Q3_KFromDefinition) {
  // hmask[32] @0 | qs[64] @32 | scales[12] @96 | d @108. Element e: low bits as Q2_K; high bit is
  // bit e/32 of hmask[e%32] (set = no offset, clear = -4); group e/16 with a signed 6-bit scale.
  check_blocks(GgmlType::Q3_K, {108}, [](const std::vector<uint8_t>& b, int e) {
    const int half = e / 128, r = e % 128;
    const int lo = bits(b, 32 + 32 * half + r % 32, 2 * (r / 32), 2);
    const int hb = bits(b, e % 32, e / 32, 1);
    const int g = e / 16;
    const int s_lo = g < 8 ? bits(b, 96 + g, 0, 4) : bits(b, 96 + g - 8, 4, 4);
    const int s_hi = bits(b, 96 + 8 + g % 4, 2 * (g / 4), 2);
    const int sc = (s_lo | (s_hi << 4)) - 32;
    return h(b, 108) * float(sc) * float(lo - (hb ? 0 : 4));
  });
}

// 6-bit scale/min of group g (0..7) in the 12-byte K4 layout at offset o.
void k4_scale(const std::vector<uint8_t>& b, size_t o, int g, int* sc, int* mn) {
  if (g < 4) {
    *sc = b[o + g] & 63;
    *mn = b[o + g + 4] & 63;
  } else {
    *sc = (b[o + g + 4] & 0xF) | ((b[o + g - 4] >> 6) << 4);
    *mn = (b[o + g + 4] >> 4) | ((b[o + g] >> 6) << 4);
  }
}

TEST(QuantBlocks, Q4_KFromDefinition) {
  // d @0 | dmin @2 | scales[12] @4 | qs[128] @16. Element e: chunk c = e/64, group e/32; byte
  // 16 + 32c + e%32, low nibble for the first 32 of the chunk, high for the second.
  check_blocks(GgmlType::Q4_K, {0, 2}, [](const std::vector<uint8_t>& b, int e) {
    const int c = e / 64, g = e / 32;
    const int q = bits(b, 16 + 32 * c + e % 32, (e % 64) < 32 ? 0 : 4, 4);
    int sc, mn;
    k4_scale(b, 4, g, &sc, &mn);
    return (h(b, 0) * float(sc)) * float(q) - h(b, 2) * float(mn);
  });
}

TEST(QuantBlocks, Q5_KFromDefinition) {
  // d @0 | dmin @2 | scales[12] @4 | qh[32] @16 | qs[128] @48. 5th bit of element e: bit e/32 of
  // qh[e%32].
  check_blocks(GgmlType::Q5_K, {0, 2}, [](const std::vector<uint8_t>& b, int e) {
    const int c = e / 64, g = e / 32;
    const int lo = bits(b, 48 + 32 * c + e % 32, (e % 64) < 32 ? 0 : 4, 4);
    const int hi = bits(b, 16 + e % 32, e / 32, 1);
    int sc, mn;
    k4_scale(b, 4, g, &sc, &mn);
    return (h(b, 0) * float(sc)) * float(lo + 16 * hi) - h(b, 2) * float(mn);
  });
}

TEST(QuantBlocks, Q6_KFromDefinition) {
  // ql[128] @0 | qh[64] @128 | scales[16] int8 @192 | d @208. Element e: half = e/128, r = e%128,
  // quarter k = r/32, l = r%32; low 4 bits: ql[64*half + l + 32*(k&1)], nibble k/2; high 2 bits:
  // qh[32*half + l] bits 2k; value (q - 32) * d * scale[e/16].
  check_blocks(GgmlType::Q6_K, {208}, [](const std::vector<uint8_t>& b, int e) {
    const int half = e / 128, r = e % 128, k = r / 32, l = r % 32;
    const int lo = bits(b, 64 * half + l + 32 * (k & 1), 4 * (k / 2), 4);
    const int hi = bits(b, 128 + 32 * half + l, 2 * k, 2);
    const int sc = int8_t(b[192 + e / 16]);
    return h(b, 208) * float(sc) * float((lo | (hi << 4)) - 32);
  });
}

TEST(QuantBlocks, Q8_KFromDefinition) {
  std::mt19937 rng(5);
  std::vector<uint8_t> blk(292);
  for (auto& v : blk) v = uint8_t(rng());
  const float d = 0.0371f;
  std::memcpy(blk.data(), &d, 4);
  std::vector<float> y(256);
  dequantize_row(GgmlType::Q8_K, blk.data(), y.data(), 256);
  for (int e = 0; e < 256; ++e) ASSERT_EQ(y[e], d * float(int8_t(blk[4 + e])));
}

// Known hand-picked block: a Q4_K block whose group 5 has scale 37 and min 21, the rest 0.
TEST(QuantBlocks, Q4_KHandPicked) {
  std::vector<uint8_t> b(144, 0);
  const uint16_t one = fp32_to_fp16(1.0f), half = fp32_to_fp16(0.5f);
  std::memcpy(&b[0], &one, 2);
  std::memcpy(&b[2], &half, 2);
  // Group 5: low nibbles in byte 9 (scale 37 = 0b10'0101 -> low 5, top 2 in byte 1; min 21 = 0b01'0101
  // -> low 5, top 1 in byte 5).
  b[4 + 9] = uint8_t(5 | (5 << 4));
  b[4 + 1] = uint8_t(2 << 6);
  b[4 + 5] = uint8_t(1 << 6);
  // Group 5 = chunk 2, high nibbles: element 160 + l is the high nibble of qs[64 + l].
  for (int l = 0; l < 32; ++l) b[16 + 64 + l] = uint8_t((l % 16) << 4);
  std::vector<float> y(256);
  dequantize_row(GgmlType::Q4_K, b.data(), y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    const float want = (e >= 160 && e < 192) ? 37.0f * float((e - 160) % 16) - 10.5f : 0.0f;
    ASSERT_EQ(y[e], want) << e;
  }
}

// Known hand-picked Q3_K block: d = 0.5, group 0 scale +3, group 9 scale -32, others 0 (stored 32).
TEST(QuantBlocks, Q3_KHandPicked) {
  std::vector<uint8_t> b(110, 0);
  const uint16_t d = fp32_to_fp16(0.5f);
  std::memcpy(&b[108], &d, 2);
  // Stored scale = value + 32. Group 0: 35 = 0b10'0011; group 9: 0; the rest 32 = 0b10'0000.
  // Low nibbles: groups 0-7 in the low nibbles of bytes 96..103, groups 8-15 in the high nibbles.
  // Top 2 bits of group g: byte 104 + g%4, bits 2*(g/4).
  for (int g = 0; g < 16; ++g) {
    const int stored = g == 0 ? 35 : g == 9 ? 0 : 32;
    if (g < 8) b[96 + g] |= uint8_t(stored & 0xF); else b[96 + g - 8] |= uint8_t((stored & 0xF) << 4);
    b[104 + g % 4] |= uint8_t((stored >> 4) << (2 * (g / 4)));
  }
  // Elements 0..15 (group 0): low bits l%4 in byte 32 + l bits 0-1; high bit set for even l
  // (hmask[l] bit 0). Elements 144..159 (group 9 = half 1, shift pair 0, bytes 48..63 of the second
  // half's l = 16..31): low bits 3, high bit clear -> q = 3 - 4 = -1.
  for (int l = 0; l < 16; ++l) {
    b[32 + l] = uint8_t(l % 4);
    if (l % 2 == 0) b[l] |= 1;
    b[32 + 32 + 16 + l] = 3;
  }
  std::vector<float> y(256);
  dequantize_row(GgmlType::Q3_K, b.data(), y.data(), 256);
  for (int e = 0; e < 256; ++e) {
    float want = 0.0f;
    if (e < 16) want = 1.5f * float((e % 4) - (e % 2 == 0 ? 0 : 4));
    if (e >= 144 && e < 160) want = -16.0f * -1.0f;
    ASSERT_EQ(y[e], want) << e;
  }
}

// ---------------------------------------------------------------- fixtures: bit-exact vs llama.cpp

std::string model_path(const std::string& variant) {
  return std::string(G3N_FIXTURES_DIR) + "/gemma3n-tiny/models/gemma3n-tiny-" + variant + ".gguf";
}

std::vector<float> decode_tensor(const GgufFile& f, const GgufTensorInfo& t) {
  std::vector<float> out(size_t(t.n_elements()));
  dequantize_row(t.type, f.tensor_data(t), out.data(), t.n_elements());
  return out;
}

class QuantFixture : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    f16_ = new GgufFile(GgufFile::open(model_path("f16")));
    q8_ = new GgufFile(GgufFile::open(model_path("q8_0")));
    q4km_ = new GgufFile(GgufFile::open(model_path("q4_k_m")));
  }
  static void TearDownTestSuite() {
    delete f16_;
    delete q8_;
    delete q4km_;
  }
  static GgufFile* f16_;
  static GgufFile* q8_;
  static GgufFile* q4km_;

  // For every quantized tensor of q: quantize the F16 weights (decoded to F32, exact) to the same type
  // and compare the bytes. Returns the number of tensors that matched, per type.
  static std::map<GgmlType, int> check_bit_exact(const GgufFile& q) {
    std::map<GgmlType, int> matched;
    for (const auto& t : q.tensors()) {
      if (t.type == GgmlType::F32) continue;
      const GgufTensorInfo* src = f16_->find_tensor(t.name);
      EXPECT_NE(src, nullptr) << t.name;
      if (src == nullptr) continue;
      EXPECT_EQ(src->type, GgmlType::F16) << t.name;
      EXPECT_EQ(src->ne, t.ne) << t.name;
      const auto x = decode_tensor(*f16_, *src);
      const uint64_t nbytes = *ggml_row_bytes(t.type, x.size());
      EXPECT_EQ(nbytes, t.nbytes) << t.name;
      std::vector<uint8_t> mine(nbytes);
      quantize_row(t.type, x.data(), mine.data(), int64_t(x.size()));
      const uint8_t* theirs = q.tensor_data(t);
      if (std::memcmp(mine.data(), theirs, nbytes) != 0) {
        const auto bb = ggml_type_traits(t.type).block_bytes;
        uint64_t bad = 0, first = UINT64_MAX;
        for (uint64_t b = 0; b < nbytes / bb; ++b)
          if (std::memcmp(mine.data() + b * bb, theirs + b * bb, bb) != 0) { ++bad; first = std::min(first, b); }
        ADD_FAILURE() << t.name << " (" << ggml_type_traits(t.type).name << "): " << bad << " of " << nbytes / bb
                      << " blocks differ, first " << first;
        continue;
      }
      ++matched[t.type];
    }
    return matched;
  }
};
GgufFile* QuantFixture::f16_ = nullptr;
GgufFile* QuantFixture::q8_ = nullptr;
GgufFile* QuantFixture::q4km_ = nullptr;

TEST_F(QuantFixture, Q8_0BitExactWithLlamaCpp) {
  // Every Q8_0 tensor of the file (227) equals our quantization of the F16 weights.
  const auto m = check_bit_exact(*q8_);
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(m.count(GgmlType::Q8_0) ? m.at(GgmlType::Q8_0) : 0, 227);
}

TEST_F(QuantFixture, Q4_K_MBitExactWithLlamaCpp) {
  // All 200 Q4_K and 27 Q6_K tensors of the Q4_K_M file.
  const auto m = check_bit_exact(*q4km_);
  EXPECT_EQ(m.count(GgmlType::Q4_K) ? m.at(GgmlType::Q4_K) : 0, 200);
  EXPECT_EQ(m.count(GgmlType::Q6_K) ? m.at(GgmlType::Q6_K) : 0, 27);
}

// The ollama-style file shares the Q4_K_M bytes, with 64 extra token_embd rows the F16 file lacks and an
// F16 per-layer table: its quantized tensors equal our quantization on the rows the F16 file has.
TEST_F(QuantFixture, OllamaFileBitExactOnSharedRows) {
  const GgufFile ollama = GgufFile::open(model_path("ollama"));
  int compared = 0;
  for (const auto& t : ollama.tensors()) {
    if (t.type != GgmlType::Q4_K && t.type != GgmlType::Q6_K) continue;
    const GgufTensorInfo* src = f16_->find_tensor(t.name);
    ASSERT_NE(src, nullptr) << t.name;
    ASSERT_EQ(src->ne[0], t.ne[0]) << t.name;
    const int64_t rows = std::min(src->rows(), t.rows());
    std::vector<float> x(size_t(src->ne[0] * rows));
    dequantize_row(src->type, f16_->tensor_data(*src), x.data(), int64_t(x.size()));
    const uint64_t nbytes = *ggml_row_bytes(t.type, x.size());
    std::vector<uint8_t> mine(nbytes);
    quantize_row(t.type, x.data(), mine.data(), int64_t(x.size()));
    EXPECT_EQ(std::memcmp(mine.data(), ollama.tensor_data(t), nbytes), 0) << t.name;
    ++compared;
  }
  EXPECT_EQ(compared, 226);  // 227 of the q4_k_m file less per_layer_token_embd (F16 here)
}

// F32 tensors of the quantized files are the F16 file's weights, bit for bit (decoding F16 is exact).
TEST_F(QuantFixture, F32TensorsEqualDecodedF16) {
  int n = 0;
  for (const auto& t : q8_->tensors()) {
    if (t.type != GgmlType::F32) continue;
    const auto a = decode_tensor(*q8_, t);
    const auto b = decode_tensor(*f16_, *f16_->find_tensor(t.name));
    ASSERT_EQ(a, b) << t.name;
    ++n;
  }
  EXPECT_EQ(n, 380);
}

// Dequantized quantized tensors stay close to the weights they were made from.
TEST_F(QuantFixture, DequantizedCloseToF16) {
  for (const GgufFile* q : {q8_, q4km_}) {
    for (const auto& t : q->tensors()) {
      if (t.type == GgmlType::F32) continue;
      const auto a = decode_tensor(*q, t);
      const auto b = decode_tensor(*f16_, *f16_->find_tensor(t.name));
      double se = 0, sx = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        se += double(a[i] - b[i]) * (a[i] - b[i]);
        sx += double(b[i]) * b[i];
      }
      const double rel = std::sqrt(se / sx);
      const double bound = t.type == GgmlType::Q8_0 ? 0.006 : t.type == GgmlType::Q6_K ? 0.025 : 0.09;
      EXPECT_LE(rel, bound) << t.name << " " << ggml_type_traits(t.type).name;
    }
  }
}

// ggml's block layouts put the fp16 scales at these bytes (ggml-common.h); random-byte blocks in the
// kernel tests and benchmarks rely on them.
TEST(Quant, Fp16ScaleOffsetsAreGgmls) {
  const std::map<GgmlType, std::vector<size_t>> want = {
      {GgmlType::Q4_0, {0}},     {GgmlType::Q5_0, {0}},      {GgmlType::Q8_0, {0}},  {GgmlType::Q4_1, {0, 2}},
      {GgmlType::Q5_1, {0, 2}},  {GgmlType::Q2_K, {80, 82}}, {GgmlType::Q3_K, {108}}, {GgmlType::Q4_K, {0, 2}},
      {GgmlType::Q5_K, {0, 2}},  {GgmlType::Q6_K, {208}},    {GgmlType::F32, {}},    {GgmlType::F16, {}},
      {GgmlType::BF16, {}},      {GgmlType::Q8_K, {}}};
  for (const auto& [t, offsets] : want) EXPECT_EQ(fp16_scale_offsets(t), offsets) << ggml_type_traits(t).name;
}

}  // namespace
}  // namespace g3n
