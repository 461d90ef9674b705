// The K-quant drivers shared by the x86 kernel sets (vec_dot_avx2.cpp, vec_dot_avx512.cpp): the block
// loops of the decode dots, the per-row and per-token-group preparation of the prefill tiles, and the
// tile schedulers. What differs per instruction set is only the integer core (a block's exact int32
// partial sums, and the row x tokens tile kernel), passed in as a policy. Because the integer sums are
// exact and everything in float is this one code, every x86 set gives the same bits per value.
//
// Include once per kernel file, inside its __x86_64__ guard after <immintrin.h>, with G3N_KQ_TARGET
// defined as that file's target attribute: the drivers must carry the caller's target so that the
// policy's kernels inline into them. Everything is in an unnamed namespace (one copy per file).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <utility>

#include "kernels/avx2_reduce.h"
#include "kernels/vec_dot_impl.h"
#include "quant/blocks.h"

#ifndef G3N_KQ_TARGET
#error "define G3N_KQ_TARGET (the including file's target attribute) before including kquant_x86.h"
#endif

namespace g3n::vecdot {
namespace {

using namespace quant;

G3N_AVX2 inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

G3N_AVX2 inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// Two blocks' 8 int32 partials -> 4: two halves of block x's total, then two of block y's (exact). One
// more hadd finishes both totals; the paired-block dots share this reduction.
G3N_AVX2 inline __m128i pair_halves(__m256i x, __m256i y) {
  const __m256i h = _mm256_hadd_epi32(x, y);
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

G3N_AVX2 inline __m256i loadu(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
G3N_AVX2 inline __m128i loadu128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// Decode streams each weight matrix once, row after row. A software prefetch ~2.3 KB ahead of the block
// being read keeps more misses in flight than the hardware prefetcher alone: measured +8-13% GB/s for a
// Q4_K matvec over a DRAM-resident matrix on Zen 3, on 1 and 2 threads. Prefetches never fault.
constexpr int kPrefetchAhead = 2304;
G3N_AVX2 inline void prefetch_block(const void* p, int bytes) {
  const char* c = static_cast<const char*>(p) + kPrefetchAhead;
  for (int off = 0; off < bytes; off += 64) _mm_prefetch(c + off, _MM_HINT_T0);
}

// The 12 packed bytes of Q4_K/Q5_K scales -> 8 scale bytes then 8 min bytes (see k4_scale_min):
// groups 0-3 are the low 6 bits of words 0 (scales) and 1 (mins); groups 4-7 take their low nibbles
// from word 2 and their top 2 bits from the top bits of words 0 (scales) and 1 (mins).
inline void k4_unpack(const uint8_t* packed, uint32_t out[4]) {
  uint32_t s[3];
  std::memcpy(s, packed, 12);
  out[0] = s[0] & 0x3f3f3f3f;
  out[1] = (s[2] & 0x0f0f0f0f) | (((s[0] >> 6) & 0x03030303) << 4);
  out[2] = s[1] & 0x3f3f3f3f;
  out[3] = ((s[2] >> 4) & 0x0f0f0f0f) | (((s[1] >> 6) & 0x03030303) << 4);
}

// k4_unpack in SIMD: the 12 scale bytes as three words s0 s1 s2 -> [scales 0-3, scales 4-7, mins 0-3,
// mins 4-7]. Reads 16 bytes (the 4 after the scales are the block's first quants).
G3N_AVX2 inline __m128i k4_unpack_v(const uint8_t* packed) {
  const __m128i x = loadu128(packed);
  const __m128i a = _mm_shuffle_epi32(x, _MM_SHUFFLE(2, 1, 2, 0));  // s0 s2 s1 s2
  const __m128i b = _mm_shuffle_epi32(x, _MM_SHUFFLE(1, 1, 0, 0));  // s0 s0 s1 s1
  const __m128i low = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)),
                                    _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  const __m128i top = _mm_and_si128(_mm_srli_epi32(b, 6), _mm_setr_epi32(0, 0x03030303, 0, 0x03030303));
  return _mm_or_si128(low, _mm_slli_epi32(top, 4));
}

// Min term of Q4_K/Q5_K: sum_j mins[j] * (bsums[2j] + bsums[2j+1]) as 4 int32 partials; mins_scales holds
// the 8 scales then the 8 mins as int16.
G3N_AVX2 inline __m128i k4_min_dot(__m256i mins_scales, const int16_t* bsums) {
  const __m128i pair = _mm_hadd_epi16(loadu128(bsums), loadu128(bsums + 8));
  return _mm_madd_epi16(_mm256_extracti128_si256(mins_scales, 1), pair);
}

// ---- decode dots -----------------------------------------------------------------------------------
// Sums::q45k<WBlock, kFive>(w, a, sumi, mins): one Q4_K/Q5_K block's 8 int32 partials of the scaled
// products and 4 of the min term; Sums::q6k(w, a): one Q6_K block's 8 int32 partials (offset included).

// Q4_K / Q5_K: each block's products and min term are summed exactly in int32, then enter one f32
// accumulator as two fmas per block (scale, then min). The prefill kernel applies the same fmas in the
// same order per token, so both give identical bits. Blocks go in pairs so that one horizontal
// reduction serves both blocks' two sums.
template <class WBlock, bool kFive, class Sums>
G3N_KQ_TARGET float dot_q45_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const WBlock*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  const int64_t nb = n / kQK_K;
  __m128 acc = _mm_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    prefetch_block(w + b, 2 * sizeof(WBlock));
    __m256i s0, s1;
    __m128i m0, m1;
    Sums::template q45k<WBlock, kFive>(w[b], a[b], s0, m0);
    Sums::template q45k<WBlock, kFive>(w[b + 1], a[b + 1], s1, m1);
    const __m128 f = _mm_cvtepi32_ps(_mm_hadd_epi32(pair_halves(s0, s1), _mm_hadd_epi32(m0, m1)));  // S0 S1 M0 M1
    acc = _mm_fmadd_ss(_mm_set_ss(a[b].d * h2f(w[b].d)), f, acc);
    acc = _mm_fmadd_ss(_mm_set_ss(-(a[b].d * h2f(w[b].dmin))), _mm_movehl_ps(f, f), acc);
    acc = _mm_fmadd_ss(_mm_set_ss(a[b + 1].d * h2f(w[b + 1].d)), _mm_movehdup_ps(f), acc);
    acc = _mm_fmadd_ss(_mm_set_ss(-(a[b + 1].d * h2f(w[b + 1].dmin))), _mm_shuffle_ps(f, f, 3), acc);
  }
  if (b < nb) {
    prefetch_block(w + b, sizeof(WBlock));
    __m256i s0;
    __m128i m0;
    Sums::template q45k<WBlock, kFive>(w[b], a[b], s0, m0);
    const __m128i msum = _mm_add_epi32(m0, _mm_unpackhi_epi64(m0, m0));
    const int min_total = _mm_cvtsi128_si32(_mm_add_epi32(msum, _mm_shuffle_epi32(msum, 1)));
    acc = _mm_fmadd_ss(_mm_set_ss(a[b].d * h2f(w[b].d)), _mm_cvtsi32_ss(_mm_setzero_ps(), hsum_i32(s0)), acc);
    acc = _mm_fmadd_ss(_mm_set_ss(-(a[b].d * h2f(w[b].dmin))), _mm_cvtsi32_ss(_mm_setzero_ps(), min_total), acc);
  }
  return _mm_cvtss_f32(acc);
}

// Q6_K: one exact int32 per block, one fma per block in block order: what the Q6_K prefill kernel
// repeats per token. Blocks go in pairs sharing one horizontal reduction.
template <class Sums>
G3N_KQ_TARGET float dot_q6_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ6_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  const int64_t nb = n / kQK_K;
  __m128 acc = _mm_setzero_ps();
  int64_t b = 0;
  for (; b + 2 <= nb; b += 2) {
    prefetch_block(w + b, 2 * sizeof(BlockQ6_K));
    const __m128i t = pair_halves(Sums::q6k(w[b], a[b]), Sums::q6k(w[b + 1], a[b + 1]));
    const __m128 f = _mm_cvtepi32_ps(_mm_hadd_epi32(t, t));  // S0 S1 S0 S1
    acc = _mm_fmadd_ss(_mm_set_ss(a[b].d * h2f(w[b].d)), f, acc);
    acc = _mm_fmadd_ss(_mm_set_ss(a[b + 1].d * h2f(w[b + 1].d)), _mm_movehdup_ps(f), acc);
  }
  if (b < nb) {
    prefetch_block(w + b, sizeof(BlockQ6_K));
    const __m256i sumi = Sums::q6k(w[b], a[b]);
    acc = _mm_fmadd_ss(_mm_set_ss(a[b].d * h2f(w[b].d)), _mm_cvtsi32_ss(_mm_setzero_ps(), hsum_i32(sumi)), acc);
  }
  return _mm_cvtss_f32(acc);
}

// ---- prefill tiles: preparation -----------------------------------------------------------------------
// Q4_K and Q5_K prefill: one weight row x up to 8 tokens per kernel call, tokens in the lanes of the float
// accumulator. The 6-bit scales and mins of the rows are unpacked once per call (not once per token
// group), and each token group's min-term inputs are laid out so one madd covers 8 tokens. Measured on
// Zen 3 (L1-resident, 1 thread): 12 cycles per 256-element row-token pair, against 18-21 for a 2x6
// register tile that decoded the scales inside the loop (replaced).
struct Q4KRowPrep {  // one (row, block)
  int16_t sc[8], m[8];
  float d, ndmin;    // h2f(d), -h2f(dmin)
};
struct Q8KGroupPrep {  // one block of 8 tokens
  int16_t pair[4][8][2];  // [j/2][token][j%2]: sum of the 32 activations of group j
  float d[8];
};

// kPrefetch: stream the rows ahead as decode does (where rows are unpacked one at a time between tiles).
template <class WBlock, bool kPrefetch = false>  // Q4_K and Q5_K share the d, dmin, 12-byte scales header
G3N_AVX2 void prep_q4k_rows(const uint8_t* w, uint64_t ws, int64_t nr, int64_t nb, Q4KRowPrep* out) {
  for (int64_t r = 0; r < nr; ++r) {
    const auto* blk = reinterpret_cast<const WBlock*>(w + uint64_t(r) * ws);
    for (int64_t b = 0; b < nb; ++b) {
      if constexpr (kPrefetch) prefetch_block(blk + b, sizeof(WBlock));
      uint32_t u[4];
      k4_unpack(blk[b].scales, u);
      const __m256i ms = _mm256_cvtepu8_epi16(_mm_set_epi32(int(u[3]), int(u[2]), int(u[1]), int(u[0])));
      Q4KRowPrep& p = out[r * nb + b];
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.sc), ms);  // sc then m, adjacent
      p.d = h2f(blk[b].d);
      p.ndmin = -h2f(blk[b].dmin);
    }
  }
}

G3N_AVX2 void prep_q8k_group(const BlockQ8_K* const* a, int c, int64_t nb, Q8KGroupPrep* out) {
  for (int64_t b = 0; b < nb; ++b) {
    Q8KGroupPrep& g = out[b];
    for (int t = 0; t < 8; ++t) {
      if (t >= c) {
        g.d[t] = 0.0f;
        for (int k = 0; k < 4; ++k) g.pair[k][t][0] = g.pair[k][t][1] = 0;
        continue;
      }
      g.d[t] = a[t][b].d;
      // Adjacent 16-sums -> the 8 group sums; int32 k of the result holds groups 2k and 2k+1.
      const __m128i pair = _mm_hadd_epi16(loadu128(a[t][b].bsums), loadu128(a[t][b].bsums + 8));
      alignas(16) int32_t v[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(v), pair);
      for (int k = 0; k < 4; ++k) std::memcpy(g.pair[k][t], &v[k], 4);
    }
  }
}

// Eight vectors of 8 int32 -> one vector of their 8 totals (exact).
G3N_AVX2 inline __m256i hsum_8x8(const __m256i* s) {
  const __m256i h01 = _mm256_hadd_epi32(s[0], s[1]), h23 = _mm256_hadd_epi32(s[2], s[3]);
  const __m256i h45 = _mm256_hadd_epi32(s[4], s[5]), h67 = _mm256_hadd_epi32(s[6], s[7]);
  const __m256i x = _mm256_hadd_epi32(h01, h23), y = _mm256_hadd_epi32(h45, h67);
  return _mm256_add_epi32(_mm256_permute2x128_si256(x, y, 0x20), _mm256_permute2x128_si256(x, y, 0x31));
}

// The float tail of a Q4_K/Q5_K row x tokens block, after its 8 tokens' integer totals: the min term from
// the group prep, then the same two fmas per block as dot_q45_k.
G3N_AVX2 inline __m256 q4k_block_close(__m256 acc, __m256i isum, const Q4KRowPrep& p, const Q8KGroupPrep& g) {
  __m256i msum = _mm256_setzero_si256();
  for (int k = 0; k < 4; ++k) {
    int32_t mm;
    std::memcpy(&mm, p.m + 2 * k, 4);  // mins 2k, 2k+1 as one int16 pair
    msum = _mm256_add_epi32(msum, _mm256_madd_epi16(_mm256_set1_epi32(mm), loadu(g.pair[k])));
  }
  const __m256 da = _mm256_loadu_ps(g.d);
  acc = _mm256_fmadd_ps(_mm256_mul_ps(da, _mm256_set1_ps(p.d)), _mm256_cvtepi32_ps(isum), acc);
  return _mm256_fmadd_ps(_mm256_mul_ps(da, _mm256_set1_ps(p.ndmin)), _mm256_cvtepi32_ps(msum), acc);
}

// The 8 token lanes of a finished accumulator -> out[t * ldo], t < C.
template <int C>
G3N_AVX2 inline void store_tokens(__m256 acc, float* out, int64_t ldo) {
  alignas(32) float v[8];
  _mm256_store_ps(v, acc);
  for (int t = 0; t < C; ++t) out[t * ldo] = v[t];
}

// Q6_K prefill: one row x up to 8 tokens, as for Q4_K. Per (row, block) the 16 scales are widened to
// int16 once. The -32 offset enters each token's int32 sum as in dot_q6_k.
struct Q6KRowPrep {
  int16_t sc[16];
  float d;
};

// The float tail of a Q6_K row x tokens block, after its 8 tokens' integer totals (ad: the block's 8
// activation scales): the one fma per block of dot_q6_k.
G3N_AVX2 inline __m256 q6k_block_close(__m256 acc, __m256i isum, const Q6KRowPrep& p, const float* ad) {
  const __m256 da = _mm256_loadu_ps(ad);
  return _mm256_fmadd_ps(_mm256_mul_ps(da, _mm256_set1_ps(p.d)), _mm256_cvtepi32_ps(isum), acc);
}

template <bool kPrefetch = false>  // as prep_q4k_rows
G3N_AVX2 void prep_q6k_rows(const uint8_t* w, uint64_t ws, int64_t nr, int64_t nb, Q6KRowPrep* out) {
  for (int64_t r = 0; r < nr; ++r) {
    const auto* blk = reinterpret_cast<const BlockQ6_K*>(w + uint64_t(r) * ws);
    for (int64_t b = 0; b < nb; ++b) {
      if constexpr (kPrefetch) prefetch_block(blk + b, sizeof(BlockQ6_K));
      Q6KRowPrep& p = out[r * nb + b];
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.sc), _mm256_cvtepi8_epi16(loadu128(blk[b].scales)));
      p.d = h2f(blk[b].d);
    }
  }
}

template <class B>
inline const B* block_row(const uint8_t* base, uint64_t stride, int64_t i) {
  return reinterpret_cast<const B*>(base + uint64_t(i) * stride);
}

// ---- prefill tiles: schedulers ------------------------------------------------------------------------
// Rows::q4k<WBlock, kFive>(c): the row x c-tokens kernel (c = 1..8), signature of Q4KRowFn below;
// Rows::q6k(c) likewise. `need` (optional): need[r * ldn + t0 / 8] == 0 skips row r for the token group
// starting at t0 (its outputs are left untouched).
template <class WBlock>
using Q4KRowFn = void (*)(const WBlock*, const Q4KRowPrep*, const BlockQ8_K* const*, const Q8KGroupPrep*, int64_t,
                          float*, int64_t);
using Q6KRowFn = void (*)(const BlockQ6_K*, const Q6KRowPrep*, const BlockQ8_K* const*, const float*, int64_t, float*,
                          int64_t);

// Rows from a kernel family K that names its row kernels as variable templates:
// K::q4k<C, WBlock, kFive> and K::q6k<C> (C = 1..8 tokens).
template <class K>
struct RowTables {
  template <class WBlock, bool kFive, size_t... I>
  static constexpr std::array<Q4KRowFn<WBlock>, 8> q4k_table(std::index_sequence<I...>) {
    return {K::template q4k<int(I) + 1, WBlock, kFive>...};
  }
  template <size_t... I>
  static constexpr std::array<Q6KRowFn, 8> q6k_table(std::index_sequence<I...>) {
    return {K::template q6k<int(I) + 1>...};
  }
  template <class WBlock, bool kFive>
  static Q4KRowFn<WBlock> q4k(int c) {
    static constexpr auto table = q4k_table<WBlock, kFive>(std::make_index_sequence<8>{});
    return table[size_t(c - 1)];
  }
  static Q6KRowFn q6k(int c) {
    static constexpr auto table = q6k_table(std::make_index_sequence<8>{});
    return table[size_t(c - 1)];
  }
};

template <class WBlock, bool kFive, class Sums, class Rows>
G3N_KQ_TARGET void gemm_q4k(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt,
                            int64_t n, float* out, int64_t ldo, const uint8_t* need, int64_t ldn) {
  const int64_t nb = n / kQK_K;
  if (nb == 0) {
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t r = 0; r < nr; ++r)
        if (!need || need[r * ldn + t / 8]) out[t * ldo + r] = 0.0f;
    return;
  }
  // Scratch on the stack: up to 48 KiB of row preps per chunk, and one token group's preps.
  constexpr int64_t kRowPreps = (48 << 10) / sizeof(Q4KRowPrep);
  Q4KRowPrep rows[kRowPreps];
  constexpr int64_t kGroupBlocks = 64;  // n up to 16384 in one pass; longer rows loop below
  Q8KGroupPrep group[kGroupBlocks];
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(act);
  if (nb > kGroupBlocks || nb > kRowPreps) {
    // Rows longer than the scratch (never in Gemma 3n): the per-pair dot, same bits.
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t r = 0; r < nr; ++r)
        if (!need || need[r * ldn + t / 8])
          out[t * ldo + r] = dot_q45_k<WBlock, kFive, Sums>(wb + uint64_t(r) * ws, ab + uint64_t(t) * as, n);
    return;
  }
  if (nt <= 8) {
    // One token group (a verify pass, a short prompt): rows are unpacked one at a time with the decode
    // kernel's prefetch, so the stream of the next rows overlaps this row's tiles. Unpacking a chunk of
    // rows first (below) is a pure memory stream while no tile runs: verifying 5 rows then cost a decode
    // step's streaming time plus the tiles' compute time.
    const BlockQ8_K* a[8];
    for (int t = 0; t < 8; ++t) a[t] = block_row<BlockQ8_K>(ab, as, t < nt ? t : 0);
    prep_q8k_group(a, int(nt), nb, group);
    const Q4KRowFn<WBlock> kernel = Rows::template q4k<WBlock, kFive>(int(nt));
    for (int64_t r = 0; r < nr; ++r) {
      const uint8_t* row = wb + uint64_t(r) * ws;
      prep_q4k_rows<WBlock, true>(row, ws, 1, nb, rows);
      if (!need || need[r * ldn]) kernel(reinterpret_cast<const WBlock*>(row), rows, a, group, nb, out + r, ldo);
    }
    return;
  }
  const int64_t chunk = kRowPreps / nb;
  for (int64_t r0 = 0; r0 < nr; r0 += chunk) {
    const int64_t rc = std::min(chunk, nr - r0);
    prep_q4k_rows<WBlock>(wb + uint64_t(r0) * ws, ws, rc, nb, rows);
    for (int64_t t0 = 0; t0 < nt; t0 += 8) {
      const int c = int(std::min<int64_t>(8, nt - t0));
      const BlockQ8_K* a[8];
      for (int t = 0; t < 8; ++t)  // padding lanes point at a real row; their results are dropped
        a[t] = block_row<BlockQ8_K>(ab, as, t0 + (t < c ? t : 0));
      prep_q8k_group(a, c, nb, group);
      const Q4KRowFn<WBlock> kernel = Rows::template q4k<WBlock, kFive>(c);
      for (int64_t r = 0; r < rc; ++r)
        if (!need || need[(r0 + r) * ldn + t0 / 8])
          kernel(block_row<WBlock>(wb, ws, r0 + r), rows + r * nb, a, group, nb, out + t0 * ldo + r0 + r, ldo);
    }
  }
}

template <class Sums, class Rows>
G3N_KQ_TARGET void gemm_q6k(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt,
                            int64_t n, float* out, int64_t ldo, const uint8_t* need, int64_t ldn) {
  const int64_t nb = n / kQK_K;
  constexpr int64_t kRowPreps = (48 << 10) / sizeof(Q6KRowPrep);
  constexpr int64_t kGroupBlocks = 64;
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(act);
  if (nb == 0 || nb > kGroupBlocks) {  // empty rows, or rows longer than the scratch: the per-pair dot
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t r = 0; r < nr; ++r)
        if (!need || need[r * ldn + t / 8])
          out[t * ldo + r] = dot_q6_k<Sums>(wb + uint64_t(r) * ws, ab + uint64_t(t) * as, n);
    return;
  }
  Q6KRowPrep rows[kRowPreps];
  float ad[8 * kGroupBlocks];  // [block][token] activation scales of one token group
  if (nt <= 8) {  // one token group: rows unpacked one at a time, streamed ahead (see gemm_q4k)
    const BlockQ8_K* a[8];
    for (int t = 0; t < 8; ++t) a[t] = block_row<BlockQ8_K>(ab, as, t < nt ? t : 0);
    for (int64_t b = 0; b < nb; ++b)
      for (int t = 0; t < 8; ++t) ad[8 * b + t] = t < nt ? a[t][b].d : 0.0f;
    const Q6KRowFn kernel = Rows::q6k(int(nt));
    for (int64_t r = 0; r < nr; ++r) {
      const uint8_t* row = wb + uint64_t(r) * ws;
      prep_q6k_rows<true>(row, ws, 1, nb, rows);
      if (!need || need[r * ldn]) kernel(reinterpret_cast<const BlockQ6_K*>(row), rows, a, ad, nb, out + r, ldo);
    }
    return;
  }
  const int64_t chunk = kRowPreps / nb;
  for (int64_t r0 = 0; r0 < nr; r0 += chunk) {
    const int64_t rc = std::min(chunk, nr - r0);
    prep_q6k_rows(wb + uint64_t(r0) * ws, ws, rc, nb, rows);
    for (int64_t t0 = 0; t0 < nt; t0 += 8) {
      const int c = int(std::min<int64_t>(8, nt - t0));
      const BlockQ8_K* a[8];
      for (int t = 0; t < 8; ++t) a[t] = block_row<BlockQ8_K>(ab, as, t0 + (t < c ? t : 0));
      for (int64_t b = 0; b < nb; ++b)
        for (int t = 0; t < 8; ++t) ad[8 * b + t] = t < c ? a[t][b].d : 0.0f;
      const Q6KRowFn kernel = Rows::q6k(c);
      for (int64_t r = 0; r < rc; ++r)
        if (!need || need[(r0 + r) * ldn + t0 / 8])
          kernel(block_row<BlockQ6_K>(wb, ws, r0 + r), rows + r * nb, a, ad, nb, out + t0 * ldo + r0 + r, ldo);
    }
  }
}

template <class WBlock, bool kFive, class Sums, class Rows>
G3N_KQ_TARGET void tile_q4k(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt,
                            int64_t n, float* out, int64_t ldo) {
  gemm_q4k<WBlock, kFive, Sums, Rows>(w, ws, nr, act, as, nt, n, out, ldo, nullptr, 0);
}
template <class Sums, class Rows>
G3N_KQ_TARGET void tile_q6k(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt,
                            int64_t n, float* out, int64_t ldo) {
  gemm_q6k<Sums, Rows>(w, ws, nr, act, as, nt, n, out, ldo, nullptr, 0);
}

// The K-quant entries of a kernel set: dots, tiles and masked tiles of Q4_K, Q5_K and Q6_K together (a
// tile is only valid beside the dot of its own set).
template <class Sums, class Rows>
void set_kquant_kernels(KernelSet& k) {
  const int q4 = type_index(GgmlType::Q4_K), q5 = type_index(GgmlType::Q5_K), q6 = type_index(GgmlType::Q6_K);
  k.dot[q4] = dot_q45_k<BlockQ4_K, false, Sums>;
  k.dot[q5] = dot_q45_k<BlockQ5_K, true, Sums>;
  k.dot[q6] = dot_q6_k<Sums>;
  k.tile[q4] = tile_q4k<BlockQ4_K, false, Sums, Rows>;
  k.tile[q5] = tile_q4k<BlockQ5_K, true, Sums, Rows>;
  k.tile[q6] = tile_q6k<Sums, Rows>;
  k.masked_tile[q4] = gemm_q4k<BlockQ4_K, false, Sums, Rows>;
  k.masked_tile[q5] = gemm_q4k<BlockQ5_K, true, Sums, Rows>;
  k.masked_tile[q6] = gemm_q6k<Sums, Rows>;
}

}  // namespace
}  // namespace g3n::vecdot
