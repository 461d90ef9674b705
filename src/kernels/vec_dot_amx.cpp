// AMX-INT8 prefill tiles for the K-quants, overlaid on the AVX-512 VNNI set (vec_dot.cpp's
// "avx512vnni+amx"). Same bits as every other x86 set, so they serve prompts, batched decode and
// speculative verification alike.
//
// An AMX tile multiply (tdpbsud: s8 x u8, tdpbssd: s8 x s8, into int32) computes C[16 tokens][16 rows] +=
// A[16 tokens][64 values] * B[64 values][16 rows] in one instruction, B's rows holding 4 consecutive values of
// each of the 16 weight rows: the layout of a prefill panel (kquant_panel_zmm.h). But a K-quant dot scales
// each group of 32 (Q6_K: 16) values by its own per-row scale, and an accumulator tile cannot be scaled per
// group. So the scales go into B: per row and value, v = scale * q (Q4_K, 0..945) or scale * (q - 32)
// (Q6_K, -4064..4096) is split into its low byte (0..255, unsigned) and high byte (v >> 8: Q4_K 0..3, Q6_K
// -16..16 signed), two B tiles, and a whole block's 256 values accumulate in two tiles:
//   tot = C_lo + 256 * C_hi = sum_j scale_j * sum(q * a) (Q6_K: sum_j scale_j * (sum(q * a) - 32 * bsum_j)),
// exactly the int32 total of dot_q45_k / dot_q6_k (no partial sum leaves int32). Q4_K's min term and the
// float close are then the VNNI panel kernels' per (token, row): the bits of every other x86 set. A block
// of 16 rows x 16 tokens is 8 tile multiplies instead of 1024 vpdpbusd and 128 vpmulld; the scaled panels
// are built once per call and reused by every 16-token tile of it.
//
// The tile state: Linux grants it per process (cpu_features' probe asks, before this set can be chosen);
// each thread loads the one configuration below before its first tile instruction.
#include "kernels/vec_dot_impl.h"

#if defined(__x86_64__)

#include <immintrin.h>

#include <cstddef>
#include <vector>

#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // as vec_dot_avx512.cpp
#pragma GCC diagnostic ignored "-Wuninitialized"

#define G3N_KQ_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#include "kernels/kquant_x86.h"
#include "kernels/kquant_panel_zmm.h"
#include "kernels/kquant_amx.h"

namespace g3n::vecdot {
namespace {

// Rows [0, 16 * groups) x the call's whole 16-token tiles of a row-major K-quant matrix through the tile
// multiplies; the remaining rows and tokens (and calls of fewer than 16 tokens) through the AVX-512 set's
// own tile.
template <class K, class Ops, GgmlType kType>
G3N_AMX void amx_tile(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
                      float* out, int64_t ldo) {
  const VecDotTileFn base = avx512_kernels()->tile[type_index(kType)];
  const int64_t nb = n / kQK_K, groups = nr / kPackRows, whole = nt / kTileTokens * kTileTokens;
  if (whole == 0 || nb == 0 || groups == 0) {
    base(w, ws, nr, act, as, nt, n, out, ldo);
    return;
  }
  const auto* wb = static_cast<const uint8_t*>(w);
  const auto* ab = static_cast<const uint8_t*>(act);
  amx_panels<K>(
      groups, nb, ab, as, whole, out, ldo,
      [&](int64_t g, int64_t b, AmxPanel& p) {
        thread_local typename Ops::Panel panel;  // the VNNI kernels' transposed panel, then scaled
        Ops::make(wb + uint64_t(kPackRows * g) * ws, ws, b, panel);
        if constexpr (kType == GgmlType::Q4_K) amx_from_q4k_panel(panel, p);
        else amx_from_q6k_panel(panel, p);
      },
      [&](int64_t g, int64_t b0, int64_t b1) {  // as tile_panels: the next 16 rows' blocks into L2 while this group's tokens run
        constexpr uint64_t kBlock = kType == GgmlType::Q4_K ? sizeof(BlockQ4_K) : sizeof(BlockQ6_K);
        if (g + 1 < groups)
          for (int64_t r = 0; r < kPackRows; ++r)
            prefetch_l2(wb + uint64_t(kPackRows * (g + 1) + r) * ws + uint64_t(b0) * kBlock, uint64_t(b1 - b0) * kBlock);
      });
  const int64_t full = groups * kPackRows;
  if (whole < nt) base(wb, ws, full, ab + uint64_t(whole) * as, as, nt - whole, n, out + whole * ldo, ldo);
  if (full < nr) base(wb + uint64_t(full) * ws, ws, nr - full, act, as, nt, n, out + full, ldo);
}

// A packed matrix (n_groups groups of 16 rows): scaled panels made from the packed blocks by from().
template <class K, class Packed, GgmlType kType, void (*from)(const Packed&, AmxPanel&)>
G3N_AMX void amx_packed(const void* packed, int64_t n_groups, const void* act, uint64_t as, int64_t nt, int64_t n,
                        float* out, int64_t ldo) {
  const VecDotPackedFn base = avx512_kernels()->packed[type_index(kType)];
  const int64_t nb = n / kQK_K, whole = nt / kTileTokens * kTileTokens;
  if (whole == 0 || nb == 0) {
    base(packed, n_groups, act, as, nt, n, out, ldo);
    return;
  }
  const auto* p = static_cast<const Packed*>(packed);
  const auto* ab = static_cast<const uint8_t*>(act);
  amx_panels<K>(
      n_groups, nb, ab, as, whole, out, ldo, [&](int64_t g, int64_t b, AmxPanel& panel) { from(p[g * nb + b], panel); },
      [&](int64_t g, int64_t b0, int64_t b1) {
        if (g + 1 < n_groups) prefetch_l2(p + (g + 1) * nb + b0, uint64_t(b1 - b0) * sizeof(Packed));
      });
  if (whole < nt) base(packed, n_groups, ab + uint64_t(whole) * as, as, nt - whole, n, out + whole * ldo, ldo);
}

// Tokens per call that amortize the scaled panels over several tiles: a multiple of 48, so matmul's
// 24-token blocks hold whole 16-token tiles, and a 512-token prompt is one call per row chunk (E2B prompt,
// 2 threads, alternating: 170.2, 168.0 tok/s against 163.0, 166.5 with 240, whose last 32 tokens rebuilt
// every panel for two tiles).
constexpr int16_t kAmxCallTokens = 528;

KernelSet make_amx() {
  KernelSet k;
  const int q4 = type_index(GgmlType::Q4_K), q6 = type_index(GgmlType::Q6_K);
  const KernelSet& base = *avx512_kernels();
  // The base set's kernels for these two types (the overlay moves dot, tile, rows and packed together).
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    take_type_kernels(k, base, t);
    k.tile_tokens[type_index(t)] = k.packed_tokens[type_index(t)] = kAmxCallTokens;
  }
  k.tile[q4] = amx_tile<Q4KAmx, Q4KPanels, GgmlType::Q4_K>;
  k.tile[q6] = amx_tile<Q6KAmx, Q6KPanels, GgmlType::Q6_K>;
  k.packed[q4] = amx_packed<Q4KAmx, PackedQ4K, GgmlType::Q4_K, amx_from_packed_q4k>;
  k.packed[q6] = amx_packed<Q6KAmx, PackedQ6K, GgmlType::Q6_K, amx_from_packed_q6k>;
  return k;
}

}  // namespace

const KernelSet* amx_kernels() {
  static const KernelSet k = make_amx();  // addresses only; nothing runs before the cpuid check
  return &k;
}

}  // namespace g3n::vecdot

#else  // not x86-64

namespace g3n::vecdot {
const KernelSet* amx_kernels() { return nullptr; }
}  // namespace g3n::vecdot

#endif
