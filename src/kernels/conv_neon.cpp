// Plain ARMv8-A NEON conv kernels ("neon"): the AVX2 set's structure on 128-bit vectors. The GEMM
// micro-kernel keeps 6 pixels x 16 channels in 24 float32x4 accumulators (AArch64 has 32 vector
// registers: 24 + 4 for the strip's row of B + 2 for the panel's 6 A values) and multiplies by lane
// (fmla v.4s, v.4s, v.s[i]) so A needs no broadcasts. F16, BF16 and Q8_0 weights are converted while
// packing (vcvt, a 16-bit shift, int8 widening times the block scale: the same single rounding as the
// scalar decode, so packed strips are bit-identical to it). NEON is part of the AArch64 base ISA;
// conv.cpp still hands the set out only when cpu_features() saw HWCAP's asimd bit.
#include "kernels/conv_impl.h"

#if defined(__aarch64__)

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/neon_exp.h"
#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/ggml_type.h"

namespace g3n::conv {
namespace {

// ---- packing ---------------------------------------------------------------------------------------
// r[q] <- column q of the 4x4 block whose rows are r[0..3].
inline void transpose4(float32x4_t r[4]) {
  const float32x4_t t0 = vtrn1q_f32(r[0], r[1]), t1 = vtrn2q_f32(r[0], r[1]);
  const float32x4_t t2 = vtrn1q_f32(r[2], r[3]), t3 = vtrn2q_f32(r[2], r[3]);
  r[0] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
  r[1] = vreinterpretq_f32_f64(vtrn1q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
  r[2] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t0), vreinterpretq_f64_f32(t2)));
  r[3] = vreinterpretq_f32_f64(vtrn2q_f64(vreinterpretq_f64_f32(t1), vreinterpretq_f64_f32(t3)));
}

// Inputs k .. k+7 of one weight row (k a multiple of 8, so a Q8_0 span never crosses a block) as two
// float32x4: lo = k..k+3, hi = k+4..k+7.
template <GgmlType T>
inline void load8(const uint8_t* row, int64_t k, float32x4_t& lo, float32x4_t& hi) {
  if constexpr (T == GgmlType::F32) {
    const float* p = reinterpret_cast<const float*>(row) + k;
    lo = vld1q_f32(p);
    hi = vld1q_f32(p + 4);
  } else if constexpr (T == GgmlType::F16) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(reinterpret_cast<const uint16_t*>(row) + k));
    lo = vcvt_f32_f16(vget_low_f16(h));
    hi = vcvt_high_f32_f16(h);
  } else if constexpr (T == GgmlType::BF16) {
    const uint16x8_t h = vld1q_u16(reinterpret_cast<const uint16_t*>(row) + k);
    lo = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16));
    hi = vreinterpretq_f32_u32(vshll_high_n_u16(h, 16));
  } else {
    static_assert(T == GgmlType::Q8_0);
    const quant::BlockQ8_0& b = reinterpret_cast<const quant::BlockQ8_0*>(row)[k / quant::kQK];
    const float d = vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(b.d))), 0);
    const int16x8_t q = vmovl_s8(vld1_s8(b.qs + k % quant::kQK));
    // float(q) * d as the scalar decode: int8 -> f32 is exact, then one rounded multiply.
    lo = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(q))), d);
    hi = vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(q)), d);
  }
}

// One input of a row, for the tail of a span that is not a multiple of 8 (never Q8_0: its spans are
// whole 32-value blocks).
template <GgmlType T>
inline float load1(const uint8_t* row, int64_t k) {
  if constexpr (T == GgmlType::F32) return reinterpret_cast<const float*>(row)[k];
  else if constexpr (T == GgmlType::F16) return fp16_to_fp32(reinterpret_cast<const uint16_t*>(row)[k]);
  else if constexpr (T == GgmlType::BF16) return bf16_to_fp32(reinterpret_cast<const uint16_t*>(row)[k]);
  else return 0.0f;  // unreachable (Q8_0 spans are multiples of 32)
}

// Four weight rows at a time (a quarter of a strip), 8 inputs per step: two 4x4 transposes give each
// input's 4 channels as one vector, stored straight into the strip. Missing rows (past nn) read as 0.
template <GgmlType T>
void pack_rows(const WeightMatrix& w, int64_t n0, int64_t nn, int64_t k0, int64_t kc, float* dst) {
  const int64_t strips = (nn + kGemmNR - 1) / kGemmNR;
  const int64_t k8 = kc / 8 * 8;
  for (int64_t s = 0; s < strips; ++s) {
    float* strip = dst + s * kc * kGemmNR;
    for (int64_t h = 0; h < 4; ++h) {
      const int64_t j0 = s * kGemmNR + h * 4;  // first of 4 rows (relative to n0)
      const int64_t valid = std::clamp<int64_t>(nn - j0, 0, 4);
      const uint8_t* rows[4];
      for (int64_t r = 0; r < 4; ++r) rows[r] = r < valid ? w.row(n0 + j0 + r) : nullptr;
      for (int64_t k = 0; k < k8; k += 8) {
        float32x4_t lo[4], hi[4];
        for (int64_t r = 0; r < 4; ++r) {
          if (rows[r]) {
            load8<T>(rows[r], k0 + k, lo[r], hi[r]);
          } else {
            lo[r] = hi[r] = vdupq_n_f32(0.0f);
          }
        }
        transpose4(lo);
        transpose4(hi);
        for (int64_t q = 0; q < 4; ++q) {
          vst1q_f32(strip + (k + q) * kGemmNR + h * 4, lo[q]);
          vst1q_f32(strip + (k + 4 + q) * kGemmNR + h * 4, hi[q]);
        }
      }
      for (int64_t k = k8; k < kc; ++k)
        for (int64_t r = 0; r < 4; ++r) strip[k * kGemmNR + h * 4 + r] = rows[r] ? load1<T>(rows[r], k0 + k) : 0.0f;
    }
  }
}

void pack_weights_neon(const WeightMatrix& w, int64_t n0, int64_t nn, int64_t k0, int64_t kc, float* dst) {
  switch (w.type) {
    case GgmlType::F32: return pack_rows<GgmlType::F32>(w, n0, nn, k0, kc, dst);
    case GgmlType::F16: return pack_rows<GgmlType::F16>(w, n0, nn, k0, kc, dst);
    case GgmlType::BF16: return pack_rows<GgmlType::BF16>(w, n0, nn, k0, kc, dst);
    case GgmlType::Q8_0: return pack_rows<GgmlType::Q8_0>(w, n0, nn, k0, kc, dst);
    default: return scalar_set().pack_weights(w, n0, nn, k0, kc, dst);  // other types decode a row span first
  }
}

// ---- GEMM micro-kernel: MR pixels x 16 channels, 4*MR accumulators --------------------------------
// One pixel row's 16 accumulators. They live in named locals (r0..r5), never in an array: GCC keeps an
// array of vectors in memory and stores all 24 accumulators back to the stack on every input step.
struct Row {
  float32x4_t v0, v1, v2, v3;
};

// f(r_i, i) for the first MR rows, i a compile-time constant (so FMA lanes are immediates).
template <int MR, class F>
inline void each_row(Row& r0, Row& r1, Row& r2, Row& r3, Row& r4, Row& r5, F&& f) {
  f(r0, std::integral_constant<int, 0>{});
  if constexpr (MR > 1) f(r1, std::integral_constant<int, 1>{});
  if constexpr (MR > 2) f(r2, std::integral_constant<int, 2>{});
  if constexpr (MR > 3) f(r3, std::integral_constant<int, 3>{});
  if constexpr (MR > 4) f(r4, std::integral_constant<int, 4>{});
  if constexpr (MR > 5) f(r5, std::integral_constant<int, 5>{});
}

// r += a_I * b for pixel I of a packed panel step: a03 holds pixels 0-3, a45 pixels 4-5.
template <int I>
inline void fma_lane(Row& r, float32x4_t b0, float32x4_t b1, float32x4_t b2, float32x4_t b3, float32x4_t a03,
                     float32x2_t a45) {
  if constexpr (I < 4) {
    r.v0 = vfmaq_laneq_f32(r.v0, b0, a03, I);
    r.v1 = vfmaq_laneq_f32(r.v1, b1, a03, I);
    r.v2 = vfmaq_laneq_f32(r.v2, b2, a03, I);
    r.v3 = vfmaq_laneq_f32(r.v3, b3, a03, I);
  } else {
    r.v0 = vfmaq_lane_f32(r.v0, b0, a45, I - 4);
    r.v1 = vfmaq_lane_f32(r.v1, b1, a45, I - 4);
    r.v2 = vfmaq_lane_f32(r.v2, b2, a45, I - 4);
    r.v3 = vfmaq_lane_f32(r.v3, b3, a45, I - 4);
  }
}

// A is read either from MR rows lda apart (kPacked = false: one scalar per row and input, multiplied
// by element 0) or from a packed panel, 6 values per input (kPacked = true: one 16-byte and one 8-byte
// load per input, multiplied by lane). Every accumulator is the same fused chain in k order either way.
template <int MR, bool kPacked>
inline void micro(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc, int64_t nn,
                  bool accumulate) {
  Row r0, r1, r2, r3, r4, r5;
  float tmp[MR][16];
  const bool full = nn == 16;
  each_row<MR>(r0, r1, r2, r3, r4, r5, [&](Row& r, auto I) {
    const float* ci = c + I * ldc;
    if (!accumulate) {
      r.v0 = r.v1 = r.v2 = r.v3 = vdupq_n_f32(0.0f);
      return;
    }
    if (!full) {  // a partial strip: C's columns nn..15 may belong to someone else, go through tmp
      std::memset(tmp[I], 0, sizeof tmp[I]);
      std::memcpy(tmp[I], ci, sizeof(float) * size_t(nn));
      ci = tmp[I];
    }
    r.v0 = vld1q_f32(ci);
    r.v1 = vld1q_f32(ci + 4);
    r.v2 = vld1q_f32(ci + 8);
    r.v3 = vld1q_f32(ci + 12);
  });
  if constexpr (kPacked) {
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
      const float* bk = b + k * 16;
      const float32x4_t b0 = vld1q_f32(bk), b1 = vld1q_f32(bk + 4), b2 = vld1q_f32(bk + 8), b3 = vld1q_f32(bk + 12);
      // The panel always has 6 values per input (zeros past m), so both loads are in bounds for any MR.
      const float32x4_t a03 = vld1q_f32(a + k * 6);
      const float32x2_t a45 = vld1_f32(a + k * 6 + 4);
      each_row<MR>(r0, r1, r2, r3, r4, r5, [&](Row& r, auto I) { fma_lane<I>(r, b0, b1, b2, b3, a03, a45); });
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      const float* bk = b + k * 16;
      const float32x4_t b0 = vld1q_f32(bk), b1 = vld1q_f32(bk + 4), b2 = vld1q_f32(bk + 8), b3 = vld1q_f32(bk + 12);
      each_row<MR>(r0, r1, r2, r3, r4, r5, [&](Row& r, auto I) {
        const float av = a[I * lda + k];
        r.v0 = vfmaq_n_f32(r.v0, b0, av);
        r.v1 = vfmaq_n_f32(r.v1, b1, av);
        r.v2 = vfmaq_n_f32(r.v2, b2, av);
        r.v3 = vfmaq_n_f32(r.v3, b3, av);
      });
    }
  }
  each_row<MR>(r0, r1, r2, r3, r4, r5, [&](Row& r, auto I) {
    float* ci = full ? c + I * ldc : tmp[I];
    vst1q_f32(ci, r.v0);
    vst1q_f32(ci + 4, r.v1);
    vst1q_f32(ci + 8, r.v2);
    vst1q_f32(ci + 12, r.v3);
    if (!full) std::memcpy(c + I * ldc, tmp[I], sizeof(float) * size_t(nn));
  });
}

// Rows i..i+5 start at a + i*lda (unpacked) or at panel i/6 (packed: a + (i/6)*panel_stride).
template <bool kPacked>
void gemm_rows(const float* a, int64_t step, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc, int64_t nn,
               bool accumulate) {
  const int64_t lda = kPacked ? 0 : step;
  int64_t i = 0;
  for (; i + 6 <= m; i += 6) {
    // As in the AVX2 set: the next call's C rows (ldc apart, a stride no prefetcher follows) are
    // requested while this one computes. Only the timing changes, never a bit.
    if (accumulate)
      for (int64_t r = i + 6; r < std::min(m, i + 12); ++r) {
        __builtin_prefetch(c + r * ldc);
        __builtin_prefetch(c + r * ldc + 15);
      }
    micro<6, kPacked>(a + (i / 6) * step * (kPacked ? 1 : 6), lda, b, kc, c + i * ldc, ldc, nn, accumulate);
  }
  const float* ar = a + (i / 6) * step * (kPacked ? 1 : 6);
  switch (m - i) {
    case 5: micro<5, kPacked>(ar, lda, b, kc, c + i * ldc, ldc, nn, accumulate); break;
    case 4: micro<4, kPacked>(ar, lda, b, kc, c + i * ldc, ldc, nn, accumulate); break;
    case 3: micro<3, kPacked>(ar, lda, b, kc, c + i * ldc, ldc, nn, accumulate); break;
    case 2: micro<2, kPacked>(ar, lda, b, kc, c + i * ldc, ldc, nn, accumulate); break;
    case 1: micro<1, kPacked>(ar, lda, b, kc, c + i * ldc, ldc, nn, accumulate); break;
    default: break;
  }
}

void gemm_strip_neon(const float* a, int64_t lda, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc, int64_t nn,
                     bool accumulate) {
  gemm_rows<false>(a, lda, m, b, kc, c, ldc, nn, accumulate);
}

void gemm_panel_neon(const float* ap, int64_t panel_stride, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc,
                     int64_t nn, bool accumulate) {
  gemm_rows<true>(ap, panel_stride, m, b, kc, c, ldc, nn, accumulate);
}

// Six rows, 4 inputs at a time: rows 0-3 are transposed in registers (one vector per input), rows 4-5
// are zipped into pairs (one 8-byte store per input). Every store lands inside this panel's inputs k..k+3.
void pack_activations_neon(const float* a, int64_t lda, int64_t m, int64_t K, float* dst) {
  const int64_t panels = (m + 5) / 6, k4 = K / 4 * 4;
  for (int64_t g = 0; g < panels; ++g) {
    const float* rows[6];
    for (int64_t r = 0; r < 6; ++r) rows[r] = g * 6 + r < m ? a + (g * 6 + r) * lda : nullptr;
    float* out = dst + g * K * 6;
    for (int64_t k = 0; k < k4; k += 4) {
      float32x4_t v[6];
      for (int64_t r = 0; r < 6; ++r) v[r] = rows[r] ? vld1q_f32(rows[r] + k) : vdupq_n_f32(0.0f);
      transpose4(v);
      const float32x4_t z0 = vzip1q_f32(v[4], v[5]), z1 = vzip2q_f32(v[4], v[5]);
      const float32x2_t pairs[4] = {vget_low_f32(z0), vget_high_f32(z0), vget_low_f32(z1), vget_high_f32(z1)};
      for (int64_t q = 0; q < 4; ++q) {
        vst1q_f32(out + (k + q) * 6, v[q]);
        vst1_f32(out + (k + q) * 6 + 4, pairs[q]);
      }
    }
    for (int64_t k = k4; k < K; ++k)
      for (int64_t r = 0; r < 6; ++r) out[k * 6 + r] = rows[r] ? rows[r][k] : 0.0f;
  }
}

// ---- depthwise ---------------------------------------------------------------------------------------
// Per channel the same fused chain over (ky, kx) in every channel block and the scalar tail (std::fma),
// so an output's bits never depend on C's remainder or on which output window computed it.
void depthwise_row_neon(const float* const* rows, int64_t w_in, int64_t C, const float* w, int k, int stride,
                        int64_t pad_left, int64_t x0, int64_t nx, float* out) {
  for (int64_t x = 0; x < nx; ++x) {
    const auto [ix0, kx_lo, kx_hi] = depthwise_taps(x0 + x, stride, pad_left, k, w_in);
    float* o = out + x * C;
    int64_t c = 0;
    for (; c + 16 <= C; c += 16) {
      float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
      for (int ky = 0; ky < k; ++ky) {
        if (!rows[ky]) continue;
        for (int kx = kx_lo; kx < kx_hi; ++kx) {
          const float* in = rows[ky] + (ix0 + kx) * C + c;
          const float* wt = w + (ky * k + kx) * C + c;
          s0 = vfmaq_f32(s0, vld1q_f32(wt), vld1q_f32(in));
          s1 = vfmaq_f32(s1, vld1q_f32(wt + 4), vld1q_f32(in + 4));
          s2 = vfmaq_f32(s2, vld1q_f32(wt + 8), vld1q_f32(in + 8));
          s3 = vfmaq_f32(s3, vld1q_f32(wt + 12), vld1q_f32(in + 12));
        }
      }
      vst1q_f32(o + c, s0);
      vst1q_f32(o + c + 4, s1);
      vst1q_f32(o + c + 8, s2);
      vst1q_f32(o + c + 12, s3);
    }
    for (; c + 4 <= C; c += 4) {
      float32x4_t s = vdupq_n_f32(0.0f);
      for (int ky = 0; ky < k; ++ky) {
        if (!rows[ky]) continue;
        for (int kx = kx_lo; kx < kx_hi; ++kx)
          s = vfmaq_f32(s, vld1q_f32(w + (ky * k + kx) * C + c), vld1q_f32(rows[ky] + (ix0 + kx) * C + c));
      }
      vst1q_f32(o + c, s);
    }
    for (; c < C; ++c) {
      float s = 0;
      for (int ky = 0; ky < k; ++ky) {
        if (!rows[ky]) continue;
        for (int kx = kx_lo; kx < kx_hi; ++kx) s = std::fma(w[(ky * k + kx) * C + c], rows[ky][(ix0 + kx) * C + c], s);
      }
      o[c] = s;
    }
  }
}

// ---- exp, gelu, norms, softmax ----------------------------------------------------------------------
// exp(x) as the AVX2 set computes it: x clamped to [-87, 88], then exp_neon (neon_exp.h).
inline float32x4_t exp_v(float32x4_t x) {
  return exp_neon(vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.0f)), vdupq_n_f32(88.0f)));
}

// gelu_tanh(x) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3): the AVX2 set's logistic form.
inline float32x4_t gelu_v(float32x4_t x) {
  const float32x4_t u = vmulq_f32(vmulq_f32(vdupq_n_f32(-2.0f * 0.79788456080286535587989211986876f), x),
                                  vfmaq_f32(vdupq_n_f32(1.0f), vmulq_f32(vdupq_n_f32(0.044715f), x), x));
  return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), exp_v(u)));
}

void rms_norm_rows_neon(float* x, int64_t ld, int64_t rows, int64_t n, const float* w, float eps, bool gelu) {
  const int64_t n4 = n / 4 * 4;
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * ld;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const float32x4_t p0 = vld1q_f32(v + i), p1 = vld1q_f32(v + i + 4);
      const float32x4_t p2 = vld1q_f32(v + i + 8), p3 = vld1q_f32(v + i + 12);
      a0 = vfmaq_f32(a0, p0, p0);
      a1 = vfmaq_f32(a1, p1, p1);
      a2 = vfmaq_f32(a2, p2, p2);
      a3 = vfmaq_f32(a3, p3, p3);
    }
    for (; i + 4 <= n; i += 4) {
      const float32x4_t p = vld1q_f32(v + i);
      a0 = vfmaq_f32(a0, p, p);
    }
    float ss = vaddvq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)));
    for (; i < n; ++i) ss += v[i] * v[i];
    const float s = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    const float32x4_t sv = vdupq_n_f32(s);
    for (i = 0; i < n4; i += 4) {
      float32x4_t y = vmulq_f32(vmulq_f32(vld1q_f32(v + i), sv), vld1q_f32(w + i));
      if (gelu) y = gelu_v(y);
      vst1q_f32(v + i, y);
    }
    if (i < n) {  // the tail through the same 4-wide code
      float t[4] = {}, tw[4] = {};
      std::memcpy(t, v + i, sizeof(float) * size_t(n - i));
      std::memcpy(tw, w + i, sizeof(float) * size_t(n - i));
      float32x4_t y = vmulq_f32(vmulq_f32(vld1q_f32(t), sv), vld1q_f32(tw));
      if (gelu) y = gelu_v(y);
      vst1q_f32(t, y);
      std::memcpy(v + i, t, sizeof(float) * size_t(n - i));
    }
  }
}

// x / (1 + exp(-x)); exp_v's clamp keeps the far negative tail at x * 1.6e-38 (not -0), as in AVX2.
void silu_neon(float* x, int64_t n) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    vst1q_f32(x + i, vdivq_f32(v, vaddq_f32(one, exp_v(vnegq_f32(v)))));
  }
  if (i < n) {  // the tail through the same 4-wide code
    float t[4] = {};
    std::memcpy(t, x + i, sizeof(float) * size_t(n - i));
    const float32x4_t v = vld1q_f32(t);
    vst1q_f32(t, vdivq_f32(v, vaddq_f32(one, exp_v(vnegq_f32(v)))));
    std::memcpy(x + i, t, sizeof(float) * size_t(n - i));
  }
}

void softmax_rows_neon(float* x, int64_t ld, int64_t rows, int64_t n, float scale) {
  const int64_t n4 = n / 4 * 4;
  const float32x4_t sc = vdupq_n_f32(scale);
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * ld;
    float32x4_t m = vdupq_n_f32(-INFINITY);
    for (int64_t i = 0; i < n4; i += 4) m = vmaxq_f32(m, vld1q_f32(v + i));
    float mx = vmaxvq_f32(m);
    for (int64_t i = n4; i < n; ++i) mx = std::max(mx, v[i]);
    const float32x4_t mv = vdupq_n_f32(mx);
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < n4; i += 4) {
      const float32x4_t e = exp_v(vmulq_f32(vsubq_f32(vld1q_f32(v + i), mv), sc));
      vst1q_f32(v + i, e);
      sum = vaddq_f32(sum, e);
    }
    float total = vaddvq_f32(sum);
    if (n4 < n) {  // the tail through the same exp, padded with the max (exp(0), never stored)
      float t[4];
      for (int64_t i = 0; i < 4; ++i) t[i] = n4 + i < n ? v[n4 + i] : mx;
      vst1q_f32(t, exp_v(vmulq_f32(vsubq_f32(vld1q_f32(t), mv), sc)));
      for (int64_t i = n4; i < n; ++i) total += (v[i] = t[i - n4]);
    }
    const float32x4_t inv = vdupq_n_f32(1.0f / total);
    for (int64_t i = 0; i < n4; i += 4) vst1q_f32(v + i, vmulq_f32(vld1q_f32(v + i), inv));
    for (int64_t i = n4; i < n; ++i) v[i] *= 1.0f / total;
  }
}

}  // namespace

const ConvKernelSet* neon_set() {
  static const ConvKernelSet k{"neon",           pack_weights_neon,  gemm_strip_neon,    pack_activations_neon,
                               gemm_panel_neon,  depthwise_row_neon, rms_norm_rows_neon, softmax_rows_neon,
                               silu_neon};
  return &k;
}

}  // namespace g3n::conv

#else

namespace g3n::conv {
const ConvKernelSet* neon_set() { return nullptr; }
}  // namespace g3n::conv

#endif
