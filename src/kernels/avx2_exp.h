// e^x on 8 lanes (exp_taylor.h's method), shared by the AVX2 kernel files (x86 only: include inside their
// __x86_64__ guard). No clamping here: callers keep x within [-87, 88].
#pragma once
#include <immintrin.h>

#include "kernels/avx2_reduce.h"
#include "kernels/exp_taylor.h"

namespace g3n::avx2 {

G3N_AVX2 inline __m256 exp_unclamped(__m256 x) {
  using namespace exp_taylor;
  const __m256 nf = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(kLn2Lo), r);
  __m256 e = _mm256_set1_ps(kTerms[0]);
#pragma GCC unroll 8
  for (int i = 1; i < kNumTerms; ++i) e = _mm256_fmadd_ps(e, r, _mm256_set1_ps(kTerms[i]));
  const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nf), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(e, _mm256_castsi256_ps(pow2));
}

}  // namespace g3n::avx2
