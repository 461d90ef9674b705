// Horizontal reductions of AVX2 vectors, shared by the AVX2 kernel files (x86 only: include inside their
// __x86_64__ guard, after <immintrin.h>). Each carries the files' target attribute, so nothing here runs
// before the cpuid check. The lane order is fixed (high half onto low, then pairs), so every caller sums
// in the same order.
#pragma once
#include <immintrin.h>

#define G3N_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace g3n::avx2 {

G3N_AVX2 inline float hsum128(__m128 s) {
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
G3N_AVX2 inline float hsum(__m256 v) {
  return hsum128(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
}
// A product added into a running sum with one rounding, spelled out for the float kernels' scalar tails: they
// must give the same bits whether a matrix is stored as F32, F16 or BF16 (model.cpp narrows F32 matrices whose
// values fit), and left to the compiler `sum += a * b` is fused in one loop but vectorized as a multiply then
// an add in another.
G3N_AVX2 inline float mul_add1(float a, float b, float sum) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(sum)));
}
G3N_AVX2 inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace g3n::avx2
