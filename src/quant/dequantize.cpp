// Scalar reference dequantizers for ggml's block formats (layouts in quant/blocks.h).
//
// Every formula evaluates in the same order and precision as ggml's dequantize_row_* (float32, no
// fused multiply-add), so the results are bit-identical to llama.cpp's to_float, which the golden
// outputs were computed from. Elements are written in natural order: block b covers dst[b*QK ...].
// No fused multiply-add anywhere in this file: ggml's reference code is compiled without contraction,
// and a fused a*b+c rounds differently (GCC contracts by default whenever the target has FMA, e.g.
// aarch64 or -march=native, even in ISO mode; clang contracts within expressions).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cstring>
#include <stdexcept>
#include <string>

#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

using namespace quant;

inline float h2f(uint16_t h) { return fp16_to_fp32_fast(h); }

void deq_f16(const uint16_t* x, float* y, int64_t n) {
  const float* t = fp16_table();
  for (int64_t i = 0; i < n; ++i) y[i] = t[x[i]];
}

void deq_bf16(const uint16_t* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_fp32(x[i]);
}

void deq_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    const float d = h2f(x[b].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float((x[b].qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = float((x[b].qs[j] >> 4) - 8) * d;
    }
  }
}

void deq_q4_1(const BlockQ4_1* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    const float d = h2f(x[b].d), m = h2f(x[b].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = float(x[b].qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = float(x[b].qs[j] >> 4) * d + m;
    }
  }
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void deq_q5_0(const BlockQ5_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    const float d = h2f(x[b].d);
    const uint32_t qh = load_u32(x[b].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = int((qh >> j) & 1) << 4;
      const int hi1 = int((qh >> (j + 16)) & 1) << 4;
      y[j] = float(((x[b].qs[j] & 0x0F) | hi0) - 16) * d;
      y[j + kQK / 2] = float(((x[b].qs[j] >> 4) | hi1) - 16) * d;
    }
  }
}

void deq_q5_1(const BlockQ5_1* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    const float d = h2f(x[b].d), m = h2f(x[b].m);
    const uint32_t qh = load_u32(x[b].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int hi0 = int((qh >> j) & 1) << 4;
      const int hi1 = int((qh >> (j + 16)) & 1) << 4;
      y[j] = float((x[b].qs[j] & 0x0F) | hi0) * d + m;
      y[j + kQK / 2] = float((x[b].qs[j] >> 4) | hi1) * d + m;
    }
  }
}

void deq_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    const float d = h2f(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(x[b].qs[j]) * d;
  }
}

void deq_q8_1(const BlockQ8_1* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK) {
    const float d = h2f(x[b].d);
    for (int j = 0; j < kQK; ++j) y[j] = float(x[b].qs[j]) * d;
  }
}

// Q2_K: each 128-value half uses 32 bytes of qs; value 32*s + l of the half sits in byte l at bits
// 2s..2s+1 (s = 0..3), and belongs to scale group (half*128 + 32*s + l) / 16.
void deq_q2_k(const BlockQ2_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = x[b].qs + 32 * half;
      for (int s = 0; s < 4; ++s) {
        for (int g = 0; g < 2; ++g) {  // two 16-value groups per shift
          const uint8_t sc = x[b].scales[half * 8 + s * 2 + g];
          const float dl = d * float(sc & 0x0F), ml = dmin * float(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * float((q[16 * g + l] >> (2 * s)) & 3) - ml;
        }
      }
    }
  }
}

// Q3_K: like Q2_K for the low 2 bits; the high bit of value 32*s + l of half h is bit 4h+s of hmask[l].
void deq_q3_k(const BlockQ3_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = h2f(x[b].d);
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = x[b].qs + 32 * half;
      for (int s = 0; s < 4; ++s) {
        const uint8_t hbit = uint8_t(1u << (4 * half + s));
        for (int g = 0; g < 2; ++g) {
          const float dl = d * float(q3k_scale(half * 8 + s * 2 + g, x[b].scales));
          for (int l = 0; l < 16; ++l) {
            const int lo = (q[16 * g + l] >> (2 * s)) & 3;
            const int v = lo - ((x[b].hmask[16 * g + l] & hbit) ? 0 : 4);
            *y++ = dl * float(v);
          }
        }
      }
    }
  }
}

// Q4_K: chunk c (64 values) = groups 2c (low nibbles of qs[32c..32c+31]) and 2c+1 (high nibbles).
void deq_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    for (int c = 0; c < 4; ++c) {
      const uint8_t* q = x[b].qs + 32 * c;
      uint8_t sc, mn;
      k4_scale_min(2 * c, x[b].scales, &sc, &mn);
      const float d1 = d * float(sc), m1 = dmin * float(mn);
      k4_scale_min(2 * c + 1, x[b].scales, &sc, &mn);
      const float d2 = d * float(sc), m2 = dmin * float(mn);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0x0F) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

// Q5_K: Q4_K plus a 5th bit: qh[l] bit 2c for the low-nibble group of chunk c, bit 2c+1 for the high.
void deq_q5_k(const BlockQ5_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = h2f(x[b].d), dmin = h2f(x[b].dmin);
    for (int c = 0; c < 4; ++c) {
      const uint8_t* q = x[b].qs + 32 * c;
      uint8_t sc, mn;
      k4_scale_min(2 * c, x[b].scales, &sc, &mn);
      const float d1 = d * float(sc), m1 = dmin * float(mn);
      k4_scale_min(2 * c + 1, x[b].scales, &sc, &mn);
      const float d2 = d * float(sc), m2 = dmin * float(mn);
      const uint8_t u1 = uint8_t(1u << (2 * c)), u2 = uint8_t(2u << (2 * c));
      for (int l = 0; l < 32; ++l)
        *y++ = d1 * float((q[l] & 0x0F) + ((x[b].qh[l] & u1) ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l)
        *y++ = d2 * float((q[l] >> 4) + ((x[b].qh[l] & u2) ? 16 : 0)) - m2;
    }
  }
}

// Q6_K: per 128-value half h: ql[64h + l] holds values l (low nibble) and l+64 (high nibble),
// ql[64h + 32 + l] values l+32 and l+96; qh[32h + l] holds the top 2 bits of values l, l+32, l+64,
// l+96 at bits 0, 2, 4, 6. Scale group = value / 16. ggml computes (d * scale) * q.
void deq_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = h2f(x[b].d);
    for (int half = 0; half < 2; ++half, y += 128) {
      const uint8_t* ql = x[b].ql + 64 * half;
      const uint8_t* qh = x[b].qh + 32 * half;
      const int8_t* sc = x[b].scales + 8 * half;
      for (int l = 0; l < 32; ++l) {
        const int g = l / 16;
        const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l + 0] = d * float(sc[g + 0]) * float(q1);
        y[l + 32] = d * float(sc[g + 2]) * float(q2);
        y[l + 64] = d * float(sc[g + 4]) * float(q3);
        y[l + 96] = d * float(sc[g + 6]) * float(q4);
      }
    }
  }
}

void deq_q8_k(const BlockQ8_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += kQK_K)
    for (int j = 0; j < kQK_K; ++j) y[j] = x[b].d * float(x[b].qs[j]);
}

}  // namespace

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  const auto tr = ggml_type_traits(type);
  if (n < 0 || n % tr.block_size != 0)
    throw std::invalid_argument("dequantize_row: " + std::to_string(n) + " is not a multiple of the " +
                                std::string(tr.name) + " block size");
  const int64_t nb = n / tr.block_size;
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, size_t(n) * sizeof(float)); return;
    case GgmlType::F16: deq_f16(static_cast<const uint16_t*>(src), dst, n); return;
    case GgmlType::BF16: deq_bf16(static_cast<const uint16_t*>(src), dst, n); return;
    case GgmlType::Q4_0: deq_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb); return;
    case GgmlType::Q4_1: deq_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb); return;
    case GgmlType::Q5_0: deq_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb); return;
    case GgmlType::Q5_1: deq_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb); return;
    case GgmlType::Q8_0: deq_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb); return;
    case GgmlType::Q8_1: deq_q8_1(static_cast<const BlockQ8_1*>(src), dst, nb); return;
    case GgmlType::Q2_K: deq_q2_k(static_cast<const BlockQ2_K*>(src), dst, nb); return;
    case GgmlType::Q3_K: deq_q3_k(static_cast<const BlockQ3_K*>(src), dst, nb); return;
    case GgmlType::Q4_K: deq_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb); return;
    case GgmlType::Q5_K: deq_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb); return;
    case GgmlType::Q6_K: deq_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb); return;
    case GgmlType::Q8_K: deq_q8_k(static_cast<const BlockQ8_K*>(src), dst, nb); return;
  }
  throw std::invalid_argument("dequantize_row: unsupported type");
}

}  // namespace g3n
