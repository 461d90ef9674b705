// Scalar references for the vec_dot kernels: the readable definition of every dot product.
//
// Each quantized kernel follows one structure, which the SIMD kernels reproduce: per block, the integer
// products of weight and activation quants are summed exactly in int32 (times the integer sub-block
// scales for the K-quants), then scaled once in float by (weight d) * (activation d); the K-quant mins
// use the activation's per-16 sums (bsums), so they cost one multiply per group, not per value.
// The integer ranges below never overflow int32: the largest, Q6_K, is at most
// 256 * 127 (|scale|) * 32 (|q-32|) * 127 (|q8|) < 2^31.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/vec_dot_impl.h"
#include "kernels/kquant_step.h"
#include "kernels/ops.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

namespace g3n::vecdot {
namespace {

using namespace quant;

inline float h2f(uint16_t h) { return fp16_to_fp32_fast(h); }

// Nearest integer, ties to even (lrint under the default rounding mode), clamped to the int8 range
// the kernels rely on (|q| <= 127 keeps the SIMD byte products from saturating).
inline int8_t to_q8(float v) {
  const long r = std::lrint(v);
  return int8_t(std::clamp(r, -127L, 127L));
}

float amax_of(const float* x, int n) {
  float m = 0.0f;
  for (int j = 0; j < n; ++j) m = std::max(m, std::fabs(x[j]));
  return m;
}

// Q8_0: d is rounded to fp16 *before* the quants are computed from it, so the stored d is the one the
// quants were made with (ggml uses the unrounded d; this halves the worst-case error of large values).
void quant_q8_0(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_0*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const uint16_t dh = fp32_to_fp16(amax_of(x, kQK) / 127.0f);
    const float d = h2f(dh);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = dh;
    for (int j = 0; j < kQK; ++j) y[b].qs[j] = to_q8(x[j] * id);
  }
}

// Q8_1 adds s = d * sum(q), which carries the weight minimum of Q4_1/Q5_1 through the dot product.
void quant_q8_1(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_1*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const uint16_t dh = fp32_to_fp16(amax_of(x, kQK) / 127.0f);
    const float d = h2f(dh);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[b].qs[j] = to_q8(x[j] * id);
      sum += y[b].qs[j];
    }
    y[b].d = dh;
    y[b].s = fp32_to_fp16(d * float(sum));
  }
}

void quant_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    const float d = amax_of(x, kQK_K) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = d;
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) {
        y[b].qs[16 * g + l] = to_q8(x[16 * g + l] * id);
        sum += y[b].qs[16 * g + l];
      }
      y[b].bsums[g] = int16_t(sum);
    }
  }
}

void quant_f32(const float* x, void* dst, int64_t n) {
  if (n > 0) std::memcpy(dst, x, size_t(n) * sizeof(float));
}

// ---- legacy 32-blocks -------------------------------------------------------------------------

float dot_q4_0(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ4_0*>(vw);
  const auto* a = static_cast<const BlockQ8_0*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      isum += ((w[b].qs[j] & 0x0F) - 8) * a[b].qs[j];
      isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + kQK / 2];
    }
    sum += float(isum) * (h2f(w[b].d) * h2f(a[b].d));
  }
  return sum;
}

// Q4_1: w = d*q + m, so w.a = d*da*sum(q*qa) + m*(da*sum(qa)) = ... + m*s.
float dot_q4_1(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ4_1*>(vw);
  const auto* a = static_cast<const BlockQ8_1*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      isum += (w[b].qs[j] & 0x0F) * a[b].qs[j];
      isum += (w[b].qs[j] >> 4) * a[b].qs[j + kQK / 2];
    }
    sum += float(isum) * (h2f(w[b].d) * h2f(a[b].d)) + h2f(w[b].m) * h2f(a[b].s);
  }
  return sum;
}

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

float dot_q5_0(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ5_0*>(vw);
  const auto* a = static_cast<const BlockQ8_0*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = load_u32(w[b].qh);
    int32_t isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = ((w[b].qs[j] & 0x0F) | int(((qh >> j) & 1) << 4)) - 16;
      const int q1 = ((w[b].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4)) - 16;
      isum += q0 * a[b].qs[j] + q1 * a[b].qs[j + kQK / 2];
    }
    sum += float(isum) * (h2f(w[b].d) * h2f(a[b].d));
  }
  return sum;
}

float dot_q5_1(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ5_1*>(vw);
  const auto* a = static_cast<const BlockQ8_1*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    const uint32_t qh = load_u32(w[b].qh);
    int32_t isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = (w[b].qs[j] & 0x0F) | int(((qh >> j) & 1) << 4);
      const int q1 = (w[b].qs[j] >> 4) | int(((qh >> (j + 16)) & 1) << 4);
      isum += q0 * a[b].qs[j] + q1 * a[b].qs[j + kQK / 2];
    }
    sum += float(isum) * (h2f(w[b].d) * h2f(a[b].d)) + h2f(w[b].m) * h2f(a[b].s);
  }
  return sum;
}

float dot_q8_0(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ8_0*>(vw);
  const auto* a = static_cast<const BlockQ8_0*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < kQK; ++j) isum += w[b].qs[j] * a[b].qs[j];
    sum += float(isum) * (h2f(w[b].d) * h2f(a[b].d));
  }
  return sum;
}

// ---- K-quants x Q8_K ----------------------------------------------------------------------------

// Q2_K: w = d*sc*q - dmin*m per 16-group; the min term is dmin * sum_g m_g * bsum_g.
float dot_q2_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ2_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t summ = 0;
    for (int g = 0; g < 16; ++g) summ += (w[b].scales[g] >> 4) * a[b].bsums[g];
    int32_t isum = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = w[b].qs + 32 * half;
      for (int s = 0; s < 4; ++s) {
        for (int g = 0; g < 2; ++g) {
          const int group = half * 8 + s * 2 + g;
          const int8_t* qa = a[b].qs + 16 * group;
          int32_t gsum = 0;
          for (int l = 0; l < 16; ++l) gsum += ((q[16 * g + l] >> (2 * s)) & 3) * qa[l];
          isum += (w[b].scales[group] & 0x0F) * gsum;
        }
      }
    }
    sum = kquant_step_min(sum, a[b].d, h2f(w[b].d), h2f(w[b].dmin), isum, summ);
  }
  return sum;
}

float dot_q3_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ3_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t isum = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* q = w[b].qs + 32 * half;
      for (int s = 0; s < 4; ++s) {
        const uint8_t hbit = uint8_t(1u << (4 * half + s));
        for (int g = 0; g < 2; ++g) {
          const int group = half * 8 + s * 2 + g;
          const int8_t* qa = a[b].qs + 16 * group;
          int32_t gsum = 0;
          for (int l = 0; l < 16; ++l) {
            const int v = ((q[16 * g + l] >> (2 * s)) & 3) - ((w[b].hmask[16 * g + l] & hbit) ? 0 : 4);
            gsum += v * qa[l];
          }
          isum += q3k_scale(group, w[b].scales) * gsum;
        }
      }
    }
    sum = kquant_step(sum, a[b].d, h2f(w[b].d), isum);
  }
  return sum;
}

// Q4_K/Q5_K: 8 groups of 32 with 6-bit scale and min; min term uses bsums pairs (2 per group).
float dot_q4_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ4_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) k4_scale_min(j, w[b].scales, &sc[j], &mn[j]);
    int32_t summ = 0;
    for (int j = 0; j < 8; ++j) summ += mn[j] * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
    int32_t isum = 0;
    for (int c = 0; c < 4; ++c) {
      const uint8_t* q = w[b].qs + 32 * c;
      const int8_t* qa = a[b].qs + 64 * c;
      int32_t lo = 0, hi = 0;
      for (int l = 0; l < 32; ++l) {
        lo += (q[l] & 0x0F) * qa[l];
        hi += (q[l] >> 4) * qa[l + 32];
      }
      isum += sc[2 * c] * lo + sc[2 * c + 1] * hi;
    }
    sum = kquant_step_min(sum, a[b].d, h2f(w[b].d), h2f(w[b].dmin), isum, summ);
  }
  return sum;
}

float dot_q5_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ5_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) k4_scale_min(j, w[b].scales, &sc[j], &mn[j]);
    int32_t summ = 0;
    for (int j = 0; j < 8; ++j) summ += mn[j] * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
    int32_t isum = 0;
    for (int c = 0; c < 4; ++c) {
      const uint8_t* q = w[b].qs + 32 * c;
      const int8_t* qa = a[b].qs + 64 * c;
      const uint8_t u1 = uint8_t(1u << (2 * c)), u2 = uint8_t(2u << (2 * c));
      int32_t lo = 0, hi = 0;
      for (int l = 0; l < 32; ++l) {
        lo += ((q[l] & 0x0F) + ((w[b].qh[l] & u1) ? 16 : 0)) * qa[l];
        hi += ((q[l] >> 4) + ((w[b].qh[l] & u2) ? 16 : 0)) * qa[l + 32];
      }
      isum += sc[2 * c] * lo + sc[2 * c + 1] * hi;
    }
    sum = kquant_step_min(sum, a[b].d, h2f(w[b].d), h2f(w[b].dmin), isum, summ);
  }
  return sum;
}

float dot_q6_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ6_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t isum = 0;
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = w[b].ql + 64 * half;
      const uint8_t* qh = w[b].qh + 32 * half;
      const int8_t* sc = w[b].scales + 8 * half;
      const int8_t* qa = a[b].qs + 128 * half;
      for (int g = 0; g < 2; ++g) {  // l in [16g, 16g+16): scale groups g, g+2, g+4, g+6
        int32_t s1 = 0, s2 = 0, s3 = 0, s4 = 0;
        for (int l = 16 * g; l < 16 * g + 16; ++l) {
          s1 += (((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32) * qa[l];
          s2 += (((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32) * qa[l + 32];
          s3 += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * qa[l + 64];
          s4 += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * qa[l + 96];
        }
        isum += sc[g] * s1 + sc[g + 2] * s2 + sc[g + 4] * s3 + sc[g + 6] * s4;
      }
    }
    sum = kquant_step(sum, a[b].d, h2f(w[b].d), isum);
  }
  return sum;
}

// ---- float weights x f32 activations ------------------------------------------------------------

// A product added into a running sum with one rounding where the target has a fused multiply-add, else
// with two (there is then nothing to fuse into): spelled out so that the F32, F16 and BF16 twins give the
// same bits for the same values (model.cpp narrows F32 matrices whose values fit), which `sum += a * b`
// does not promise once the compiler fuses one loop and vectorizes another.
inline float mul_add1(float a, float b, float sum) {
#if defined(__FMA__) || defined(__aarch64__)
  return std::fma(a, b, sum);
#else
  return sum + a * b;
#endif
}

float dot_f16_f32_s(const uint16_t* x, const float* y, int64_t n) {
  const float* t = fp16_table();
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum = mul_add1(t[x[i]], y[i], sum);
  return sum;
}
float dot_f32_s(const float* x, const float* y, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum = mul_add1(x[i], y[i], sum);
  return sum;
}
void axpy_f16_s(float alpha, const uint16_t* x, float* y, int64_t n) {
  const float* t = fp16_table();
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * t[x[i]];
}
void axpy_f32_s(float alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}

float dot_f32(const void* w, const void* a, int64_t n) {
  return dot_f32_s(static_cast<const float*>(w), static_cast<const float*>(a), n);
}
float dot_f16(const void* w, const void* a, int64_t n) {
  return dot_f16_f32_s(static_cast<const uint16_t*>(w), static_cast<const float*>(a), n);
}
float dot_bf16(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const uint16_t*>(vw);
  const auto* a = static_cast<const float*>(va);
  float sum = 0.0f;
  for (int64_t i = 0; i < n; ++i) sum = mul_add1(bf16_to_fp32(w[i]), a[i], sum);
  return sum;
}

// ---- tile twins: several weight rows x several activation rows ---------------------------------
// Each weight block is unpacked once into plain integers and dotted with every activation row; the
// per-pair float sums live in `out` and are updated block by block with exactly the expression of the
// dot kernel above, in the same order, so every element equals that kernel's result bit for bit.

// Runs one weight row against all activation rows; `block` handles one weight block for all of them.
template <class WBlock, class ABlock, class Fn>
void tile_rows(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t nb,
               float* out, int64_t ldo, Fn block) {
  for (int64_t r = 0; r < nr; ++r) {
    const auto* wr = reinterpret_cast<const WBlock*>(static_cast<const uint8_t*>(w) + r * ws);
    for (int64_t t = 0; t < nt; ++t) out[t * ldo + r] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      block(wr[b], [&](int64_t t) -> const ABlock& {
        return reinterpret_cast<const ABlock*>(static_cast<const uint8_t*>(act) + t * as)[b];
      }, [&](int64_t t) -> float& { return out[t * ldo + r]; });
    }
  }
}

void tile_q4_0(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
               float* out, int64_t ldo) {
  tile_rows<BlockQ4_0, BlockQ8_0>(w, ws, nr, act, as, nt, n / kQK, out, ldo, [&](const BlockQ4_0& wb, auto a, auto o) {
    int8_t q[kQK];
    for (int j = 0; j < kQK / 2; ++j) {
      q[j] = int8_t((wb.qs[j] & 0x0F) - 8);
      q[j + kQK / 2] = int8_t((wb.qs[j] >> 4) - 8);
    }
    for (int64_t t = 0; t < nt; ++t) {
      int32_t isum = 0;
      for (int j = 0; j < kQK; ++j) isum += q[j] * a(t).qs[j];
      o(t) += float(isum) * (h2f(wb.d) * h2f(a(t).d));
    }
  });
}

// Q4_K and Q5_K share the tile once the 5th bit (if any) is merged into the unpacked values.
template <class WBlock, bool kFive>
void tile_q45_k(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
                float* out, int64_t ldo) {
  tile_rows<WBlock, BlockQ8_K>(w, ws, nr, act, as, nt, n / kQK_K, out, ldo, [&](const WBlock& wb, auto a, auto o) {
    uint8_t sc[8], mn[8], q[kQK_K];
    for (int j = 0; j < 8; ++j) k4_scale_min(j, wb.scales, &sc[j], &mn[j]);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        q[64 * c + l] = wb.qs[32 * c + l] & 0x0F;
        q[64 * c + 32 + l] = wb.qs[32 * c + l] >> 4;
        if constexpr (kFive) {
          if (wb.qh[l] & (1u << (2 * c))) q[64 * c + l] += 16;
          if (wb.qh[l] & (2u << (2 * c))) q[64 * c + 32 + l] += 16;
        }
      }
    }
    for (int64_t t = 0; t < nt; ++t) {
      const BlockQ8_K& ab = a(t);
      int32_t summ = 0;
      for (int j = 0; j < 8; ++j) summ += mn[j] * (ab.bsums[2 * j] + ab.bsums[2 * j + 1]);
      int32_t isum = 0;
      for (int g = 0; g < 8; ++g) {
        int32_t gs = 0;
        for (int l = 0; l < 32; ++l) gs += q[32 * g + l] * ab.qs[32 * g + l];
        isum += sc[g] * gs;
      }
      o(t) = kquant_step_min(o(t), ab.d, h2f(wb.d), h2f(wb.dmin), isum, summ);
    }
  });
}

void tile_q6_k(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
               float* out, int64_t ldo) {
  tile_rows<BlockQ6_K, BlockQ8_K>(w, ws, nr, act, as, nt, n / kQK_K, out, ldo, [&](const BlockQ6_K& wb, auto a, auto o) {
    // Value order as in dot_q6_k: half h, element l < 32: ql[l] low, ql[l+32] low, ql[l] high,
    // ql[l+32] high go to 128h + l, +32, +64, +96; 16-group scale index is (position / 16).
    int8_t q[kQK_K];
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = wb.ql + 64 * h;
      const uint8_t* qh = wb.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        q[128 * h + l] = int8_t(((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32);
        q[128 * h + l + 32] = int8_t(((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32);
        q[128 * h + l + 64] = int8_t(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        q[128 * h + l + 96] = int8_t(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    for (int64_t t = 0; t < nt; ++t) {
      const BlockQ8_K& ab = a(t);
      int32_t isum = 0;
      for (int g = 0; g < 16; ++g) {
        int32_t gs = 0;
        for (int l = 0; l < 16; ++l) gs += q[16 * g + l] * ab.qs[16 * g + l];
        isum += wb.scales[g] * gs;
      }
      o(t) = kquant_step(o(t), ab.d, h2f(wb.d), isum);
    }
  });
}

// Float weights: decoding is a table lookup or a shift, so reuse across tokens saves little, and a
// token-inner loop (strided over activation rows) measured ~6x slower than plain row dots. Each pair
// is the dot kernel's sequential sum from 0.0f.
template <class Decode>
void tile_float(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
                float* out, int64_t ldo, Decode decode) {
  for (int64_t t = 0; t < nt; ++t) {
    const auto* y = reinterpret_cast<const float*>(static_cast<const uint8_t*>(act) + t * as);
    for (int64_t r = 0; r < nr; ++r) {
      const uint8_t* row = static_cast<const uint8_t*>(w) + r * ws;
      float sum = 0.0f;
      for (int64_t i = 0; i < n; ++i) sum = mul_add1(decode(row, i), y[i], sum);
      out[t * ldo + r] = sum;
    }
  }
}
void tile_f32(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
              float* out, int64_t ldo) {
  tile_float(w, ws, nr, act, as, nt, n, out, ldo,
             [](const uint8_t* row, int64_t i) { return reinterpret_cast<const float*>(row)[i]; });
}
void tile_f16(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
              float* out, int64_t ldo) {
  const float* tab = fp16_table();
  tile_float(w, ws, nr, act, as, nt, n, out, ldo,
             [tab](const uint8_t* row, int64_t i) { return tab[reinterpret_cast<const uint16_t*>(row)[i]]; });
}
void tile_bf16(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
               float* out, int64_t ldo) {
  tile_float(w, ws, nr, act, as, nt, n, out, ldo,
             [](const uint8_t* row, int64_t i) { return bf16_to_fp32(reinterpret_cast<const uint16_t*>(row)[i]); });
}

void gelu_mul_s(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] = u ? gelu_tanh(g[i]) * u[i] : gelu_tanh(g[i]);
}

void soft_cap_s(float* x, int64_t n, float cap) {
  for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

template <class T, class Load>
void attn_scores_s(const T* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* s, int64_t ld, Load load) {
  for (int64_t j = 0; j < n; ++j)
    for (int h = 0; h < G; ++h) {
      float acc = 0.0f;
      for (int64_t i = 0; i < d; ++i) acc += load(k[j * stride + i]) * q[h * d + i];
      s[h * ld + j] = acc;
    }
}
template <class T, class Load>
void attn_values_s(const T* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* o, Load load) {
  for (int64_t j = 0; j < n; ++j)
    for (int h = 0; h < G; ++h)
      for (int64_t i = 0; i < d; ++i) o[h * d + i] += p[h * ld + j] * load(v[j * stride + i]);
}
float load_h(uint16_t x) { return h2f(x); }
float load_f(float x) { return x; }

KernelSet make_scalar() {
  KernelSet k;
  auto set = [&](GgmlType t, VecDotFn dot, QuantizeActFn q) {
    k.dot[type_index(t)] = dot;
    k.quant_act[type_index(t)] = q;
  };
  set(GgmlType::F32, dot_f32, quant_f32);
  set(GgmlType::F16, dot_f16, quant_f32);
  set(GgmlType::BF16, dot_bf16, quant_f32);
  set(GgmlType::Q4_0, dot_q4_0, quant_q8_0);
  set(GgmlType::Q4_1, dot_q4_1, quant_q8_1);
  set(GgmlType::Q5_0, dot_q5_0, quant_q8_0);
  set(GgmlType::Q5_1, dot_q5_1, quant_q8_1);
  set(GgmlType::Q8_0, dot_q8_0, quant_q8_0);
  set(GgmlType::Q2_K, dot_q2_k, quant_q8_k);
  set(GgmlType::Q3_K, dot_q3_k, quant_q8_k);
  set(GgmlType::Q4_K, dot_q4_k, quant_q8_k);
  set(GgmlType::Q5_K, dot_q5_k, quant_q8_k);
  set(GgmlType::Q6_K, dot_q6_k, quant_q8_k);
  k.tile[type_index(GgmlType::F32)] = tile_f32;
  k.tile[type_index(GgmlType::F16)] = tile_f16;
  k.tile[type_index(GgmlType::BF16)] = tile_bf16;
  k.tile[type_index(GgmlType::Q4_0)] = tile_q4_0;
  k.tile[type_index(GgmlType::Q4_K)] = tile_q45_k<BlockQ4_K, false>;
  k.tile[type_index(GgmlType::Q5_K)] = tile_q45_k<BlockQ5_K, true>;
  k.tile[type_index(GgmlType::Q6_K)] = tile_q6_k;
  k.dot_f16_f32 = dot_f16_f32_s;
  k.axpy_f16 = axpy_f16_s;
  k.dot_f32 = dot_f32_s;
  k.axpy_f32 = axpy_f32_s;
  k.gelu_mul = gelu_mul_s;
  k.soft_cap = soft_cap_s;
  k.attn_scores_f16 = [](const uint16_t* kk, int64_t st, int64_t n, const float* q, int G, int64_t d, float* sc, int64_t ld) {
    attn_scores_s(kk, st, n, q, G, d, sc, ld, load_h);
  };
  k.attn_scores_f32 = [](const float* kk, int64_t st, int64_t n, const float* q, int G, int64_t d, float* sc, int64_t ld) {
    attn_scores_s(kk, st, n, q, G, d, sc, ld, load_f);
  };
  k.attn_values_f16 = [](const uint16_t* v, int64_t st, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* o) {
    attn_values_s(v, st, n, p, ld, G, d, o, load_h);
  };
  k.attn_values_f32 = [](const float* v, int64_t st, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* o) {
    attn_values_s(v, st, n, p, ld, G, d, o, load_f);
  };
  return k;
}

}  // namespace

const KernelSet& scalar_kernels() {
  static const KernelSet k = make_scalar();
  return k;
}

}  // namespace g3n::vecdot
