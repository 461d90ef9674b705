#include "kernels/packed_panels.h"

#include <cstring>

#include "quant/blocks.h"

namespace g3n {
namespace {

using quant::BlockQ4_K;
using quant::BlockQ6_K;
using quant::kQK_K;

// Q4_K: qs byte 32c + l holds weights 64c + l (low nibble) and 64c + 32 + l (high), the packed byte
// q[c][l / 4][4 * row + l % 4] the same pair: packing is a transpose of 4-byte words plus the unpacked scales.
void pack_q4k(const BlockQ4_K& blk, int row, PackedQ4K& p) {
  for (int c = 0; c < 4; ++c)
    for (int k = 0; k < 8; ++k) std::memcpy(&p.q[c][k][4 * row], &blk.qs[32 * c + 4 * k], 4);
  for (int j = 0; j < 8; ++j) quant::k4_scale_min(j, blk.scales, &p.sc[j][row], &p.m[j / 2][row][j % 2]);
  p.d[row] = blk.d;
  p.dmin[row] = blk.dmin;
}

void unpack_q4k(const PackedQ4K& p, int row, BlockQ4_K& blk) {
  for (int c = 0; c < 4; ++c)
    for (int k = 0; k < 8; ++k) std::memcpy(&blk.qs[32 * c + 4 * k], &p.q[c][k][4 * row], 4);
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = p.sc[j][row];
    lm[j] = p.m[j / 2][row][j % 2];
  }
  std::memset(blk.scales, 0, sizeof blk.scales);
  quant::pack_k4_scales(ls, lm, blk.scales);
  blk.d = p.d[row];
  blk.dmin = p.dmin[row];
}

// Q6_K's 256 6-bit values of a block, in order (ggml's layout: two halves of 128, each from 64 ql bytes,
// low then high nibbles, and 32 qh bytes, 2 bits per value).
void q6k_values(const BlockQ6_K& blk, uint8_t* v) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* ql = blk.ql + 64 * h;
      const uint8_t qh = blk.qh[32 * h + l];
      v[128 * h + l] = uint8_t((ql[l] & 0xF) | ((qh & 3) << 4));
      v[128 * h + 32 + l] = uint8_t((ql[l + 32] & 0xF) | (((qh >> 2) & 3) << 4));
      v[128 * h + 64 + l] = uint8_t((ql[l] >> 4) | (((qh >> 4) & 3) << 4));
      v[128 * h + 96 + l] = uint8_t((ql[l + 32] >> 4) | (((qh >> 6) & 3) << 4));
    }
}

// Position P of quad P % 16 / 4: its low nibbles in ql[P % 32 / 16][P % 4] (high nibble when P >= 32), its top
// bits in qh[P % 4], field P / 16.
void pack_q6k(const BlockQ6_K& blk, int row, PackedQ6K& p) {
  uint8_t v[kQK_K];
  q6k_values(blk, v);
  for (int P = 0; P < 32; ++P)
    for (int i = 0; i < 4; ++i)
      p.quad[P % 16 / 4].ql(P / 16, P % 4)[4 * row + i] = uint8_t((v[4 * P + i] & 0xF) | ((v[128 + 4 * P + i] & 0xF) << 4));
  for (int P = 0; P < 16; ++P)
    for (int i = 0; i < 4; ++i) {
      uint8_t h = 0;
      for (int s = 0; s < 4; ++s) h = uint8_t(h | ((v[4 * (P + 16 * s) + i] >> 4) << (2 * s)));
      p.quad[P / 4].qh(P % 4)[4 * row + i] = h;
    }
  for (int j = 0; j < 16; ++j) p.quad[j % 4].sc[j / 4][row] = blk.scales[j];
  p.d[row] = blk.d;
}

void unpack_q6k(const PackedQ6K& p, int row, BlockQ6_K& blk) {
  uint8_t v[kQK_K];
  for (int P = 0; P < 32; ++P)
    for (int i = 0; i < 4; ++i) {
      const uint8_t lo = p.quad[P % 16 / 4].ql(P / 16, P % 4)[4 * row + i];
      v[4 * P + i] = lo & 0xF;
      v[128 + 4 * P + i] = lo >> 4;
    }
  for (int P = 0; P < 16; ++P)
    for (int i = 0; i < 4; ++i)
      for (int s = 0; s < 4; ++s)
        v[4 * (P + 16 * s) + i] =
            uint8_t(v[4 * (P + 16 * s) + i] | (((p.quad[P / 4].qh(P % 4)[4 * row + i] >> (2 * s)) & 3) << 4));
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* x = v + 128 * h;
      blk.ql[64 * h + l] = uint8_t((x[l] & 0xF) | ((x[64 + l] & 0xF) << 4));
      blk.ql[64 * h + 32 + l] = uint8_t((x[32 + l] & 0xF) | ((x[96 + l] & 0xF) << 4));
      blk.qh[32 * h + l] = uint8_t((x[l] >> 4) | ((x[32 + l] >> 4) << 2) | ((x[64 + l] >> 4) << 4) | ((x[96 + l] >> 4) << 6));
    }
  for (int j = 0; j < 16; ++j) blk.scales[j] = p.quad[j % 4].sc[j / 4][row];
  blk.d = p.d[row];
}

template <class Block, class Packed, class Pack>
void pack_type(const uint8_t* rows, uint64_t row_bytes, int64_t nb, int64_t g0, int64_t g1, uint8_t* dst, Pack pack) {
  auto* out = reinterpret_cast<Packed*>(dst);
  for (int64_t g = g0; g < g1; ++g)
    for (int row = 0; row < kPackRows; ++row) {
      const auto* blk = reinterpret_cast<const Block*>(rows + uint64_t(kPackRows * g + row) * row_bytes);
      for (int64_t b = 0; b < nb; ++b) pack(blk[b], row, out[(g - g0) * nb + b]);
    }
}

}  // namespace

bool packable(GgmlType type, int64_t n_in, int64_t n_out) {
  return (type == GgmlType::Q4_K || type == GgmlType::Q6_K) && n_in > 0 && n_in % kQK_K == 0 && n_out > 0 &&
         n_out % kPackRows == 0;
}

uint64_t packed_block_bytes(GgmlType type) {
  return type == GgmlType::Q4_K ? sizeof(PackedQ4K) : type == GgmlType::Q6_K ? sizeof(PackedQ6K) : 0;
}

uint64_t packed_matrix_bytes(GgmlType type, int64_t n_in, int64_t n_out) {
  return packed_block_bytes(type) * uint64_t(n_in / kQK_K) * uint64_t(n_out / kPackRows);
}

uint64_t packed_group_bytes(GgmlType type, uint64_t row_bytes) {
  return packed_block_bytes(type) * (row_bytes / *ggml_row_bytes(type, kQK_K));
}

void pack_groups(GgmlType type, const uint8_t* rows, uint64_t row_bytes, int64_t n_in, int64_t g0, int64_t g1,
                 uint8_t* dst) {
  const int64_t nb = n_in / kQK_K;
  if (type == GgmlType::Q4_K)
    pack_type<BlockQ4_K, PackedQ4K>(rows, row_bytes, nb, g0, g1, dst, pack_q4k);
  else
    pack_type<BlockQ6_K, PackedQ6K>(rows, row_bytes, nb, g0, g1, dst, pack_q6k);
}

void unpack_row(GgmlType type, const uint8_t* packed, uint64_t row_bytes, int64_t n_in, int64_t r, uint8_t* row_out) {
  const int64_t nb = n_in / kQK_K;
  const int row = int(r % kPackRows);
  const uint8_t* group = packed + uint64_t(r / kPackRows) * packed_group_bytes(type, row_bytes);
  for (int64_t b = 0; b < nb; ++b) {
    if (type == GgmlType::Q4_K)
      unpack_q4k(reinterpret_cast<const PackedQ4K*>(group)[b], row, reinterpret_cast<BlockQ4_K*>(row_out)[b]);
    else
      unpack_q6k(reinterpret_cast<const PackedQ6K*>(group)[b], row, reinterpret_cast<BlockQ6_K*>(row_out)[b]);
  }
}

}  // namespace g3n
