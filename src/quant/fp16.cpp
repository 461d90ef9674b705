#include "quant/fp16.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace g3n {

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0) {
    if (mant == 0) return fp32_from_bits(sign);
    // Subnormal half: renormalise.
    exp = 127 - 15 + 1;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --exp;
    }
    mant &= 0x3FFu;
    return fp32_from_bits(sign | (exp << 23) | (mant << 13));
  }
  if (exp == 0x1F) return fp32_from_bits(sign | 0x7F800000u | (mant << 13));
  return fp32_from_bits(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

const float* fp16_table() {
  static const float* table = [] {
    auto* t = new float[65536];
    for (uint32_t h = 0; h < 65536; ++h) t[h] = fp16_to_fp32(uint16_t(h));
    return t;
  }();
  return table;
}

uint16_t fp32_to_fp16(float f) {
  const uint32_t x = fp32_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7FFFFFFFu;
  if (absx > 0x7F800000u) return uint16_t(sign | 0x7E00u);  // NaN
  if (absx >= 0x477FF000u) return uint16_t(sign | 0x7C00u); // rounds to >= 65520: inf
  if (absx < 0x38800000u) {
    // Result is subnormal (or zero): value = absx as float, scaled to units of 2^-24, rounded to even.
    if (absx < 0x33000000u) return uint16_t(sign);  // < 2^-25: rounds to zero
    const uint32_t e = absx >> 23;
    const uint32_t m = (absx & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;  // (113 - e) + 13
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  // Normal: rebias exponent, round mantissa from 23 to 10 bits, nearest-even (carry may bump exponent).
  uint32_t r = absx - ((127u - 15u) << 23);
  const uint32_t rem = r & 0x1FFFu;
  r >>= 13;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1))) ++r;
  return uint16_t(sign | r);
}

uint16_t fp32_to_bf16(float f) {
  const uint32_t x = fp32_to_bits(f);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
  return uint16_t((x + 0x7FFFu + ((x >> 16) & 1u)) >> 16);
}

bool pack_bf16_exact(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = fp32_to_bits(x[i]);
    if (b & 0xFFFFu) return false;
    out[i] = uint16_t(b >> 16);
  }
  return true;
}

bool pack_fp16_exact(const float* x, int64_t n, uint16_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = fp32_to_fp16(x[i]);
    if (fp32_to_bits(fp16_to_fp32(h)) != fp32_to_bits(x[i])) return false;
    out[i] = h;
  }
  return true;
}

void fp32_to_fp16_row_ref(const float* x, uint16_t* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(x[i]);
}

#if defined(__x86_64__)
namespace {
// 8 values a step: vcvtps2ph rounds to nearest even as fp32_to_fp16 does (subnormal halves included), but
// keeps a NaN's payload, so NaN lanes are replaced by fp32_to_fp16's sign | 0x7E00.
__attribute__((target("avx2,f16c"))) void row_f16c(const float* x, uint16_t* out, int64_t n) {
  int64_t i = 0;
  const __m128i qnan = _mm_set1_epi16(0x7E00), sign = _mm_set1_epi16(int16_t(0x8000));
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    if (!_mm256_testz_ps(nan, nan)) {
      const __m128i lanes = _mm_packs_epi32(_mm256_castsi256_si128(_mm256_castps_si256(nan)),
                                            _mm256_extracti128_si256(_mm256_castps_si256(nan), 1));
      h = _mm_blendv_epi8(h, _mm_or_si128(_mm_and_si128(h, sign), qnan), lanes);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  fp32_to_fp16_row_ref(x + i, out + i, n - i);
}
// cpuid leaf 1 ECX bit 29 for F16C (clang 14, the fuzz build, has no "f16c" for __builtin_cpu_supports);
// "avx2" there also means the OS saves the ymm state.
bool have_f16c() {
  static const bool v = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __builtin_cpu_supports("avx2") && __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) != 0;
  }();
  return v;
}
}  // namespace

bool fp32_to_fp16_row_is_f16c() { return have_f16c(); }
void fp32_to_fp16_row(const float* x, uint16_t* out, int64_t n) {
  if (have_f16c()) row_f16c(x, out, n);
  else fp32_to_fp16_row_ref(x, out, n);
}
#else
bool fp32_to_fp16_row_is_f16c() { return false; }
void fp32_to_fp16_row(const float* x, uint16_t* out, int64_t n) { fp32_to_fp16_row_ref(x, out, n); }
#endif

}  // namespace g3n
