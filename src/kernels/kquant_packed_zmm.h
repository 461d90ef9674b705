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

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/kquant_panel_zmm.h"
#include "kernels/kquant_x86.h"
#include "kernels/packed_panels.h"

namespace g3n::vecdot {
namespace {

G3N_KQ_TARGET inline __m512 load_f16x16(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Streams the packed matrix ahead of a kernel that verifies or prefills (2 or more tokens): block b's lines
// kPackedAhead bytes further on, up to `end` (the call's last byte), into L2. One token's Q4_K kernel runs
// each block too quickly for that to arrive in time and is left to the hardware prefetcher. Measured
// (Zen 4, 2 threads, Q4_K 16384 x 2048 from DRAM, medians of 31 alternating runs): 5 tokens in 1.11-1.19x
// a row kernel's one-token time with it, 2.28x without; one token with it 0.55-0.58 against 0.48 ms.
// The one-token instantiations carry no prefetch code at all (`if constexpr`): merely present and skipped at
// run time it cost the one-token Q6_K kernel ~25% (1 thread, 32768 x 2560 from DRAM: 16-18 GB/s, 21-22 without
// it, rows 24-25); taken, it did no better (19.9).
constexpr uint64_t kPackedAhead = 8192;
template <class Packed>
G3N_KQ_TARGET inline void prefetch_packed(const Packed* blk, const uint8_t* end) {
  const auto* from = reinterpret_cast<const uint8_t*>(blk) + kPackedAhead;
  if (!end || from >= end) return;
  for (uint64_t off = 0; off < sizeof(Packed); off += 64) _mm_prefetch(reinterpret_cast<const char*>(from + off), _MM_HINT_T2);
}

// Per token and block, what the kernels broadcast is what the prefill tiles prepare: Q4_K's group-sum pairs
// (Q8KGroupPrep, kquant_x86.h; the dot's min term) and Q6_K's 32 * bsum_j offsets (Q6KGroupPrep, kquant_panel_zmm.h).

// 16 rows x C tokens of a packed Q4_K group -> out[t * ldo + row].
template <int C>
G3N_KQ_TARGET void q4k_packed_x_tokens(const PackedQ4K* p, const BlockQ8_K* const* a, const Q8KGroupPrep* g,
                                       int64_t nb, float* out, int64_t ldo, const uint8_t* pf_end) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[C];
  for (int t = 0; t < C; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const PackedQ4K& w = p[b];
    if constexpr (C > 1) prefetch_packed(&w, pf_end);
    __m512i tot[C], s[C];
    for (int t = 0; t < C; ++t) tot[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      for (int t = 0; t < C; ++t) s[t] = _mm512_setzero_si512();
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
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

// 16 rows x C tokens of a packed Q6_K group, its groups in the layout's order (q, then q + 4s): position
// P = 4q + 16s + k has its low nibbles in ql(s % 2, k) (high nibbles when s >= 2) and bits 4-5 in field s of qh(k).
template <int C>
G3N_KQ_TARGET void q6k_packed_x_tokens(const PackedQ6K* p, const BlockQ8_K* const* a, const Q6KGroupPrep* g,
                                       int64_t nb, float* out, int64_t ldo, const uint8_t* pf_end) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  __m512 acc[C];
  for (int t = 0; t < C; ++t) acc[t] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const PackedQ6K& w = p[b];
    if constexpr (C > 1) prefetch_packed(&w, pf_end);
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
          const __m512i l = _mm512_load_si512(u.ql(f % 2, k));
          const __m512i lo = _mm512_and_si512(f < 2 ? l : _mm512_srli_epi16(l, 4), m4);
          const __m512i h = _mm512_load_si512(u.qh(k));
          const __m512i hs = f == 0 ? _mm512_slli_epi16(h, 4) : f == 1 ? _mm512_slli_epi16(h, 2) : f == 2 ? h : _mm512_srli_epi16(h, 2);
          const __m512i x = _mm512_ternarylogic_epi32(lo, hs, m30, 0xF8);  // lo | (hs & 0x30)
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

template <class Packed, class Prep>
using PackedKernelFn = void (*)(const Packed*, const BlockQ8_K* const*, const Prep*, int64_t, float*, int64_t,
                                const uint8_t*);

template <class Packed, class Prep, template <int> class K, size_t... I>
constexpr std::array<PackedKernelFn<Packed, Prep>, 8> packed_table(std::index_sequence<I...>) {
  return {K<int(I) + 1>::fn...};
}
template <int C>
struct Q4KPackedK {
  static constexpr PackedKernelFn<PackedQ4K, Q8KGroupPrep> fn = q4k_packed_x_tokens<C>;
};
template <int C>
struct Q6KPackedK {
  static constexpr PackedKernelFn<PackedQ6K, Q6KGroupPrep> fn = q6k_packed_x_tokens<C>;
};

// n_groups groups of 16 rows x nt tokens: each group's blocks are read once per 8-token group, while they
// stay in L1/L2, and every token group's broadcast inputs are prepared once per call (by the prefill panels'
// Ops::prep: the same inputs).
template <class Packed, class Ops, template <int> class K>
G3N_KQ_TARGET void packed_tile(const void* packed, int64_t n_groups, const void* act, uint64_t as, int64_t nt, int64_t n,
                               float* out, int64_t ldo) {
  using Prep = typename Ops::Group;
  static constexpr auto table = packed_table<Packed, Prep, K>(std::make_index_sequence<8>{});
  const int64_t nb = n / kQK_K, tgroups = (nt + 7) / 8;
  if (nb == 0) {
    for (int64_t t = 0; t < nt; ++t) std::memset(out + t * ldo, 0, sizeof(float) * size_t(kPackRows * n_groups));
    return;
  }
  thread_local std::vector<Prep> prep;
  if (prep.size() < size_t(tgroups * nb)) prep.resize(size_t(tgroups * nb));
  const auto* ab = static_cast<const uint8_t*>(act);
  const auto token_group = [&](int64_t gi, const BlockQ8_K** a) {
    const int c = int(std::min<int64_t>(8, nt - 8 * gi));
    for (int t = 0; t < 8; ++t) a[t] = block_row<BlockQ8_K>(ab, as, 8 * gi + (t < c ? t : 0));  // as run_panels
    return c;
  };
  for (int64_t gi = 0; gi < tgroups; ++gi) {
    const BlockQ8_K* a[8];
    Ops::prep(a, token_group(gi, a), nb, prep.data() + gi * nb);
  }
  const auto* p = static_cast<const Packed*>(packed);
  const auto* end = reinterpret_cast<const uint8_t*>(p + n_groups * nb);
  for (int64_t g = 0; g < n_groups; ++g)
    for (int64_t gi = 0; gi < tgroups; ++gi) {  // the first token group streams the matrix in
      const BlockQ8_K* a[8];
      const int c = token_group(gi, a);
      table[size_t(c - 1)](p + g * nb, a, prep.data() + gi * nb, nb, out + 8 * gi * ldo + kPackRows * g, ldo,
                           gi == 0 && (nt > 1 || std::is_same_v<Packed, PackedQ6K>) ? end : nullptr);
    }
}

// Overlays the packed kernels on a set (the AVX-512 VNNI ones; same bits as their dots).
inline void set_packed_kernels(KernelSet& k) {
  k.packed[type_index(GgmlType::Q4_K)] = packed_tile<PackedQ4K, Q4KPanels, Q4KPackedK>;
  k.packed[type_index(GgmlType::Q6_K)] = packed_tile<PackedQ6K, Q6KPanels, Q6KPackedK>;
}

}  // namespace
}  // namespace g3n::vecdot
