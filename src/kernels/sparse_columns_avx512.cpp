// AVX-512 VNNI kernels of the column-major copies: the decode and verify product (one or a few sparse
// activation rows, sparse_columns_rows_tokens) and the prefill products.
//
// Prefill: the 16-row panels of kquant_panel_zmm.h built from a SparseColumns copy instead of the file's
// rows. A sparse layer's down projection then never reads its original row-major matrix, whose pages stay
// out of memory (the copy is all a sparse layer keeps resident), and a prompt still gets the panels' speed.
// Same integers per (row, token, block) and the same float close as the dense dot, so the same bits
// (KernelsSparseColumns in tests/kernels_tile_test.cpp).
//
// The copy already holds what a panel wants in row order: per block the rows' fp16 d (and dmin), their
// scales (and Q4_K's min pairs) as one byte per row, and per column the 16 rows' quants as 8 bytes of
// nibbles (plus a 32-bit word of Q6_K top bits). Four columns are widened to 16 bytes each and
// interleaved into the panel's 4 quants per row.
#include "kernels/sparse_columns.h"
#include "kernels/sparse_columns_slice.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>

// GCC 12's AVX-512 intrinsics pass an intentionally undefined vector as the unused merge source of
// unmasked operations (see vec_dot_avx512.cpp).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define G3N_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define G3N_KQ_TARGET G3N_AVX512
#include "kernels/kquant_x86.h"
#include "kernels/kquant_panel_zmm.h"
#include "kernels/kquant_amx.h"

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
  const uint8_t* blk = m.data() + m.block_bytes() * uint64_t(b);
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
  const uint8_t* blk = m.data() + m.block_bytes() * uint64_t(b);
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

// ---- Decode: one sparse activation row (sparse_columns_rows) ------------------------------------------
// Each non-zero activation v in column j adds sc[group][r] * q[j][r] * v to row r's block sum. The kernel
// takes up to kSlabGroups 16-row groups at once with their int32 sums in memory (L1), so one entry reads its
// column's 8 bytes of nibbles per group (plus 4 of Q6_K top bits) as one contiguous run of lines, 4 groups
// at a time in 16-bit lanes (unit64), and prefetches the run of the entry kSlabPrefetch ahead, a line at a
// time, across block boundaries: the columns are scattered reads no hardware prefetcher guesses. (The kernel
// before kept 8 groups' sums in registers and went through the entries once per 128 rows, one line per column
// each time: a 5-token verify pass of E4B's ten Q6_K sparse layers, 1 thread, 27.3 ms against 15.3-16.6 now,
// 17.5-18.6 with 32-bit lanes; one token 3.4-3.7 against 2.5-2.7.)
// The float close per block repeats the AVX2 kernel's two fmas (dot_q4_k's / dot_q6_k's), lane for lane: the
// same bits. Groups past the last whole 4 go one at a time in 32-bit lanes: q * scale fits in the low int16 of
// each lane (|.| <= 4096), so vpdpwssd against (v, 0) pairs adds exactly q * scale * v.
// Entries ahead (2048 rows, 5 tokens, 1 thread): 1, 2, 4 and 8 within 7% of each other, 16 10% slower, none 60%.
constexpr int kSlabGroups = 128;
constexpr uint32_t kSlabPrefetch = 4;

G3N_AVX512 inline __m512i widen16(__m128i x) { return _mm512_cvtepu8_epi32(x); }


// One entry's products for 64 rows (4 groups) in 16-bit lanes: each 128-bit lane L takes group L, one zmm its
// rows 0-7 ("lo", the low nibbles of its 8 bytes), another its rows 8-15 ("hi"), as zero-extended words. The
// scales come in row order (64 bytes), so an in-lane unpack lines a lane's first or last 8 up with them; a
// vpmaddubsw then gives q * scale per word (the quant's high byte is 0), and two vpdpwssd against (v, 0) and
// (0, v) pairs add the even and the odd words' products into S[0] / S[1] (lo) and S[2] / S[3] (hi), each
// lane an exact int32 sum: S[0] lane i holds row 16 (i / 4) + 2 (i % 4), S[1] the row after it, S[2] and S[3]
// the same 8 rows on. unit_rows_in_order restores row order at the block's close. Against one group at a time
// in 32-bit lanes this halves the widening and the multiplies: ~12 ops per 64 rows (Q6_K ~24) against ~36.
template <bool kQ4>
G3N_AVX512 inline void unit64(const uint8_t* col, const uint8_t* scale64, const uint8_t* tops16, __m512i ve, __m512i vo,
                              __m512i* S) {
  const __m512i m4 = _mm512_set1_epi16(0x0F);
  const __m512i w = _mm512_cvtepu8_epi16(load256(col));  // byte 8L + k of the nibbles -> word k of lane L
  __m512i qlo = _mm512_and_si512(w, m4), qhi = _mm512_and_si512(_mm512_srli_epi16(w, 4), m4);
  const __m512i sc = _mm512_loadu_si512(scale64);
  const __m512i slo = _mm512_unpacklo_epi8(sc, sc), shi = _mm512_unpackhi_epi8(sc, sc);  // word k: (s, s) of row k / 8 + k
  __m512i plo, phi;
  if constexpr (kQ4) {  // unsigned scales < 64: positive as vpmaddubsw's signed operand
    plo = _mm512_maddubs_epi16(qlo, slo);
    phi = _mm512_maddubs_epi16(qhi, shi);
  } else {
    // Top bits: group L's 32-bit word in every lane, its low half spread over the lo words, its high half over
    // the hi words; word k keeps bits 2k, 2k + 1 of that half, moved to bits 4-5 (left by 4 - 2k or right by
    // 2k - 4), then (top & 0x30) | nibble, and the -32 of the signed quant as -32 * scale.
    const __m512i tw = _mm512_broadcast_i32x4(load128(tops16));
    const __m512i pick_lo = _mm512_set_epi64(0x0d0c0d0c0d0c0d0cLL, 0x0d0c0d0c0d0c0d0cLL, 0x0908090809080908LL, 0x0908090809080908LL,
                                             0x0504050405040504LL, 0x0504050405040504LL, 0x0100010001000100LL, 0x0100010001000100LL);
    const __m512i pick_hi = _mm512_add_epi8(pick_lo, _mm512_set1_epi8(2));
    const __m512i left = _mm512_set_epi16(0, 0, 0, 0, 0, 0, 2, 4, 0, 0, 0, 0, 0, 0, 2, 4, 0, 0, 0, 0, 0, 0, 2, 4, 0, 0, 0, 0, 0, 0, 2, 4);
    const __m512i right = _mm512_set_epi16(10, 8, 6, 4, 2, 0, 0, 0, 10, 8, 6, 4, 2, 0, 0, 0, 10, 8, 6, 4, 2, 0, 0, 0, 10, 8, 6, 4, 2, 0, 0, 0);
    const __m512i top = _mm512_set1_epi16(0x30), k32 = _mm512_set1_epi16(32);
    const auto bits = [&](__m512i pick) G3N_AVX512 {
      return _mm512_srlv_epi16(_mm512_sllv_epi16(_mm512_shuffle_epi8(tw, pick), left), right);
    };
    qlo = _mm512_ternarylogic_epi32(bits(pick_lo), top, qlo, 0xEA);
    qhi = _mm512_ternarylogic_epi32(bits(pick_hi), top, qhi, 0xEA);
    plo = _mm512_sub_epi16(_mm512_maddubs_epi16(qlo, slo), _mm512_maddubs_epi16(k32, slo));
    phi = _mm512_sub_epi16(_mm512_maddubs_epi16(qhi, shi), _mm512_maddubs_epi16(k32, shi));
  }
  S[0] = _mm512_dpwssd_epi32(S[0], plo, ve);
  S[1] = _mm512_dpwssd_epi32(S[1], plo, vo);
  S[2] = _mm512_dpwssd_epi32(S[2], phi, ve);
  S[3] = _mm512_dpwssd_epi32(S[3], phi, vo);
}

// S[0..3] of unit64 -> the 4 groups' sums in row order, in place.
G3N_AVX512 inline void unit_rows_in_order(__m512i* S) {
  // Lane m = 8h + k of the first merge: rows 16h + k (k < 8) of groups 0 and 1, from S[k % 2] lane 4h + k / 2
  // (operand bit 16: the second source); groups 2 and 3 four lanes on.
  const __m512i first = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
  const __m512i a = _mm512_permutex2var_epi32(S[0], first, S[1]), b = _mm512_permutex2var_epi32(S[0], second, S[1]);
  const __m512i c = _mm512_permutex2var_epi32(S[2], first, S[3]), d = _mm512_permutex2var_epi32(S[2], second, S[3]);
  S[0] = _mm512_shuffle_i64x2(a, c, _MM_SHUFFLE(1, 0, 1, 0));
  S[1] = _mm512_shuffle_i64x2(a, c, _MM_SHUFFLE(3, 2, 3, 2));
  S[2] = _mm512_shuffle_i64x2(b, d, _MM_SHUFFLE(1, 0, 1, 0));
  S[3] = _mm512_shuffle_i64x2(b, d, _MM_SHUFFLE(3, 2, 3, 2));
}

// Layouts: sparse_columns.h. Q4_K: scales one byte per row at 4R (groups of 32 columns), nibbles at 20R, the
// min term per block. Q6_K: signed scales at 2R (groups of 16), nibbles at 18R, top-bit words at 146R.
// Rows [r, r + 16 * G), G <= kSlabGroups, of n sparse rows a[t] into y + t * ldy, whose rows hold the float
// sums between blocks (L1).
template <bool kQ4>
G3N_AVX512 void rows_slab(const SparseColumns& m, const SparseQ8K* a, int n, int64_t r, int G, float* y,
                          int64_t ldy) {
  const int64_t R = m.n_out;
  const ColumnSlice<kQ4> slice(m, r);
  // Q6_K: row i of a 16-row word keeps its top bits at bit 2i; rotating right by 2i - 4 puts them at bits 4-5.
  const __m512i rot = _mm512_setr_epi32(28, 30, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26);
  const __m512i k32 = _mm512_set1_epi32(32), top_bits = _mm512_set1_epi32(0x30);
  alignas(64) __m512i S[kSlabGroups];
  const int G4 = G / 4 * 4;  // groups taken 4 at a time (unit64), the rest one by one
  for (int t = 0; t < n; ++t)
    for (int g = 0; g < G; ++g) _mm512_storeu_ps(y + t * ldy + r + 16 * g, _mm512_setzero_ps());
  EntryWalk ahead(a, n);
  ahead.skip(kSlabPrefetch);
  for (int64_t b = 0; b < a[0].n_blocks; ++b) {
    const uint8_t* blk = slice.block(b);
    for (int t = 0; t < n; ++t) {
      const SparseQ8K& at = a[t];
      const uint32_t e0 = at.start[b], e1 = at.start[b + 1];
      if (e0 == e1) continue;  // all-zero block: the dense dot adds zero products
      for (int g = 0; g < G; ++g) S[g] = _mm512_setzero_si512();
      for (uint32_t e = e0; e < e1; ++e) {
        const int j = at.col[e];
        const auto runs = slice.runs_at(ahead, G);
        ahead.next();
        const uint8_t* scale_row = slice.scales(b, j);  // Q4_K scales unsigned, Q6_K signed
        const uint8_t* col = slice.nibbles(b, j);
        const uint8_t* qh = slice.tops(b, j);
        const __m512i ve = _mm512_set1_epi32(at.val[e] & 0xFFFF), vo = _mm512_set1_epi32(int32_t(uint32_t(uint16_t(at.val[e])) << 16));
        auto one = [&](int g, __m128i rows) G3N_AVX512 {
          const __m128i bytes = load128(scale_row + 16 * g);
          const __m512i scale = kQ4 ? widen16(bytes) : _mm512_cvtepi8_epi32(bytes);
          __m512i quant = widen16(rows);
          if constexpr (!kQ4) {  // (top bits & 0x30) | low nibble, minus 32: the signed 6-bit quant
            int32_t word;
            std::memcpy(&word, qh + 4 * g, 4);
            const __m512i tq = _mm512_rorv_epi32(_mm512_set1_epi32(word), rot);
            quant = _mm512_sub_epi32(_mm512_ternarylogic_epi32(tq, top_bits, quant, 0xEA), k32);
          }
          S[g] = _mm512_dpwssd_epi32(S[g], _mm512_mullo_epi16(quant, scale), ve);
        };
        for (int g = 0; g < G4; g += 4) {
          runs.fetch(g);
          unit64<kQ4>(col + 8 * g, scale_row + 16 * g, qh + 4 * g, ve, vo, S + g);
        }
        for (int g = G4; g < G; ++g) runs.fetch(g), one(g, column_nibbles(col + 8 * g));
      }
      for (int g = 0; g < G4; g += 4) unit_rows_in_order(S + g);
      const __m512 ad = _mm512_set1_ps(at.d[b]);
      float* yt = y + t * ldy + r;
      for (int g = 0; g < G; ++g) {
        const __m512 d = _mm512_mul_ps(ad, _mm512_cvtph_ps(load256(blk + 2 * (r + 16 * g))));
        __m512 acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(S[g]), _mm512_loadu_ps(yt + 16 * g));
        if constexpr (kQ4) {  // min term: pairs of groups (m_2p, m_2p+1) per row against (bsum_2p, bsum_2p+1)
          const int16_t* bs = at.bsum32.data() + b * 8;
          __m512i M = _mm512_setzero_si512();
          for (int p = 0; p < 4; ++p) {
            const __m512i pair = _mm512_set1_epi32((bs[2 * p] & 0xFFFF) | (int(bs[2 * p + 1]) << 16));
            M = _mm512_dpwssd_epi32(M, _mm512_cvtepu8_epi16(load256(blk + 12 * R + 2 * r + p * 2 * R + 32 * g)), pair);
          }
          const __m512 nm = _mm512_mul_ps(ad, _mm512_cvtph_ps(load256(blk + 2 * (R + r + 16 * g))));
          acc = _mm512_fmadd_ps(vecdot::negate_ps(nm), _mm512_cvtepi32_ps(M), acc);
        }
        _mm512_storeu_ps(yt + 16 * g, acc);
      }
    }
  }
}

template <bool kQ4>
G3N_AVX512 void tokens_of(const SparseColumns& m, const SparseQ8K* a, int n, int64_t r0, int64_t r1, float* y,
                          int64_t ldy) {
  for (int64_t r = r0; r < r1; r += 16 * kSlabGroups)
    rows_slab<kQ4>(m, a, n, r, int(std::min<int64_t>(kSlabGroups, (r1 - r) / 16)), y, ldy);
}

G3N_AVX512 void tokens_any(const SparseColumns& m, const SparseQ8K* a, int n, int64_t r0, int64_t r1, float* y,
                           int64_t ldy) {
  if (m.type == GgmlType::Q4_K) tokens_of<true>(m, a, n, r0, r1, y, ldy);
  else tokens_of<false>(m, a, n, r0, r1, y, ldy);
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

// The avx512vnni+amx set's product: the same panels from the column copy, scaled into AMX panels
// (kquant_amx.h) for the call's whole 16-token tiles; the last nt % 16 tokens through tile_any.
template <class K, class Panel, class Build, class Scale>
G3N_AMX void amx_from_columns(const SparseColumns& m, const void* act, uint64_t as, int64_t nt, int64_t r0,
                              int64_t r1, float* y, int64_t ldy, Build build, Scale scale) {
  const auto* ab = static_cast<const uint8_t*>(act);
  const int64_t whole = nt / vecdot::kTileTokens * vecdot::kTileTokens;
  vecdot::amx_panels<K>(
      (r1 - r0) / 16, m.n_in / quant::kQK_K, ab, as, whole, y + r0, ldy,
      [&](int64_t g, int64_t b, vecdot::AmxPanel& p) {
        thread_local Panel panel;
        build(m, r0 + 16 * g, b, panel);
        scale(panel, p);
      },
      [](int64_t, int64_t, int64_t) {});
  if (whole < nt) tile_any(m, ab + uint64_t(whole) * as, as, nt - whole, r0, r1, y + whole * ldy, ldy);
}

G3N_AMX void amx_tile_any(const SparseColumns& m, const void* act, uint64_t as, int64_t nt, int64_t r0, int64_t r1,
                          float* y, int64_t ldy) {
  if (nt < vecdot::kTileTokens || r1 == r0) {
    tile_any(m, act, as, nt, r0, r1, y, ldy);
    return;
  }
  if (m.type == GgmlType::Q4_K)
    amx_from_columns<vecdot::Q4KAmx, vecdot::Q4KPanel>(m, act, as, nt, r0, r1, y, ldy, q4k_panel, vecdot::amx_from_q4k_panel);
  else
    amx_from_columns<vecdot::Q6KAmx, vecdot::Q6KPanel>(m, act, as, nt, r0, r1, y, ldy, q6k_panel, vecdot::amx_from_q6k_panel);
}

}  // namespace

TileFn avx512_tile() { return &tile_any; }
TileFn amx_tile() { return &amx_tile_any; }
TokensFn avx512_tokens() { return &tokens_any; }

}  // namespace sparse_detail
}  // namespace g3n

#else

namespace g3n::sparse_detail {
using TileFn = void (*)(const SparseColumns&, const void*, uint64_t, int64_t, int64_t, int64_t, float*, int64_t);
TileFn avx512_tile() { return nullptr; }
TileFn amx_tile() { return nullptr; }
TokensFn avx512_tokens() { return nullptr; }
}  // namespace g3n::sparse_detail

#endif
