// AVX-512F conv kernels: the AVX2 set with its GEMM micro-kernel on zmm registers. A 16-channel strip is
// one zmm, so a row needs one accumulator instead of two, and a kernel call takes 12 pixels (two packed
// panels of 6, or 12 rows) against a strip: 12 independent FMA chains, one strip load and 12 broadcasts per input,
// where the AVX2 kernel issues 12 ymm FMAs for 6 pixels. Every output is the same k-ordered FMA chain
// as the AVX2 set's (a*b + acc per input, from 0 or from C), lane for lane, so this set returns the AVX2
// set's bits (tests/kernels_conv_test.cpp); so does its depthwise kernel, and its GELU, SiLU and exp per
// element (the norm's and the softmax's row sums add 16 lanes at a time, so those differ in rounding). Packing is
// the AVX2 set's.
// Chosen where the text decoder's kernel set runs full-width zmm (conv.cpp conv_set_for).
#include "kernels/conv_impl.h"
#include "kernels/exp_taylor.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <utility>

// GCC 12's AVX-512 intrinsics pass _mm512_undefined_* as the unused merge source of unmasked operations, which
// -Wmaybe-uninitialized flags (as in vec_dot_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define G3N_AVX512F __attribute__((target("avx2,fma,f16c,avx512f")))

namespace g3n::conv {
namespace {

// MR rows (MR <= 12) x up to 16 channels (mask). Row i's input k is a[i*lda + k] (kPacked = false, lda =
// step) or, packed, a[(i/6)*step + k*6 + i%6] (panels `step` floats apart: one sequential stream each).
template <int MR, bool kPacked>
G3N_AVX512F void micro(const float* a, int64_t step, const float* b, int64_t kc, float* c, int64_t ldc, __mmask16 mask,
                       bool accumulate) {
  __m512 acc[MR];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) acc[i] = accumulate ? _mm512_maskz_loadu_ps(mask, c + i * ldc) : _mm512_setzero_ps();
  if constexpr (kPacked) {
    const float* p0 = a;
    const float* p1 = a + step;  // read only when MR > 6
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
      const __m512 bk = _mm512_loadu_ps(b + k * 16);
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i)
        acc[i] = _mm512_fmadd_ps(_mm512_set1_ps((i < 6 ? p0 : p1)[k * 6 + i % 6]), bk, acc[i]);
    }
  } else {
    const float* ap[MR];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) ap[i] = a + i * step;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
      const __m512 bk = _mm512_loadu_ps(b + k * 16);
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[i][k]), bk, acc[i]);
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i) _mm512_mask_storeu_ps(c + i * ldc, mask, acc[i]);
}

using MicroFn = void (*)(const float*, int64_t, const float*, int64_t, float*, int64_t, __mmask16, bool);
template <bool kPacked, int... R>
constexpr std::array<MicroFn, sizeof...(R)> micro_table(std::integer_sequence<int, R...>) {
  return {&micro<R + 1, kPacked>...};
}

// Blocks of 12 rows, then the remainder in one call. From plain rows too: the 12 row addresses stay in
// registers but one (base + index addressing).
template <bool kPacked>
G3N_AVX512F void gemm_rows(const float* a, int64_t step, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc,
                           int64_t nn, bool accumulate) {
  constexpr int kBlock = 12;
  static constexpr auto kMicro = micro_table<kPacked>(std::make_integer_sequence<int, kBlock>());
  const __mmask16 mask = nn >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nn) - 1);
  // Where row i starts: its panel (packed) or its row.
  const auto rows_at = [&](int64_t i) { return kPacked ? a + (i / 6) * step : a + i * step; };
  int64_t i = 0;
  for (; i + kBlock <= m; i += kBlock) {
    // The next call's C rows (ldc apart: a stride no prefetcher follows), fetched while this one computes,
    // as the AVX2 kernel does.
    if (accumulate)
      for (int64_t r = i + kBlock; r < std::min(m, i + 2 * kBlock); ++r)
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
    kMicro[kBlock - 1](rows_at(i), step, b, kc, c + i * ldc, ldc, mask, accumulate);
  }
  if (i < m) kMicro[m - i - 1](rows_at(i), step, b, kc, c + i * ldc, ldc, mask, accumulate);
}

G3N_AVX512F void gemm_strip_avx512(const float* a, int64_t lda, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc,
                                   int64_t nn, bool accumulate) {
  gemm_rows<false>(a, lda, m, b, kc, c, ldc, nn, accumulate);
}

G3N_AVX512F void gemm_panel_avx512(const float* ap, int64_t panel_stride, int64_t m, const float* b, int64_t kc, float* c,
                                   int64_t ldc, int64_t nn, bool accumulate) {
  gemm_rows<true>(ap, panel_stride, m, b, kc, c, ldc, nn, accumulate);
}

// Depthwise, one output pixel: R zmm chains of 16 channels from channel c, the last masked by `last`. Each
// chain is the AVX2 kernel's fma chain over (ky, kx) lane for lane, so the same bits. Two loads per FMA: on
// zmm half the instructions of the AVX2 kernel's.
template <int R>
G3N_AVX512F inline void depthwise_channels(const float* const* rows, const float* w, int k, int64_t C, int64_t ix0,
                                           int kx_lo, int kx_hi, int64_t c, __mmask16 last, float* o) {
  __m512 s[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) s[r] = _mm512_setzero_ps();
  for (int ky = 0; ky < k; ++ky) {
    if (!rows[ky]) continue;  // zero padding row
    for (int kx = kx_lo; kx < kx_hi; ++kx) {
      const float* in = rows[ky] + (ix0 + kx) * C + c;
      const float* wt = w + (ky * k + kx) * C + c;
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __mmask16 m = r == R - 1 ? last : __mmask16(0xFFFF);
        s[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, wt + 16 * r), _mm512_maskz_loadu_ps(m, in + 16 * r), s[r]);
      }
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(o + c + 16 * r, r == R - 1 ? last : __mmask16(0xFFFF), s[r]);
}

// 64 channels at a time, then 16, the last 1-16 masked.
G3N_AVX512F void depthwise_row_avx512(const float* const* rows, int64_t w_in, int64_t C, const float* w, int k, int stride,
                                      int64_t pad_left, int64_t x0, int64_t nx, float* out) {
  for (int64_t x = 0; x < nx; ++x) {
    const DepthwiseTaps t = depthwise_taps(x0 + x, stride, pad_left, k, w_in);
    float* o = out + x * C;
    int64_t c = 0;
    for (; c + 64 <= C; c += 64) depthwise_channels<4>(rows, w, k, C, t.ix0, t.kx_lo, t.kx_hi, c, 0xFFFF, o);
    for (; c < C; c += 16) {
      const __mmask16 last = C - c >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (C - c)) - 1);
      depthwise_channels<1>(rows, w, k, C, t.ix0, t.kx_lo, t.kx_hi, c, last, o);
    }
  }
}

// ---- exp, gelu, norms, softmax on 16 lanes -------------------------------------------------------------
// exp_v, gelu_v and the SiLU of conv_avx2.cpp, operation for operation (so each element gets the AVX2 set's
// bits; only the row sums of the norm and the softmax add in another order). A row's tail is one masked step.

G3N_AVX512F inline __m512 exp16(__m512 x) {
  using namespace exp_taylor;
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 nf = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(kLn2Lo), r);
  __m512 e = _mm512_set1_ps(kTerms[0]);
#pragma GCC unroll 8
  for (int i = 1; i < kNumTerms; ++i) e = _mm512_fmadd_ps(e, r, _mm512_set1_ps(kTerms[i]));
  const __m512i pow2 = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(nf), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(e, _mm512_castsi512_ps(pow2));
}

G3N_AVX512F inline __m512 gelu16(__m512 x) {
  const __m512 u = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-2.0f * 0.79788456080286535587989211986876f), x),
                                 _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), x), x, _mm512_set1_ps(1.0f)));
  return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp16(u)));
}

G3N_AVX512F inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
}

G3N_AVX512F void rms_norm_rows_avx512(float* x, int64_t ld, int64_t rows, int64_t n, const float* w, float eps, bool gelu) {
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * ld;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      const __m512 p = _mm512_loadu_ps(v + i), q = _mm512_loadu_ps(v + i + 16);
      a0 = _mm512_fmadd_ps(p, p, a0);
      a1 = _mm512_fmadd_ps(q, q, a1);
    }
    for (; i < n; i += 16) {
      const __m512 p = _mm512_maskz_loadu_ps(tail_mask(n - i), v + i);
      a0 = _mm512_fmadd_ps(p, p, a0);
    }
    const float ss = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    const __m512 sv = _mm512_set1_ps(1.0f / std::sqrt(ss / static_cast<float>(n) + eps));
    for (i = 0; i < n; i += 16) {
      const __mmask16 m = tail_mask(n - i);
      __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, v + i), sv), _mm512_maskz_loadu_ps(m, w + i));
      if (gelu) y = gelu16(y);
      _mm512_mask_storeu_ps(v + i, m, y);
    }
  }
}

G3N_AVX512F void silu_avx512(float* x, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = tail_mask(n - i);
    const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    const __m512 nv = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(INT32_MIN)));
    _mm512_mask_storeu_ps(x + i, m, _mm512_div_ps(v, _mm512_add_ps(one, exp16(nv))));
  }
}

G3N_AVX512F void softmax_rows_avx512(float* x, int64_t ld, int64_t rows, int64_t n, float scale) {
  const __m512 sc = _mm512_set1_ps(scale), ninf = _mm512_set1_ps(-INFINITY);
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * ld;
    __m512 mx = ninf;
    for (int64_t i = 0; i < n; i += 16) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(ninf, tail_mask(n - i), v + i));
    const __m512 mv = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 m = tail_mask(n - i);
      const __m512 e = exp16(_mm512_mul_ps(_mm512_sub_ps(_mm512_mask_loadu_ps(mv, m, v + i), mv), sc));
      _mm512_mask_storeu_ps(v + i, m, e);
      sum = _mm512_mask_add_ps(sum, m, sum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t i = 0; i < n; i += 16) {
      const __mmask16 m = tail_mask(n - i);
      _mm512_mask_storeu_ps(v + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, v + i), inv));
    }
  }
}

}  // namespace

const ConvKernelSet* avx512_set() {
  static const ConvKernelSet k = [] {
    ConvKernelSet s = *avx2_set();
    s.name = "avx512f";
    s.gemm_strip = gemm_strip_avx512;
    s.gemm_panel = gemm_panel_avx512;
    s.depthwise_row = depthwise_row_avx512;
    s.rms_norm_rows = rms_norm_rows_avx512;
    s.softmax_rows = softmax_rows_avx512;
    s.silu = silu_avx512;
    return s;
  }();
  return &k;
}

}  // namespace g3n::conv

#else

namespace g3n::conv {
const ConvKernelSet* avx512_set() { return nullptr; }
}  // namespace g3n::conv

#endif
