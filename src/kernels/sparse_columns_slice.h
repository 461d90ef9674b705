// What the column kernels share: the TokensFn type every set's product has (sparse_columns.cpp dispatches on
// it), the order in which the x86 kernels take a call's entries (EntryWalk), and where the parts of a
// SparseColumns copy (sparse_columns.h layouts) lie for a slice of rows starting at r (ColumnSlice), whose
// column runs those kernels take entry by entry, fetching the runs of the entry a few places on.
#pragma once
#include <cstdint>

#include "kernels/sparse_columns.h"

namespace g3n::sparse_detail {

// A set's product of n sparse activation rows a[t] with rows [r0, r1) of a copy: y[t * ldy + r] (sparse_columns.h).
using TokensFn = void (*)(const SparseColumns&, const SparseQ8K*, int, int64_t, int64_t, float*, int64_t);

// The entries of n sparse rows in the order the kernels take them: block by block, and within a block token by
// token, each token's entries in column order. So a block's scales (and the columns tokens share) are read
// from L1 by every token after the first: token by token, each token went through the whole copy's scales
// (Q6_K: 2 MB per E4B layer), out of L2 again for every token of a verify pass.
struct EntryWalk {
  const SparseQ8K* a;
  int n;
  int64_t nb;
  int64_t b = 0;  // the current entry: token t's entry e, in block b
  int t = 0;
  uint32_t e = 0;
  EntryWalk(const SparseQ8K* rows, int n_rows) : a(rows), n(n_rows), nb(rows[0].n_blocks) {
    e = nb > 0 ? a[0].start[0] : 0;
    settle();
  }
  bool done() const { return b >= nb; }
  void next() { ++e, settle(); }
  void skip(uint32_t k) {
    for (; k > 0 && !done(); --k) next();
  }

 private:
  void settle() {  // past the (block, token) pairs with no entries left
    while (b < nb && e >= a[t].start[b + 1]) {
      if (++t == n) t = 0, ++b;
      if (b < nb) e = a[t].start[b];
    }
  }
};

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

  // An entry's runs over G groups: its column's nibbles (and Q6_K top bits). A kernel takes them for the entry
  // kSlabPrefetch places on: their last lines fetched at once, the others one at a time as its own steps pass
  // (all at once they wait for line fill buffers). Fetching the entry's group scales the same way made the
  // kernels slower (E4B's ten sparse layers, 2 threads, 5 tokens, medians of 31: 10.0-11.6 -> 12.4-14.3 ms).
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
  // The runs of the walk's current entry (none past the last), their last lines fetched now.
  Runs runs_at(const EntryWalk& w, int G) const {
    if (w.done()) return {};
    const SparseQ8K& a = w.a[w.t];
    const int64_t b = a.block[w.e];
    const int j = a.col[w.e];
    const Runs runs{nibbles(b, j), tops(b, j)};
    __builtin_prefetch(runs.nibbles + 8 * G - 1, 0, 3);
    if constexpr (!kQ4) __builtin_prefetch(runs.tops + 4 * G - 1, 0, 3);
    return runs;
  }
};

}  // namespace g3n::sparse_detail
