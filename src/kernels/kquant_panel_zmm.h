// Q4_K prefill with rows in the lanes: 16 weight rows x up to 8 tokens per kernel call, for the AVX-512
// VNNI sets. The row x tokens kernels (kquant_ymm.h, vec_dot_avx512.cpp) keep tokens in the lanes and
// need two multiply instructions per 32 products (vpmaddubsw, then vpdpwssd to scale the int16 pairs);
// here one vpdpbusd does 64 (u8 weights x s8 activations, 4 products per int32 lane) and a group's scale
// is applied once per 16 rows and token with one vpmulld.
//
// That needs each zmm to hold 4 consecutive weights of 16 different rows, which the file's row-major
// blocks do not give: a "panel" transposes 16 rows' quants once (nibbles unpacked to bytes), beside their
// scales and mins widened to int32, and is then reused by every token group of the call. The activation
// dword of 4 values is broadcast to all lanes.
//
// Same bits as dot_q45_k: per (row, token, block) the integer totals sum_j scale_j * sum(q*a) and
// sum_j min_j * bsum_j are exact in int32 whatever the lane layout, and the float close is
// q4k_block_close's two fmas in block order.
//
// Include after kquant_x86.h (same G3N_KQ_TARGET, which must enable AVX-512 F/BW/VL + VNNI).
#pragma once
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "kernels/kquant_x86.h"

namespace g3n::vecdot {
namespace {

constexpr int kPanelRows = 16;

struct alignas(64) Q4KPanel {  // 16 rows x one block
  uint8_t q[8][8][64];         // [group j][dword k][4 * row + i]: weight 32j + 4k + i of each row, 0..15
  int32_t sc[8][kPanelRows];   // [group][row] scale
  int32_t mins[4][kPanelRows]; // [p][row]: min 2p | min 2p+1 << 16 (an int16 pair for vpmaddwd)
  float d[kPanelRows], ndmin[kPanelRows];  // h2f(d), -h2f(dmin)
};

// 8 x 8 dwords: lane c of in[r] -> lane r of out[c] (in each 128-bit half pair, then across halves).
G3N_KQ_TARGET inline void transpose_8x8_epi32(const __m256i* in, __m256i* out) {
  __m256i t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_unpacklo_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    out[c] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
    out[c + 4] = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
  }
}

// 16 x 16 bytes: byte c of m[r] -> byte r of m[c] (unpacks of 8, 16, 32, then 64 bits).
G3N_KQ_TARGET inline void transpose_16x16_epi8(__m128i* m) {
  __m128i p[16], v[4][4];
  for (int k = 0; k < 8; ++k) {  // rows 2k, 2k+1 as 16-bit words: columns 0-7 | 8-15
    p[k] = _mm_unpacklo_epi8(m[2 * k], m[2 * k + 1]);
    p[8 + k] = _mm_unpackhi_epi8(m[2 * k], m[2 * k + 1]);
  }
  for (int j = 0; j < 4; ++j) {  // v[cq][j]: columns 4cq..4cq+3, each a dword of rows 4j..4j+3
    v[0][j] = _mm_unpacklo_epi16(p[2 * j], p[2 * j + 1]);
    v[1][j] = _mm_unpackhi_epi16(p[2 * j], p[2 * j + 1]);
    v[2][j] = _mm_unpacklo_epi16(p[8 + 2 * j], p[9 + 2 * j]);
    v[3][j] = _mm_unpackhi_epi16(p[8 + 2 * j], p[9 + 2 * j]);
  }
  for (int cq = 0; cq < 4; ++cq) {  // qwords of rows 0-7 and 8-15, then the two halves of each column
    const __m128i a = _mm_unpacklo_epi32(v[cq][0], v[cq][1]), b = _mm_unpackhi_epi32(v[cq][0], v[cq][1]);
    const __m128i c = _mm_unpacklo_epi32(v[cq][2], v[cq][3]), d = _mm_unpackhi_epi32(v[cq][2], v[cq][3]);
    m[4 * cq + 0] = _mm_unpacklo_epi64(a, c);
    m[4 * cq + 1] = _mm_unpackhi_epi64(a, c);
    m[4 * cq + 2] = _mm_unpacklo_epi64(b, d);
    m[4 * cq + 3] = _mm_unpackhi_epi64(b, d);
  }
}

G3N_KQ_TARGET inline __m512 negate_ps(__m512 v) {  // exact, signed zeros included (as -h2f(dmin))
  return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32(int(0x80000000u))));
}

// Block b of the 16 rows starting at w (row stride ws) -> one panel.
G3N_KQ_TARGET inline void make_q4k_panel(const uint8_t* w, uint64_t ws, int64_t b, Q4KPanel& p) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int half = 0; half < 2; ++half) {
    for (int c = 0; c < 4; ++c) {  // qs bytes 32c..32c+31: group 2c in the low nibbles, 2c+1 in the high
      __m256i in[8], out[8];
      for (int r = 0; r < 8; ++r)
        in[r] = loadu(reinterpret_cast<const BlockQ4_K*>(w + uint64_t(8 * half + r) * ws)[b].qs + 32 * c);
      transpose_8x8_epi32(in, out);
      for (int k = 0; k < 8; ++k) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(p.q[2 * c][k] + 32 * half), _mm256_and_si256(out[k], m4));
        _mm256_store_si256(reinterpret_cast<__m256i*>(p.q[2 * c + 1][k] + 32 * half),
                           _mm256_and_si256(_mm256_srli_epi16(out[k], 4), m4));
      }
    }
  }
  // Scales and mins: each row's 16 bytes (scales 0-7, mins 0-7), transposed to 16 rows per byte position.
  __m128i sm[16];
  alignas(32) uint16_t d[kPanelRows], dmin[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) {
    const auto& blk = reinterpret_cast<const BlockQ4_K*>(w + uint64_t(r) * ws)[b];
    sm[r] = k4_unpack_v(blk.scales);
    d[r] = blk.d;
    dmin[r] = blk.dmin;
  }
  transpose_16x16_epi8(sm);
  for (int j = 0; j < 8; ++j) _mm512_store_si512(p.sc[j], _mm512_cvtepu8_epi32(sm[j]));
  for (int q = 0; q < 4; ++q) {  // rows' (min 2q, min 2q+1) byte pairs -> int16 pairs
    const __m128i lo = _mm_unpacklo_epi8(sm[8 + 2 * q], sm[9 + 2 * q]), hi = _mm_unpackhi_epi8(sm[8 + 2 * q], sm[9 + 2 * q]);
    _mm512_store_si512(p.mins[q], _mm512_cvtepu8_epi16(_mm256_setr_m128i(lo, hi)));
  }
  _mm512_store_ps(p.d, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d))));
  _mm512_store_ps(p.ndmin, negate_ps(_mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(dmin)))));
}

template <int C>
G3N_KQ_TARGET inline void keep_zmm_in_registers(__m512i* v) {
  for (int t = 0; t < C; ++t) asm volatile("" : "+v"(v[t]));  // see keep_in_registers in kquant_ymm.h
}

// acc + vpdpbusd(x, the 4 bytes at p broadcast to every lane), the broadcast as the instruction's embedded
// {1to16} memory operand: GCC turns _mm512_set1_epi32 of a loaded dword into a separate vpbroadcastd, one more
// instruction per product (a third of the 5-token packed Q4_K kernel's).
struct Dword {
  int8_t b[4];
};
G3N_KQ_TARGET inline __m512i dpbusd_bcast(__m512i acc, __m512i x, const int8_t* p) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(x), "m"(*reinterpret_cast<const Dword*>(p)));
  return acc;
}

// The integer core of both panel kernels, one block: tot[t] = sum over the G groups of scale_j * (the
// group's quant x activation sum - off[j][t]), per row lane (off: Q6_K's 32 * bsum, nullptr for none).
template <int C, int G, class Panel>
G3N_KQ_TARGET inline void panel_block_totals(const Panel& p, const BlockQ8_K* const* a, int64_t b,
                                             const int32_t (*off)[8], __m512i* tot) {
  constexpr int kDwords = kQK_K / G / 4;  // 4-value steps per group
  for (int t = 0; t < C; ++t) tot[t] = _mm512_setzero_si512();
#pragma GCC unroll 16
  for (int j = 0; j < G; ++j) {
    __m512i s[C];
    for (int t = 0; t < C; ++t) s[t] = off ? _mm512_set1_epi32(-off[j][t]) : _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int k = 0; k < kDwords; ++k) {
      const __m512i q = _mm512_load_si512(p.q[j][k]);
      for (int t = 0; t < C; ++t)
        s[t] = dpbusd_bcast(s[t], q, a[t][b].qs + (kQK_K / G) * j + 4 * k);
      keep_zmm_in_registers<C>(s);
    }
    const __m512i sc = _mm512_load_si512(p.sc[j]);
    for (int t = 0; t < C; ++t) tot[t] = _mm512_add_epi32(tot[t], _mm512_mullo_epi32(s[t], sc));
    keep_zmm_in_registers<C>(tot);
  }
}

// 16 rows (one panel per block) x C tokens -> out[t * ldo + r].
template <int C>
G3N_KQ_TARGET void q4k_panel_x_tokens(const Q4KPanel* p, const BlockQ8_K* const* a, const Q8KGroupPrep* g,
                                      int64_t nb, float* out, int64_t ldo) {
  __m512 acc[C];
  for (int t = 0; t < C; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i tot[C];
    panel_block_totals<C, 8>(p[b], a, b, nullptr, tot);
    const __m512 d = _mm512_load_ps(p[b].d), ndmin = _mm512_load_ps(p[b].ndmin);
    for (int t = 0; t < C; ++t) {
      __m512i msum = _mm512_setzero_si512();
      for (int q = 0; q < 4; ++q) {
        int32_t pair;
        std::memcpy(&pair, g[b].pair[q][t], 4);
        msum = _mm512_add_epi32(msum, _mm512_madd_epi16(_mm512_load_si512(p[b].mins[q]), _mm512_set1_epi32(pair)));
      }
      // q4k_block_close's two fmas, per row lane: (ad * d) * isum, then (ad * -dmin) * msum.
      const __m512 ad = _mm512_set1_ps(g[b].d[t]);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(ad, d), _mm512_cvtepi32_ps(tot[t]), acc[t]);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(ad, ndmin), _mm512_cvtepi32_ps(msum), acc[t]);
    }
  }
  for (int t = 0; t < C; ++t) _mm512_storeu_ps(out + t * ldo, acc[t]);
}

using Q4KPanelFn = void (*)(const Q4KPanel*, const BlockQ8_K* const*, const Q8KGroupPrep*, int64_t, float*, int64_t);
template <size_t... I>
constexpr std::array<Q4KPanelFn, 8> q4k_panel_table(std::index_sequence<I...>) {
  return {q4k_panel_x_tokens<int(I) + 1>...};
}

// ---- Q6_K: the same scheme over 16 groups of 16 (4 dwords each), quants 0..63 unsigned. The -32
// offset is taken off each group's sum before its scale: sum_j sc_j * (sum(q*a) - 32 * bsum_j) is the
// dot's exact total, so the bits are dot_q6_k's.
struct alignas(64) Q6KPanel {  // 16 rows x one block
  uint8_t q[16][4][64];        // [group j][dword k][4 * row + i]: quant 16j + 4k + i of each row, 0..63
  int32_t sc[16][kPanelRows];  // [group][row] signed scale
  float d[kPanelRows];
};
struct Q6KGroupPrep {          // one block of 8 tokens
  int32_t off[16][8];          // [group][token]: 32 * bsum
  float d[8];
};

G3N_KQ_TARGET inline void make_q6k_panel(const uint8_t* w, uint64_t ws, int64_t b, Q6KPanel& p) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03);
  for (int k = 0; k < 8; ++k) {  // 32-group k = 4*half + s (kquant_ymm.h's q6k_row_x_tokens)
    const int half = k / 4, s = k % 4;
    for (int rh = 0; rh < 2; ++rh) {
      __m256i in[8], out[8];
      for (int r = 0; r < 8; ++r) {
        const auto& blk = reinterpret_cast<const BlockQ6_K*>(w + uint64_t(8 * rh + r) * ws)[b];
        const __m256i ql = loadu(blk.ql + 64 * half + 32 * (s % 2));
        const __m256i qh = loadu(blk.qh + 32 * half);
        const __m256i lo = _mm256_and_si256(s / 2 ? _mm256_srli_epi16(ql, 4) : ql, m4);
        const __m256i hi = _mm256_and_si256(s ? _mm256_srli_epi16(qh, 2 * s) : qh, m3);
        in[r] = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
      }
      transpose_8x8_epi32(in, out);  // out[c]: quants 32k + 4c .. +3 of the 8 rows
      for (int c = 0; c < 8; ++c)
        _mm256_store_si256(reinterpret_cast<__m256i*>(p.q[2 * k + c / 4][c % 4] + 32 * rh), out[c]);
    }
  }
  __m128i sc[16];  // each row's 16 int8 scales, transposed to 16 rows per group
  alignas(32) uint16_t d[kPanelRows];
  for (int r = 0; r < kPanelRows; ++r) {
    const auto& blk = reinterpret_cast<const BlockQ6_K*>(w + uint64_t(r) * ws)[b];
    sc[r] = loadu128(blk.scales);
    d[r] = blk.d;
  }
  transpose_16x16_epi8(sc);
  for (int j = 0; j < 16; ++j) _mm512_store_si512(p.sc[j], _mm512_cvtepi8_epi32(sc[j]));
  _mm512_store_ps(p.d, _mm512_cvtph_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(d))));
}

G3N_KQ_TARGET inline void prep_q6k_group(const BlockQ8_K* const* a, int c, int64_t nb, Q6KGroupPrep* out) {
  for (int64_t b = 0; b < nb; ++b)
    for (int t = 0; t < 8; ++t) {
      out[b].d[t] = t < c ? a[t][b].d : 0.0f;
      for (int j = 0; j < 16; ++j) out[b].off[j][t] = t < c ? 32 * int32_t(a[t][b].bsums[j]) : 0;
    }
}

template <int C>
G3N_KQ_TARGET void q6k_panel_x_tokens(const Q6KPanel* p, const BlockQ8_K* const* a, const Q6KGroupPrep* g,
                                      int64_t nb, float* out, int64_t ldo) {
  __m512 acc[C];
  for (int t = 0; t < C; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m512i tot[C];
    panel_block_totals<C, 16>(p[b], a, b, g[b].off, tot);
    // q6k_block_close's fma, per row lane.
    const __m512 d = _mm512_load_ps(p[b].d);
    for (int t = 0; t < C; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(g[b].d[t]), d), _mm512_cvtepi32_ps(tot[t]), acc[t]);
  }
  for (int t = 0; t < C; ++t) _mm512_storeu_ps(out + t * ldo, acc[t]);
}

using Q6KPanelFn = void (*)(const Q6KPanel*, const BlockQ8_K* const*, const Q6KGroupPrep*, int64_t, float*, int64_t);
template <size_t... I>
constexpr std::array<Q6KPanelFn, 8> q6k_panel_table(std::index_sequence<I...>) {
  return {q6k_panel_x_tokens<int(I) + 1>...};
}

// What the panel driver needs of each type.
struct Q4KPanels {
  using Panel = Q4KPanel;
  using Group = Q8KGroupPrep;
  G3N_KQ_TARGET static void make(const uint8_t* w, uint64_t ws, int64_t b, Panel& p) { make_q4k_panel(w, ws, b, p); }
  G3N_KQ_TARGET static void prep(const BlockQ8_K* const* a, int c, int64_t nb, Group* g) { prep_q8k_group(a, c, nb, g); }
  static Q4KPanelFn kernel(int c) {
    static constexpr auto table = q4k_panel_table(std::make_index_sequence<8>{});
    return table[size_t(c - 1)];
  }
};
struct Q6KPanels {
  using Panel = Q6KPanel;
  using Group = Q6KGroupPrep;
  G3N_KQ_TARGET static void make(const uint8_t* w, uint64_t ws, int64_t b, Panel& p) { make_q6k_panel(w, ws, b, p); }
  G3N_KQ_TARGET static void prep(const BlockQ8_K* const* a, int c, int64_t nb, Group* g) { prep_q6k_group(a, c, nb, g); }
  static Q6KPanelFn kernel(int c) {
    static constexpr auto table = q6k_panel_table(std::make_index_sequence<8>{});
    return table[size_t(c - 1)];
  }
};

// Runs the panel kernels of Ops over `rows` rows (a multiple of 16) x nt tokens of Q8_K activations:
// make(r0, b, panel) builds the panel of rows r0..r0+15 for block b, ahead(r0) is called once those
// panels are built (a chance to fetch the next rows while their token groups run). Each panel is built
// once and used by every token group.
template <class Ops, class Make, class Ahead>
G3N_KQ_TARGET void run_panels(int64_t rows, int64_t nb, const uint8_t* ab, uint64_t as, int64_t nt, float* out,
                              int64_t ldo, const Make& make, const Ahead& ahead) {
  const int64_t groups = (nt + 7) / 8;
  // Per thread, reused across calls: one row group's panels and every token group's activation inputs.
  thread_local std::vector<typename Ops::Panel> panels;
  thread_local std::vector<typename Ops::Group> group_preps;
  if (panels.size() < size_t(nb)) panels.resize(size_t(nb));
  if (group_preps.size() < size_t(groups * nb)) group_preps.resize(size_t(groups * nb));
  const auto token_group = [&](int64_t gi, const BlockQ8_K** a) {
    const int c = int(std::min<int64_t>(8, nt - 8 * gi));
    for (int t = 0; t < 8; ++t) a[t] = block_row<BlockQ8_K>(ab, as, 8 * gi + (t < c ? t : 0));
    return c;
  };
  for (int64_t gi = 0; gi < groups; ++gi) {
    const BlockQ8_K* a[8];
    const int c = token_group(gi, a);
    Ops::prep(a, c, nb, group_preps.data() + gi * nb);
  }
  for (int64_t r0 = 0; r0 < rows; r0 += kPanelRows) {
    for (int64_t b = 0; b < nb; ++b) make(r0, b, panels[size_t(b)]);
    ahead(r0);
    for (int64_t gi = 0; gi < groups; ++gi) {
      const BlockQ8_K* a[8];
      const int c = token_group(gi, a);
      Ops::kernel(c)(panels.data(), a, group_preps.data() + gi * nb, nb, out + 8 * gi * ldo + r0, ldo);
    }
  }
}

// Fetches `bytes` from p into L2 (a panel's next rows or packed blocks, while the current ones are used).
G3N_KQ_TARGET inline void prefetch_l2(const void* p, uint64_t bytes) {
  for (uint64_t off = 0; off < bytes; off += 64) _mm_prefetch(static_cast<const char*>(p) + off, _MM_HINT_T1);
}

// A K-quant tile for more than one token group: whole panels of 16 rows here, the remaining rows (and
// one-group calls, where a panel would be built for a single use) by the set's row x tokens tile
// (`rows_tile`). The masked tiles stay on those kernels: a panel would compute its 16 rows wherever any
// of them is needed, and the masked products (the sparse layers' up projection, ~5% of rows per token)
// leave few panels empty.
template <class Ops>
G3N_KQ_TARGET void tile_panels(VecDotTileFn rows_tile, const void* w, uint64_t ws, int64_t nr, const void* act,
                               uint64_t as, int64_t nt, int64_t n, float* out, int64_t ldo) {
  const int64_t nb = n / kQK_K;
  const int64_t full = nr / kPanelRows * kPanelRows;
  if (nt <= 8 || nb == 0 || full == 0) {
    rows_tile(w, ws, nr, act, as, nt, n, out, ldo);
    return;
  }
  const auto* wb = static_cast<const uint8_t*>(w);
  run_panels<Ops>(
      full, nb, static_cast<const uint8_t*>(act), as, nt, out, ldo,
      [&](int64_t r0, int64_t b, typename Ops::Panel& p) { Ops::make(wb + uint64_t(r0) * ws, ws, b, p); },
      [&](int64_t r0) {
        // Building a panel is a stream of weights with little arithmetic to hide it: fetch the next
        // 16 rows into L2 now, while this panel's token groups run.
        if (r0 + kPanelRows < full) prefetch_l2(wb + uint64_t(r0 + kPanelRows) * ws, uint64_t(kPanelRows) * ws);
      });
  if (full < nr) rows_tile(wb + uint64_t(full) * ws, ws, nr - full, act, as, nt, n, out + full, ldo);
}

template <class Sums, class Rows>
G3N_KQ_TARGET void tile_q4k_panels(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt,
                                   int64_t n, float* out, int64_t ldo) {
  tile_panels<Q4KPanels>(tile_q4k<BlockQ4_K, false, Sums, Rows>, w, ws, nr, act, as, nt, n, out, ldo);
}
template <class Sums, class Rows>
G3N_KQ_TARGET void tile_q6k_panels(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt,
                                   int64_t n, float* out, int64_t ldo) {
  tile_panels<Q6KPanels>(tile_q6k<Sums, Rows>, w, ws, nr, act, as, nt, n, out, ldo);
}

// Overlays the panel paths on a set's Q4_K and Q6_K tiles (after set_kquant_kernels). 144 tokens per call
// (18 groups) amortize a panel: E4B's 16384-wide down projection would otherwise get 24 (matmul's cache
// blocking), and its prompt ran 2-4% slower (89.9 against 92.3 tok/s, medians of 5 alternating runs).
template <class Sums, class Rows>
void set_panel_kernels(KernelSet& k) {
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) k.tile_tokens[type_index(t)] = 144;
  k.tile[type_index(GgmlType::Q4_K)] = tile_q4k_panels<Sums, Rows>;
  k.tile[type_index(GgmlType::Q6_K)] = tile_q6k_panels<Sums, Rows>;
}

}  // namespace
}  // namespace g3n::vecdot
