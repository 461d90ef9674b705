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
  ColumnSlice(const SparseColumns& m, int64_t r0) : bytes(m.bytes.data()), R(m.n_out), r(r0), block_bytes(m.block_bytes()) {}

  const uint8_t* block(int64_t b) const { return bytes + block_bytes * static_cast<uint64_t>(b); }
  // Column j's nibbles of the slice (8 bytes per 16 rows): Q4_K at 20R, Q6_K at 18R.
  const uint8_t* nibbles(int64_t b, int j) const { return block(b) + (kQ4 ? 20 : 18) * R + r / 2 + j * (R / 2); }
  // Q6_K: column j's top-bit words (4 bytes per 16 rows) at 146R.
  const uint8_t* tops(int64_t b, int j) const { return block(b) + 146 * R + r / 4 + j * (R / 4); }
  // The scales of column j's group (one byte per row): Q4_K groups of 32 columns at 4R, Q6_K of 16 at 2R.
  const uint8_t* scales(int64_t b, int j) const { return block(b) + (kQ4 ? 4 : 2) * R + r + (j / (kQ4 ? 32 : 16)) * R; }
};

}  // namespace g3n::sparse_detail
