// K-quant matrices repacked at load for the AVX-512 VNNI kernels: 16 rows per group, rows in the lanes.
//
// vpdpbusd multiplies 4 u8 weights by 4 s8 activations per int32 lane. With one weight row per lane and
// the activation dword broadcast, one instruction does 4 products of 16 rows, and a group's scale is
// applied once per 16 rows (one vpmulld). The file's row-major blocks would need a transpose for that
// layout on every use (the prefill panels of kquant_panel_zmm.h build one per call, which costs more than
// a decode dot); packed once at load, decode, verification and prefill all read it directly, and a
// decode step needs about a third of the row kernels' instructions.
//
// A packed matrix is n_out / 16 groups of n_in / 256 blocks, each block 16 rows x 256 values:
//   PackedQ4K (2368 bytes, 64 more than the 16 original blocks: scales and mins as bytes, not 6-bit fields)
//   PackedQ6K (3392 bytes, 32 more than the original: padding to whole cache lines)
// Every kernel on it gives the bits of the same set's row-major dot: per (row, token, block) the
// integer totals are exact and the float close is the dot's fmas in block order.
#pragma once
#include <cstdint>

#include "quant/ggml_type.h"

namespace g3n {

constexpr int kPackRows = 16;

struct alignas(64) PackedQ4K {  // 16 rows x one Q4_K block
  uint8_t q[4][8][64];          // [c][k][4*row + i]: low nibble = weight 64c+4k+i, high = weight 64c+32+4k+i
  uint8_t sc[8][16];            // [group of 32][row]: 6-bit scale
  uint8_t m[4][16][2];          // [p][row][j]: 6-bit min of group 2p+j (int16 pairs once widened)
  uint16_t d[16], dmin[16];     // fp16
};
static_assert(sizeof(PackedQ4K) == 2368);

struct alignas(64) PackedQ6K {  // 16 rows x one Q6_K block, value position P = values 4P..4P+3 (P < 64)
  // Quad q holds what groups q, q+4, q+8, q+12 (positions 4q+16s+k) need, so a kernel going through the groups
  // in that order reads the block front to back. Within a quad the kernel's first pass reads ql(0, k) with
  // qh(k), its second ql(1, k): laid out in that order, every line is first touched in address order (with
  // ql(0, ·) and qh(·) as two arrays the first pass zigzagged 512 bytes back and forth, and one token streamed
  // from DRAM at 12.7 GB/s per core against the row kernels' 20-25; now 16-18 before the kernel's other fixes).
  struct Quad {
    struct Lead {
      uint8_t ql[64];  // ql(0, k)
      uint8_t qh[64];  // qh(k)
    } lead[4];
    uint8_t ql1[4][64];  // ql(1, k)
    int8_t sc[4][16];    // [s][row]: scale of group q + 4s
    // ql(h, k)[4*row + i]: low nibble = low 4 bits of position 16h+4q+k, high nibble = of position +32
    uint8_t* ql(int h, int k) { return h ? ql1[k] : lead[k].ql; }
    const uint8_t* ql(int h, int k) const { return h ? ql1[k] : lead[k].ql; }
    // qh(k)[4*row + i]: bits 2s, 2s+1 = top 2 bits of position 4q+k+16s
    uint8_t* qh(int k) { return lead[k].qh; }
    const uint8_t* qh(int k) const { return lead[k].qh; }
  } quad[4];
  uint16_t d[16];          // fp16
};
static_assert(sizeof(PackedQ6K) == 3392);

// Whether a matrix of this type and shape can be packed: Q4_K or Q6_K, n_out a multiple of 16, n_in of 256.
bool packable(GgmlType type, int64_t n_in, int64_t n_out);
// Bytes of one group's block (sizeof PackedQ4K / PackedQ6K) and of the whole packed matrix.
uint64_t packed_block_bytes(GgmlType type);
uint64_t packed_matrix_bytes(GgmlType type, int64_t n_in, int64_t n_out);
// Bytes from one group to the next in a packed matrix whose rows are row_bytes long in the file's layout:
// as many blocks as such a row holds. A view of a column prefix (a MatFormer draft's narrower down
// projection over its target's packed matrix) keeps the whole matrix's row_bytes, so its groups are
// further apart than its own n_in would make them.
uint64_t packed_group_bytes(GgmlType type, uint64_t row_bytes);
// Packs rows [16*g0, 16*g1) of a row-major matrix (rows of n_in values, row_bytes apart) into dst, which
// points at group g0 of the packed matrix.
void pack_groups(GgmlType type, const uint8_t* rows, uint64_t row_bytes, int64_t n_in, int64_t g0, int64_t g1,
                 uint8_t* dst);
// The first n_in values' blocks of row r (ggml_row_bytes(type, n_in) bytes) from a packed matrix whose rows
// are row_bytes long (packed_group_bytes): exact inverse of pack_groups.
void unpack_row(GgmlType type, const uint8_t* packed, uint64_t row_bytes, int64_t n_in, int64_t r, uint8_t* row_out);

}  // namespace g3n
