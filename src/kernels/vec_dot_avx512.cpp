// AVX-512 (F, BW, VL) + VNNI kernels for the K-quants, overlaid on the AVX2 set (vec_dot.cpp). Like the
// AVX2 file, each function carries its target attribute and runs only after the cpuid check.
//
// What changes against AVX2 is the integer core: two 32-value groups per 512-bit register, and VNNI's
// vpdpwssd (int16 pairs multiplied and added into int32 lanes) fusing the madd + add of the AVX2 kernels:
// 2 instructions per 64 values and token instead of 6. The int32 partials land in other lanes, but the
// block totals are exact integers either way (maddubs cannot saturate here: its pairs are at most
// 2*63*128), and everything after them is kquant_x86.h's float code, shared with AVX2. So this set gives
// the AVX2 set's bits for every value (tests/kernels_avx512_test.cpp): a model computes the same
// numbers on an AVX2 and an AVX-512 machine, and batched and one-token evaluation stay bit-identical.
#include "kernels/vec_dot_impl.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include "kernels/avx2_reduce.h"

// GCC 12's AVX-512 intrinsics pass an intentionally undefined vector (_mm512_undefined_epi32) as the
// unused merge source of unmasked operations, which -Wmaybe-uninitialized (and, for some, -Wuninitialized)
// reports at every use.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define G3N_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define G3N_KQ_TARGET G3N_AVX512
#include "kernels/kquant_x86.h"
#include "kernels/kquant_ymm.h"
#include "kernels/kquant_panel_zmm.h"
#include "kernels/kquant_packed_zmm.h"
#include "kernels/gemm_tiles_x86.h"

namespace g3n::vecdot {
namespace {

G3N_AVX512 inline __m512i loadu512(const void* p) { return _mm512_loadu_si512(p); }
G3N_AVX512 inline __m256i fold512(__m512i v) {
  return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}
// int16 lanes 0-15 = v[i], 16-31 = v[i + 1] (v: 16 int16 in the low 256 bits).
G3N_AVX512 inline __m512i pair_bcast16(__m512i v, int i) {
  const __m512i idx = _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_set1_epi16(short(i))),
                                         _mm256_set1_epi16(short(i + 1)), 1);
  return _mm512_permutexvar_epi16(idx, v);
}
// int16 lanes 8j..8j+7 = v[i + j], j < 4 (the four 16-value groups of a 64-value Q6_K pair).
G3N_AVX512 inline __m512i quad_bcast16(__m512i v, int i) {
  const auto r = [](int x) { return 0x0001000100010001LL * x; };  // x in each int16 of a 64-bit lane
  const __m512i idx = _mm512_set_epi64(r(i + 3), r(i + 3), r(i + 2), r(i + 2), r(i + 1), r(i + 1), r(i), r(i));
  return _mm512_permutexvar_epi16(idx, v);
}

// The 32 quants of 32-groups 2c (low nibbles of chunk c) and 2c+1 (high nibbles), as 64 bytes; for Q5_K
// with their fifth bits (bit 2c, 2c+1 of qh).
template <bool kFive>
G3N_AVX512 inline __m512i q45k_pair(const uint8_t* qs, const uint8_t* qh, int c) {
  const __m512i nib = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0);
  __m512i q = _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i64x4(loadu(qs + 32 * c)), nib),
                               _mm512_set1_epi8(0x0F));
  if constexpr (kFive) {
    const __m512i bit = _mm512_set_epi64(2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c, 2 * c, 2 * c, 2 * c);
    const __m512i h = _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i64x4(loadu(qh)), bit), _mm512_set1_epi8(1));
    q = _mm512_or_si512(q, _mm512_slli_epi16(h, 4));
  }
  return q;
}

// Q6_K's 64 values 32k..32k+63 of half h (k = 0: groups 0, 1; k = 2: groups 2, 3) as 6-bit unsigned bytes:
// the low nibbles of ql's 64 bytes (k = 0) or their high nibbles (k = 2), with qh's bit pairs 0/2 (k = 0)
// or 4/6 (k = 2) on top.
G3N_AVX512 inline __m512i q6k_pair(const uint8_t* ql, const uint8_t* qh, int k) {
  const __m512i v = loadu512(ql);
  const __m512i lo = _mm512_and_si512(k ? _mm512_srli_epi16(v, 4) : v, _mm512_set1_epi8(0x0F));
  const __m512i sh = k ? _mm512_set_epi64(6, 6, 6, 6, 4, 4, 4, 4) : _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
  const __m512i hi = _mm512_and_si512(_mm512_srlv_epi64(_mm512_broadcast_i64x4(loadu(qh)), sh), _mm512_set1_epi8(0x03));
  return _mm512_or_si512(lo, _mm512_slli_epi16(hi, 4));
}

struct Avx512Sums {
  template <class WBlock, bool kFive>
  G3N_AVX512 static void q45k(const WBlock& w, const BlockQ8_K& a, __m256i& sumi, __m128i& mins) {
    const __m256i ms = _mm256_cvtepu8_epi16(k4_unpack_v(w.scales));  // scales 0-7, mins 0-7 (int16)
    mins = k4_min_dot(ms, a.bsums);
    const __m512i ms512 = _mm512_zextsi256_si512(ms);
    const uint8_t* qh = nullptr;
    if constexpr (kFive) qh = w.qh;
    __m512i acc = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      const __m512i p = _mm512_maddubs_epi16(q45k_pair<kFive>(w.qs, qh, c), loadu512(a.qs + 64 * c));
      acc = _mm512_dpwssd_epi32(acc, p, pair_bcast16(ms512, 2 * c));
    }
    sumi = fold512(acc);
  }
  G3N_AVX512 static __m256i q6k(const BlockQ6_K& w, const BlockQ8_K& a) {
    const __m256i sc16 = _mm256_cvtepi8_epi16(loadu128(w.scales));
    const __m512i sc512 = _mm512_zextsi256_si512(sc16);
    __m512i acc = _mm512_setzero_si512();
    for (int half = 0; half < 2; ++half)
      for (int k = 0; k < 4; k += 2) {
        const __m512i p = _mm512_maddubs_epi16(q6k_pair(w.ql + 64 * half, w.qh + 32 * half, k),
                                               loadu512(a.qs + 128 * half + 32 * k));
        acc = _mm512_dpwssd_epi32(acc, p, quad_bcast16(sc512, 8 * half + 2 * k));
      }
    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu(a.bsums)), 5);
    return _mm256_sub_epi32(fold512(acc), offset);
  }
};

// See keep_in_registers in kquant_ymm.h: stops GCC from computing all products of a block first.
template <int C>
G3N_AVX512 inline void keep_zmm(__m512i* v) {
  for (int t = 0; t < C; ++t) asm volatile("" : "+v"(v[t]));
}

// Eight 512-bit accumulators -> their 8 exact totals.
G3N_AVX512 inline __m256i totals(const __m512i* s) {
  __m256i f[8];
  for (int t = 0; t < 8; ++t) f[t] = fold512(s[t]);
  return hsum_8x8(f);
}

template <int C, class WBlock, bool kFive>
G3N_AVX512 void q4k_row_x_tokens(const WBlock* w, const Q4KRowPrep* p, const BlockQ8_K* const* a,
                                 const Q8KGroupPrep* g, int64_t nb, float* out, int64_t ldo) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m512i ms = _mm512_zextsi256_si512(loadu(p[b].sc));
    const uint8_t* qh = nullptr;
    if constexpr (kFive) qh = w[b].qh;
    __m512i sumi[8];
    for (int t = 0; t < 8; ++t) sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int c = 0; c < 4; ++c) {
      const __m512i q = q45k_pair<kFive>(w[b].qs, qh, c);
      const __m512i sc = pair_bcast16(ms, 2 * c);
      for (int t = 0; t < C; ++t)
        sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_maddubs_epi16(q, loadu512(a[t][b].qs + 64 * c)), sc);
      keep_zmm<C>(sumi);
    }
    acc = q4k_block_close(acc, totals(sumi), p[b], g[b]);
  }
  store_tokens<C>(acc, out, ldo);
}

template <int C>
G3N_AVX512 void q6k_row_x_tokens(const BlockQ6_K* w, const Q6KRowPrep* p, const BlockQ8_K* const* a,
                                 const float* ad, int64_t nb, float* out, int64_t ldo) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const __m256i sc16 = loadu(p[b].sc);
    const __m512i sc512 = _mm512_zextsi256_si512(sc16);
    __m512i sumi[8];
    for (int t = 0; t < 8; ++t) sumi[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {  // 64-value pair i: half i/2, groups 2(i%2)..2(i%2)+1 of it
      const int half = i / 2, k = 2 * (i % 2);
      const __m512i q = q6k_pair(w[b].ql + 64 * half, w[b].qh + 32 * half, k);
      const __m512i sc = quad_bcast16(sc512, 8 * half + 2 * k);
      for (int t = 0; t < C; ++t)
        sumi[t] = _mm512_dpwssd_epi32(sumi[t], _mm512_maddubs_epi16(q, loadu512(a[t][b].qs + 128 * half + 32 * k)), sc);
      keep_zmm<C>(sumi);
    }
    __m256i tot[8];
    for (int t = 0; t < 8; ++t) tot[t] = fold512(sumi[t]);
    for (int t = 0; t < C; ++t)
      tot[t] = _mm256_sub_epi32(tot[t], _mm256_slli_epi32(_mm256_madd_epi16(sc16, loadu(a[t][b].bsums)), 5));
    acc = q6k_block_close(acc, hsum_8x8(tot), p[b], ad + 8 * b);
  }
  store_tokens<C>(acc, out, ldo);
}

struct Avx512Kernels {
  template <int C, class WBlock, bool kFive>
  static constexpr Q4KRowFn<WBlock> q4k = q4k_row_x_tokens<C, WBlock, kFive>;
  template <int C>
  static constexpr Q6KRowFn q6k = q6k_row_x_tokens<C>;
};
using Avx512Rows = RowTables<Avx512Kernels>;

// The 256-bit form: the AVX2 set's cores (kquant_ymm.h) with vpdpwssd on ymm (AVX-512 VL + VNNI) as their
// multiply-add. Where the CPU executes 512-bit operations as two 256-bit halves (AMD Zen 4), the zmm
// kernels above gain nothing per instruction and pay for their extra shuffles; these are faster there
// (docs/kernels.md).
struct Vnni256Madd {
  G3N_AVX512 static __m256i madd_add(__m256i acc, __m256i pairs, __m256i scales) {
    return _mm256_dpwssd_epi32(acc, pairs, scales);
  }
};

// Float weights (F32, F16, BF16) on zmm: the AVX2 tile's four 8-lane accumulators per (row, token) held as two
// zmm, lanes 0-7 / 8-15 = accumulators 0 / 1 and 2 / 3, so each lane takes exactly the fmas it takes there, in
// the same order, and the 8-value tail, the reduction and the scalar tail are the AVX2 code's: the bits of the
// set's dots. A 32-value step is then 2 weight and 2 activation loads and 2 fmas per (row, token) where the
// ymm tile needs 4 of each; 3 rows x 4 tokens per tile: 24 accumulators, 6 weight and one token's 2
// activation registers. Loads are the bound (the Intel Xeon with AMX sustains ~1.2 zmm loads a cycle: 4.4 G
// fmas with a memory operand a second against 7.2 G on registers), so each activation is loaded once into a
// register, not folded into every row's fma (BF16, 48 rows x 24 tokens x 2048 in L2, 1 thread: 2 x 4 with
// folded loads 31.5 GMAC/s, 3 x 4 in registers 48-50; E2B's narrowed matrices, 256 tokens: 472 -> 351 ms).
// A verify pass's call (TileArgs::streaming) fetches the next tile's rows as far along as this one's: rows of
// BF16 are 4 KB, a page each, where the hardware prefetcher stops (E4B's BF16 matrices, 2 threads, 5 tokens
// 9.0-9.8 -> 7.5-8.3 ms, one token 7.7-8.6).
struct ZF32 {
  static constexpr int kBytes = 4;
  G3N_AVX512 static __m512 load16(const uint8_t* x, int64_t i) { return _mm512_loadu_ps(reinterpret_cast<const float*>(x) + i); }
  G3N_AVX512 static __m256 load8(const uint8_t* x, int64_t i) { return _mm256_loadu_ps(reinterpret_cast<const float*>(x) + i); }
  static float get(const uint8_t* x, int64_t i) { return reinterpret_cast<const float*>(x)[i]; }
};
struct ZF16 {
  static constexpr int kBytes = 2;
  G3N_AVX512 static __m512 load16(const uint8_t* x, int64_t i) {
    return _mm512_cvtph_ps(loadu(reinterpret_cast<const uint16_t*>(x) + i));
  }
  G3N_AVX512 static __m256 load8(const uint8_t* x, int64_t i) {
    return _mm256_cvtph_ps(loadu128(reinterpret_cast<const uint16_t*>(x) + i));
  }
  G3N_AVX512 static float get(const uint8_t* x, int64_t i) { return h2f(reinterpret_cast<const uint16_t*>(x)[i]); }
};
struct ZBF16 {
  static constexpr int kBytes = 2;
  G3N_AVX512 static __m512 load16(const uint8_t* x, int64_t i) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(loadu(reinterpret_cast<const uint16_t*>(x) + i)), 16));
  }
  G3N_AVX512 static __m256 load8(const uint8_t* x, int64_t i) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(loadu128(reinterpret_cast<const uint16_t*>(x) + i)), 16));
  }
  static float get(const uint8_t* x, int64_t i) {
    const uint32_t bits = uint32_t(reinterpret_cast<const uint16_t*>(x)[i]) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

template <class Load>
struct TileFloatZmm {
  static constexpr int kR = 3, kC = 4;
  template <int R, int C>
  G3N_AVX512 static void tile(const TileArgs& g) {
    const float* y[C];
    for (int t = 0; t < C; ++t) y[t] = reinterpret_cast<const float*>(g.act + uint64_t(t) * g.as);
    __m512 lo[R][C], hi[R][C];
    for (int r = 0; r < R; ++r)
      for (int t = 0; t < C; ++t) lo[r][t] = hi[r][t] = _mm512_setzero_ps();
    const int64_t n = g.n;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
      if (C > 1 && g.streaming)  // the next tile's rows, as far along: see the struct's comment
        for (int r = 0; r < R; ++r)
          for (int l = 0; l < Load::kBytes / 2; ++l)
            _mm_prefetch(reinterpret_cast<const char*>(g.w + uint64_t(R + r) * g.ws + uint64_t(i) * Load::kBytes + 64 * l), _MM_HINT_T0);
      __m512 w0[R], w1[R];
      for (int r = 0; r < R; ++r) w0[r] = Load::load16(g.w + uint64_t(r) * g.ws, i), w1[r] = Load::load16(g.w + uint64_t(r) * g.ws, i + 16);
      for (int t = 0; t < C; ++t) {
        __m512 y0 = _mm512_loadu_ps(y[t] + i), y1 = _mm512_loadu_ps(y[t] + i + 16);
        __asm__("" : "+v"(y0), "+v"(y1));  // loaded once into registers, not folded into each row's fma
        for (int r = 0; r < R; ++r) {
          lo[r][t] = _mm512_fmadd_ps(w0[r], y0, lo[r][t]);
          hi[r][t] = _mm512_fmadd_ps(w1[r], y1, hi[r][t]);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const uint8_t* x = g.w + uint64_t(r) * g.ws;
      for (int t = 0; t < C; ++t) {
        __m256 s0 = _mm512_castps512_ps256(lo[r][t]);
        const __m256 s1 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(lo[r][t]), 1));
        const __m256 s2 = _mm512_castps512_ps256(hi[r][t]);
        const __m256 s3 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(hi[r][t]), 1));
        int64_t j = i;
        for (; j + 8 <= n; j += 8) s0 = _mm256_fmadd_ps(Load::load8(x, j), _mm256_loadu_ps(y[t] + j), s0);
        float sum = avx2::hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
        for (; j < n; ++j) sum = avx2::mul_add1(Load::get(x, j), y[t][j], sum);
        g.out[t * g.ldo + r] = sum;
      }
    }
  }
};

// Overlays the zmm float tiles (with the base set's dots, which the overlay moves with them).
void set_float_tiles_zmm(KernelSet& k) {
  const KernelSet& avx2 = *avx2_kernels();
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16}) take_type_kernels(k, avx2, t);
  k.tile[type_index(GgmlType::F32)] = gemm_tiles<TileFloatZmm<ZF32>>;
  k.tile[type_index(GgmlType::F16)] = gemm_tiles<TileFloatZmm<ZF16>>;
  k.tile[type_index(GgmlType::BF16)] = gemm_tiles<TileFloatZmm<ZBF16>>;
}

KernelSet make_avx512() {
  KernelSet k;
  set_kquant_kernels<Avx512Sums, Avx512Rows>(k);
  set_panel_kernels<Avx512Sums, Avx512Rows>(k);
  set_decode_rows<Vnni256Madd>(k);  // the ymm decode rows with vpdpwssd; a zmm form is not written
  // Intel Xeon (AMX VM, 2 threads, E4B's matrices, 5-token calls over one-token calls, alternating): 2 KB ahead
  // 1.21-1.35 (ffn_gate), 1.16-1.22 (ffn_down), 1.13-1.19 (the Q6_K output head) against 8 KB's 1.39-1.40,
  // 1.38-1.40, 1.32-1.33; none at all 1.60-1.63, 1.30-1.35, 1.09-1.11 (each block's lines fetched at its start).
  // Spread over the block's steps (prefetch_step), ffn_gate at 1, 2, 4 and 8 KB: 1.18-1.20, 1.01-1.08, 1.06, 1.05-1.07.
  set_packed_kernels<2048>(k);
  // Full-width float tiles where 512-bit operations are not split (Zen 4, avx512vnni-256, measured no gain).
  set_float_tiles_zmm(k);
  // Intel Xeon (AMX VM, 2 threads, E2B --gen 64, alternating): 11.31, 11.44, 11.10 tok/s with Q6_K packed
  // against 10.29, 9.76, 9.61 in rows (streaming-read fraction 0.85-0.92 against 0.73-0.83). On Zen 4 (the
  // 256-bit set) the two were the same, and packing only cost load time.
  k.pack_q6k_for_decode = true;
  return k;
}

KernelSet make_avx512_256() {
  KernelSet k;
  set_kquant_kernels<YmmSums<Vnni256Madd>, YmmRows<Vnni256Madd>>(k);
  // The panels stay 512-bit here too: their vpdpbusd does 64 products per instruction at the ymm form's
  // rate per product on Zen 4, with half the loads (docs/kernels.md).
  set_panel_kernels<YmmSums<Vnni256Madd>, YmmRows<Vnni256Madd>>(k);
  set_decode_rows<Vnni256Madd>(k);
  set_packed_kernels<kPackedAhead>(k);  // 512-bit too: one vpdpbusd does 64 products (as the panels)
  return k;
}

}  // namespace

const KernelSet* avx512_kernels() {
  static const KernelSet k = make_avx512();  // addresses only; nothing runs before the cpuid check
  return &k;
}

const KernelSet* avx512_256_kernels() {
  static const KernelSet k = make_avx512_256();
  return &k;
}

}  // namespace g3n::vecdot

#else  // not x86-64

namespace g3n::vecdot {
const KernelSet* avx512_kernels() { return nullptr; }
const KernelSet* avx512_256_kernels() { return nullptr; }
}  // namespace g3n::vecdot

#endif
