// AVX-512 VNNI prefill products from the column-major copies: the 16-row panels of kquant_panel_zmm.h
// built from a SparseColumns copy instead of the file's rows. A sparse layer's down projection then never
// reads its original row-major matrix, whose pages stay out of memory (the copy is all a sparse layer
// keeps resident), and a prompt still gets the panels' speed. Same integers per (row, token, block) and
// the same float close as the dense dot, so the same bits (KernelsSparseColumns in tests/kernels_tile_test.cpp).
//
// The copy already holds what a panel wants in row order: per block the rows' fp16 d (and dmin), their
// scales (and Q4_K's min pairs) as one byte per row, and per column the 16 rows' quants as 8 bytes of
// nibbles (plus a 32-bit word of Q6_K top bits). Four columns are widened to 16 bytes each and
// interleaved into the panel's 4 quants per row.
#include "kernels/sparse_columns.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cstring>

// GCC 12's AVX-512 intrinsics pass an intentionally undefined vector as the unused merge source of
// unmasked operations (see vec_dot_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define G3N_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define G3N_KQ_TARGET G3N_AVX512
#include "kernels/kquant_x86.h"
#include "kernels/kquant_panel_zmm.h"

namespace g3n {
namespace sparse_detail {
using TileFn = void (*)(const SparseColumns&, const void*, uint64_t, int64_t, int64_t, int64_t, float*, int64_t);
namespace {

using vecdot::kPanelRows;

G3N_AVX512 inline __m256i load256(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
G3N_AVX512 inline __m128i load128(const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// Column c's 16 low nibbles (8 bytes: byte k = row k low, row 8+k high) -> 16 bytes in row order.
G3N_AVX512 inline __m128i column_nibbles(const uint8_t* col) {
  const __m128i m4 = _mm_set1_epi8(0x0F);
  const __m128i x = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(col));
  return _mm_unpacklo_epi64(_mm_and_si128(x, m4), _mm_and_si128(_mm_srli_epi16(x, 4), m4));
}

// Four columns' 16-byte rows -> 64 bytes: row r's quants of columns 0..3 at 4r..4r+3.
G3N_AVX512 inline void interleave4(const __m128i* v, uint8_t* dst) {
  const __m128i a01 = _mm_unpacklo_epi8(v[0], v[1]), a01h = _mm_unpackhi_epi8(v[0], v[1]);
  const __m128i a23 = _mm_unpacklo_epi8(v[2], v[3]), a23h = _mm_unpackhi_epi8(v[2], v[3]);
  _mm_store_si128(reinterpret_cast<__m128i*>(dst), _mm_unpacklo_epi16(a01, a23));
  _mm_store_si128(reinterpret_cast<__m128i*>(dst + 16), _mm_unpackhi_epi16(a01, a23));
  _mm_store_si128(reinterpret_cast<__m128i*>(dst + 32), _mm_unpacklo_epi16(a01h, a23h));
  _mm_store_si128(reinterpret_cast<__m128i*>(dst + 48), _mm_unpackhi_epi16(a01h, a23h));
}

// Layouts: sparse_columns.h (per 256-column block, all R rows).
G3N_AVX512 void q4k_panel(const SparseColumns& m, int64_t r0, int64_t b, vecdot::Q4KPanel& p) {
  const uint64_t R = uint64_t(m.n_out);
  const uint8_t* blk = m.bytes.data() + m.block_bytes() * uint64_t(b);
  _mm512_store_ps(p.d, _mm512_cvtph_ps(load256(blk + 2 * r0)));
  _mm512_store_ps(p.ndmin, vecdot::negate_ps(_mm512_cvtph_ps(load256(blk + 2 * (R + r0)))));
  for (int j = 0; j < 8; ++j) _mm512_store_si512(p.sc[j], _mm512_cvtepu8_epi32(load128(blk + 4 * R + j * R + r0)));
  for (int q = 0; q < 4; ++q)  // (min 2q, min 2q+1) byte pairs -> int16 pairs
    _mm512_store_si512(p.mins[q], _mm512_cvtepu8_epi16(load256(blk + 12 * R + 2 * (q * R + r0))));
  const uint8_t* cols = blk + 20 * R + r0 / 2;
  for (int j = 0; j < 8; ++j)
    for (int k = 0; k < 8; ++k) {
      __m128i v[4];
      for (int i = 0; i < 4; ++i) v[i] = column_nibbles(cols + uint64_t(32 * j + 4 * k + i) * (R / 2));
      interleave4(v, p.q[j][k]);
    }
}

G3N_AVX512 void q6k_panel(const SparseColumns& m, int64_t r0, int64_t b, vecdot::Q6KPanel& p) {
  const uint64_t R = uint64_t(m.n_out);
  const uint8_t* blk = m.bytes.data() + m.block_bytes() * uint64_t(b);
  _mm512_store_ps(p.d, _mm512_cvtph_ps(load256(blk + 2 * r0)));
  for (int j = 0; j < 16; ++j) _mm512_store_si512(p.sc[j], _mm512_cvtepi8_epi32(load128(blk + 2 * R + j * R + r0)));
  const uint8_t* cols = blk + 18 * R + r0 / 2;
  const uint8_t* tops = blk + 146 * R + r0 / 4;
  const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  for (int j = 0; j < 16; ++j)
    for (int k = 0; k < 4; ++k) {
      __m128i v[4];
      for (int i = 0; i < 4; ++i) {
        const uint64_t c = uint64_t(16 * j + 4 * k + i);
        int32_t word;  // row r's top 2 bits at bit 2r
        std::memcpy(&word, tops + c * (R / 4), 4);
        const __m512i top = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(word), shifts), _mm512_set1_epi32(3));
        v[i] = _mm_or_si128(column_nibbles(cols + c * (R / 2)), _mm_slli_epi16(_mm512_cvtepi32_epi8(top), 4));
      }
      interleave4(v, p.q[j][k]);
    }
}

template <class Ops, class Build>
G3N_AVX512 void tile_from_columns(const SparseColumns& m, const void* act, uint64_t as, int64_t nt, int64_t r0,
                                  int64_t r1, float* y, int64_t ldy, Build build) {
  vecdot::run_panels<Ops>(
      r1 - r0, m.n_in / quant::kQK_K, static_cast<const uint8_t*>(act), as, nt, y + r0, ldy,
      [&](int64_t r, int64_t b, typename Ops::Panel& p) { build(m, r0 + r, b, p); }, [](int64_t) {});
}

G3N_AVX512 void tile_any(const SparseColumns& m, const void* act, uint64_t as, int64_t nt, int64_t r0, int64_t r1,
                         float* y, int64_t ldy) {
  if (m.type == GgmlType::Q4_K) tile_from_columns<vecdot::Q4KPanels>(m, act, as, nt, r0, r1, y, ldy, q4k_panel);
  else tile_from_columns<vecdot::Q6KPanels>(m, act, as, nt, r0, r1, y, ldy, q6k_panel);
}

}  // namespace

TileFn avx512_tile() { return &tile_any; }

}  // namespace sparse_detail
}  // namespace g3n

#else

namespace g3n::sparse_detail {
using TileFn = void (*)(const SparseColumns&, const void*, uint64_t, int64_t, int64_t, int64_t, float*, int64_t);
TileFn avx512_tile() { return nullptr; }
}  // namespace g3n::sparse_detail

#endif
