// The 256-bit integer cores of the K-quant kernels (Q4_K/Q5_K/Q6_K decode block sums and the row x
// tokens prefill kernels), shared by the AVX2 set and the 256-bit AVX-512 VNNI set. They differ only in
// the multiply-add that scales a block's int16 pair products and adds them into int32 lanes, passed in as
// a policy M with one member:
//   static __m256i madd_add(__m256i acc, __m256i pairs, __m256i scales);  // acc + madd(pairs, scales)
// AVX2 spells it vpmaddwd + vpaddd, VNNI one vpdpwssd. Both are exact in int32, so the sums, and with
// kquant_x86.h's shared float code every result, are the same bits in both sets.
//
// Include after kquant_x86.h (same G3N_KQ_TARGET), inside the including file's x86 guard.
#pragma once
#include <immintrin.h>

#include "kernels/kquant_x86.h"

namespace g3n::vecdot {
namespace {

// int16 element k of a register, broadcast to all 16 lanes (both halves must hold the same 8 values).
G3N_KQ_TARGET inline __m256i bcast16(__m256i v, int k) {
  return _mm256_shuffle_epi8(v, _mm256_set1_epi16(short(0x0100 + 0x0202 * k)));
}

// One Q4_K / Q5_K block against its Q8_K block: the 8 int32 partials of the scaled products and the 4 of
// the min term (both exact).
template <class M, class WBlock, bool kFive>
G3N_KQ_TARGET inline void q45k_block_sums(const WBlock& w, const BlockQ8_K& a, __m256i& sumi, __m128i& mins) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  // 16 int16: scales 0..7 then mins 0..7.
  const __m256i ms = _mm256_cvtepu8_epi16(k4_unpack_v(w.scales));
  mins = k4_min_dot(ms, a.bsums);
  const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(ms));
  __m256i hb = _mm256_setzero_si256();
  if constexpr (kFive) hb = loadu(w.qh);
  __m256i s_lo = _mm256_setzero_si256(), s_hi = _mm256_setzero_si256();  // two chains: VNNI's latency
  for (int c = 0; c < 4; ++c) {
    const __m256i q = loadu(w.qs + 32 * c);
    __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
    if constexpr (kFive) {
      // Bit 2c (2c+1) of qh[l] is the fifth bit of value l of the low (high) group: move it to bit 4.
      const __m256i one = _mm256_set1_epi8(1);
      lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c), one), 4));
      hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * c + 1), one), 4));
    }
    const __m256i pl = _mm256_maddubs_epi16(lo, loadu(a.qs + 64 * c));
    const __m256i ph = _mm256_maddubs_epi16(hi, loadu(a.qs + 64 * c + 32));
    s_lo = M::madd_add(s_lo, pl, bcast16(scales, 2 * c));
    s_hi = M::madd_add(s_hi, ph, bcast16(scales, 2 * c + 1));
  }
  sumi = _mm256_add_epi32(s_lo, s_hi);
}

// One Q6_K block against its Q8_K block: 8 int32 partials of the exact block sum. Quants are used
// unsigned (0..63) in maddubs; the -32 offset is removed once per block as 32 * sum_g scale_g * bsum_g
// instead of per value.
template <class M>
G3N_KQ_TARGET inline __m256i q6k_block_sum(const BlockQ6_K& w, const BlockQ8_K& a) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i m03 = _mm256_set1_epi8(0x03), m0c = _mm256_set1_epi8(0x0C);
  const __m256i m30 = _mm256_set1_epi8(0x30), mc0 = _mm256_set1_epi8(char(0xC0));
  const __m256i sc16 = _mm256_cvtepi8_epi16(loadu128(w.scales));  // scales 0-7 | 8-15 as int16
  const __m256i offset = _mm256_madd_epi16(sc16, loadu(a.bsums));
  __m256i s_even = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));
  __m256i s_odd = _mm256_setzero_si256();
  for (int half = 0; half < 2; ++half) {
    // This half's 8 scales in both lanes; one shuffle then spreads scale g over the low lane and g+1
    // over the high one.
    // Two literal immediates: clang (the fuzz build) needs a constant expression there, not `half ? a : b`.
    const __m256i sch = half ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
    const __m256i ql0 = loadu(w.ql + 64 * half), ql1 = loadu(w.ql + 64 * half + 32);
    const __m256i qh = loadu(w.qh + 32 * half);
    const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m03), 4));
    const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m0c), 2));
    const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
    const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                       _mm256_srli_epi16(_mm256_and_si256(qh, mc0), 2));
    const int8_t* qa = a.qs + 128 * half;
    const __m256i qs[4] = {q0, q1, q2, q3};
    for (int k = 0; k < 4; ++k) {
      // Values 32k..32k+31 of this half: first 16 use scale 8*half+2k, next 16 scale 8*half+2k+1.
      const __m256i sc = _mm256_shuffle_epi8(sch, _mm256_setr_m128i(_mm_set1_epi16(short(0x0100 + 0x0202 * (2 * k))),
                                                                    _mm_set1_epi16(short(0x0100 + 0x0202 * (2 * k + 1)))));
      const __m256i p = _mm256_maddubs_epi16(qs[k], loadu(qa + 32 * k));
      if (k % 2) s_odd = M::madd_add(s_odd, p, sc);
      else s_even = M::madd_add(s_even, p, sc);
    }
  }
  return _mm256_add_epi32(s_even, s_odd);
}

// An empty asm that "modifies" each of the first C accumulators: without it GCC reassociates the
// integer sums of a fully unrolled block, computing all C*8 products first and spilling them (measured
// 10-30% slower).
template <int C>
G3N_KQ_TARGET inline void keep_in_registers(__m256i* v) {
  for (int t = 0; t < C; ++t) asm volatile("" : "+v"(v[t]));  // "v": any vector register the target has
}

template <class M, int C, class WBlock, bool kFive>
G3N_KQ_TARGET void q4k_row_x_tokens(const WBlock* w, const Q4KRowPrep* p, const BlockQ8_K* const* a,
                               const Q8KGroupPrep* g, int64_t nb, float* out, int64_t ldo) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i sumi[8];
    for (int t = 0; t < 8; ++t) sumi[t] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {  // 32-groups: low nibbles of chunk j/2, then high
      const __m256i v = loadu(w[b].qs + 32 * (j / 2));
      __m256i q = _mm256_and_si256(j % 2 ? _mm256_srli_epi16(v, 4) : v, m4);
      if constexpr (kFive) {  // bit j of qh[l] is the fifth bit of value l of 32-group j
        const __m256i h = _mm256_and_si256(_mm256_srli_epi16(loadu(w[b].qh), j), _mm256_set1_epi8(1));
        q = _mm256_or_si256(q, _mm256_slli_epi16(h, 4));
      }
      const __m256i sc = _mm256_set1_epi16(p[b].sc[j]);
      for (int t = 0; t < C; ++t)
        sumi[t] = M::madd_add(sumi[t], _mm256_maddubs_epi16(q, loadu(a[t][b].qs + 32 * j)), sc);
      keep_in_registers<C>(sumi);
    }
    acc = q4k_block_close(acc, hsum_8x8(sumi), p[b], g[b]);
  }
  store_tokens<C>(acc, out, ldo);
}


template <class M, int C>
G3N_KQ_TARGET void q6k_row_x_tokens(const BlockQ6_K* w, const Q6KRowPrep* p, const BlockQ8_K* const* a,
                               const float* ad, int64_t nb, float* out, int64_t ldo) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(0x03);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i sc16 = loadu(p[b].sc);
    __m256i sumi[8];
    for (int t = 0; t < 8; ++t) sumi[t] = _mm256_setzero_si256();
    for (int t = 0; t < C; ++t)
      sumi[t] = _mm256_sub_epi32(sumi[t], _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu(a[t][b].bsums)), 5));
    const __m256i lo8 = _mm256_permute2x128_si256(sc16, sc16, 0x00), hi8 = _mm256_permute2x128_si256(sc16, sc16, 0x11);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {  // 32-group k = 4*half + s: ql nibble s/2 of bytes 32*(s%2).., qh bits 2s
      const int half = k / 4, s = k % 4;
      const __m256i ql = loadu(w[b].ql + 64 * half + 32 * (s % 2));
      const __m256i qh = loadu(w[b].qh + 32 * half);
      const __m256i lo = _mm256_and_si256(s / 2 ? _mm256_srli_epi16(ql, 4) : ql, m4);
      const __m256i hi = _mm256_and_si256(s ? _mm256_srli_epi16(qh, 2 * s) : qh, m3);
      const __m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
      // Scales 2k (low 16 values) and 2k+1 (high 16), each broadcast over its 128-bit half.
      const int e0 = (2 * k) % 8, e1 = (2 * k + 1) % 8;
      const __m256i pick = _mm256_setr_epi8(
          char(2 * e0), char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1),
          char(2 * e0), char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1), char(2 * e0), char(2 * e0 + 1),
          char(2 * e1), char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1),
          char(2 * e1), char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1), char(2 * e1), char(2 * e1 + 1));
      const __m256i sc = _mm256_shuffle_epi8(k < 4 ? lo8 : hi8, pick);
      for (int t = 0; t < C; ++t)
        sumi[t] = M::madd_add(sumi[t], _mm256_maddubs_epi16(q, loadu(a[t][b].qs + 32 * k)), sc);
      keep_in_registers<C>(sumi);
    }
    acc = q6k_block_close(acc, hsum_8x8(sumi), p[b], ad + 8 * b);
  }
  store_tokens<C>(acc, out, ldo);
}

// ---- decode: several rows against one token -------------------------------------------------------------
// Four rows at a time (kRowsGroup): the token's activations are loaded once for the four, the 6-bit scales
// broadcast in-register per row, and the float close of the four rows is one vector fma per term in row
// lanes, in block order: per row exactly dot_q45_k's / dot_q6_k's operations, so the same bits. The group
// after this one is prefetched as one linear stream spread over the block loop (the rows are contiguous),
// which a per-row prefetch of the dot's kind does not do here: interleaving four rows with it fell to half
// the dot's speed from DRAM. Measured (Zen 4, one thread, Q4_K 2048 wide): from L2 27 against 20 GB/s for
// the dot, from DRAM 24 against 19 (docs/kernels.md).
constexpr int kRowsGroup = 4;

template <int R>
G3N_KQ_TARGET inline void prefetch_next_group(const uint8_t* w0, uint64_t ws, int64_t b, int64_t nb) {
  const int64_t span = (R * int64_t(ws) + nb - 1) / nb;
  const char* p = reinterpret_cast<const char*>(w0) + R * ws + b * span;
  for (int64_t off = 0; off < span; off += 64) _mm_prefetch(p + off, _MM_HINT_T0);
}

// Row lanes 0..R-1 of `acc` to out (R <= 4).
template <int R>
G3N_KQ_TARGET inline void store_rows(__m128 acc, float* out) {
  alignas(16) float o[4];
  _mm_store_ps(o, acc);
  for (int r = 0; r < R; ++r) out[r] = o[r];
}

// Four 8-lane int32 partial vectors -> their 4 totals (unused rows zero).
G3N_KQ_TARGET inline __m128i totals4(const __m256i* s) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// The block loop shared by the row kernels: R rows' float accumulators in the lanes of one register,
// block(b, acc) -> acc adds block b of every row, and the next group streams in meanwhile.
template <int R, class Block>
G3N_KQ_TARGET inline void rows_block_loop(const uint8_t* w0, uint64_t ws, int64_t nb, float* out, Block&& block) {
  static_assert(R >= 1 && R <= kRowsGroup);
  __m128 acc = _mm_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    prefetch_next_group<R>(w0, ws, b, nb);
    acc = block(b, acc);
  }
  store_rows<R>(acc, out);
}

template <class M, int R, class WBlock, bool kFive>
G3N_KQ_TARGET void q45k_rows(const uint8_t* w0, uint64_t ws, const BlockQ8_K* a, int64_t nb, float* out) {
  rows_block_loop<R>(w0, ws, nb, out, [&](int64_t b, __m128 acc) G3N_KQ_TARGET {
    __m256i s[kRowsGroup] = {};
    __m128i m[kRowsGroup] = {};
    uint16_t d[2 * kRowsGroup] = {};  // d of each row, then dmin of each row
    for (int r = 0; r < R; ++r) {
      const WBlock& w = block_row<WBlock>(w0, ws, r)[b];
      q45k_block_sums<M, WBlock, kFive>(w, a[b], s[r], m[r]);
      d[r] = w.d;
      d[kRowsGroup + r] = w.dmin;
    }
    const __m128i mins = _mm_hadd_epi32(_mm_hadd_epi32(m[0], m[1]), _mm_hadd_epi32(m[2], m[3]));
    const __m256 dd = _mm256_mul_ps(_mm256_set1_ps(a[b].d), _mm256_cvtph_ps(loadu128(d)));  // a.d*d | a.d*dmin
    acc = _mm_fmadd_ps(_mm256_castps256_ps128(dd), _mm_cvtepi32_ps(totals4(s)), acc);
    return _mm_fmadd_ps(_mm_xor_ps(_mm256_extractf128_ps(dd, 1), _mm_set1_ps(-0.0f)), _mm_cvtepi32_ps(mins), acc);
  });
}

template <class M, int R>
G3N_KQ_TARGET void q6k_rows(const uint8_t* w0, uint64_t ws, const BlockQ8_K* a, int64_t nb, float* out) {
  rows_block_loop<R>(w0, ws, nb, out, [&](int64_t b, __m128 acc) G3N_KQ_TARGET {
    __m256i s[kRowsGroup] = {};
    uint16_t d[kRowsGroup] = {};
    for (int r = 0; r < R; ++r) {
      const BlockQ6_K& w = block_row<BlockQ6_K>(w0, ws, r)[b];
      s[r] = q6k_block_sum<M>(w, a[b]);
      d[r] = w.d;
    }
    const __m128 dd = _mm_mul_ps(_mm_set1_ps(a[b].d), _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d))));
    return _mm_fmadd_ps(dd, _mm_cvtepi32_ps(totals4(s)), acc);
  });
}

// out[r] = dot(row r, act) for r < nr: groups of four rows, then the remainder.
template <class Kernel4, class Kernel3, class Kernel2, class Kernel1>
G3N_KQ_TARGET inline void rows_in_groups(const void* w, uint64_t ws, int64_t nr, const void* act, int64_t n, float* out,
                                         Kernel4 k4, Kernel3 k3, Kernel2 k2, Kernel1 k1) {
  const auto* w8 = static_cast<const uint8_t*>(w);
  const auto* a = static_cast<const BlockQ8_K*>(act);
  const int64_t nb = n / kQK_K;
  int64_t r = 0;
  for (; r + kRowsGroup <= nr; r += kRowsGroup) k4(w8 + uint64_t(r) * ws, ws, a, nb, out + r);
  switch (nr - r) {
    case 3: k3(w8 + uint64_t(r) * ws, ws, a, nb, out + r); break;
    case 2: k2(w8 + uint64_t(r) * ws, ws, a, nb, out + r); break;
    case 1: k1(w8 + uint64_t(r) * ws, ws, a, nb, out + r); break;
    default: break;
  }
}

template <class M, class WBlock, bool kFive>
G3N_KQ_TARGET void rows_q45k(const void* w, uint64_t ws, int64_t nr, const void* act, int64_t n, float* out) {
  rows_in_groups(w, ws, nr, act, n, out, q45k_rows<M, 4, WBlock, kFive>, q45k_rows<M, 3, WBlock, kFive>,
                 q45k_rows<M, 2, WBlock, kFive>, q45k_rows<M, 1, WBlock, kFive>);
}
template <class M>
G3N_KQ_TARGET void rows_q6k(const void* w, uint64_t ws, int64_t nr, const void* act, int64_t n, float* out) {
  rows_in_groups(w, ws, nr, act, n, out, q6k_rows<M, 4>, q6k_rows<M, 3>, q6k_rows<M, 2>, q6k_rows<M, 1>);
}

// The decode row kernels of a set whose integer cores are these (multiply-add M).
template <class M>
void set_decode_rows(KernelSet& k) {
  k.rows[type_index(GgmlType::Q4_K)] = rows_q45k<M, BlockQ4_K, false>;
  k.rows[type_index(GgmlType::Q5_K)] = rows_q45k<M, BlockQ5_K, true>;
  k.rows[type_index(GgmlType::Q6_K)] = rows_q6k<M>;
}

// The integer cores kquant_x86.h's dots and tile schedulers run, for one multiply-add M.
template <class M>
struct YmmSums {
  template <class WBlock, bool kFive>
  G3N_KQ_TARGET static void q45k(const WBlock& w, const BlockQ8_K& a, __m256i& sumi, __m128i& mins) {
    q45k_block_sums<M, WBlock, kFive>(w, a, sumi, mins);
  }
  G3N_KQ_TARGET static __m256i q6k(const BlockQ6_K& w, const BlockQ8_K& a) { return q6k_block_sum<M>(w, a); }
};
template <class M>
struct YmmKernels {
  template <int C, class WBlock, bool kFive>
  static constexpr Q4KRowFn<WBlock> q4k = q4k_row_x_tokens<M, C, WBlock, kFive>;
  template <int C>
  static constexpr Q6KRowFn q6k = q6k_row_x_tokens<M, C>;
};
template <class M>
using YmmRows = RowTables<YmmKernels<M>>;

}  // namespace
}  // namespace g3n::vecdot
