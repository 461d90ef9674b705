// The driver of the kernels on packed K-quant matrices (kernels/packed_panels.h), shared by every x86 set
// that has them: the 512-bit ones (kquant_packed_zmm.h) and the 256-bit ones (kquant_packed_ymm.h). A
// set's kernel does 16 rows x 1..8 tokens of one packed group; packed_tile runs it over a call's groups and
// token groups of 8, and prefetches for the calls that verify or prefill.
//
// Include after kquant_x86.h (same G3N_KQ_TARGET).
#pragma once
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "kernels/kquant_x86.h"
#include "kernels/packed_panels.h"

namespace g3n::vecdot {
namespace {

// Streams the packed matrix ahead of a kernel that verifies or prefills (2 or more tokens): block b's lines
// kPackedAhead bytes further on, up to `end` (the call's last byte), into L2. One token's Q4_K kernel runs
// each block too quickly for that to arrive in time and is left to the hardware prefetcher. Measured
// (Zen 4, 2 threads, Q4_K 16384 x 2048 from DRAM, medians of 31 alternating runs): 5 tokens in 1.11-1.19x
// a row kernel's one-token time with it, 2.28x without; one token with it 0.55-0.58 against 0.48 ms.
// The one-token instantiations carry no prefetch code at all (`if constexpr`): merely present and skipped at
// run time it cost the one-token Q6_K kernel ~25% (1 thread, 32768 x 2560 from DRAM: 16-18 GB/s, 21-22 without
// it, rows 24-25); taken, it did no better (19.9). The distance is the set's: 8 KB suits Zen 4; the Intel Xeon
// with AVX-512 (2 threads, E4B's matrices from DRAM, T-token calls against one-token calls, alternating) takes
// 2 KB (vec_dot_avx512.cpp).
constexpr uint64_t kPackedAhead = 8192;
template <class Packed, uint64_t kAhead = kPackedAhead>
G3N_KQ_TARGET inline void prefetch_packed(const Packed* blk, const uint8_t* end) {
  const auto* from = reinterpret_cast<const uint8_t*>(blk) + kAhead;
  if (!end || from >= end) return;
  for (uint64_t off = 0; off < sizeof(Packed); off += 64) _mm_prefetch(reinterpret_cast<const char*>(from + off), _MM_HINT_T2);
}

// The same stream spread over a kernel's 64 inner steps, for kernels busy enough per block (the 512-bit ones
// with 2+ tokens): step i fetches line i * lines / 64 of the block kAhead bytes on, when that starts a new line.
// All of a block's 37 (Q4_K) or 53 (Q6_K) prefetches at its start wait for line fill buffers and hold up the
// block's products; spread, the Intel Xeon's 5-token calls over one-token calls (2 threads, E4B's matrices from
// DRAM, alternating) went from 1.20-1.22 to 1.05-1.10 (ffn_gate), 1.18-1.21 to 1.04-1.09 (ffn_down) and
// 1.17-1.18 to 1.00-1.03 (the Q6_K output head).
template <class Packed, uint64_t kAhead>
G3N_KQ_TARGET inline const uint8_t* packed_ahead(const Packed* blk, const uint8_t* end) {
  const auto* from = reinterpret_cast<const uint8_t*>(blk) + kAhead;
  return end && from + sizeof(Packed) <= end ? from : nullptr;
}
template <class Packed>
G3N_KQ_TARGET inline void prefetch_step(const uint8_t* ahead, int i) {
  constexpr int kLines = int(sizeof(Packed) / 64);
  static_assert(sizeof(Packed) % 64 == 0 && kLines <= 64);
  if (ahead && i * kLines % 64 < kLines) _mm_prefetch(reinterpret_cast<const char*>(ahead + 64 * (i * kLines / 64)), _MM_HINT_T2);
}

// What a Q4_K kernel broadcasts per token and block is what the prefill tiles prepare: the group-sum pairs
// of the dot's min term and the activation scales (Q8KGroupPrep, kquant_x86.h).
struct Q4KPackedOps {
  using Group = Q8KGroupPrep;
  G3N_KQ_TARGET static void prep(const BlockQ8_K* const* a, int c, int64_t nb, Group* g) { prep_q8k_group(a, c, nb, g); }
};

template <class Packed, class Prep>
using PackedKernelFn = void (*)(const Packed*, const BlockQ8_K* const*, const Prep*, int64_t, float*, int64_t,
                                const uint8_t*);

// K::fn<C> is a set's kernel for C = 1..8 tokens.
template <class Packed, class Prep, class K, size_t... I>
constexpr std::array<PackedKernelFn<Packed, Prep>, 8> packed_table(std::index_sequence<I...>) {
  return {K::template fn<int(I) + 1>...};
}

// n_groups groups of 16 rows x nt tokens: each group's blocks are read once per 8-token group, while they
// stay in L1/L2, and every token group's broadcast inputs are prepared once per call (by the prefill panels'
// Ops::prep: the same inputs).
template <class Packed, class Ops, class K>
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

// Overlays a set's packed kernels: Q4K::fn<C> and Q6K::fn<C> (Q6K's per-token inputs prepared by Q6KOps).
template <class Q4K, class Q6KOps, class Q6K>
inline void set_packed_kernels_of(KernelSet& k) {
  k.packed[type_index(GgmlType::Q4_K)] = packed_tile<PackedQ4K, Q4KPackedOps, Q4K>;
  k.packed[type_index(GgmlType::Q6_K)] = packed_tile<PackedQ6K, Q6KOps, Q6K>;
}

}  // namespace
}  // namespace g3n::vecdot
