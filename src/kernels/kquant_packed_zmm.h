// The AVX-512 VNNI kernels on packed K-quant matrices (kernels/packed_panels.h): 16 rows in the lanes x up
// to 8 tokens per call, for decode (1 token), verification (a few) and prefill (token groups of 8).
//
// Per block and token: one vpdpbusd per 4 values of the 16 rows (the activation dword broadcast), one
// vpmulld per group applying the 16 rows' scales, then the dot's float close. Same bits as dot_q45_k /
// dot_q6_k: the int32 totals sum_j scale_j * sum(q * a) (Q6_K: minus 32 * bsum_j inside) and
// sum_j min_j * groupsum_j are exact whatever the lane layout, and per (row, token) the fmas are the
// dot's, in block order.
//
// Include after kquant_x86.h (same G3N_KQ_TARGET, which must enable AVX-512 F/BW/VL + VNNI); shares the
// panels' helpers (kquant_panel_zmm.h).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kquant_packed_tile.h"
#include "kernels/kquant_panel_zmm.h"
#include "kernels/kquant_x86.h"
#include "kernels/packed_panels.h"

namespace g3n::vecdot {
namespace {

G3N_KQ_TARGET inline __m512 load_f16x16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Per token and block, what the kernels broadcast is what the prefill tiles prepare: Q4_K's group-sum pairs
// (Q8KGroupPrep, kquant_x86.h; the dot's min term) and Q6_K's 32 * bsum_j offsets (Q6KGroupPrep, kquant_panel_zmm.h).

// 16 rows x C tokens of a packed Q4_K group -> out[t * ldo + row]; calls of 2+ tokens fetch kAhead bytes ahead,
// a line every step or two (prefetch_step).
template <int C, uint64_t kAhead>
G3N_KQ_TARGET void q4k_packed_x_tokens(const PackedQ4K* p, const BlockQ8_K* const* a, const Q8KGroupPrep* g,
                                       int64_t nb, float* out, int64_t ldo, const uint8_t* pf_end) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[C];
  for (int t = 0; t < C; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const PackedQ4K& w = p[b];
    const uint8_t* ahead = nullptr;
    if constexpr (C > 1) ahead = packed_ahead<PackedQ4K, kAhead>(&w, pf_end);
    __m512i tot[C], s[C];
    for (int t = 0; t < C; ++t) tot[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      for (int t = 0; t < C; ++t) s[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        if constexpr (C > 1) prefetch_step<PackedQ4K>(ahead, 8 * j + k);
        const __m512i v = _mm512_load_si512(w.q[j / 2][k]);
        const __m512i x = _mm512_and_si512(j % 2 ? _mm512_srli_epi16(v, 4) : v, m4);
        for (int t = 0; t < C; ++t) s[t] = dpbusd_bcast(s[t], x, a[t][b].qs + 32 * j + 4 * k);
        keep_zmm_in_registers<C>(s);
      }
      const __m512i sc = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(w.sc[j])));
      for (int t = 0; t < C; ++t) tot[t] = _mm512_add_epi32(tot[t], _mm512_mullo_epi32(s[t], sc));
      keep_zmm_in_registers<C>(tot);
    }
    for (int t = 0; t < C; ++t) s[t] = _mm512_setzero_si512();  // the min term: sum_j min_j * groupsum_j
    for (int q = 0; q < 4; ++q) {
      const __m512i mq = _mm512_cvtepu8_epi16(_mm256_load_si256(reinterpret_cast<const __m256i*>(w.m[q])));
      for (int t = 0; t < C; ++t) {
        int32_t pair;
        std::memcpy(&pair, g[b].pair[q][t], 4);
        s[t] = _mm512_dpwssd_epi32(s[t], mq, _mm512_set1_epi32(pair));
      }
    }
    // dot_q45_k's two fmas per block, per row lane: (ad * d) * total, then (ad * -dmin) * min term.
    const __m512 d = load_f16x16(w.d), nd = negate_ps(load_f16x16(w.dmin));
    for (int t = 0; t < C; ++t) {
      const __m512 ad = _mm512_set1_ps(a[t][b].d);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(ad, d), _mm512_cvtepi32_ps(tot[t]), acc[t]);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(ad, nd), _mm512_cvtepi32_ps(s[t]), acc[t]);
    }
  }
  for (int t = 0; t < C; ++t) _mm512_storeu_ps(out + t * ldo, acc[t]);
}

// The 64 quants (0..63) of position 4q + 16f + k of a packed Q6_K block's 16 rows (quad u = quad[q]): the low
// nibbles from ql(f % 2, k) (high nibbles when f >= 2), bits 4-5 from field f of qh(k).
G3N_KQ_TARGET inline __m512i q6k_packed_quants(const PackedQ6K::Quad& u, int f, int k) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  const __m512i l = _mm512_load_si512(u.ql(f % 2, k));
  const __m512i lo = _mm512_and_si512(f < 2 ? l : _mm512_srli_epi16(l, 4), m4);
  const __m512i h = _mm512_load_si512(u.qh(k));
  const __m512i hs = f == 0 ? _mm512_slli_epi16(h, 4) : f == 1 ? _mm512_slli_epi16(h, 2) : f == 2 ? h : _mm512_srli_epi16(h, 2);
  return _mm512_ternarylogic_epi32(lo, hs, m30, 0xF8);  // lo | (hs & 0x30)
}

// 16 rows x C tokens of a packed Q6_K group, its groups in the layout's order (q, then q + 4s): position
// P = 4q + 16s + k has its low nibbles in ql(s % 2, k) (high nibbles when s >= 2) and bits 4-5 in field s of qh(k).
template <int C, uint64_t kAhead>
G3N_KQ_TARGET void q6k_packed_x_tokens(const PackedQ6K* p, const BlockQ8_K* const* a, const Q6KGroupPrep* g,
                                       int64_t nb, float* out, int64_t ldo, const uint8_t* pf_end) {
  __m512 acc[C];
  for (int t = 0; t < C; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const PackedQ6K& w = p[b];
    const uint8_t* ahead = nullptr;
    if constexpr (C > 1) ahead = packed_ahead<PackedQ6K, kAhead>(&w, pf_end);
    __m512i tot[C], s[C];
    for (int t = 0; t < C; ++t) tot[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const PackedQ6K::Quad& u = w.quad[q];
#pragma GCC unroll 4
      for (int f = 0; f < 4; ++f) {
        const int j = q + 4 * f;  // group j: positions 4j..4j+3
        for (int t = 0; t < C; ++t) s[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
          if constexpr (C > 1) prefetch_step<PackedQ6K>(ahead, 16 * q + 4 * f + k);
          const __m512i x = q6k_packed_quants(u, f, k);
          for (int t = 0; t < C; ++t) s[t] = dpbusd_bcast(s[t], x, a[t][b].qs + 16 * j + 4 * k);
          if constexpr (C > 1) keep_zmm_in_registers<C>(s);  // one token: the compiler's own schedule, +15%
        }
        const __m512i sc = _mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(u.sc[f])));
        // The 32 * bsum offset last, one vpsubd with a broadcast operand (as the first addend it cost a load, a
        // negation and a broadcast per group and token).
        for (int t = 0; t < C; ++t)
          tot[t] = _mm512_add_epi32(tot[t], _mm512_mullo_epi32(_mm512_sub_epi32(s[t], _mm512_set1_epi32(g[b].off[j][t])), sc));
        if constexpr (C > 1) keep_zmm_in_registers<C>(tot);
      }
    }
    const __m512 d = load_f16x16(w.d);  // dot_q6_k's fma per block, per row lane
    for (int t = 0; t < C; ++t)
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(a[t][b].d), d), _mm512_cvtepi32_ps(tot[t]), acc[t]);
  }
  for (int t = 0; t < C; ++t) _mm512_storeu_ps(out + t * ldo, acc[t]);
}

template <uint64_t kAhead>
struct Q4KPackedK {
  template <int C> static constexpr PackedKernelFn<PackedQ4K, Q8KGroupPrep> fn = q4k_packed_x_tokens<C, kAhead>;
};
template <uint64_t kAhead>
struct Q6KPackedK {
  template <int C> static constexpr PackedKernelFn<PackedQ6K, Q6KGroupPrep> fn = q6k_packed_x_tokens<C, kAhead>;
};

// Overlays the packed kernels on a set (the AVX-512 VNNI ones; same bits as their dots), fetching kAhead bytes
// ahead in calls of 2+ tokens (kquant_packed_tile.h).
template <uint64_t kAhead>
inline void set_packed_kernels(KernelSet& k) {
  set_packed_kernels_of<Q4KPackedK<kAhead>, Q6KPanels, Q6KPackedK<kAhead>>(k);
}

}  // namespace
}  // namespace g3n::vecdot
