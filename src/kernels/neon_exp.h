// e^x on four lanes, the method of every SIMD set's exp (conv_avx2.cpp, vec_dot_avx2.cpp): x = n ln2 + r
// with ln2 in two parts (n times the high part is exact, |r| <= ln2/2), e^r by its Taylor series to r^7,
// times 2^n built in the exponent bits. No clamping here: callers keep x within [-87, 88] (the softmax
// clamps; tanh passes -2a with 0 <= a <= 9). AArch64 only; include after <arm_neon.h>. The function is in
// an unnamed namespace, so a file compiled under a target pragma (SDOT, SMMLA) gets its own copy.
#pragma once
#include <arm_neon.h>

namespace g3n {
namespace {

inline float32x4_t exp_neon(float32x4_t x) {
  const float32x4_t nf = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
  float32x4_t r = vfmsq_f32(x, nf, vdupq_n_f32(0.693145751953125f));  // high part of ln2: n * it is exact
  r = vfmsq_f32(r, nf, vdupq_n_f32(1.4286068203094172e-6f));          // the rest of ln2
  float32x4_t e = vdupq_n_f32(1.0f / 5040.0f);
  e = vfmaq_f32(vdupq_n_f32(1.0f / 720.0f), e, r);
  e = vfmaq_f32(vdupq_n_f32(1.0f / 120.0f), e, r);
  e = vfmaq_f32(vdupq_n_f32(1.0f / 24.0f), e, r);
  e = vfmaq_f32(vdupq_n_f32(1.0f / 6.0f), e, r);
  e = vfmaq_f32(vdupq_n_f32(0.5f), e, r);
  e = vfmaq_f32(vdupq_n_f32(1.0f), e, r);
  e = vfmaq_f32(vdupq_n_f32(1.0f), e, r);
  const int32x4_t pow2 = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(nf), vdupq_n_s32(127)), 23);  // nf is integral
  return vmulq_f32(e, vreinterpretq_f32_s32(pow2));
}

}  // namespace
}  // namespace g3n
