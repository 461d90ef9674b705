// The 256-bit kernels on packed Q4_K and Q6_K matrices (kernels/packed_panels.h), for the AVX2 and AVX-VNNI sets
// (their products differ: Avx2PackedProduct below, AvxVnniPackedProduct in vec_dot_avxvnni.cpp): 16 rows of a
// packed group x up to 8 tokens, the same layouts and the same bits as the AVX-512 ones (kquant_packed_zmm.h).
//
// AVX2 has no vpdpbusd. Its product is vpmaddubsw (u8 x s8 -> int16 sums of adjacent pairs), and the row x
// tokens kernels (kquant_ymm.h) follow each with a vpmaddwd by the group's scale: two multiply instructions
// per 32 products. With the rows in the lanes (4 consecutive quants of 8 rows per register, the token's
// activation dword broadcast) a lane's pair sums stay in int16 over a whole 32-value group: a pair is at most
// 2 * 15 * 128 = 3840 in magnitude, a lane adds 8 of them per group (30720 < 32767), so vpaddw is exact.
// One vpmaddwd per group then multiplies each row's two int16 sums by its scale and adds them (int32): 9
// multiply instructions per 8 rows, 32 values and token instead of 16. The min term and the float close
// are the zmm kernel's on 8 row lanes; per (row, token, block) the int32 totals are exact, so the bits are
// dot_q45_k's.
//
// Include after kquant_x86.h (same G3N_KQ_TARGET, at least AVX2).
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/kquant_packed_tile.h"
#include "kernels/kquant_x86.h"
#include "kernels/packed_panels.h"

namespace g3n::vecdot {
namespace {

// The token's activations i..i+3 as one dword, broadcast to every row lane.
G3N_KQ_TARGET inline __m256i act_dword(const BlockQ8_K& a, int i) {
  int32_t v;
  std::memcpy(&v, a.qs + i, 4);
  return _mm256_set1_epi32(v);
}

// Quants 4k..4k+3 of group j for rows 8h..8h+7 (the low nibbles for even j, the high for odd), as bytes.
G3N_KQ_TARGET inline __m256i q4k_packed_quants(const PackedQ4K& w, int j, int k, int h, __m256i m4) {
  const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(w.q[j / 2][k] + 32 * h));
  return _mm256_and_si256(j % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
}

// The product of a kernel: how it multiplies 4 quants of 8 rows by a token's activation dword (`first` starts a
// sum, `next` adds to one), how many such steps its lanes can sum before the group's scales must be applied, and
// how it applies them (the scales of 8 rows, as 8 bytes). AVX2: vpmaddubsw into int16 pair sums added with vpaddw
// (Q4_K: a whole 8-step group, the bound in this file's header; Q6_K: 2 steps, the bound before q6k_packed_halves),
// then one vpmaddwd by the scales in both words of each row's dword. AVX-VNNI (vec_dot_avxvnni.cpp): one vpdpbusd
// per step into int32, then one vpmulld by the scales as int32.
struct Avx2PackedProduct {
  static constexpr int kQ6KSteps = 2;
  static constexpr bool kQ6KSplitHalves = true;  // packed_passes
  G3N_KQ_TARGET static __m256i first(__m256i x, __m256i a) { return _mm256_maddubs_epi16(x, a); }
  G3N_KQ_TARGET static __m256i next(__m256i s, __m256i x, __m256i a) { return _mm256_add_epi16(s, _mm256_maddubs_epi16(x, a)); }
  // Unsigned (Q4_K) or signed (Q6_K) scales of rows 0-7 -> both int16 words of row r's dword.
  G3N_KQ_TARGET static __m256i scales_u8(const uint8_t* sc) {
    // vpshufb pattern: byte r of the broadcast qword -> both words of row r's dword, zero-extended (rows 0-3 in
    // the low lane, 4-7 in the high one).
    const __m256i dup = _mm256_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3, -1,
                                         4, -1, 4, -1, 5, -1, 5, -1, 6, -1, 6, -1, 7, -1, 7, -1);
    int64_t sc8;
    std::memcpy(&sc8, sc, 8);
    return _mm256_shuffle_epi8(_mm256_set1_epi64x(sc8), dup);
  }
  G3N_KQ_TARGET static __m256i scales_s8(const int8_t* sc) {
    const __m128i s16 = _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc)));
    return _mm256_set_m128i(_mm_unpackhi_epi16(s16, s16), _mm_unpacklo_epi16(s16, s16));
  }
  G3N_KQ_TARGET static __m256i apply(__m256i tot, __m256i s, __m256i scales) {
    return _mm256_add_epi32(tot, _mm256_madd_epi16(s, scales));
  }
};

// Rows 8h..8h+7 of a packed Q4_K group are bytes 32h..32h+31 of each 64-byte line. H = 1 or 2 halves from
// h0, C tokens a[0..C-1] (token t0 + t of the group prep g), H * C <= 10 (the sums of every (half, token) pair
// in registers; past 4 pairs the int32 totals live in L1). P: the product.
template <int C, int H, bool kPrefetch, class P>
G3N_KQ_TARGET void q4k_packed_halves(const PackedQ4K* p, int h0, const BlockQ8_K* const* a, const Q8KGroupPrep* g,
                                     int t0, int64_t nb, float* out, int64_t ldo, const uint8_t* pf_end) {
  static_assert(H * C <= 10);
  constexpr bool kWide = H * C > 4;  // the int32 totals then live in L1, touched once per 32-value group
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  // The float accumulators live in `out` (L1), touched once per block: in registers they left too few for
  // the integer sums (GCC spilled those instead).
  for (int h = 0; h < H; ++h)
    for (int t = 0; t < C; ++t) _mm256_storeu_ps(out + t * ldo + 8 * (h0 + h), _mm256_setzero_ps());
  for (int64_t b = 0; b < nb; ++b) {
    const PackedQ4K& w = p[b];
    const uint8_t* ahead = nullptr;  // one token: the block's lines at its start; more: spread (prefetch_step)
    if constexpr (kPrefetch && C == 1) prefetch_packed(&w, pf_end);
    else if constexpr (kPrefetch) ahead = packed_ahead<PackedQ4K, kPackedAhead>(&w, pf_end);
    __m256i tot[H][C];
    for (int h = 0; h < H; ++h)
      for (int t = 0; t < C; ++t) tot[h][t] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      __m256i s[H][C];
#pragma GCC unroll 8
      for (int k = 0; k < 8; ++k) {
        if constexpr (kPrefetch && C > 1) prefetch_step<PackedQ4K>(ahead, 8 * j + k);
        if constexpr (kWide) {
          // Both halves' quants, then one broadcast per token for both: 2 + 2 + 2C registers.
          __m256i x[H];
          for (int h = 0; h < H; ++h) x[h] = q4k_packed_quants(w, j, k, h0 + h, m4);
          for (int t = 0; t < C; ++t) {
            const __m256i at = act_dword(a[t][b], 32 * j + 4 * k);
            for (int h = 0; h < H; ++h) s[h][t] = k == 0 ? P::first(x[h], at) : P::next(s[h][t], x[h], at);
          }
        } else {
          __m256i at[C];
          for (int t = 0; t < C; ++t) at[t] = act_dword(a[t][b], 32 * j + 4 * k);
          for (int h = 0; h < H; ++h) {
            const __m256i x = q4k_packed_quants(w, j, k, h0 + h, m4);
            for (int t = 0; t < C; ++t) s[h][t] = k == 0 ? P::first(x, at[t]) : P::next(s[h][t], x, at[t]);
          }
        }
        // Without this GCC hoists the whole group's broadcasts and products and spills them (as kquant_ymm.h's
        // keep_in_registers).
        for (int h = 0; h < H; ++h)
          for (int t = 0; t < C; ++t) asm volatile("" : "+v"(s[h][t]));
      }
      for (int h = 0; h < H; ++h) {
        const __m256i sc = P::scales_u8(w.sc[j] + 8 * (h0 + h));
        for (int t = 0; t < C; ++t) {
          tot[h][t] = P::apply(tot[h][t], s[h][t], sc);
          asm volatile("" : "+v"(tot[h][t]));  // likewise: the group's scaling now, not all 8 at the block's end
        }
      }
    }
    for (int h = 0; h < H; ++h) {
      __m256i mt[C];  // the min term: sum_j min_j * groupsum_j
      for (int t = 0; t < C; ++t) mt[t] = _mm256_setzero_si256();
      for (int q = 0; q < 4; ++q) {
        const __m256i mq = _mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(w.m[q][8 * (h0 + h)])));
        for (int t = 0; t < C; ++t) {
          int32_t pair;
          std::memcpy(&pair, g[b].pair[q][t0 + t], 4);
          mt[t] = _mm256_add_epi32(mt[t], _mm256_madd_epi16(mq, _mm256_set1_epi32(pair)));
        }
      }
      // dot_q45_k's two fmas per block, per row lane: (ad * d) * total, then (ad * -dmin) * min term.
      const __m256 d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(w.d + 8 * (h0 + h))));
      const __m256 nd = _mm256_xor_ps(_mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(w.dmin + 8 * (h0 + h)))),
                                      _mm256_set1_ps(-0.0f));
      for (int t = 0; t < C; ++t) {
        const __m256 ad = _mm256_set1_ps(a[t][b].d);
        float* o = out + t * ldo + 8 * (h0 + h);
        __m256 acc = _mm256_fmadd_ps(_mm256_mul_ps(ad, d), _mm256_cvtepi32_ps(tot[h][t]), _mm256_loadu_ps(o));
        acc = _mm256_fmadd_ps(_mm256_mul_ps(ad, nd), _mm256_cvtepi32_ps(mt[t]), acc);
        _mm256_storeu_ps(o, acc);
      }
    }
  }
}

// How a kernel's 16 rows x C tokens are split into passes of q?k_packed_halves. 1-5 tokens: one pass over both
// halves (past 4 (half, token) pairs its int32 totals live in L1). 6-8: two such passes (4 + 2..4) with
// kSplitHalves false, else a pass per half and per 4 tokens (the Q6_K kernel's both-halves passes of 4 tokens
// spill their sums, and measured 2-5% slower that way). The per-half plan, everywhere from 3 tokens before,
// re-read each group from L2 for the second half and ran a fifth token as a pass of its own (AVX2 set on the
// Xeon, E4B, 5 tokens over 1: Q4_K ffn_gate 1.70 -> 1.34, the Q6_K head 1.57 -> 1.30; docs/kernels.md). Only the first pass
// prefetches; with kPrefetchOne a one-token call does too, else it carries no prefetch code at all (present but
// skipped, that slowed the zmm one-token Q6_K kernel). pass<Cp, H, kPf>(h0, t0, pf_end) runs tokens t0..t0+Cp-1.
template <int C, bool kPrefetchOne, bool kSplitHalves, class Pass>
G3N_KQ_TARGET inline void packed_passes(const Pass& pass, const uint8_t* pf_end) {
  constexpr int C0 = 4, C1 = C - C0;
  if constexpr (C <= 5) {
    pass.template operator()<C, 2, (C > 1 || kPrefetchOne)>(0, 0, pf_end);
  } else if constexpr (!kSplitHalves) {
    pass.template operator()<C0, 2, true>(0, 0, pf_end);
    pass.template operator()<C1, 2, false>(0, C0, nullptr);
  } else {
    pass.template operator()<C0, 1, true>(0, 0, pf_end);
    for (int h = 0; h < 2; ++h) {
      if (h) pass.template operator()<C0, 1, false>(h, 0, nullptr);
      pass.template operator()<C1, 1, false>(h, C0, nullptr);
    }
  }
}

// 16 rows x C tokens of a packed Q4_K group -> out[t * ldo + row]. One token does not prefetch: from DRAM it was
// no better with it.
template <int C, class P>
G3N_KQ_TARGET void q4k_packed_ymm_x_tokens(const PackedQ4K* p, const BlockQ8_K* const* a, const Q8KGroupPrep* g,
                                           int64_t nb, float* out, int64_t ldo, const uint8_t* pf_end) {
  packed_passes<C, false, false>([&]<int Cp, int H, bool kPf>(int h0, int t0, const uint8_t* pf) {
    q4k_packed_halves<Cp, H, kPf, P>(p, h0, a + t0, g, t0, nb, out + t0 * ldo, ldo, pf);
  }, pf_end);
}

// Q6_K: quants 0..63 against s8 activations, so a pair is at most 2 * 63 * 128 = 16128 and a lane's int16 sum
// holds two (one position's pair of dwords, 8 values); a 16-value group takes two vpmaddwd by its scale. The
// -32 offset is taken off once per block as 32 * sum_j scale_j * bsum_j, with the scales of groups 2p, 2p+1
// as int16 pairs against the token's bsums pair p (the dot's integer total: the same int32).

// Scales of groups 2p and 2p+1 for rows 8h..8h+7 as one int16 pair per row's dword.
G3N_KQ_TARGET inline __m256i q6k_scale_pair(const PackedQ6K& w, int p, int h) {
  const int g0 = 2 * p, g1 = 2 * p + 1;
  const __m128i b0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.quad[g0 % 4].sc[g0 / 4] + 8 * h));
  const __m128i b1 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(w.quad[g1 % 4].sc[g1 / 4] + 8 * h));
  return _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(b0, b1));
}

// Quants of position k of group q + 4f (quad u) for rows 8h..8h+7: the low 4 bits from ql, the high 2 from qh.
G3N_KQ_TARGET inline __m256i q6k_packed_quants(const PackedQ6K::Quad& u, int f, int k, int h, __m256i m4, __m256i m30) {
  const int off = 32 * h;
  const __m256i l = _mm256_load_si256(reinterpret_cast<const __m256i*>(u.ql(f % 2, k) + off));
  const __m256i lo = _mm256_and_si256(f < 2 ? l : _mm256_srli_epi16(l, 4), m4);
  const __m256i hq = _mm256_load_si256(reinterpret_cast<const __m256i*>(u.qh(k) + off));
  const __m256i hs = f == 0 ? _mm256_slli_epi16(hq, 4) : f == 1 ? _mm256_slli_epi16(hq, 2) : f == 2 ? hq : _mm256_srli_epi16(hq, 2);
  return _mm256_or_si256(lo, _mm256_and_si256(hs, m30));
}

// Rows 8h..8h+7 of a packed Q6_K group x C tokens, H halves from h0 (H * C <= 10, as for Q4_K), groups in the
// layout's order (q, then q + 4f) so each quad is read front to back.
template <int C, int H, bool kPrefetch, class P>
G3N_KQ_TARGET void q6k_packed_halves(const PackedQ6K* p, int h0, const BlockQ8_K* const* a, int64_t nb, float* out,
                                     int64_t ldo, const uint8_t* pf_end) {
  static_assert(H * C <= 10);
  constexpr bool kWide = H * C > 4;  // as for Q4_K; the totals touched once per flush (8 values on AVX2, 16 on AVX-VNNI)
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  for (int h = 0; h < H; ++h)
    for (int t = 0; t < C; ++t) _mm256_storeu_ps(out + t * ldo + 8 * (h0 + h), _mm256_setzero_ps());
  for (int64_t b = 0; b < nb; ++b) {
    const PackedQ6K& w = p[b];
    const uint8_t* ahead = nullptr;  // as in q4k_packed_halves
    if constexpr (kPrefetch && C == 1) prefetch_packed(&w, pf_end);
    else if constexpr (kPrefetch) ahead = packed_ahead<PackedQ6K, kPackedAhead>(&w, pf_end);
    __m256i tot[H][C];
    for (int h = 0; h < H; ++h)
      for (int t = 0; t < C; ++t) tot[h][t] = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) {
      const PackedQ6K::Quad& u = w.quad[q];
#pragma GCC unroll 4
      for (int f = 0; f < 4; ++f) {
        const int j = q + 4 * f;  // group j: positions 4j..4j+3
#pragma GCC unroll 4
        for (int k2 = 0; k2 < 4; k2 += P::kQ6KSteps) {
          __m256i s[H][C];
#pragma GCC unroll 4
          for (int k = k2; k < k2 + P::kQ6KSteps; ++k) {
            if constexpr (kPrefetch && C > 1) prefetch_step<PackedQ6K>(ahead, 16 * q + 4 * f + k);
            if constexpr (kWide) {  // as in q4k_packed_halves
              __m256i x[H];
              for (int h = 0; h < H; ++h) x[h] = q6k_packed_quants(u, f, k, h0 + h, m4, m30);
              for (int t = 0; t < C; ++t) {
                const __m256i at = act_dword(a[t][b], 16 * j + 4 * k);
                for (int h = 0; h < H; ++h) s[h][t] = k == k2 ? P::first(x[h], at) : P::next(s[h][t], x[h], at);
              }
            } else {
              for (int h = 0; h < H; ++h) {
                const __m256i x = q6k_packed_quants(u, f, k, h0 + h, m4, m30);
                for (int t = 0; t < C; ++t) {
                  const __m256i at = act_dword(a[t][b], 16 * j + 4 * k);
                  s[h][t] = k == k2 ? P::first(x, at) : P::next(s[h][t], x, at);
                }
              }
            }
            for (int h = 0; h < H; ++h)
              for (int t = 0; t < C; ++t) asm volatile("" : "+v"(s[h][t]));  // as in the Q4_K kernel
          }
          for (int h = 0; h < H; ++h) {
            const __m256i sc = P::scales_s8(w.quad[j % 4].sc[j / 4] + 8 * (h0 + h));
            for (int t = 0; t < C; ++t) {
              tot[h][t] = P::apply(tot[h][t], s[h][t], sc);
              asm volatile("" : "+v"(tot[h][t]));
            }
          }
        }
      }
    }
    for (int h = 0; h < H; ++h) {
      __m256i corr[C];  // sum_j scale_j * bsum_j, then times 32 off the total
      for (int t = 0; t < C; ++t) corr[t] = _mm256_setzero_si256();
      for (int pp = 0; pp < 8; ++pp) {
        const __m256i scp = q6k_scale_pair(w, pp, h0 + h);
        for (int t = 0; t < C; ++t) {
          int32_t pair;
          std::memcpy(&pair, a[t][b].bsums + 2 * pp, 4);
          corr[t] = _mm256_add_epi32(corr[t], _mm256_madd_epi16(scp, _mm256_set1_epi32(pair)));
        }
      }
      // dot_q6_k's fma per block, per row lane: (ad * d) * total.
      const __m256 d = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(w.d + 8 * (h0 + h))));
      for (int t = 0; t < C; ++t) {
        const __m256i total = _mm256_sub_epi32(tot[h][t], _mm256_slli_epi32(corr[t], 5));
        float* o = out + t * ldo + 8 * (h0 + h);
        _mm256_storeu_ps(o, _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(a[t][b].d), d), _mm256_cvtepi32_ps(total),
                                            _mm256_loadu_ps(o)));
      }
    }
  }
}

// 16 rows x C tokens of a packed Q6_K group, passes as for Q4_K, except that one token prefetches too: from
// DRAM (Zen 4, 16384 x 2048, 8 matrices in turn) it streamed 14.9 GB/s on one thread without, 19-22 with (the
// row kernel 19). Its kernels need no per-token preparation (they read the bsums pairs and the scales straight
// from the Q8_K blocks).
struct NoGroupPrep {};
template <int C, class P>
G3N_KQ_TARGET void q6k_packed_ymm_x_tokens(const PackedQ6K* p, const BlockQ8_K* const* a, const NoGroupPrep*,
                                           int64_t nb, float* out, int64_t ldo, const uint8_t* pf_end) {
  packed_passes<C, true, P::kQ6KSplitHalves>([&]<int Cp, int H, bool kPf>(int h0, int t0, const uint8_t* pf) {
    q6k_packed_halves<Cp, H, kPf, P>(p, h0, a + t0, nb, out + t0 * ldo, ldo, pf);
  }, pf_end);
}
struct Q6KPackedYmmOps {
  using Group = NoGroupPrep;
  static void prep(const BlockQ8_K* const*, int, int64_t, Group*) {}
};

template <class P>
struct Q4KPackedYmmK {
  template <int C> static constexpr PackedKernelFn<PackedQ4K, Q8KGroupPrep> fn = q4k_packed_ymm_x_tokens<C, P>;
};
template <class P>
struct Q6KPackedYmmK {
  template <int C> static constexpr PackedKernelFn<PackedQ6K, NoGroupPrep> fn = q6k_packed_ymm_x_tokens<C, P>;
};

// Overlays the packed kernels on a 256-bit set with product P (AVX2, AVX-VNNI).
template <class P = Avx2PackedProduct>
inline void set_packed_kernels_ymm(KernelSet& k) {
  set_packed_kernels_of<Q4KPackedYmmK<P>, Q6KPackedYmmOps, Q6KPackedYmmK<P>>(k);
}

}  // namespace
}  // namespace g3n::vecdot
