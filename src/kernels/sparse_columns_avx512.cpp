// AVX-512 VNNI kernels of the column-major copies: the decode product (one sparse activation row) and the
// prefill products.
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

#if defined(__x86_64__)

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

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
using RowsFn = void (*)(const SparseColumns&, const SparseQ8K&, int64_t, int64_t, float*);
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

// ---- Decode: one sparse activation row (sparse_columns_rows) ------------------------------------------
// Each non-zero activation v in column j adds sc[group][r] * q[j][r] * v to row r's block sum. The kernel
// takes up to kSlabGroups 16-row groups at once with their int32 sums in memory (L1), so one entry reads its
// column's 8 bytes of nibbles per group (plus 4 of Q6_K top bits) as one contiguous run of lines, and
// prefetches the run of the entry kSlabPrefetch ahead, across block boundaries: the columns are scattered
// reads no hardware prefetcher guesses. (The kernel before kept 8 groups' sums in registers and went through
// the entries once per 128 rows, one line per column each time: a 5-token verify pass of E4B's ten Q6_K sparse
// layers, 1 thread, 25.9 ms against 17.5 now; one token 3.4 against 2.6.)
// q * scale fits in the low int16 of each int32 lane (|.| <= 4096), so vpdpwssd against (v, 0) pairs adds
// exactly q * scale * v. The float close per block repeats the AVX2 kernel's two fmas (dot_q4_k's /
// dot_q6_k's), lane for lane: the same bits.
// Entries ahead (2048 rows, 5 tokens, 1 thread): 1, 2, 4 and 8 within 7% of each other, 16 10% slower, none 60%.
constexpr int kSlabGroups = 128;
constexpr uint32_t kSlabPrefetch = 4;

// Block index of every entry, so the prefetch can run ahead across block boundaries (a block has only
// ~13 entries at 5% density). Per thread, grown once.
inline const uint32_t* entry_blocks(const SparseQ8K& a) {
  thread_local std::vector<uint32_t> blocks;
  blocks.resize(size_t(a.nonzero()) + 1);
  for (int64_t b = 0; b < a.n_blocks; ++b)
    for (uint32_t e = a.start[b]; e < a.start[b + 1]; ++e) blocks[e] = uint32_t(b);
  return blocks.data();
}

G3N_AVX512 inline __m512i widen16(__m128i x) { return _mm512_cvtepu8_epi32(x); }

// 8 * G bytes of nibble pairs -> G x 16 bytes in row order (column_nibbles on each 8 bytes).
template <int G>
G3N_AVX512 inline void column_rows(const uint8_t* col, __m128i* out) {
  if constexpr (G % 4 == 0) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int g = 0; g < G; g += 4) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(col + 8 * g));
      const __m256i lo = _mm256_and_si256(x, m4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
      const __m256i a = _mm256_unpacklo_epi64(lo, hi), b = _mm256_unpackhi_epi64(lo, hi);  // groups 0,2 | 1,3
      out[g] = _mm256_castsi256_si128(a);
      out[g + 1] = _mm256_castsi256_si128(b);
      out[g + 2] = _mm256_extracti128_si256(a, 1);
      out[g + 3] = _mm256_extracti128_si256(b, 1);
    }
  } else {
    for (int g = 0; g < G; ++g) out[g] = column_nibbles(col + 8 * g);
  }
}

G3N_AVX512 inline void prefetch_column(const uint8_t* p, int bytes) {
  for (int off = 0; off < bytes; off += 64) _mm_prefetch(reinterpret_cast<const char*>(p + off), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(p + bytes - 1), _MM_HINT_T0);
}

// Layouts: sparse_columns.h. Q4_K: scales one byte per row at 4R (groups of 32 columns), nibbles at 20R, the
// min term per block. Q6_K: signed scales at 2R (groups of 16), nibbles at 18R, top-bit words at 146R.
// Rows [r, r + 16 * G), G <= kSlabGroups.
template <bool kQ4>
G3N_AVX512 void rows_slab(const SparseColumns& m, const SparseQ8K& a, const uint32_t* eb, int64_t r, int G, float* y) {
  const int64_t R = m.n_out;
  const uint64_t bb = m.block_bytes();
  const uint32_t n_entries = uint32_t(a.nonzero());
  const int64_t q_at = kQ4 ? 20 * R : 18 * R, sc_at = kQ4 ? 4 * R : 2 * R, group_cols = kQ4 ? 32 : 16;
  const uint8_t* base = m.bytes.data() + q_at + r / 2;
  const uint8_t* base_h = m.bytes.data() + 146 * R + r / 4;  // Q6_K only
  // Q6_K: row i of a 16-row word keeps its top bits at bit 2i; rotating right by 2i - 4 puts them at bits 4-5.
  const __m512i rot = _mm512_setr_epi32(28, 30, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26);
  const __m512i k32 = _mm512_set1_epi32(32), top_bits = _mm512_set1_epi32(0x30);
  alignas(64) __m512 acc[kSlabGroups];
  alignas(64) __m512i S[kSlabGroups];
  for (int g = 0; g < G; ++g) acc[g] = _mm512_setzero_ps();
  for (int64_t b = 0; b < a.n_blocks; ++b) {
    const uint32_t e0 = a.start[b], e1 = a.start[b + 1];
    if (e0 == e1) continue;  // all-zero block: the dense dot adds zero products
    const uint8_t* blk = m.bytes.data() + bb * uint64_t(b);
    const uint8_t* sc = blk + sc_at + r;
    const uint8_t* q = blk + q_at + r / 2;
    const uint8_t* qh = blk + 146 * R + r / 4;
    for (int g = 0; g < G; ++g) S[g] = _mm512_setzero_si512();
    for (uint32_t e = e0; e < e1; ++e) {
      const int j = a.col[e];
      if (e + kSlabPrefetch < n_entries) {
        const uint32_t f = e + kSlabPrefetch;
        prefetch_column(base + bb * eb[f] + a.col[f] * (R / 2), 8 * G);
        if constexpr (!kQ4) prefetch_column(base_h + bb * eb[f] + a.col[f] * (R / 4), 4 * G);
      }
      const uint8_t* scale_row = sc + (j / group_cols) * R;  // Q4_K scales unsigned, Q6_K signed
      const uint8_t* col = q + j * (R / 2);
      const __m512i v = _mm512_set1_epi32(a.val[e] & 0xFFFF);
      auto one = [&](int g, __m128i rows) G3N_AVX512 {
        const __m128i bytes = load128(scale_row + 16 * g);
        const __m512i scale = kQ4 ? widen16(bytes) : _mm512_cvtepi8_epi32(bytes);
        __m512i quant = widen16(rows);
        if constexpr (!kQ4) {  // (top bits & 0x30) | low nibble, minus 32: the signed 6-bit quant
          int32_t word;
          std::memcpy(&word, qh + j * (R / 4) + 4 * g, 4);
          const __m512i t = _mm512_rorv_epi32(_mm512_set1_epi32(word), rot);
          quant = _mm512_sub_epi32(_mm512_ternarylogic_epi32(t, top_bits, quant, 0xEA), k32);
        }
        S[g] = _mm512_dpwssd_epi32(S[g], _mm512_mullo_epi16(quant, scale), v);
      };
      int g = 0;
      for (; g + 4 <= G; g += 4) {
        __m128i rows[4];
        column_rows<4>(col + 8 * g, rows);
        for (int i = 0; i < 4; ++i) one(g + i, rows[i]);
      }
      for (; g < G; ++g) one(g, column_nibbles(col + 8 * g));
    }
    const __m512 ad = _mm512_set1_ps(a.d[b]);
    for (int g = 0; g < G; ++g) {
      const __m512 d = _mm512_mul_ps(ad, _mm512_cvtph_ps(load256(blk + 2 * (r + 16 * g))));
      acc[g] = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(S[g]), acc[g]);
      if constexpr (kQ4) {  // min term: pairs of groups (m_2p, m_2p+1) per row against (bsum_2p, bsum_2p+1)
        const int16_t* bs = a.bsum32.data() + b * 8;
        __m512i M = _mm512_setzero_si512();
        for (int p = 0; p < 4; ++p) {
          const __m512i pair = _mm512_set1_epi32((bs[2 * p] & 0xFFFF) | (int(bs[2 * p + 1]) << 16));
          M = _mm512_dpwssd_epi32(M, _mm512_cvtepu8_epi16(load256(blk + 12 * R + 2 * r + p * 2 * R + 32 * g)), pair);
        }
        const __m512 n = _mm512_mul_ps(ad, _mm512_cvtph_ps(load256(blk + 2 * (R + r + 16 * g))));
        acc[g] = _mm512_fmadd_ps(vecdot::negate_ps(n), _mm512_cvtepi32_ps(M), acc[g]);
      }
    }
  }
  for (int g = 0; g < G; ++g) _mm512_storeu_ps(y + r + 16 * g, acc[g]);
}

template <bool kQ4>
G3N_AVX512 void rows_of(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y) {
  const uint32_t* eb = entry_blocks(a);
  for (int64_t r = r0; r < r1; r += 16 * kSlabGroups)
    rows_slab<kQ4>(m, a, eb, r, int(std::min<int64_t>(kSlabGroups, (r1 - r) / 16)), y);
}

G3N_AVX512 void rows_any(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y) {
  if (m.type == GgmlType::Q4_K) rows_of<true>(m, a, r0, r1, y);
  else rows_of<false>(m, a, r0, r1, y);
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
RowsFn avx512_rows() { return &rows_any; }

}  // namespace sparse_detail
}  // namespace g3n

#else

namespace g3n::sparse_detail {
using TileFn = void (*)(const SparseColumns&, const void*, uint64_t, int64_t, int64_t, int64_t, float*, int64_t);
TileFn avx512_tile() { return nullptr; }
TileFn amx_tile() { return nullptr; }
using RowsFn = void (*)(const SparseColumns&, const SparseQ8K&, int64_t, int64_t, float*);
RowsFn avx512_rows() { return nullptr; }
}  // namespace g3n::sparse_detail

#endif
