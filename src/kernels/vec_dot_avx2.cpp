// AVX2 + FMA + F16C kernels. Each function carries a target attribute instead of the whole file being
// compiled with -mavx2, so nothing here (or inlined from a header) can leak AVX2 code into paths that
// run before the cpuid check; the dispatcher (vec_dot.cpp) only calls them when the CPU has all three.
//
// Integer products use maddubs (u8 x s8 -> adjacent pairs summed into s16). It saturates only when a
// pair exceeds 32767; with activations clamped to |q| <= 127 the worst pair is 2*128*127 (Q8_0's sign
// trick) or 2*63*127 (Q6_K), so every int32 block sum equals the scalar twin's exactly. Only the float
// accumulation order (8 lanes, then a horizontal sum) differs from vec_dot_scalar.cpp.
#include "kernels/vec_dot_impl.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <utility>

#define G3N_KQ_TARGET G3N_AVX2
#include "kernels/avx2_exp.h"
#include "kernels/avx2_reduce.h"
#include "kernels/kquant_x86.h"
#include "kernels/kquant_ymm.h"
#include "kernels/kquant_packed_ymm.h"
#include "kernels/gemm_tiles_x86.h"
#include "kernels/ops.h"
#include "quant/blocks.h"
#include "quant/fp16.h"


namespace g3n::vecdot {
namespace {

using namespace quant;

// The multiply-add of kquant_ymm.h's K-quant cores in this set: vpmaddwd, then vpaddd.
struct Avx2Madd {
  G3N_AVX2 static __m256i madd_add(__m256i acc, __m256i pairs, __m256i scales) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, scales));
  }
};

using avx2::hmax;
using avx2::hsum;
using avx2::mul_add1;
G3N_AVX2 inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// 8 floats -> 8 int32, nearest-even (MXCSR default, as lrint in the scalar twin), clamped to +-127.
G3N_AVX2 inline __m256i to_q8_i32(__m256 v) {
  const __m256i r = _mm256_cvtps_epi32(v);
  return _mm256_max_epi32(_mm256_min_epi32(r, _mm256_set1_epi32(127)), _mm256_set1_epi32(-127));
}
// Four vectors of 8 int32 (values 0..31 in order) -> 32 int8 in order. The packs work per 128-bit
// lane, leaving 4-byte groups ordered 0,2,4,6,1,3,5,7 (in units of 4 values); the permute undoes it.
G3N_AVX2 inline __m256i pack_q8(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
  const __m256i q = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Signed x signed bytes -> 8 int32 sums of 4 products: maddubs wants one unsigned operand, so move
// x's sign onto y (|x| * sign(x)*y == x*y).
G3N_AVX2 inline __m256i dot_i8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x), sy = _mm256_sign_epi8(y, x);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}
// Unsigned x signed bytes -> 8 int32.
G3N_AVX2 inline __m256i dot_u8_i8(__m256i x, __m256i y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}

// 16 nibbles packed in 16 bytes -> 32 bytes: low nibbles first (values 0..15), then high (16..31).
G3N_AVX2 inline __m256i unpack_nibbles32(const uint8_t* qs) {
  const __m128i b = loadu128(qs);
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0F));
}

// ---- activation quantizers (byte-identical to the scalar twins) --------------------------------

G3N_AVX2 void quant_q8_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(abs_ps(v0), abs_ps(v1)), _mm256_max_ps(abs_ps(v2), abs_ps(v3)));
    const uint16_t dh = _cvtss_sh(hmax(m) / 127.0f, _MM_FROUND_TO_NEAREST_INT);
    const float d = h2f(dh);
    const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    y[b].d = dh;
    const __m256i q = pack_q8(to_q8_i32(_mm256_mul_ps(v0, id)), to_q8_i32(_mm256_mul_ps(v1, id)),
                              to_q8_i32(_mm256_mul_ps(v2, id)), to_q8_i32(_mm256_mul_ps(v3, id)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), q);
  }
}

G3N_AVX2 void quant_q8_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
    const __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
    const __m256 m = _mm256_max_ps(_mm256_max_ps(abs_ps(v0), abs_ps(v1)), _mm256_max_ps(abs_ps(v2), abs_ps(v3)));
    const uint16_t dh = _cvtss_sh(hmax(m) / 127.0f, _MM_FROUND_TO_NEAREST_INT);
    const float d = h2f(dh);
    const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    const __m256i i0 = to_q8_i32(_mm256_mul_ps(v0, id)), i1 = to_q8_i32(_mm256_mul_ps(v1, id));
    const __m256i i2 = to_q8_i32(_mm256_mul_ps(v2, id)), i3 = to_q8_i32(_mm256_mul_ps(v3, id));
    const int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
    y[b].d = dh;
    y[b].s = _cvtss_sh(d * float(sum), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), pack_q8(i0, i1, i2, i3));
  }
}

G3N_AVX2 void quant_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < kQK_K; j += 8) m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + j)));
    const float d = hmax(m) / 127.0f;
    const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    y[b].d = d;
    for (int j = 0; j < kQK_K; j += 32) {
      const __m256i i0 = to_q8_i32(_mm256_mul_ps(_mm256_loadu_ps(x + j), id));
      const __m256i i1 = to_q8_i32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8), id));
      const __m256i i2 = to_q8_i32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 16), id));
      const __m256i i3 = to_q8_i32(_mm256_mul_ps(_mm256_loadu_ps(x + j + 24), id));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs + j), pack_q8(i0, i1, i2, i3));
      // Sums of the two 16-groups: after two hadds, lane 0 of each half holds a partial of group
      // j/16 and lane 1 of group j/16+1; adding the halves completes them.
      __m256i h = _mm256_hadd_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
      h = _mm256_hadd_epi32(h, h);
      const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      y[b].bsums[j / 16] = int16_t(_mm_cvtsi128_si32(s));
      y[b].bsums[j / 16 + 1] = int16_t(_mm_extract_epi32(s, 1));
    }
  }
}

// ---- legacy 32-blocks ---------------------------------------------------------------------------

G3N_AVX2 float dot_q8_0(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ8_0*>(vw);
  const auto* a = static_cast<const BlockQ8_0*>(va);
  const int64_t nb = n / kQK;
  // Two accumulators: one FMA chain would stall on its own latency (4 cycles) every block.
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    const __m256i p0 = dot_i8(loadu(w[b].qs), loadu(a[b].qs));
    const __m256i p1 = dot_i8(loadu(w[b + 1].qs), loadu(a[b + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b + 1].d) * h2f(a[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; b < nb; ++b) {
    const __m256i p = dot_i8(loadu(w[b].qs), loadu(a[b].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

G3N_AVX2 float dot_q4_0(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ4_0*>(vw);
  const auto* a = static_cast<const BlockQ8_0*>(va);
  const int64_t nb = n / kQK;
  const __m256i eight = _mm256_set1_epi8(8);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    const __m256i q0 = _mm256_sub_epi8(unpack_nibbles32(w[b].qs), eight);
    const __m256i q1 = _mm256_sub_epi8(unpack_nibbles32(w[b + 1].qs), eight);
    const __m256i p0 = dot_i8(q0, loadu(a[b].qs)), p1 = dot_i8(q1, loadu(a[b + 1].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p0), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b + 1].d) * h2f(a[b + 1].d)), _mm256_cvtepi32_ps(p1), acc1);
  }
  for (; b < nb; ++b) {
    const __m256i q = _mm256_sub_epi8(unpack_nibbles32(w[b].qs), eight);
    const __m256i p = dot_i8(q, loadu(a[b].qs));
    acc0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

G3N_AVX2 float dot_q4_1(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ4_1*>(vw);
  const auto* a = static_cast<const BlockQ8_1*>(va);
  __m256 acc = _mm256_setzero_ps();
  float summ = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256i p = dot_u8_i8(unpack_nibbles32(w[b].qs), loadu(a[b].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p), acc);
    summ += h2f(w[b].m) * h2f(a[b].s);
  }
  return hsum(acc) + summ;
}

// The 32 fifth bits of a Q5 block as 0x10 bytes: broadcast the u32, pick byte j/8 into lane j
// (shuffle), test bit j%8 (or with ~bit, compare to all-ones).
G3N_AVX2 inline __m256i q5_high_bits(const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                          0x0202020202020202, 0x0303030303030303);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(int(bits)), shuf);
  const __m256i bit_mask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);  // ~(1 << (j % 8)) per byte
  v = _mm256_cmpeq_epi8(_mm256_or_si256(v, bit_mask), _mm256_set1_epi64x(-1));
  return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

G3N_AVX2 float dot_q5_0(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ5_0*>(vw);
  const auto* a = static_cast<const BlockQ8_0*>(va);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256i q = _mm256_sub_epi8(_mm256_or_si256(unpack_nibbles32(w[b].qs), q5_high_bits(w[b].qh)),
                                      _mm256_set1_epi8(16));
    const __m256i p = dot_i8(q, loadu(a[b].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p), acc);
  }
  return hsum(acc);
}

G3N_AVX2 float dot_q5_1(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ5_1*>(vw);
  const auto* a = static_cast<const BlockQ8_1*>(va);
  __m256 acc = _mm256_setzero_ps();
  float summ = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const __m256i q = _mm256_or_si256(unpack_nibbles32(w[b].qs), q5_high_bits(w[b].qh));
    const __m256i p = dot_u8_i8(q, loadu(a[b].qs));
    acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(w[b].d) * h2f(a[b].d)), _mm256_cvtepi32_ps(p), acc);
    summ += h2f(w[b].m) * h2f(a[b].s);
  }
  return hsum(acc) + summ;
}

// ---- float weights x f32 activations ------------------------------------------------------------

// Four independent accumulators hide FMA latency; 8-wide steps then a scalar tail handle any n.
G3N_AVX2 float dot_f16_f32_v(const uint16_t* x, const float* y, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(loadu128(x + i)), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_cvtph_ps(loadu128(x + i + 8)), _mm256_loadu_ps(y + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_cvtph_ps(loadu128(x + i + 16)), _mm256_loadu_ps(y + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_cvtph_ps(loadu128(x + i + 24)), _mm256_loadu_ps(y + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_cvtph_ps(loadu128(x + i)), _mm256_loadu_ps(y + i), s0);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) sum = mul_add1(h2f(x[i]), y[i], sum);
  return sum;
}

G3N_AVX2 inline __m256 load_bf16(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128(p)), 16));
}

G3N_AVX2 float dot_bf16_f32_v(const uint16_t* x, const float* y, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(load_bf16(x + i), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(load_bf16(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
    s2 = _mm256_fmadd_ps(load_bf16(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
    s3 = _mm256_fmadd_ps(load_bf16(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load_bf16(x + i), _mm256_loadu_ps(y + i), s0);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) sum = mul_add1(bf16_to_fp32(x[i]), y[i], sum);
  return sum;
}

G3N_AVX2 float dot_f32_v(const float* x, const float* y, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) sum = mul_add1(x[i], y[i], sum);
  return sum;
}

G3N_AVX2 void axpy_f16_v(float alpha, const uint16_t* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_cvtph_ps(loadu128(x + i)), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * h2f(x[i]);
}

G3N_AVX2 void axpy_f32_v(float alpha, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(alpha);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += alpha * x[i];
}

G3N_AVX2 float dot_f32(const void* w, const void* a, int64_t n) {
  return dot_f32_v(static_cast<const float*>(w), static_cast<const float*>(a), n);
}
G3N_AVX2 float dot_f16(const void* w, const void* a, int64_t n) {
  return dot_f16_f32_v(static_cast<const uint16_t*>(w), static_cast<const float*>(a), n);
}
G3N_AVX2 float dot_bf16(const void* w, const void* a, int64_t n) {
  return dot_bf16_f32_v(static_cast<const uint16_t*>(w), static_cast<const float*>(a), n);
}

// ---- tile kernels: R weight rows x C activation rows --------------------------------------------
// Each kernel below is its dot kernel above with the loops over rows and tokens moved inside the block
// loop: a weight block is unpacked once into registers for C tokens, an activation block is read from
// L1 by R rows. Per (row, token) pair the integer lanes hold the same exact sums, and the float
// accumulators take the same fmadds in the same order, then the same horizontal sums, so every value
// equals the dot kernel's bit for bit. The integer accumulators (R*C ymm) stay in registers; the float
// ones, touched once per block, live on the stack.

// Q4_0: block b goes to accumulator b % 2, as dot_q4_0's pairs (and its odd tail block) do.
struct TileQ40 {
  static constexpr int kR = 3, kC = 3;
  template <int R, int C>
  G3N_AVX2 static void tile(const TileArgs& g) {
    const __m256i eight = _mm256_set1_epi8(8);
    __m256 acc[2][R][C];
    for (int p = 0; p < 2; ++p)
      for (int r = 0; r < R; ++r)
        for (int t = 0; t < C; ++t) acc[p][r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < g.n / kQK; ++b) {
      __m256i q[R], aq[R];
      float wd[R];
      for (int r = 0; r < R; ++r) {
        const BlockQ4_0* w = block_row<BlockQ4_0>(g.w, g.ws, r) + b;
        q[r] = _mm256_sub_epi8(unpack_nibbles32(w->qs), eight);
        aq[r] = _mm256_sign_epi8(q[r], q[r]);
        wd[r] = h2f(w->d);
      }
      for (int t = 0; t < C; ++t) {
        const BlockQ8_0* a = block_row<BlockQ8_0>(g.act, g.as, t) + b;
        const __m256i y = loadu(a->qs);
        const float ad = h2f(a->d);
        for (int r = 0; r < R; ++r) {
          const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq[r], _mm256_sign_epi8(y, q[r])),
                                              _mm256_set1_epi16(1));
          __m256& s = acc[b & 1][r][t];
          s = _mm256_fmadd_ps(_mm256_set1_ps(wd[r] * ad), _mm256_cvtepi32_ps(p), s);
        }
      }
    }
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < C; ++t) g.out[t * g.ldo + r] = hsum(_mm256_add_ps(acc[0][r][t], acc[1][r][t]));
  }
};

// Float weights: one row, C tokens, the dot kernels' four accumulators per pair (32-element steps),
// their 8-element tail into the first, and the same scalar tail. One weight decode serves C tokens.
template <class Load, class Scalar>
struct TileFloat {
  static constexpr int kR = 1, kC = 3;
  template <int R, int C>
  G3N_AVX2 static void tile(const TileArgs& g) {
    static_assert(R == 1);
    const float* y[C];
    for (int t = 0; t < C; ++t) y[t] = reinterpret_cast<const float*>(g.act + uint64_t(t) * g.as);
    const uint8_t* x = g.w;
    const int64_t n = g.n;
    __m256 s[4][C];
    for (int k = 0; k < 4; ++k)
      for (int t = 0; t < C; ++t) s[k][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      for (int k = 0; k < 4; ++k) {
        const __m256 v = Load::load(x, i + 8 * k);
        for (int t = 0; t < C; ++t) s[k][t] = _mm256_fmadd_ps(v, _mm256_loadu_ps(y[t] + i + 8 * k), s[k][t]);
      }
    }
    for (; i + 8 <= n; i += 8) {
      const __m256 v = Load::load(x, i);
      for (int t = 0; t < C; ++t) s[0][t] = _mm256_fmadd_ps(v, _mm256_loadu_ps(y[t] + i), s[0][t]);
    }
    for (int t = 0; t < C; ++t) {
      float sum = hsum(_mm256_add_ps(_mm256_add_ps(s[0][t], s[1][t]), _mm256_add_ps(s[2][t], s[3][t])));
      for (int64_t j = i; j < n; ++j) sum = mul_add1(Scalar::get(x, j), y[t][j], sum);
      g.out[t * g.ldo] = sum;
    }
  }
};
struct LoadF32 {
  G3N_AVX2 static __m256 load(const uint8_t* x, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(x) + i); }
  static float get(const uint8_t* x, int64_t i) { return reinterpret_cast<const float*>(x)[i]; }
};
struct LoadF16 {
  G3N_AVX2 static __m256 load(const uint8_t* x, int64_t i) {
    return _mm256_cvtph_ps(loadu128(reinterpret_cast<const uint16_t*>(x) + i));
  }
  G3N_AVX2 static float get(const uint8_t* x, int64_t i) { return h2f(reinterpret_cast<const uint16_t*>(x)[i]); }
};
struct LoadBF16 {
  G3N_AVX2 static __m256 load(const uint8_t* x, int64_t i) { return load_bf16(reinterpret_cast<const uint16_t*>(x) + i); }
  static float get(const uint8_t* x, int64_t i) {
    const uint32_t bits = uint32_t(reinterpret_cast<const uint16_t*>(x)[i]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

// ---- elementwise: tanh for GELU and the logit soft-cap --------------------------------------------
// tanh(a), a >= 0, two ways: below 0.25 its odd Taylor series through a^11 (truncation < 1e-10
// relative there); above, (1 - e)/(1 + e) with e = exp(-2a), where 1 - e >= 0.39 cancels nothing.
// exp(v), v in [-18, -0.5]: v = n ln2 + r (two-part ln2), e^r by Taylor to r^7 (|r| <= 0.347: < 1e-8),
// times 2^n through the exponent bits. Past a = 9, tanh rounds to 1 in f32.
G3N_AVX2 inline __m256 tanh_nonneg(__m256 a) {
  a = _mm256_min_ps(a, _mm256_set1_ps(9.0f));
  // series
  const __m256 z = _mm256_mul_ps(a, a);
  __m256 p = _mm256_set1_ps(-1382.0f / 155925.0f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(62.0f / 2835.0f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-17.0f / 315.0f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.0f / 15.0f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-1.0f / 3.0f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), a, a);
  // exp(-2a)
  const __m256 v = _mm256_mul_ps(a, _mm256_set1_ps(-2.0f));
  const __m256 e = avx2::exp_unclamped(v);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 large = _mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e));
  return _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.25f), _CMP_LT_OQ));
}

G3N_AVX2 inline __m256 tanh_v(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 t = tanh_nonneg(_mm256_andnot_ps(sign, x));
  return _mm256_or_ps(t, _mm256_and_ps(sign, x));
}

G3N_AVX2 void gelu_mul_v(float* g, const float* u, int64_t n) {
  const __m256 k0 = _mm256_set1_ps(0.79788456080286535587989211986876f), k1 = _mm256_set1_ps(0.044715f);
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  auto gelu8 = [&](const float* gx, const float* ux, float* out) G3N_AVX2 {
    const __m256 x = _mm256_loadu_ps(gx);
    // the scalar formula's order: k0 * x * (1 + k1 * x * x)
    const __m256 inner = _mm256_mul_ps(_mm256_mul_ps(k0, x), _mm256_add_ps(one, _mm256_mul_ps(_mm256_mul_ps(k1, x), x)));
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, tanh_v(inner)));
    if (ux) y = _mm256_mul_ps(y, _mm256_loadu_ps(ux));
    _mm256_storeu_ps(out, y);
  };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) gelu8(g + i, u ? u + i : nullptr, g + i);
  if (i < n) {  // the tail through the same 8-wide code, so no value depends on where a chunk ends
    float gx[8] = {}, ux[8] = {}, out[8];
    std::memcpy(gx, g + i, sizeof(float) * size_t(n - i));
    if (u) std::memcpy(ux, u + i, sizeof(float) * size_t(n - i));
    gelu8(gx, u ? ux : nullptr, out);
    std::memcpy(g + i, out, sizeof(float) * size_t(n - i));
  }
}

G3N_AVX2 void soft_cap_v(float* x, int64_t n, float cap) {
  const __m256 c = _mm256_set1_ps(cap);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(x + i, _mm256_mul_ps(c, tanh_v(_mm256_div_ps(_mm256_loadu_ps(x + i), c))));
  if (i < n) {  // same 8-wide code for the tail
    float v[8] = {};
    std::memcpy(v, x + i, sizeof(float) * size_t(n - i));
    _mm256_storeu_ps(v, _mm256_mul_ps(c, tanh_v(_mm256_div_ps(_mm256_loadu_ps(v), c))));
    std::memcpy(x + i, v, sizeof(float) * size_t(n - i));
  }
}

// ---- attention over cached keys/values (kernels/attention.h) --------------------------------------
struct KvLoadF16 {
  G3N_AVX2 static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(loadu128(p)); }
  static float get(const uint16_t* p) { return h2f(*p); }
};
struct KvLoadF32 {
  G3N_AVX2 static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static float get(const float* p) { return *p; }
};

// In decode the cached keys and values come from DRAM (the step's weights have evicted them). The model keeps
// one KV head's rows back to back (stride = d), but a 512-byte row per key is too short for the hardware
// prefetchers to run far enough ahead: the score kernel fetches the rows kKeysAhead on into L2 (513 keys, d =
// 256, F16, from DRAM: 44 -> 25 us; 8192 keys: 0.74 -> 0.42 ms). Values go kValueChunk keys at a time: a chunk's
// rows stay in L1 while every d-block sweeps them (a d-block over all keys touched n lines, to be read again by
// the next d-block), and the next chunk's lines are fetched meanwhile. Each output still adds its keys in order
// (the accumulators pass through `out` between chunks): the values of one pass over all keys. Any stride works
// (rows inside wider rows too, which the prefetch helps more); docs/kernels.md "Attention from DRAM".
constexpr int64_t kKeysAhead = 8, kValueChunk = 64;
// Scores of G heads against keys two at a time (2G independent fma chains), each key row converted
// once. d must be a multiple of 8 for the vector loop; the rest is summed in scalar.
template <int G, class L, class T>
G3N_AVX2 void attn_scores_g(const T* k, int64_t stride, int64_t n, const float* q, int64_t d, float* s, int64_t ld) {
  const int64_t d8 = d / 8 * 8;
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    const T* k0 = k + j * stride;
    const T* k1 = k0 + stride;
    if (j + kKeysAhead + 2 <= n)  // the two rows kKeysAhead on
      for (int r = 0; r < 2; ++r) {
        const char* row = reinterpret_cast<const char*>(k0 + (kKeysAhead + r) * stride);
        for (int64_t b = 0; b < d * int64_t(sizeof(T)); b += 64) _mm_prefetch(row + b, _MM_HINT_T1);
      }
    __m256 a0[G], a1[G];
    for (int h = 0; h < G; ++h) a0[h] = a1[h] = _mm256_setzero_ps();
    for (int64_t i = 0; i < d8; i += 8) {
      const __m256 x0 = L::load(k0 + i), x1 = L::load(k1 + i);
      for (int h = 0; h < G; ++h) {
        const __m256 qh = _mm256_loadu_ps(q + h * d + i);
        a0[h] = _mm256_fmadd_ps(x0, qh, a0[h]);
        a1[h] = _mm256_fmadd_ps(x1, qh, a1[h]);
      }
    }
    for (int h = 0; h < G; ++h) {
      float s0 = hsum(a0[h]), s1 = hsum(a1[h]);
      for (int64_t i = d8; i < d; ++i) s0 += L::get(k0 + i) * q[h * d + i], s1 += L::get(k1 + i) * q[h * d + i];
      s[h * ld + j] = s0;
      s[h * ld + j + 1] = s1;
    }
  }
  for (; j < n; ++j) {
    const T* k0 = k + j * stride;
    for (int h = 0; h < G; ++h) {
      __m256 a = _mm256_setzero_ps();
      for (int64_t i = 0; i < d8; i += 8) a = _mm256_fmadd_ps(L::load(k0 + i), _mm256_loadu_ps(q + h * d + i), a);
      float s0 = hsum(a);
      for (int64_t i = d8; i < d; ++i) s0 += L::get(k0 + i) * q[h * d + i];
      s[h * ld + j] = s0;
    }
  }
}

// out[h] += sum_j p[h][j] V_j, 16 (G <= 4) or 8 dimensions at a time held in registers across a chunk of keys.
template <int G, class L, class T>
G3N_AVX2 void attn_values_g(const T* v, int64_t stride, int64_t n, const float* p, int64_t ld, int64_t d, float* o) {
  constexpr int W = G <= 4 ? 2 : 1;  // vectors per head per d-block
  const int64_t step = 8 * W, dv = d / step * step;
  for (int64_t j0 = 0; j0 < n; j0 += kValueChunk) {
    const int64_t j1 = std::min(n, j0 + kValueChunk), next_end = std::min(n, j1 + kValueChunk);
    for (int64_t i = 0; i < dv; i += step) {
      __m256 acc[G][W];
      for (int h = 0; h < G; ++h)
        for (int w = 0; w < W; ++w) acc[h][w] = _mm256_loadu_ps(o + h * d + i + 8 * w);
      if ((i * int64_t(sizeof(T))) % 64 == 0)  // the next chunk's line holding these values, once per line
        for (int64_t j = j1; j < next_end; ++j) _mm_prefetch(reinterpret_cast<const char*>(v + j * stride + i), _MM_HINT_T1);
      for (int64_t j = j0; j < j1; ++j) {
        const T* vj = v + j * stride + i;
        __m256 x[W];
        for (int w = 0; w < W; ++w) x[w] = L::load(vj + 8 * w);
        for (int h = 0; h < G; ++h) {
          const __m256 ph = _mm256_broadcast_ss(p + h * ld + j);
          for (int w = 0; w < W; ++w) acc[h][w] = _mm256_fmadd_ps(ph, x[w], acc[h][w]);
        }
      }
      for (int h = 0; h < G; ++h)
        for (int w = 0; w < W; ++w) _mm256_storeu_ps(o + h * d + i + 8 * w, acc[h][w]);
    }
  }
  for (int64_t i = dv; i < d; ++i)
    for (int h = 0; h < G; ++h) {
      float a = o[h * d + i];
      for (int64_t j = 0; j < n; ++j) a += p[h * ld + j] * L::get(v + j * stride + i);
      o[h * d + i] = a;
    }
}

template <class L, class T>
G3N_AVX2 void attn_scores_any(const T* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* s, int64_t ld) {
  switch (G) {
    case 1: return attn_scores_g<1, L>(k, stride, n, q, d, s, ld);
    case 2: return attn_scores_g<2, L>(k, stride, n, q, d, s, ld);
    case 4: return attn_scores_g<4, L>(k, stride, n, q, d, s, ld);
    case 8: return attn_scores_g<8, L>(k, stride, n, q, d, s, ld);
    default:
      for (int h = 0; h < G; ++h) attn_scores_g<1, L>(k, stride, n, q + h * d, d, s + h * ld, ld);
  }
}

template <class L, class T>
G3N_AVX2 void attn_values_any(const T* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* o) {
  switch (G) {
    case 1: return attn_values_g<1, L>(v, stride, n, p, ld, d, o);
    case 2: return attn_values_g<2, L>(v, stride, n, p, ld, d, o);
    case 4: return attn_values_g<4, L>(v, stride, n, p, ld, d, o);
    case 8: return attn_values_g<8, L>(v, stride, n, p, ld, d, o);
    default:
      for (int h = 0; h < G; ++h) attn_values_g<1, L>(v, stride, n, p + h * ld, ld, d, o + h * d);
  }
}

KernelSet make_avx2() {
  KernelSet k;
  auto set = [&](GgmlType t, VecDotFn dot, QuantizeActFn q) {
    k.dot[type_index(t)] = dot;
    k.quant_act[type_index(t)] = q;
  };
  set(GgmlType::F32, dot_f32, nullptr);
  set(GgmlType::F16, dot_f16, nullptr);
  set(GgmlType::BF16, dot_bf16, nullptr);
  set(GgmlType::Q4_0, dot_q4_0, quant_q8_0);
  set(GgmlType::Q4_1, dot_q4_1, quant_q8_1);
  set(GgmlType::Q5_0, dot_q5_0, quant_q8_0);
  set(GgmlType::Q5_1, dot_q5_1, quant_q8_1);
  set(GgmlType::Q8_0, dot_q8_0, quant_q8_0);
  set_kquant_kernels<YmmSums<Avx2Madd>, YmmRows<Avx2Madd>>(k);
  set_decode_rows<Avx2Madd>(k);
  set_packed_kernels_ymm(k);
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
    k.quant_act[type_index(t)] = quant_q8_k;  // Q2_K/Q3_K: no AVX2 dot yet, but the quantizer is shared
  k.tile[type_index(GgmlType::F32)] = gemm_tiles<TileFloat<LoadF32, LoadF32>>;
  k.tile[type_index(GgmlType::F16)] = gemm_tiles<TileFloat<LoadF16, LoadF16>>;
  k.tile[type_index(GgmlType::BF16)] = gemm_tiles<TileFloat<LoadBF16, LoadBF16>>;
  k.tile[type_index(GgmlType::Q4_0)] = gemm_tiles<TileQ40>;
  k.dot_f16_f32 = dot_f16_f32_v;
  k.axpy_f16 = axpy_f16_v;
  k.dot_f32 = dot_f32_v;
  k.axpy_f32 = axpy_f32_v;
  k.gelu_mul = gelu_mul_v;
  k.soft_cap = soft_cap_v;
  k.attn_scores_f16 = attn_scores_any<KvLoadF16, uint16_t>;
  k.attn_scores_f32 = attn_scores_any<KvLoadF32, float>;
  k.attn_values_f16 = attn_values_any<KvLoadF16, uint16_t>;
  k.attn_values_f32 = attn_values_any<KvLoadF32, float>;
  return k;
}

}  // namespace

const KernelSet* avx2_kernels() {
  // Building the table only takes addresses; no AVX2 instruction runs here.
  static const KernelSet k = make_avx2();
  return &k;
}

}  // namespace g3n::vecdot

#else  // not x86

namespace g3n::vecdot {
const KernelSet* avx2_kernels() { return nullptr; }
}  // namespace g3n::vecdot

#endif
