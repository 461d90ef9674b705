// AVX2 kernel of sparse_columns_rows: 16 output rows per step, two int32 vectors of 8 rows. Per
// non-zero activation v in column j: the column's 16 quants are widened to int32 lanes, multiplied by
// their group scale (a 16-bit product that fits) and by v (madd against (v, 0) pairs: exact int32),
// and added to the block sum. The min term of Q4_K is the dense matvec of the mins with the 32-group
// activation sums. Per block the two float fmas repeat dot_q4_k's / dot_q6_k's, lane for lane.
#include "kernels/sparse_columns.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <cstring>

#define G3N_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace g3n {
namespace sparse_detail {
using RowsFn = void (*)(const SparseColumns&, const SparseQ8K&, int64_t, int64_t, float*);
namespace {

G3N_AVX2 inline __m256i bcast_lo16(int v) { return _mm256_set1_epi32(v & 0xFFFF); }

G3N_AVX2 void rows_q4k(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y) {
  const int64_t R = m.n_out;
  const uint64_t bb = m.block_bytes();
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t r = r0; r < r1; r += 16) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < a.n_blocks; ++b) {
      const uint32_t e0 = a.start[b], e1 = a.start[b + 1];
      if (e0 == e1) continue;  // all-zero block: the dense dot adds two zero products
      const uint8_t* blk = m.bytes.data() + bb * static_cast<uint64_t>(b);
      const uint8_t* sc = blk + 4 * R + r;
      const uint8_t* mins = blk + 12 * R + 2 * r;
      const uint8_t* q = blk + 20 * R + r / 2;
      // Min term: pairs of groups (m_2p, m_2p+1) per row against (bsum_2p, bsum_2p+1).
      __m256i M0 = _mm256_setzero_si256(), M1 = _mm256_setzero_si256();
      const int16_t* bs = a.bsum32.data() + b * 8;
      for (int p = 0; p < 4; ++p) {
        const __m256i pair = _mm256_set1_epi32((bs[2 * p] & 0xFFFF) | (int(bs[2 * p + 1]) << 16));
        const uint8_t* mp = mins + p * 2 * R;
        M0 = _mm256_add_epi32(M0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)mp)), pair));
        M1 = _mm256_add_epi32(M1, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(mp + 16))), pair));
      }
      __m256i S0 = _mm256_setzero_si256(), S1 = _mm256_setzero_si256();
      int group = -1;
      __m256i sc0 = S0, sc1 = S1;
      for (uint32_t e = e0; e < e1; ++e) {
        const int j = a.col[e];
        if (j / 32 != group) {
          group = j / 32;
          sc0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(sc + group * R)));
          sc1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)(sc + group * R + 8)));
        }
        const __m128i qb = _mm_loadl_epi64((const __m128i*)(q + j * (R / 2)));
        const __m128i lo = _mm_and_si128(qb, _mm256_castsi256_si128(m4));
        const __m128i hi = _mm_and_si128(_mm_srli_epi16(qb, 4), _mm256_castsi256_si128(m4));
        const __m256i v = bcast_lo16(a.val[e]);
        S0 = _mm256_add_epi32(S0, _mm256_madd_epi16(_mm256_mullo_epi16(_mm256_cvtepu8_epi32(lo), sc0), v));
        S1 = _mm256_add_epi32(S1, _mm256_madd_epi16(_mm256_mullo_epi16(_mm256_cvtepu8_epi32(hi), sc1), v));
      }
      const __m256 ad = _mm256_set1_ps(a.d[b]);
      const __m256 d0 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * r))));
      const __m256 d1 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * r + 16))));
      const __m256 n0 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * (R + r)))));
      const __m256 n1 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * (R + r) + 16))));
      const __m256 neg = _mm256_set1_ps(-0.0f);
      acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(S0), acc0);
      acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(S1), acc1);
      acc0 = _mm256_fmadd_ps(_mm256_xor_ps(n0, neg), _mm256_cvtepi32_ps(M0), acc0);
      acc1 = _mm256_fmadd_ps(_mm256_xor_ps(n1, neg), _mm256_cvtepi32_ps(M1), acc1);
    }
    _mm256_storeu_ps(y + r, acc0);
    _mm256_storeu_ps(y + r + 8, acc1);
  }
}

G3N_AVX2 void rows_q6k(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y) {
  const int64_t R = m.n_out;
  const uint64_t bb = m.block_bytes();
  const __m256i k32 = _mm256_set1_epi32(32), m3 = _mm256_set1_epi32(3);
  const __m128i m4 = _mm_set1_epi8(0x0F);
  // Row i of a 16-row word keeps its top bits at bit 2i: shift counts for rows 0-7 and 8-15.
  const __m256i shift0 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i shift1 = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
  for (int64_t r = r0; r < r1; r += 16) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < a.n_blocks; ++b) {
      const uint32_t e0 = a.start[b], e1 = a.start[b + 1];
      if (e0 == e1) continue;
      const uint8_t* blk = m.bytes.data() + bb * static_cast<uint64_t>(b);
      const uint8_t* sc = blk + 2 * R + r;
      const uint8_t* q = blk + 18 * R + r / 2;
      const uint8_t* qh = blk + 146 * R + r / 4;
      __m256i S0 = _mm256_setzero_si256(), S1 = _mm256_setzero_si256();
      int group = -1;
      __m256i sc0 = S0, sc1 = S1;
      for (uint32_t e = e0; e < e1; ++e) {
        const int j = a.col[e];
        if (j / 16 != group) {
          group = j / 16;
          sc0 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(sc + group * R)));
          sc1 = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(sc + group * R + 8)));
        }
        const __m128i qb = _mm_loadl_epi64((const __m128i*)(q + j * (R / 2)));
        int top;
        std::memcpy(&top, qh + j * (R / 4), 4);
        const __m256i tw = _mm256_set1_epi32(top);
        const __m256i t0 = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(tw, shift0), m3), 4);
        const __m256i t1 = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(tw, shift1), m3), 4);
        const __m256i lo = _mm256_cvtepu8_epi32(_mm_and_si128(qb, m4));
        const __m256i hi = _mm256_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(qb, 4), m4));
        const __m256i q0 = _mm256_sub_epi32(_mm256_or_si256(lo, t0), k32);
        const __m256i q1 = _mm256_sub_epi32(_mm256_or_si256(hi, t1), k32);
        const __m256i v = bcast_lo16(a.val[e]);
        // (q - 32) * scale fits in 16 bits (|.| <= 4096); the madd ignores the upper halves.
        S0 = _mm256_add_epi32(S0, _mm256_madd_epi16(_mm256_mullo_epi16(q0, sc0), v));
        S1 = _mm256_add_epi32(S1, _mm256_madd_epi16(_mm256_mullo_epi16(q1, sc1), v));
      }
      const __m256 ad = _mm256_set1_ps(a.d[b]);
      const __m256 d0 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * r))));
      const __m256 d1 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * r + 16))));
      acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(S0), acc0);
      acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(S1), acc1);
    }
    _mm256_storeu_ps(y + r, acc0);
    _mm256_storeu_ps(y + r + 8, acc1);
  }
}

void rows_any(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y) {
  if (m.type == GgmlType::Q4_K) rows_q4k(m, a, r0, r1, y);
  else rows_q6k(m, a, r0, r1, y);
}

}  // namespace

RowsFn avx2_rows() { return &rows_any; }

}  // namespace sparse_detail
}  // namespace g3n

#else

namespace g3n::sparse_detail {
using RowsFn = void (*)(const SparseColumns&, const SparseQ8K&, int64_t, int64_t, float*);
RowsFn avx2_rows() { return nullptr; }
}  // namespace g3n::sparse_detail

#endif
