// Block structs of ggml's quantized types, byte-identical to ggml-common.h (QK_K = 256 super-blocks).
//
// Conventions shared by every block:
//  * Scales named d / dmin / m are IEEE half floats stored as raw uint16_t bits, little-endian.
//    Q8_K alone keeps d as float32 (it is an activation format, never stored in files).
//  * A dequantized value is d*q (symmetric types, q re-centred by subtracting 2^(bits-1)) or
//    d*q - dmin*m / d*q + m (types with a minimum).
//  * 4-bit nibbles: within a group of 2*H values, byte j holds value j in its low nibble and value j+H in
//    its high nibble (H = 16 for the 32-blocks, H = 32 for the K-quant 64-value chunks).
//  * The structs contain only uint8/uint16/int8 (and Q8_K's float/int16), so they have no padding and
//    their sizes equal ggml's block sizes; static_asserts below pin that.
// These are views over file bytes: the host must be little-endian (every target g3n supports is).
#pragma once
#include <cstdint>

namespace g3n::quant {

inline constexpr int kQK = 32;    // elements per block of the legacy types
inline constexpr int kQK_K = 256; // elements per K-quant super-block

struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];  // value j: low nibble of qs[j] (j < 16) or high nibble of qs[j-16]; q-8
};
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];        // bit j of the little-endian u32 = 5th bit of value j
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;  // d * sum(qs), used by dot products with Q4_1/Q5_1
  int8_t qs[kQK];
};

// 16 groups of 16: scales[g] low nibble = scale, high nibble = min; 2-bit quants, 4 per byte.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d;
  uint16_t dmin;
};
// 16 groups of 16 with signed 6-bit scales (packed in 12 bytes, offset by 32); 2 low bits in qs,
// the 3rd bit in hmask (set = no -4 offset).
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
// 8 groups of 32: 6-bit scale and 6-bit min per group packed in 12 bytes (see get_scale_min_k4).
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 groups of 16 with int8 scales; 6-bit quants split as 4 low bits (ql) and 2 high bits (qh); q-32.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sums of each group of 16 quants
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// Unpacks the 6-bit scale and min of group j (0..7) of a Q4_K/Q5_K block: groups 0-3 live in the low
// 6 bits of bytes j and j+4; groups 4-7 keep their low 4 bits in byte j+4 (scale low nibble, min high
// nibble) and their top 2 bits in the spare top bits of bytes j-4 (scale) and j (min).
inline void k4_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* mn) {
  if (j < 4) {
    *sc = s[j] & 63;
    *mn = s[j + 4] & 63;
  } else {
    *sc = uint8_t((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
    *mn = uint8_t((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Stores 8 6-bit (scale, min) pairs in the 12-byte K4 layout (inverse of k4_scale_min).
inline void pack_k4_scales(const uint8_t* ls, const uint8_t* lm, uint8_t* s) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = uint8_t((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] = uint8_t(s[j - 4] | ((ls[j] >> 4) << 6));
      s[j] = uint8_t(s[j] | ((lm[j] >> 4) << 6));
    }
  }
}

// Signed 6-bit scale j (0..15) of a Q3_K block, already re-centred (-32..31): low nibble from byte j
// (j < 8) or the high nibble of byte j-8, top 2 bits from byte 8 + j%4 at bit 2*(j/4).
inline int q3k_scale(int j, const uint8_t* s) {
  const int lo = j < 8 ? (s[j] & 0x0F) : (s[j - 8] >> 4);
  const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}

}  // namespace g3n::quant
