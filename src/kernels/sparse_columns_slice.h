// Where the parts of a SparseColumns copy (sparse_columns.h layouts) lie for a slice of rows starting at r:
// shared by the x86 column kernels, which take a slice's column runs entry by entry and fetch the runs of
// the entry a few places on.
#pragma once
#include <cstdint>

#include "kernels/sparse_columns.h"

namespace g3n::sparse_detail {

template <bool kQ4>
struct ColumnSlice {
  const uint8_t* bytes;
  int64_t R, r;
  uint64_t block_bytes;
  ColumnSlice(const SparseColumns& m, int64_t r0) : bytes(m.data()), R(m.n_out), r(r0), block_bytes(m.block_bytes()) {}

  const uint8_t* block(int64_t b) const { return bytes + block_bytes * static_cast<uint64_t>(b); }
  // Column j's nibbles of the slice (8 bytes per 16 rows): Q4_K at 20R, Q6_K at 18R.
  const uint8_t* nibbles(int64_t b, int j) const { return block(b) + (kQ4 ? 20 : 18) * R + r / 2 + j * (R / 2); }
  // Q6_K: column j's top-bit words (4 bytes per 16 rows) at 146R.
  const uint8_t* tops(int64_t b, int j) const { return block(b) + 146 * R + r / 4 + j * (R / 4); }
  // The scales of column j's group (one byte per row): Q4_K groups of 32 columns at 4R, Q6_K of 16 at 2R.
  const uint8_t* scales(int64_t b, int j) const { return block(b) + (kQ4 ? 4 : 2) * R + r + (j / (kQ4 ? 32 : 16)) * R; }

  // The runs of entry f of `a` over G groups (null past the last entry), their last lines fetched now: a
  // kernel fetches the others one at a time as its steps pass (all at once they wait for line fill buffers).
  struct Runs {
    const uint8_t* nibbles = nullptr;
    const uint8_t* tops = nullptr;
    // The lines group g's part of the runs starts: one of nibbles per 8 groups, one of Q6_K top bits per 16.
    void fetch(int g) const {
      if (!nibbles) return;
      if (g % 8 == 0) __builtin_prefetch(nibbles + 8 * g, 0, 3);
      if (!kQ4 && g % 16 == 0) __builtin_prefetch(tops + 4 * g, 0, 3);
    }
  };
  Runs runs_ahead(const SparseQ8K& a, uint32_t f, int G) const {
    if (f >= static_cast<uint32_t>(a.nonzero())) return {};
    const Runs runs{nibbles(a.block[f], a.col[f]), tops(a.block[f], a.col[f])};
    __builtin_prefetch(runs.nibbles + 8 * G - 1, 0, 3);
    if constexpr (!kQ4) __builtin_prefetch(runs.tops + 4 * G - 1, 0, 3);
    return runs;
  }
};

}  // namespace g3n::sparse_detail
