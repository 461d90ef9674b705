// NEON kernels (AArch64; NEON is part of the base ISA there, so no run-time probe is needed). The
// K-quant dots compute each block's integer sums with widening multiplies (or SDOT where the build
// targets the dot-product extension) and close the block with the scalar dots' own float step
// (kquant_step.h), so they return the scalar twins' bits exactly; the float dots keep four vector
// accumulators and agree with their twins within the vec_dot bound. Types not listed here (and the
// prefill tiles) use the scalar kernels, which stay bit-identical to these dots.
#include "kernels/vec_dot_impl.h"

#if defined(__aarch64__)

#include <arm_neon.h>

#include "kernels/kquant_step.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace g3n::vecdot {
namespace {

using namespace quant;

// Sum of x_i * y_i over 16 int8 pairs, as 4 int32 partials.
inline int32x4_t dot16(int8x16_t x, int8x16_t y) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(vdupq_n_s32(0), x, y);
#else
  const int16x8_t lo = vmull_s8(vget_low_s8(x), vget_low_s8(y));
  const int16x8_t hi = vmull_high_s8(x, y);
  return vpadalq_s16(vpaddlq_s16(lo), hi);
#endif
}

float dot_q4_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ4_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) k4_scale_min(j, w[b].scales, &sc[j], &mn[j]);
    // Min term: the 16 bsums paired into 8 group sums, times the 8 mins.
    const int16x8_t pair = vpaddq_s16(vld1q_s16(a[b].bsums), vld1q_s16(a[b].bsums + 8));
    const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    const int32_t summ = vaddvq_s32(vaddq_s32(vmull_s16(vget_low_s16(pair), vget_low_s16(mins)),
                                              vmull_high_s16(pair, mins)));
    int32_t isum = 0;
    for (int c = 0; c < 4; ++c) {
      const uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * c), q1 = vld1q_u8(w[b].qs + 32 * c + 16);
      const int8_t* qa = a[b].qs + 64 * c;
      const int32x4_t lo = vaddq_s32(dot16(vreinterpretq_s8_u8(vandq_u8(q0, m4)), vld1q_s8(qa)),
                                     dot16(vreinterpretq_s8_u8(vandq_u8(q1, m4)), vld1q_s8(qa + 16)));
      const int32x4_t hi = vaddq_s32(dot16(vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vld1q_s8(qa + 32)),
                                     dot16(vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), vld1q_s8(qa + 48)));
      isum += sc[2 * c] * vaddvq_s32(lo) + sc[2 * c + 1] * vaddvq_s32(hi);
    }
    sum = kquant_step_min(sum, a[b].d, fp16_to_fp32(w[b].d), fp16_to_fp32(w[b].dmin), isum, summ);
  }
  return sum;
}

float dot_q6_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ6_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
  const int8x16_t k32 = vdupq_n_s8(32);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32x4_t acc = vdupq_n_s32(0);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = w[b].ql + 64 * half;
      const uint8_t* qh = w[b].qh + 32 * half;
      const int8_t* sc = w[b].scales + 8 * half;
      const int8_t* qa = a[b].qs + 128 * half;
      for (int s = 0; s < 2; ++s) {  // values l = 16s..16s+15 of each quarter: scale groups s, s+2, s+4, s+6
        const uint8x16_t l0 = vld1q_u8(ql + 16 * s), l1 = vld1q_u8(ql + 32 + 16 * s), h = vld1q_u8(qh + 16 * s);
        const uint8x16_t v0 = vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(h, m3), 4));
        const uint8x16_t v1 = vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4));
        const uint8x16_t v2 = vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4));
        const uint8x16_t v3 = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4));
        const auto centred = [&](uint8x16_t v) { return vsubq_s8(vreinterpretq_s8_u8(v), k32); };
        acc = vmlaq_n_s32(acc, dot16(centred(v0), vld1q_s8(qa + 16 * s)), sc[s]);
        acc = vmlaq_n_s32(acc, dot16(centred(v1), vld1q_s8(qa + 32 + 16 * s)), sc[s + 2]);
        acc = vmlaq_n_s32(acc, dot16(centred(v2), vld1q_s8(qa + 64 + 16 * s)), sc[s + 4]);
        acc = vmlaq_n_s32(acc, dot16(centred(v3), vld1q_s8(qa + 96 + 16 * s)), sc[s + 6]);
      }
    }
    sum = kquant_step(sum, a[b].d, fp16_to_fp32(w[b].d), vaddvq_s32(acc));
  }
  return sum;
}

inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
inline float load1(float x) { return x; }
inline float load1(uint16_t x) { return fp16_to_fp32(x); }

// sum x_i * y_i for f32 or f16 x: four vector accumulators, then a scalar tail.
template <class T>
float dot_v(const T* x, const float* y, int64_t n) {
  float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = vfmaq_f32(s0, load4(x + i), vld1q_f32(y + i));
    s1 = vfmaq_f32(s1, load4(x + i + 4), vld1q_f32(y + i + 4));
    s2 = vfmaq_f32(s2, load4(x + i + 8), vld1q_f32(y + i + 8));
    s3 = vfmaq_f32(s3, load4(x + i + 12), vld1q_f32(y + i + 12));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, load4(x + i), vld1q_f32(y + i));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; ++i) sum += load1(x[i]) * y[i];
  return sum;
}

// y += alpha * x for f32 or f16 x.
template <class T>
void axpy_v(float alpha, const T* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), load4(x + i), alpha));
  for (; i < n; ++i) y[i] += alpha * load1(x[i]);
}

float dot_f32(const void* w, const void* a, int64_t n) {
  return dot_v(static_cast<const float*>(w), static_cast<const float*>(a), n);
}
float dot_f16(const void* w, const void* a, int64_t n) {
  return dot_v(static_cast<const uint16_t*>(w), static_cast<const float*>(a), n);
}

KernelSet make_neon() {
  KernelSet k;
  k.dot[type_index(GgmlType::Q4_K)] = dot_q4_k;
  k.dot[type_index(GgmlType::Q6_K)] = dot_q6_k;
  k.dot[type_index(GgmlType::F32)] = dot_f32;
  k.dot[type_index(GgmlType::F16)] = dot_f16;
  // No tiles: prefill loops these dots, which beats the scalar tiles (same bits either way).
  k.dot_f16_f32 = dot_v<uint16_t>;
  k.axpy_f16 = axpy_v<uint16_t>;
  k.dot_f32 = dot_v<float>;
  k.axpy_f32 = axpy_v<float>;
  return k;
}

}  // namespace

const KernelSet* neon_kernels() {
  static const KernelSet k = make_neon();
  return &k;
}

}  // namespace g3n::vecdot

#else

namespace g3n::vecdot {
const KernelSet* neon_kernels() { return nullptr; }
}  // namespace g3n::vecdot

#endif
