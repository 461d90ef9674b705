// Products of a quantized weight matrix with SPARSE activation rows, reading only the columns of the
// non-zero activations. Gemma 3n's first layers keep ~5% of their FFN activations (the Gaussian top-k
// of docs/model.md §4.4d), so their down projection needs ~5% of its weight columns. Row-major K-quant rows
// cannot be read by column, so such a matrix gets a column-major copy at load (SparseColumns): the
// quants of each column contiguous over all output rows, the per-(row, group) scales beside them.
//
// Exactness: with activations quantized to Q8_K, a zero activation is a zero int8, so the per-block
// integer sums over the non-zero columns equal the dense kernel's sums exactly; the float steps then
// repeat the dense dot's per-block formula in the same order. sparse_columns_rows is therefore
// BIT-IDENTICAL to the dispatched vec_dot on the original rows, and sparse_columns_rows_ref to
// vec_dot_ref (KernelsSparseColumns in tests/kernels_tile_test.cpp). For finite activations: a block
// whose int8 quants are all zero is skipped, where the dense dot would add 0 * d (NaN if d is infinite).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/matmul.h"

namespace g3n {

// Column-major copy of a Q4_K or Q6_K matrix [n_out rows x n_in]; n_out must be a multiple of 16.
// Per 256-column block (the source super-block), all n_out rows:
//   Q4_K: d[R], dmin[R] (fp16) | scale[8][R] (u8) | min pairs [4][R][2] (u8) | 256 columns of R/2 bytes
//   Q6_K: d[R] (fp16) | scale[16][R] (s8) | 256 columns of R/2 bytes (low 4 bits of the 6-bit quant)
//         | 256 columns of R/4 bytes (its top 2 bits)
// A column's quants for 16 consecutive rows r..r+15 are 8 bytes of nibbles (byte k holds row r+k in its
// low nibble, row r+8+k in its high one), plus for Q6_K one little-endian 32-bit word with row r+i's top
// bits at bit 2i. Either copy has the size of the original (plus 4 bytes per row and block for Q4_K).
struct SparseColumns {
  GgmlType type = GgmlType::F32;  // source type; F32 means "no copy"
  int64_t n_in = 0, n_out = 0;
  // The copy's n_in / 256 blocks (and maybe more: a view of a column prefix shares a wider copy's bytes).
  std::shared_ptr<const std::vector<uint8_t>> bytes;
  bool empty() const { return !bytes; }
  const uint8_t* data() const { return bytes ? bytes->data() : nullptr; }
  uint64_t block_bytes() const;  // bytes of one 256-column block
};

// True when a column copy can be made for this matrix (Q4_K or Q6_K in rows, n_out % 16 == 0).
bool sparse_columns_supported(const WeightMatrix& w);
// Builds the copy (throws std::invalid_argument when unsupported).
SparseColumns make_sparse_columns(const WeightMatrix& w);
// The first n_in columns of m (whole 256-column blocks), sharing its bytes: the copy of a column prefix of
// the matrix m was made from. Empty when m is empty or n_in does not fit.
SparseColumns sparse_columns_prefix(const SparseColumns& m, int64_t n_in);

// One activation row in sparse Q8_K form: per 256-block its scale, its eight 32-group sums, and the
// (column, int8 value) pairs of its non-zero quants in column order.
struct SparseQ8K {
  int64_t n_blocks = 0;
  std::vector<float> d;             // [n_blocks]
  std::vector<int16_t> bsum32;      // [n_blocks * 8]
  std::vector<uint32_t> start;      // [n_blocks + 1]: entries of block b are [start[b], start[b+1])
  std::vector<uint8_t> col;         // column within the block
  std::vector<int8_t> val;          // its quant
  std::vector<uint32_t> block;      // its block (kernels prefetch entries ahead, across block boundaries)
  int64_t nonzero() const { return static_cast<int64_t>(col.size()); }
};
// From a Q8_K activation row of n values (what quantize_act_row writes for K-quant weights).
void sparse_q8k_from(const void* q8k_row, int64_t n, SparseQ8K& out);

// y[r] = vec_dot(type, original row r, activation row) for r in [r0, r1) (multiples of 16).
void sparse_columns_rows(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y);
void sparse_columns_rows_ref(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y);
// The same for the n_tok rows a[0..n_tok) at once: y[t * ldy + r] for r in [r0, r1), each token's bits as above; nothing
// else of y is written. Every a[t] comes from a row of the same n values (the same n_blocks), and token rows
// of y must not overlap (ldy >= r1 when n_tok > 1). The x86 kernels go block by block through the copy,
// every token in each block, so the tokens of a verify pass share the block's scales (and any columns they
// share) from L1.
void sparse_columns_rows_tokens(const SparseColumns& m, const SparseQ8K* a, int n_tok, int64_t r0, int64_t r1,
                                float* y, int64_t ldy);

// The dense product with n_tok Q8_K activation rows (act_stride bytes apart) for rows [r0, r1) (multiples
// of 16): y[t * ldy + r] = vec_dot(type, original row r, token t), BIT-IDENTICAL, read from the copy alone.
// For prefill, where every weight serves many tokens; only the kernel sets in use that have one offer it
// (the AVX-512 sets: 16-row panels built from the copy).
bool sparse_columns_tile_available();
void sparse_columns_tile(const SparseColumns& m, const void* act, uint64_t act_stride, int64_t n_tok, int64_t r0,
                         int64_t r1, float* y, int64_t ldy);

}  // namespace g3n
