// The x86 tile driver: covers R rows x C tokens of a product with a kernel's K::kR x K::kC tiles and its
// smaller instantiations at the edges (a table of every (r, c) up to them). Shared by the AVX2 set's tiles
// (vec_dot_avx2.cpp) and the AVX-512 float tile (vec_dot_avx512.cpp).
//
// Include after <immintrin.h> with G3N_KQ_TARGET defined (the including file's target attribute).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <utility>

namespace g3n::vecdot {
namespace {

struct TileArgs {
  const uint8_t* w;
  uint64_t ws;
  const uint8_t* act;
  uint64_t as;
  int64_t n;
  float* out;
  int64_t ldo;
  // A call of at most 8 tokens (decode, verification) in its first token group: the rows come from memory once,
  // and a kernel may fetch ahead. Prefill's calls (rows re-read per token block, mostly from cache) do not:
  // fetching ahead there cost the zmm float tile 4% (BF16, 256 tokens).
  bool streaming = false;
};

// Covers n_rows x n_tok with K::kR x K::kC tiles (tokens outer, so a few activation rows stay in L1 while
// the weight rows stream past), the edges with smaller instantiations of the same kernel.
template <class K, int R, int C>
G3N_KQ_TARGET void run_tile(const TileArgs& a) { K::template tile<R, C>(a); }

template <class K, size_t... I>
constexpr auto tile_table(std::index_sequence<I...>) {
  return std::array<void (*)(const TileArgs&), sizeof...(I)>{&run_tile<K, int(I / K::kC) + 1, int(I % K::kC) + 1>...};
}

template <class K>
G3N_KQ_TARGET void gemm_tiles(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt,
                              int64_t n, float* out, int64_t ldo) {
  static constexpr auto table = tile_table<K>(std::make_index_sequence<size_t(K::kR * K::kC)>{});
  for (int64_t t0 = 0; t0 < nt; t0 += K::kC) {
    const int c = int(std::min<int64_t>(K::kC, nt - t0));
    for (int64_t r0 = 0; r0 < nr; r0 += K::kR) {
      const int r = int(std::min<int64_t>(K::kR, nr - r0));
      const TileArgs a{static_cast<const uint8_t*>(w) + r0 * ws, ws, static_cast<const uint8_t*>(act) + t0 * as,
                       as, n, out + t0 * ldo + r0, ldo, t0 == 0 && nt <= 8};
      table[size_t((r - 1) * K::kC + (c - 1))](a);
    }
  }
}

}  // namespace
}  // namespace g3n::vecdot
