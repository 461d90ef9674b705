// AVX2 kernel of sparse_columns_rows_tokens (one or a few sparse activation rows, block by block through the
// copy, every token's entries of a block before the next; each token's float sums wait in its output rows
// between blocks): per 16 output rows two int32 vectors of 8 rows. Per non-zero
// activation v in column j: the column's 16 quants are widened to int32 lanes, multiplied by their group
// scale (a 16-bit product that fits) and by v (madd against (v, 0) pairs: exact int32), and added to the
// block sum. The min term of Q4_K is the dense matvec of the mins with the 32-group activation sums. Per
// block the two float fmas repeat dot_q4_k's / dot_q6_k's, lane for lane.
#include "kernels/sparse_columns.h"
#include "kernels/sparse_columns_slice.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#define G3N_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace g3n {
namespace sparse_detail {
namespace {

// Rows [r, r + 16 * G) for up to kSlabGroups groups at once, their int32 sums in memory (L1): each entry reads
// its column's 8 bytes of nibbles per group (plus 4 of Q6_K top bits) as one contiguous run and fetches the run
// of the entry kSlabPrefetch on a line at a time (the AVX-512 kernel's structure, sparse_columns_avx512.cpp).
// The kernel before went through every entry once per 16 rows, 8 bytes of a column at a time with nothing
// prefetched: with the AVX2 set on the Intel Xeon (a stand-in), 2560 x 16384 at 5%, 1 thread, Q4_K 0.61-0.63
// -> 0.35-0.36 ms, Q6_K 0.99-1.09 -> 0.43-0.45 (vec_dot_bench, alternating).
constexpr int kSlabGroups = 128;
constexpr uint32_t kSlabPrefetch = 4;

template <bool kQ4>
G3N_AVX2 void rows_slab(const SparseColumns& m, const SparseQ8K* a, int n, int64_t r, int G, float* y,
                        int64_t ldy) {
  const int64_t R = m.n_out;
  const ColumnSlice<kQ4> slice(m, r);
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m256i k32 = _mm256_set1_epi32(32), m3 = _mm256_set1_epi32(3);
  // Q6_K: row i of a 16-row word keeps its top bits at bit 2i: shift counts for rows 0-7 and 8-15.
  const __m256i shift0 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i shift1 = _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30);
  alignas(32) __m256i S[2 * kSlabGroups];  // rows 0-7 and 8-15 of each group
  for (int t = 0; t < n; ++t)
    for (int i = 0; i < 2 * G; ++i) _mm256_storeu_ps(y + t * ldy + r + 8 * i, _mm256_setzero_ps());
  EntryWalk ahead(a, n);
  ahead.skip(kSlabPrefetch);
  for (int64_t b = 0; b < a[0].n_blocks; ++b) {
    const uint8_t* blk = slice.block(b);
    for (int t = 0; t < n; ++t) {
      const SparseQ8K& at = a[t];
      const uint32_t e0 = at.start[b], e1 = at.start[b + 1];
      if (e0 == e1) continue;  // all-zero block: the dense dot adds zero products
      for (int i = 0; i < 2 * G; ++i) S[i] = _mm256_setzero_si256();
      for (uint32_t e = e0; e < e1; ++e) {
        const int j = at.col[e];
        const auto runs = slice.runs_at(ahead, G);
        ahead.next();
        const uint8_t* scale_row = slice.scales(b, j);  // Q4_K scales unsigned, Q6_K signed
        const uint8_t* col = slice.nibbles(b, j);
        const uint8_t* tops = slice.tops(b, j);
        const __m256i v = _mm256_set1_epi32(at.val[e] & 0xFFFF);  // (v, 0) pairs: the madd ignores the upper halves
        for (int g = 0; g < G; ++g) {
          runs.fetch(g);
          const __m128i qb = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(col + 8 * g));
          __m256i q0 = _mm256_cvtepu8_epi32(_mm_and_si128(qb, m4));
          __m256i q1 = _mm256_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(qb, 4), m4));
          const __m128i s0b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(scale_row + 16 * g));
          const __m128i s1b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(scale_row + 16 * g + 8));
          __m256i s0, s1;
          if constexpr (kQ4) {
            s0 = _mm256_cvtepu8_epi32(s0b), s1 = _mm256_cvtepu8_epi32(s1b);
          } else {
            s0 = _mm256_cvtepi8_epi32(s0b), s1 = _mm256_cvtepi8_epi32(s1b);
            int top;
            std::memcpy(&top, tops + 4 * g, 4);
            const __m256i tw = _mm256_set1_epi32(top);
            const __m256i t0 = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(tw, shift0), m3), 4);
            const __m256i t1 = _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(tw, shift1), m3), 4);
            q0 = _mm256_sub_epi32(_mm256_or_si256(q0, t0), k32);
            q1 = _mm256_sub_epi32(_mm256_or_si256(q1, t1), k32);
          }
          // q * scale fits in 16 bits (|.| <= 4096).
          S[2 * g] = _mm256_add_epi32(S[2 * g], _mm256_madd_epi16(_mm256_mullo_epi16(q0, s0), v));
          S[2 * g + 1] = _mm256_add_epi32(S[2 * g + 1], _mm256_madd_epi16(_mm256_mullo_epi16(q1, s1), v));
        }
      }
      // Per group the block's close: dot_q4_k's / dot_q6_k's fmas, lane for lane.
      const __m256 ad = _mm256_set1_ps(at.d[b]);
      const __m256 neg = _mm256_set1_ps(-0.0f);
      float* yt = y + t * ldy + r;
      for (int g = 0; g < G; ++g) {
        const int64_t rg = r + 16 * g;
        const __m256 d0 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * rg))));
        const __m256 d1 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * rg + 16))));
        __m256 acc0 = _mm256_fmadd_ps(d0, _mm256_cvtepi32_ps(S[2 * g]), _mm256_loadu_ps(yt + 16 * g));
        __m256 acc1 = _mm256_fmadd_ps(d1, _mm256_cvtepi32_ps(S[2 * g + 1]), _mm256_loadu_ps(yt + 16 * g + 8));
        if constexpr (kQ4) {  // min term: pairs of groups (m_2p, m_2p+1) per row against (bsum_2p, bsum_2p+1)
          const uint8_t* mins = blk + 12 * R + 2 * rg;
          __m256i M0 = _mm256_setzero_si256(), M1 = _mm256_setzero_si256();
          const int16_t* bs = at.bsum32.data() + b * 8;
          for (int p = 0; p < 4; ++p) {
            const __m256i pair = _mm256_set1_epi32((bs[2 * p] & 0xFFFF) | (int(bs[2 * p + 1]) << 16));
            const uint8_t* mp = mins + p * 2 * R;
            M0 = _mm256_add_epi32(M0, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)mp)), pair));
            M1 = _mm256_add_epi32(M1, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i*)(mp + 16))), pair));
          }
          const __m256 n0 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * (R + rg)))));
          const __m256 n1 = _mm256_mul_ps(ad, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(blk + 2 * (R + rg) + 16))));
          acc0 = _mm256_fmadd_ps(_mm256_xor_ps(n0, neg), _mm256_cvtepi32_ps(M0), acc0);
          acc1 = _mm256_fmadd_ps(_mm256_xor_ps(n1, neg), _mm256_cvtepi32_ps(M1), acc1);
        }
        _mm256_storeu_ps(yt + 16 * g, acc0);
        _mm256_storeu_ps(yt + 16 * g + 8, acc1);
      }
    }
  }
}

template <bool kQ4>
G3N_AVX2 void tokens_of(const SparseColumns& m, const SparseQ8K* a, int n, int64_t r0, int64_t r1, float* y,
                        int64_t ldy) {
  for (int64_t r = r0; r < r1; r += 16 * kSlabGroups)
    rows_slab<kQ4>(m, a, n, r, int(std::min<int64_t>(kSlabGroups, (r1 - r) / 16)), y, ldy);
}

void tokens_any(const SparseColumns& m, const SparseQ8K* a, int n, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  if (m.type == GgmlType::Q4_K) tokens_of<true>(m, a, n, r0, r1, y, ldy);
  else tokens_of<false>(m, a, n, r0, r1, y, ldy);
}

}  // namespace

TokensFn avx2_tokens() { return &tokens_any; }

}  // namespace sparse_detail
}  // namespace g3n

#else

namespace g3n::sparse_detail {
TokensFn avx2_tokens() { return nullptr; }
}  // namespace g3n::sparse_detail

#endif
