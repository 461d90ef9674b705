// NEON kernel of sparse_columns_rows (AArch64), used by every NEON kernel set: 16 output rows per step.
// Per non-zero activation v in column j, the column's 16 quants (8 bytes of nibbles, plus the 2-bit tops
// for Q6_K) become one 16-byte vector, are multiplied by their group scales (16-bit products: at most
// 15 * 63 for Q4_K, 32 * 128 for Q6_K) and accumulated times v into four int32 vectors (exact). The Q4_K
// min term is the mins times the 32-group activation sums, also in int32. Each row's block is then closed
// by the scalar step of kquant_step.h, the step of the NEON (and scalar) dots: the same bits.
#include "kernels/sparse_columns.h"
#include "kernels/sparse_columns_slice.h"

#if defined(__aarch64__)

#include <arm_neon.h>

#include <cstring>

#include "kernels/kquant_step.h"
#include "quant/fp16.h"

namespace g3n {
namespace sparse_detail {
namespace {

struct Acc16 {
  int32x4_t s[4];
  void zero() { s[0] = s[1] = s[2] = s[3] = vdupq_n_s32(0); }
  // += p (16 int16 values, rows 0..15) * v
  void mla(int16x8_t lo, int16x8_t hi, int16_t v) {
    s[0] = vmlal_n_s16(s[0], vget_low_s16(lo), v);
    s[1] = vmlal_high_n_s16(s[1], lo, v);
    s[2] = vmlal_n_s16(s[2], vget_low_s16(hi), v);
    s[3] = vmlal_high_n_s16(s[3], hi, v);
  }
  void store(int32_t* out) const {
    for (int i = 0; i < 4; ++i) vst1q_s32(out + 4 * i, s[i]);
  }
};

// The 16 low nibbles of a column's 8 bytes, rows 0..15 in order (byte k: row k low, row 8+k high).
inline uint8x16_t nibbles16(const uint8_t* q) {
  const uint8x8_t b = vld1_u8(q);
  return vcombine_u8(vand_u8(b, vdup_n_u8(0x0F)), vshr_n_u8(b, 4));
}

void rows_q4k(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y) {
  const int64_t R = m.n_out;
  const uint64_t bb = m.block_bytes();
  for (int64_t r = r0; r < r1; r += 16) {
    float sum[16] = {};
    for (int64_t b = 0; b < a.n_blocks; ++b) {
      const uint32_t e0 = a.start[b], e1 = a.start[b + 1];
      if (e0 == e1) continue;  // all-zero block: the dense dot's sums are both 0
      const uint8_t* blk = m.data() + bb * static_cast<uint64_t>(b);
      const uint8_t* sc = blk + 4 * R + r;
      const uint8_t* mins = blk + 12 * R + 2 * r;
      const uint8_t* q = blk + 20 * R + r / 2;
      // Min term: per group pair p, 16 rows x (m_2p, m_2p+1) interleaved; vld2q splits them.
      Acc16 M;
      M.zero();
      const int16_t* bs = a.bsum32.data() + b * 8;
      for (int p = 0; p < 4; ++p) {
        const uint8x16x2_t mp = vld2q_u8(mins + p * 2 * R);
        for (int k = 0; k < 2; ++k) {
          const int16x8_t lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mp.val[k])));
          const int16x8_t hi = vreinterpretq_s16_u16(vmovl_high_u8(mp.val[k]));
          M.mla(lo, hi, bs[2 * p + k]);
        }
      }
      Acc16 S;
      S.zero();
      int group = -1;
      uint8x16_t scv = vdupq_n_u8(0);
      for (uint32_t e = e0; e < e1; ++e) {
        const int j = a.col[e];
        if (j / 32 != group) group = j / 32, scv = vld1q_u8(sc + group * R);
        const uint8x16_t qv = nibbles16(q + j * (R / 2));
        S.mla(vreinterpretq_s16_u16(vmull_u8(vget_low_u8(qv), vget_low_u8(scv))),
              vreinterpretq_s16_u16(vmull_high_u8(qv, scv)), a.val[e]);
      }
      int32_t is[16], im[16];
      S.store(is);
      M.store(im);
      for (int i = 0; i < 16; ++i) {
        uint16_t dh, mh;
        std::memcpy(&dh, blk + 2 * (r + i), 2);
        std::memcpy(&mh, blk + 2 * (R + r + i), 2);
        sum[i] = vecdot::kquant_step_min(sum[i], a.d[b], fp16_to_fp32(dh), fp16_to_fp32(mh), is[i], im[i]);
      }
    }
    std::memcpy(y + r, sum, sizeof(sum));
  }
}

void rows_q6k(const SparseColumns& m, const SparseQ8K& a, int64_t r0, int64_t r1, float* y) {
  const int64_t R = m.n_out;
  const uint64_t bb = m.block_bytes();
  // Row i's top bits sit at bit 2i of a 32-bit word: byte i/4, shifted right by 2*(i%4).
  static const uint8_t kByte[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
  static const int8_t kShift[16] = {0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6, 0, -2, -4, -6};
  const uint8x16_t byte_of = vld1q_u8(kByte);
  const int8x16_t shift = vld1q_s8(kShift);
  const int8x16_t k32 = vdupq_n_s8(32);
  for (int64_t r = r0; r < r1; r += 16) {
    float sum[16] = {};
    for (int64_t b = 0; b < a.n_blocks; ++b) {
      const uint32_t e0 = a.start[b], e1 = a.start[b + 1];
      if (e0 == e1) continue;
      const uint8_t* blk = m.data() + bb * static_cast<uint64_t>(b);
      const auto* sc = reinterpret_cast<const int8_t*>(blk + 2 * R + r);
      const uint8_t* q = blk + 18 * R + r / 2;
      const uint8_t* qh = blk + 146 * R + r / 4;
      Acc16 S;
      S.zero();
      int group = -1;
      int8x16_t scv = vdupq_n_s8(0);
      for (uint32_t e = e0; e < e1; ++e) {
        const int j = a.col[e];
        if (j / 16 != group) group = j / 16, scv = vld1q_s8(sc + group * R);
        uint32_t top;
        std::memcpy(&top, qh + j * (R / 4), 4);
        const uint8x16_t tops = vandq_u8(vshlq_u8(vqtbl1q_u8(vreinterpretq_u8_u32(vdupq_n_u32(top)), byte_of), shift),
                                         vdupq_n_u8(3));
        const int8x16_t qv = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(nibbles16(q + j * (R / 2)), vshlq_n_u8(tops, 4))), k32);
        S.mla(vmull_s8(vget_low_s8(qv), vget_low_s8(scv)), vmull_high_s8(qv, scv), a.val[e]);
      }
      int32_t is[16];
      S.store(is);
      for (int i = 0; i < 16; ++i) {
        uint16_t dh;
        std::memcpy(&dh, blk + 2 * (r + i), 2);
        sum[i] = vecdot::kquant_step(sum[i], a.d[b], fp16_to_fp32(dh), is[i]);
      }
    }
    std::memcpy(y + r, sum, sizeof(sum));
  }
}

// Token by token: each 16-row step keeps its block sums in registers (no ARM machine to measure another order on).
void tokens_any(const SparseColumns& m, const SparseQ8K* a, int n, int64_t r0, int64_t r1, float* y, int64_t ldy) {
  for (int t = 0; t < n; ++t)
    if (m.type == GgmlType::Q4_K) rows_q4k(m, a[t], r0, r1, y + t * ldy);
    else rows_q6k(m, a[t], r0, r1, y + t * ldy);
}

}  // namespace

TokensFn neon_tokens() { return &tokens_any; }

}  // namespace sparse_detail
}  // namespace g3n

#else

namespace g3n::sparse_detail {
TokensFn neon_tokens() { return nullptr; }
}  // namespace g3n::sparse_detail

#endif
