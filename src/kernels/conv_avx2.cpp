// AVX2 + FMA + F16C conv kernels. As in vec_dot_avx2.cpp, each function carries a target attribute
// instead of the file being compiled with -mavx2, so no AVX2 code can run before the cpuid check; the
// dispatcher (conv.cpp) hands this set out only when the CPU has all three.
#include "kernels/conv_impl.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/avx2_exp.h"
#include "kernels/avx2_reduce.h"
#include "quant/ggml_type.h"


namespace g3n::conv {
namespace {

// ---- packing ---------------------------------------------------------------------------------------
// r[q] <- column q of the 8x8 block whose rows are r[0..7].
G3N_AVX2 inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// F16 and F32 rows are read 8 inputs at a time from 8 weight rows and transposed in registers; other
// types decode a row span to f32 first (they are rare in vision projectors).
template <bool kF16>
G3N_AVX2 void pack_rows(const WeightMatrix& w, int64_t n0, int64_t nn, int64_t k0, int64_t kc, float* dst) {
  const int64_t strips = (nn + kGemmNR - 1) / kGemmNR;
  const int64_t k8 = kc / 8 * 8;
  for (int64_t s = 0; s < strips; ++s) {
    float* strip = dst + s * kc * kGemmNR;
    for (int64_t h = 0; h < 2; ++h) {
      const int64_t j0 = s * kGemmNR + h * 8;  // first of 8 rows (relative to n0)
      const int64_t valid = std::clamp<int64_t>(nn - j0, 0, 8);
      const uint8_t* rows[8];
      for (int64_t r = 0; r < 8; ++r) rows[r] = r < valid ? w.row(n0 + j0 + r) : nullptr;
      for (int64_t k = 0; k < k8; k += 8) {
        __m256 v[8];
        for (int64_t r = 0; r < 8; ++r) {
          if (!rows[r]) {
            v[r] = _mm256_setzero_ps();
          } else if constexpr (kF16) {
            v[r] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(reinterpret_cast<const uint16_t*>(rows[r]) + k0 + k)));
          } else {
            v[r] = _mm256_loadu_ps(reinterpret_cast<const float*>(rows[r]) + k0 + k);
          }
        }
        transpose8(v);
        for (int64_t q = 0; q < 8; ++q) _mm256_storeu_ps(strip + (k + q) * kGemmNR + h * 8, v[q]);
      }
      for (int64_t k = k8; k < kc; ++k)
        for (int64_t r = 0; r < 8; ++r) {
          float x = 0;
          if (rows[r]) {
            if constexpr (kF16) x = _cvtsh_ss(reinterpret_cast<const uint16_t*>(rows[r])[k0 + k]);
            else x = reinterpret_cast<const float*>(rows[r])[k0 + k];
          }
          strip[k * kGemmNR + h * 8 + r] = x;
        }
    }
  }
}

G3N_AVX2 void pack_weights_avx2(const WeightMatrix& w, int64_t n0, int64_t nn, int64_t k0, int64_t kc, float* dst) {
  if (w.type == GgmlType::F16) return pack_rows<true>(w, n0, nn, k0, kc, dst);
  if (w.type == GgmlType::F32) return pack_rows<false>(w, n0, nn, k0, kc, dst);
  scalar_set().pack_weights(w, n0, nn, k0, kc, dst);
}

// ---- GEMM micro-kernel: MR pixels x 16 channels, 2*MR accumulators --------------------------------
// A is read either from MR rows lda apart (kPacked = false) or from a packed panel, 6 values per input
// (kPacked = true: one sequential stream, what the hardware prefetcher likes best). Same FMA chain.
template <int MR, bool kPacked>
G3N_AVX2 inline void micro(const float* a, int64_t lda, const float* b, int64_t kc, float* c, int64_t ldc, int64_t nn,
                           bool accumulate) {
  __m256 lo[MR], hi[MR];
  float tmp[MR][16];
  const bool full = nn == 16;
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (!accumulate) {
      lo[i] = _mm256_setzero_ps();
      hi[i] = _mm256_setzero_ps();
    } else if (full) {
      lo[i] = _mm256_loadu_ps(c + i * ldc);
      hi[i] = _mm256_loadu_ps(c + i * ldc + 8);
    } else {
      std::memset(tmp[i], 0, sizeof tmp[i]);
      std::memcpy(tmp[i], c + i * ldc, sizeof(float) * size_t(nn));
      lo[i] = _mm256_loadu_ps(tmp[i]);
      hi[i] = _mm256_loadu_ps(tmp[i] + 8);
    }
  }
  if constexpr (kPacked) {
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_loadu_ps(b + k * 16), b1 = _mm256_loadu_ps(b + k * 16 + 8);
      const float* ak = a + k * 6;
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 av = _mm256_broadcast_ss(ak + i);
        lo[i] = _mm256_fmadd_ps(av, b0, lo[i]);
        hi[i] = _mm256_fmadd_ps(av, b1, hi[i]);
      }
    }
  } else {
    const float* ap[MR];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) ap[i] = a + i * lda;
#pragma GCC unroll 2
    for (int64_t k = 0; k < kc; ++k) {
      const __m256 b0 = _mm256_loadu_ps(b + k * 16), b1 = _mm256_loadu_ps(b + k * 16 + 8);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 av = _mm256_broadcast_ss(ap[i] + k);
        lo[i] = _mm256_fmadd_ps(av, b0, lo[i]);
        hi[i] = _mm256_fmadd_ps(av, b1, hi[i]);
      }
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    if (full) {
      _mm256_storeu_ps(c + i * ldc, lo[i]);
      _mm256_storeu_ps(c + i * ldc + 8, hi[i]);
    } else {
      _mm256_storeu_ps(tmp[i], lo[i]);
      _mm256_storeu_ps(tmp[i] + 8, hi[i]);
      std::memcpy(c + i * ldc, tmp[i], sizeof(float) * size_t(nn));
    }
  }
}

// Rows i..i+5 start at a + i*lda (unpacked) or at panel i/6 (packed: a + (i/6)*panel_stride).
template <bool kPacked>
G3N_AVX2 void gemm_rows(const float* a, int64_t step, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc, int64_t nn,
                        bool accumulate) {
  const int64_t lda = kPacked ? 0 : step;
  int64_t i = 0;
  for (; i + 6 <= m; i += 6) {
    // The next call's C rows (ldc apart: a stride no prefetcher follows) are fetched while this one
    // computes; otherwise each call starts with a dozen cache misses on a large C (about 12% of the
    // FFN GEMMs of the audio tower, bench/gemm_bench). Only the timing changes, never a bit.
    if (accumulate)
      for (int64_t r = i + 6; r < std::min(m, i + 12); ++r) {
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + r * ldc + 15), _MM_HINT_T0);
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

G3N_AVX2 void gemm_strip_avx2(const float* a, int64_t lda, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc,
                              int64_t nn, bool accumulate) {
  gemm_rows<false>(a, lda, m, b, kc, c, ldc, nn, accumulate);
}

G3N_AVX2 void gemm_panel_avx2(const float* ap, int64_t panel_stride, int64_t m, const float* b, int64_t kc, float* c, int64_t ldc,
                              int64_t nn, bool accumulate) {
  gemm_rows<true>(ap, panel_stride, m, b, kc, c, ldc, nn, accumulate);
}

// Six rows, 8 inputs at a time: the 8x8 transpose of (6 rows + 2 zero rows) gives, per input, its 6
// values in lanes 0-5. Inputs are stored in order with full 8-lane stores, each overwriting the 2
// spare lanes of the one before; the last input of the group stores 4 + 2 lanes so nothing lands past
// it (the next panel may belong to another thread). Masked stores are microcoded and slow on AMD.
G3N_AVX2 void pack_activations_avx2(const float* a, int64_t lda, int64_t m, int64_t K, float* dst) {
  const int64_t panels = (m + 5) / 6, k8 = K / 8 * 8;
  for (int64_t g = 0; g < panels; ++g) {
    const float* rows[6];
    for (int64_t r = 0; r < 6; ++r) rows[r] = g * 6 + r < m ? a + (g * 6 + r) * lda : nullptr;
    float* out = dst + g * K * 6;
    for (int64_t k = 0; k < k8; k += 8) {
      __m256 v[8];
      for (int64_t r = 0; r < 6; ++r) v[r] = rows[r] ? _mm256_loadu_ps(rows[r] + k) : _mm256_setzero_ps();
      v[6] = v[7] = _mm256_setzero_ps();
      transpose8(v);
      for (int64_t q = 0; q < 7; ++q) _mm256_storeu_ps(out + (k + q) * 6, v[q]);
      float* last = out + (k + 7) * 6;
      _mm_storeu_ps(last, _mm256_castps256_ps128(v[7]));
      _mm_storel_pi(reinterpret_cast<__m64*>(last + 4), _mm256_extractf128_ps(v[7], 1));
    }
    for (int64_t k = k8; k < K; ++k)
      for (int64_t r = 0; r < 6; ++r) out[k * 6 + r] = rows[r] ? rows[r][k] : 0.0f;
  }
}

// ---- depthwise ---------------------------------------------------------------------------------------
G3N_AVX2 void depthwise_row_avx2(const float* const* rows, int64_t w_in, int64_t C, const float* w, int k, int stride,
                                 int64_t pad_left, int64_t x0, int64_t nx, float* out) {
  for (int64_t x = 0; x < nx; ++x) {
    const auto [ix0, kx_lo, kx_hi] = depthwise_taps(x0 + x, stride, pad_left, k, w_in);
    float* o = out + x * C;
    int64_t c = 0;
    for (; c + 32 <= C; c += 32) {
      __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
      for (int ky = 0; ky < k; ++ky) {
        if (!rows[ky]) continue;
        for (int kx = kx_lo; kx < kx_hi; ++kx) {
          const float* in = rows[ky] + (ix0 + kx) * C + c;
          const float* wt = w + (ky * k + kx) * C + c;
          s0 = _mm256_fmadd_ps(_mm256_loadu_ps(wt), _mm256_loadu_ps(in), s0);
          s1 = _mm256_fmadd_ps(_mm256_loadu_ps(wt + 8), _mm256_loadu_ps(in + 8), s1);
          s2 = _mm256_fmadd_ps(_mm256_loadu_ps(wt + 16), _mm256_loadu_ps(in + 16), s2);
          s3 = _mm256_fmadd_ps(_mm256_loadu_ps(wt + 24), _mm256_loadu_ps(in + 24), s3);
        }
      }
      _mm256_storeu_ps(o + c, s0);
      _mm256_storeu_ps(o + c + 8, s1);
      _mm256_storeu_ps(o + c + 16, s2);
      _mm256_storeu_ps(o + c + 24, s3);
    }
    for (; c + 8 <= C; c += 8) {
      __m256 s = _mm256_setzero_ps();
      for (int ky = 0; ky < k; ++ky) {
        if (!rows[ky]) continue;
        for (int kx = kx_lo; kx < kx_hi; ++kx)
          s = _mm256_fmadd_ps(_mm256_loadu_ps(w + (ky * k + kx) * C + c), _mm256_loadu_ps(rows[ky] + (ix0 + kx) * C + c), s);
      }
      _mm256_storeu_ps(o + c, s);
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
using avx2::hmax;
using avx2::hsum;

// exp(x) for x clamped to [-87, 88] (avx2_exp.h). Below -87 the result is e^-87 ~ 1.6e-38 instead of a denormal
// or 0: invisible next to the values it is summed with.
G3N_AVX2 inline __m256 exp_v(__m256 x) {
  return avx2::exp_unclamped(_mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f)));
}

// gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3): the
// logistic form needs one exp and has no cancellation anywhere (x times a factor in (0, 1)).
G3N_AVX2 inline __m256 gelu_v(__m256 x) {
  const __m256 u = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0f * 0.79788456080286535587989211986876f), x),
                                 _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), x), x, _mm256_set1_ps(1.0f)));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_v(u)));
}

G3N_AVX2 void rms_norm_rows_avx2(float* x, int64_t ld, int64_t rows, int64_t n, const float* w, float eps, bool gelu) {
  const int64_t n8 = n / 8 * 8;
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * ld;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
      const __m256 p = _mm256_loadu_ps(v + i), q = _mm256_loadu_ps(v + i + 8);
      a0 = _mm256_fmadd_ps(p, p, a0);
      a1 = _mm256_fmadd_ps(q, q, a1);
    }
    for (; i + 8 <= n; i += 8) {
      const __m256 p = _mm256_loadu_ps(v + i);
      a0 = _mm256_fmadd_ps(p, p, a0);
    }
    float ss = hsum(_mm256_add_ps(a0, a1));
    for (; i < n; ++i) ss += v[i] * v[i];
    const float s = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    const __m256 sv = _mm256_set1_ps(s);
    for (i = 0; i < n8; i += 8) {
      __m256 y = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(v + i), sv), _mm256_loadu_ps(w + i));
      if (gelu) y = gelu_v(y);
      _mm256_storeu_ps(v + i, y);
    }
    if (i < n) {  // the tail through the same 8-wide code
      float t[8] = {}, tw[8] = {};
      std::memcpy(t, v + i, sizeof(float) * size_t(n - i));
      std::memcpy(tw, w + i, sizeof(float) * size_t(n - i));
      __m256 y = _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(t), sv), _mm256_loadu_ps(tw));
      if (gelu) y = gelu_v(y);
      _mm256_storeu_ps(t, y);
      std::memcpy(v + i, t, sizeof(float) * size_t(n - i));
    }
  }
}

// x / (1 + exp(-x)); exp_v's clamp keeps the far negative tail at x * 1.6e-38 (not -0), far below
// anything the next layer can see.
G3N_AVX2 void silu_avx2(float* x, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(one, exp_v(_mm256_xor_ps(v, neg)))));
  }
  if (i < n) {  // the tail through the same 8-wide code
    float t[8] = {};
    std::memcpy(t, x + i, sizeof(float) * size_t(n - i));
    const __m256 v = _mm256_loadu_ps(t);
    _mm256_storeu_ps(t, _mm256_div_ps(v, _mm256_add_ps(one, exp_v(_mm256_xor_ps(v, neg)))));
    std::memcpy(x + i, t, sizeof(float) * size_t(n - i));
  }
}

G3N_AVX2 void softmax_rows_avx2(float* x, int64_t ld, int64_t rows, int64_t n, float scale) {
  const int64_t n8 = n / 8 * 8;
  const __m256 sc = _mm256_set1_ps(scale);
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * ld;
    __m256 m = _mm256_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n8; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(v + i));
    float mx = hmax(m);
    for (int64_t i = n8; i < n; ++i) mx = std::max(mx, v[i]);
    const __m256 mv = _mm256_set1_ps(mx);
    __m256 sum = _mm256_setzero_ps();
    for (int64_t i = 0; i < n8; i += 8) {
      const __m256 e = exp_v(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(v + i), mv), sc));
      _mm256_storeu_ps(v + i, e);
      sum = _mm256_add_ps(sum, e);
    }
    float total = hsum(sum);
    if (n8 < n) {
      float t[8];
      for (int64_t i = 0; i < 8; ++i) t[i] = n8 + i < n ? v[n8 + i] : mx;
      _mm256_storeu_ps(t, exp_v(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(t), mv), sc)));
      for (int64_t i = n8; i < n; ++i) total += (v[i] = t[i - n8]);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / total);
    for (int64_t i = 0; i < n8; i += 8) _mm256_storeu_ps(v + i, _mm256_mul_ps(_mm256_loadu_ps(v + i), inv));
    for (int64_t i = n8; i < n; ++i) v[i] *= 1.0f / total;
  }
}

}  // namespace

const ConvKernelSet* avx2_set() {
  static const ConvKernelSet k{"avx2+fma+f16c",  pack_weights_avx2,  gemm_strip_avx2,    pack_activations_avx2,
                               gemm_panel_avx2,  depthwise_row_avx2, rms_norm_rows_avx2, softmax_rows_avx2,
                               silu_avx2};
  return &k;
}

}  // namespace g3n::conv

#else

namespace g3n::conv {
const ConvKernelSet* avx2_set() { return nullptr; }
}  // namespace g3n::conv

#endif
