// The AMX-INT8 core shared by the tile kernels on K-quant matrices (vec_dot_amx.cpp: row-major and packed
// matrices) and on the sparse layers' column copies (sparse_columns_avx512.cpp): scaled panels (the
// scales folded into low/high-byte B tiles, vec_dot_amx.cpp's header says why that keeps the bits), the
// activations gathered into A tiles, and the driver that runs 16-token tiles over a call's row groups.
//
// Include after kquant_x86.h and kquant_panel_zmm.h (any AVX-512 VNNI G3N_KQ_TARGET: these functions carry
// their own AMX target, and only run once cpu_features() says the tile state was granted).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/kquant_packed_zmm.h"
#include "kernels/kquant_panel_zmm.h"
#include "kernels/kquant_x86.h"
#include "kernels/packed_panels.h"

#define G3N_AMX __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))

namespace g3n::vecdot {
namespace {

constexpr int kTileTokens = 16;  // A and C tile rows

// Tile registers (all 16 rows x 64 bytes): C_lo, C_hi of up to two 16-token tiles, their A tiles, and the
// block chunk's two B tiles (shared by both token tiles). Macros, not constants: the intrinsics paste the
// register number into the instruction text.
#define G3N_TMM_LO0 0
#define G3N_TMM_HI0 1
#define G3N_TMM_LO1 2
#define G3N_TMM_HI1 3
#define G3N_TMM_A0 4
#define G3N_TMM_A1 5
#define G3N_TMM_BLO 6
#define G3N_TMM_BHI 7

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
TileConfig make_config() {
  TileConfig c;
  for (int t = 0; t < 8; ++t) c.rows[t] = kTileTokens, c.colsb[t] = 64;
  return c;
}

G3N_AMX inline void ensure_tile_config() {
  static const TileConfig config = make_config();
  thread_local bool loaded = false;
  if (!loaded) {
    _tile_loadconfig(&config);
    loaded = true;
  }
}

// 16 rows x one block, as the tile multiplies read it: chunk c (values 64c..64c+63) is a B tile, row k its
// dword k (values 64c + 4k..+3) of the 16 rows, [4 * row + i].
struct alignas(64) AmxPanel {
  uint8_t lo[4][16][64];  // low byte of scale * q (Q6_K: scale * (q - 32))
  uint8_t hi[4][16][64];  // its high byte (arithmetic shift: Q6_K's is signed)
  int32_t mins[4][16];    // Q4_K: Q4KPanel::mins (the min term's int16 pairs)
  float d[16], ndmin[16];
};

// Each row's int32 scale (lane r) -> the int16 in both words of dword r, for the 16-bit products below.
G3N_AMX inline __m512i scale_words(__m512i sc) {
  return _mm512_or_si512(_mm512_and_si512(sc, _mm512_set1_epi32(0xFFFF)), _mm512_slli_epi32(sc, 16));
}

// 64 bytes of 16 rows x 4 quants, each row's scale in s16 -> the low and high bytes of scale * (q - off).
G3N_AMX inline void scale_split(__m512i q, __m512i s16, int off, uint8_t* lo, uint8_t* hi) {
  const __m512i m = _mm512_set1_epi16(0x00FF), o = _mm512_set1_epi16(short(off));
  const __m512i pe = _mm512_mullo_epi16(_mm512_sub_epi16(_mm512_and_si512(q, m), o), s16);  // even bytes
  const __m512i po = _mm512_mullo_epi16(_mm512_sub_epi16(_mm512_srli_epi16(q, 8), o), s16);  // odd bytes
  _mm512_store_si512(lo, _mm512_or_si512(_mm512_and_si512(pe, m), _mm512_slli_epi16(po, 8)));
  _mm512_store_si512(hi, _mm512_or_si512(_mm512_and_si512(_mm512_srai_epi16(pe, 8), m), _mm512_andnot_si512(m, po)));
}

G3N_AMX inline void amx_from_q4k_panel(const Q4KPanel& p, AmxPanel& out) {
  for (int j = 0; j < 8; ++j) {
    const __m512i s16 = scale_words(_mm512_load_si512(p.sc[j]));
    for (int k = 0; k < 8; ++k)
      scale_split(_mm512_load_si512(p.q[j][k]), s16, 0, out.lo[j / 2][8 * (j % 2) + k], out.hi[j / 2][8 * (j % 2) + k]);
  }
  std::memcpy(out.mins, p.mins, sizeof out.mins);
  std::memcpy(out.d, p.d, sizeof out.d);
  std::memcpy(out.ndmin, p.ndmin, sizeof out.ndmin);
}

// A packed Q4_K group's block (packed_panels.h: the panel's layout with two groups per byte).
G3N_AMX inline void amx_from_packed_q4k(const PackedQ4K& w, AmxPanel& out) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int c = 0; c < 4; ++c) {
    const __m512i s0 = scale_words(_mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(w.sc[2 * c]))));
    const __m512i s1 = scale_words(_mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(w.sc[2 * c + 1]))));
    for (int k = 0; k < 8; ++k) {
      const __m512i v = _mm512_load_si512(w.q[c][k]);
      scale_split(_mm512_and_si512(v, m4), s0, 0, out.lo[c][k], out.hi[c][k]);
      scale_split(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), s1, 0, out.lo[c][8 + k], out.hi[c][8 + k]);
    }
  }
  for (int q = 0; q < 4; ++q)  // [row][2] byte pairs -> int16 pairs, min 2q in the low half
    _mm512_store_si512(out.mins[q], _mm512_cvtepu8_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(w.m[q]))));
  _mm512_store_ps(out.d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.d))));
  _mm512_store_ps(out.ndmin, negate_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.dmin)))));
}

// A packed Q6_K group's block: position 4q + 16f + k (group q + 4f) is chunk f's B row 4q + k.
G3N_AMX inline void amx_from_packed_q6k(const PackedQ6K& w, AmxPanel& out) {
  for (int q = 0; q < 4; ++q) {
    const PackedQ6K::Quad& u = w.quad[q];
    for (int f = 0; f < 4; ++f) {
      const __m512i s16 = scale_words(_mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(u.sc[f]))));
      for (int k = 0; k < 4; ++k) scale_split(q6k_packed_quants(u, f, k), s16, 32, out.lo[f][4 * q + k], out.hi[f][4 * q + k]);
    }
  }
  _mm512_store_ps(out.d, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.d))));
}

G3N_AMX inline void amx_from_q6k_panel(const Q6KPanel& p, AmxPanel& out) {
  for (int j = 0; j < 16; ++j) {
    const __m512i s16 = scale_words(_mm512_load_si512(p.sc[j]));
    for (int k = 0; k < 4; ++k)
      scale_split(_mm512_load_si512(p.q[j][k]), s16, 32, out.lo[j / 4][4 * (j % 4) + k], out.hi[j / 4][4 * (j % 4) + k]);
  }
  std::memcpy(out.d, p.d, sizeof out.d);
}

// The call's activations for the A tiles: per block b, 16-token tile u and 64-value chunk c, 16 tokens' 64
// quants as one contiguous 1 KB tile (64-byte aligned; in the Q8_K rows a tile row straddles two lines and
// the rows are a row stride apart). Copied once per call, read by every row group.
struct alignas(64) ATile {
  int8_t q[kTileTokens][64];
};
struct ATiles {
  std::vector<ATile> buf;
  int64_t tiles = 0, b0 = 0;  // blocks [b0, b0 + buf's) of the call's tokens
  const int8_t* at(int64_t b, int64_t u, int c) const { return buf[size_t(((b - b0) * tiles + u) * 4 + c)].q[0]; }
};

// Blocks [b0, b1) of the call's tiles.
G3N_AMX inline void gather_a_tiles(const uint8_t* ab, uint64_t as, int64_t tiles, int64_t b0, int64_t b1, ATiles& out) {
  out.tiles = tiles, out.b0 = b0;
  if (out.buf.size() < size_t((b1 - b0) * tiles * 4)) out.buf.resize(size_t((b1 - b0) * tiles * 4));
  for (int64_t t = 0; t < tiles * kTileTokens; ++t) {
    const auto* row = reinterpret_cast<const BlockQ8_K*>(ab + uint64_t(t) * as);
    for (int64_t b = b0; b < b1; ++b)
      for (int c = 0; c < 4; ++c)
        _mm512_store_si512(out.buf[size_t(((b - b0) * tiles + t / kTileTokens) * 4 + c)].q[t % kTileTokens],
                           _mm512_loadu_si512(row[b].qs + 64 * c));
  }
}

// A block's tile multiplies for T (1 or 2) 16-token tiles from tile u on: every (token, row) pair's exact
// int32 total lo[t] + 256 * hi[t] (kSigned: the high bytes are signed, Q6_K).
template <int T, bool kSigned>
G3N_AMX inline void block_totals(const AmxPanel& w, const ATiles& a, int64_t b, int64_t u, int32_t (*lo)[16],
                                 int32_t (*hi)[16]) {
  _tile_zero(G3N_TMM_LO0);
  _tile_zero(G3N_TMM_HI0);
  if constexpr (T == 2) {
    _tile_zero(G3N_TMM_LO1);
    _tile_zero(G3N_TMM_HI1);
  }
  for (int c = 0; c < 4; ++c) {
    _tile_loadd(G3N_TMM_A0, a.at(b, u, c), 64);
    if constexpr (T == 2) _tile_loadd(G3N_TMM_A1, a.at(b, u + 1, c), 64);
    _tile_loadd(G3N_TMM_BLO, w.lo[c], 64);
    _tile_loadd(G3N_TMM_BHI, w.hi[c], 64);
    _tile_dpbsud(G3N_TMM_LO0, G3N_TMM_A0, G3N_TMM_BLO);
    if constexpr (T == 2) _tile_dpbsud(G3N_TMM_LO1, G3N_TMM_A1, G3N_TMM_BLO);
    if constexpr (kSigned) {
      _tile_dpbssd(G3N_TMM_HI0, G3N_TMM_A0, G3N_TMM_BHI);
      if constexpr (T == 2) _tile_dpbssd(G3N_TMM_HI1, G3N_TMM_A1, G3N_TMM_BHI);
    } else {
      _tile_dpbsud(G3N_TMM_HI0, G3N_TMM_A0, G3N_TMM_BHI);
      if constexpr (T == 2) _tile_dpbsud(G3N_TMM_HI1, G3N_TMM_A1, G3N_TMM_BHI);
    }
  }
  _tile_stored(G3N_TMM_LO0, lo, 64);
  _tile_stored(G3N_TMM_HI0, hi, 64);
  if constexpr (T == 2) {
    _tile_stored(G3N_TMM_LO1, lo + kTileTokens, 64);
    _tile_stored(G3N_TMM_HI1, hi + kTileTokens, 64);
  }
}

G3N_AMX inline __m512i total(const int32_t* lo, const int32_t* hi) {
  return _mm512_add_epi32(_mm512_load_si512(lo), _mm512_slli_epi32(_mm512_load_si512(hi), 8));
}

// What the epilogue needs per token: Q4_K the 8-token groups' prepared min-term pairs and activation scales
// (group gi's block b at g[gi * nb + b]); Q6_K the activation scales, read from the Q8_K rows.
struct Tokens {
  const ATiles& a;
  const Q8KGroupPrep* g;
  const uint8_t* ab;
  uint64_t as;
  int64_t nb;
};

// Block b of 16 rows x 16T tokens from tile u on, into the float accumulators acc[t] (token 16u + t).
template <int T>
G3N_AMX void q4k_amx_block(const AmxPanel& w, const Tokens& k, int64_t b, int64_t u, float (*acc)[16]) {
  constexpr int kT = T * kTileTokens;
  alignas(64) int32_t lo[kT][16], hi[kT][16];
  block_totals<T, false>(w, k.a, b, u, lo, hi);
  __m512i mins[4];
  for (int q = 0; q < 4; ++q) mins[q] = _mm512_load_si512(w.mins[q]);
  const __m512 d = _mm512_load_ps(w.d), ndmin = _mm512_load_ps(w.ndmin);
  for (int t = 0; t < kT; ++t) {
    const Q8KGroupPrep& gp = k.g[(2 * u + t / 8) * k.nb + b];
    __m512i msum = _mm512_setzero_si512();  // exact either way: vpdpwssd fuses the add (as the packed kernels)
    for (int q = 0; q < 4; ++q) {
      int32_t pair;
      std::memcpy(&pair, gp.pair[q][t % 8], 4);
      msum = _mm512_dpwssd_epi32(msum, mins[q], _mm512_set1_epi32(pair));
    }
    // q4k_block_close's two fmas, per row lane (as q4k_panel_x_tokens).
    const __m512 ad = _mm512_set1_ps(gp.d[t % 8]);
    __m512 r = _mm512_load_ps(acc[t]);
    r = _mm512_fmadd_ps(_mm512_mul_ps(ad, d), _mm512_cvtepi32_ps(total(lo[t], hi[t])), r);
    r = _mm512_fmadd_ps(_mm512_mul_ps(ad, ndmin), _mm512_cvtepi32_ps(msum), r);
    _mm512_store_ps(acc[t], r);
  }
}

template <int T>
G3N_AMX void q6k_amx_block(const AmxPanel& w, const Tokens& k, int64_t b, int64_t u, float (*acc)[16]) {
  constexpr int kT = T * kTileTokens;
  alignas(64) int32_t lo[kT][16], hi[kT][16];
  block_totals<T, true>(w, k.a, b, u, lo, hi);
  const __m512 d = _mm512_load_ps(w.d);
  for (int t = 0; t < kT; ++t) {  // q6k_block_close's fma, per row lane
    const float ad = reinterpret_cast<const BlockQ8_K*>(k.ab + uint64_t(kTileTokens * u + t) * k.as)[b].d;
    const __m512 r = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(ad), d), _mm512_cvtepi32_ps(total(lo[t], hi[t])),
                                     _mm512_load_ps(acc[t]));
    _mm512_store_ps(acc[t], r);
  }
}

struct Q4KAmx {
  static constexpr bool kPrep = true;
  template <int T> static constexpr auto block = q4k_amx_block<T>;
};
struct Q6KAmx {
  static constexpr bool kPrep = false;
  template <int T> static constexpr auto block = q6k_amx_block<T>;
};

struct alignas(64) AccRow {  // one token's 16 float accumulators
  float v[16];
};

// The A tiles of one pass over the row groups, at most this many bytes: every group reads them all again,
// so they must stay in L2 (2 MB a core on the Xeons with AMX) beside the panels and the accumulators. A
// wider product (the FFN down projection: 8192 or 16384 values per row) runs in chunks of blocks.
// (1.25 MB: E2B's down projection, 512 tokens, 1 thread: 20 matrices 719-805 ms in one chunk, 458-490 in four
// of 1 MB; 1.5 MB, three chunks, 498-510.)
constexpr int64_t kATileBudget = 5 << 18;

// n_groups groups of 16 rows x nt tokens (a multiple of 16), in chunks of blocks whose A tiles fit the
// budget above: per chunk, make(g, b, panel) builds group g's scaled panel of each block b (once per
// call); then block by block (its panel stays in L1), every pair of 16-token tiles (and a last single one)
// adds the block into the tokens' accumulators, which a later chunk takes up from out (floats stored and
// loaded: each (token, row) still adds its blocks in order, the same bits). ahead(g, b0, b1) runs once
// group g's panels of blocks [b0, b1) are built (to fetch group g + 1's).
template <class K, class Make, class Ahead>
G3N_AMX void amx_panels(int64_t n_groups, int64_t nb, const uint8_t* ab, uint64_t as, int64_t nt, float* out,
                        int64_t ldo, const Make& make, const Ahead& ahead) {
  ensure_tile_config();
  const int64_t tiles = nt / kTileTokens;
  const int64_t fit = std::max<int64_t>(1, kATileBudget / (tiles * 4 * int64_t(sizeof(ATile))));
  const int64_t chunks = (nb + fit - 1) / fit, chunk = (nb + chunks - 1) / chunks;
  thread_local std::vector<AmxPanel> panels;
  thread_local std::vector<Q8KGroupPrep> preps;
  thread_local ATiles a;
  thread_local std::vector<AccRow> acc;
  if (panels.size() < size_t(chunk)) panels.resize(size_t(chunk));
  if (acc.size() < size_t(nt)) acc.resize(size_t(nt));
  if (K::kPrep) {
    if (preps.size() < size_t(2 * tiles * nb)) preps.resize(size_t(2 * tiles * nb));
    for (int64_t gi = 0; gi < 2 * tiles; ++gi) {
      const BlockQ8_K* rows[8];
      for (int t = 0; t < 8; ++t) rows[t] = block_row<BlockQ8_K>(ab, as, 8 * gi + t);
      prep_q8k_group(rows, 8, nb, preps.data() + gi * nb);
    }
  }
  const Tokens k{a, preps.data(), ab, as, nb};
  auto* accs = reinterpret_cast<float(*)[16]>(acc.data());
  for (int64_t b0 = 0; b0 < nb; b0 += chunk) {
    const int64_t b1 = std::min(nb, b0 + chunk);
    gather_a_tiles(ab, as, tiles, b0, b1, a);
    for (int64_t g = 0; g < n_groups; ++g) {
      for (int64_t b = b0; b < b1; ++b) make(g, b, panels[size_t(b - b0)]);
      ahead(g, b0, b1);
      float* o = out + kPackRows * g;
      if (b0 == 0) std::memset(accs, 0, sizeof(float) * 16 * size_t(nt));
      else
        for (int64_t t = 0; t < nt; ++t) _mm512_store_ps(accs[t], _mm512_loadu_ps(o + t * ldo));
      for (int64_t b = b0; b < b1; ++b) {
        const AmxPanel& p = panels[size_t(b - b0)];
        int64_t u = 0;
        for (; u + 2 <= tiles; u += 2) K::template block<2>(p, k, b, u, accs + kTileTokens * u);
        if (u < tiles) K::template block<1>(p, k, b, u, accs + kTileTokens * u);
      }
      for (int64_t t = 0; t < nt; ++t) _mm512_storeu_ps(o + t * ldo, _mm512_load_ps(accs[t]));
    }
  }
}

}  // namespace
}  // namespace g3n::vecdot
