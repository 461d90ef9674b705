// e^x on four lanes, the method and constants of every SIMD set's exp (exp_taylor.h). No clamping here:
// callers keep x within [-87, 88] (the softmax clamps; tanh passes -2a with 0 <= a <= 9). AArch64 only;
// include after <arm_neon.h>. The function is in an unnamed namespace, so a file compiled under a target
// pragma (SDOT, SMMLA) gets its own copy.
#pragma once
#include <arm_neon.h>

#include "kernels/exp_taylor.h"

namespace g3n {
namespace {

inline float32x4_t exp_neon(float32x4_t x) {
  using namespace exp_taylor;
  const float32x4_t nf = vrndnq_f32(vmulq_n_f32(x, kLog2e));
  float32x4_t r = vfmsq_f32(x, nf, vdupq_n_f32(kLn2Hi));  // high part of ln2: n * it is exact
  r = vfmsq_f32(r, nf, vdupq_n_f32(kLn2Lo));              // the rest of ln2
  float32x4_t e = vdupq_n_f32(kTerms[0]);
#pragma GCC unroll 8
  for (int i = 1; i < kNumTerms; ++i) e = vfmaq_f32(vdupq_n_f32(kTerms[i]), e, r);
  const int32x4_t pow2 = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(nf), vdupq_n_s32(127)), 23);  // nf is integral
  return vmulq_f32(e, vreinterpretq_f32_s32(pow2));
}

}  // namespace
}  // namespace g3n
