// AVX-512F conv kernels: the AVX2 set with its GEMM micro-kernel on zmm registers. A 16-channel strip is
// one zmm, so a row needs one accumulator instead of two, and a kernel call takes 12 pixels (two packed
// panels of 6, or 12 rows) against a strip: 12 independent FMA chains, one strip load and 12 broadcasts per input,
// where the AVX2 kernel issues 12 ymm FMAs for 6 pixels. Every output is the same k-ordered FMA chain
// as the AVX2 set's (a*b + acc per input, from 0 or from C), lane for lane, so this set returns the AVX2
// set's bits (tests/kernels_conv_test.cpp); so does its depthwise kernel. Packing, norms and activations are
// the AVX2 set's.
// Chosen where the text decoder's kernel set runs full-width zmm (conv.cpp conv_set_for).
#include "kernels/conv_impl.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <utility>

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

}  // namespace

const ConvKernelSet* avx512_set() {
  static const ConvKernelSet k = [] {
    ConvKernelSet s = *avx2_set();
    s.name = "avx512f";
    s.gemm_strip = gemm_strip_avx512;
    s.gemm_panel = gemm_panel_avx512;
    s.depthwise_row = depthwise_row_avx512;
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
