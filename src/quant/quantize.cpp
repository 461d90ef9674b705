// Reference quantizers reproducing ggml's quantize_row_*_ref bit for bit (the path llama_model_quantize
// takes without an importance matrix). Layouts are in quant/blocks.h.
//
// Bit-exactness rests on evaluating every float expression in the same order and precision as ggml's
// C code: float32 throughout, no reassociation (never build with -ffast-math) and no contraction.
// Rounding helpers mirror ggml: nearest_int (round half to even via the 1.5*2^23 trick), roundf
// (half away from zero) for Q8_0/Q8_1, truncation after +0.5 for the legacy 4/5-bit types.
//
// No fused multiply-add anywhere in this file: ggml's reference code is compiled without contraction,
// and a fused a*b+c rounds differently (GCC contracts by default whenever the target has FMA, e.g.
// aarch64 or -march=native, even in ISO mode; clang contracts within expressions).
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "quant/blocks.h"
#include "quant/fp16.h"
#include "quant/quantize.h"

namespace g3n {
namespace {

using namespace quant;

// Below this a group is treated as all zero (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, for |f| <= 2^22: adding 1.5*2^23 leaves the integer in the low
// mantissa bits. Matches ggml's nearest_int exactly, including for values it would assert on.
inline int nearest_int(float f) {
  const float v = f + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007FFFFF) - 0x00400000;
}

inline uint16_t f2h(float f) { return fp32_to_fp16(f); }
inline float h2f(uint16_t h) { return fp16_to_fp32(h); }

// ---- legacy 32-element blocks ----

void quant_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    // Signed max (value with the largest magnitude, first one on ties) maps to -8.
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < kQK; ++j)
      if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
    const float d = max / -8;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t q0 = uint8_t(std::min(15, int(int8_t(x[j] * id + 8.5f))));
      const uint8_t q1 = uint8_t(std::min(15, int(int8_t(x[j + kQK / 2] * id + 8.5f))));
      y[b].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void quant_q4_1(const float* x, BlockQ4_1* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float mn = std::numeric_limits<float>::max(), mx = -std::numeric_limits<float>::max();
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < mn) mn = x[j];
      if (x[j] > mx) mx = x[j];
    }
    const float d = (mx - mn) / 15;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    y[b].m = f2h(mn);
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t q0 = uint8_t(std::min(15, int(int8_t((x[j] - mn) * id + 0.5f))));
      const uint8_t q1 = uint8_t(std::min(15, int(int8_t((x[j + kQK / 2] - mn) * id + 0.5f))));
      y[b].qs[j] = uint8_t(q0 | (q1 << 4));
    }
  }
}

void store_u32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }

void quant_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float amax = 0.f, max = 0.f;
    for (int j = 0; j < kQK; ++j)
      if (amax < std::fabs(x[j])) { amax = std::fabs(x[j]); max = x[j]; }
    const float d = max / -16;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      const uint8_t q0 = uint8_t(std::min(31, int(int8_t(x[j] * id + 16.5f))));
      const uint8_t q1 = uint8_t(std::min(31, int(int8_t(x[j + kQK / 2] * id + 16.5f))));
      y[b].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t(q0 >> 4) << j;
      qh |= uint32_t(q1 >> 4) << (j + kQK / 2);
    }
    store_u32(y[b].qh, qh);
  }
}

void quant_q5_1(const float* x, BlockQ5_1* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float mn = std::numeric_limits<float>::max(), mx = -std::numeric_limits<float>::max();
    for (int j = 0; j < kQK; ++j) {
      if (x[j] < mn) mn = x[j];
      if (x[j] > mx) mx = x[j];
    }
    const float d = (mx - mn) / 31;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    y[b].m = f2h(mn);
    uint32_t qh = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      // No clamp here in ggml: (x-min)*id + 0.5 never exceeds 31.5 by construction.
      const uint8_t q0 = uint8_t((x[j] - mn) * id + 0.5f);
      const uint8_t q1 = uint8_t((x[j + kQK / 2] - mn) * id + 0.5f);
      y[b].qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t((q0 & 0x10u) >> 4) << j;
      qh |= uint32_t((q1 & 0x10u) >> 4) << (j + kQK / 2);
    }
    store_u32(y[b].qh, qh);
  }
}

void quant_q8_0(const float* x, BlockQ8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float amax = 0.f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    for (int j = 0; j < kQK; ++j) y[b].qs[j] = int8_t(std::round(x[j] * id));
  }
}

void quant_q8_1(const float* x, BlockQ8_1* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK) {
    float amax = 0.f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[b].d = f2h(d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[b].qs[j] = int8_t(std::round(x[j] * id));
      sum += y[b].qs[j];
    }
    y[b].s = f2h(float(sum) * d);
  }
}

// ---- K-quant search helpers (ggml's make_*_quants) ----

// Symmetric quants L[i] in [0, 2*nmax) (offset by nmax) for a group, with the scale chosen by a
// weighted least-squares fit over 19 trial inverse scales around -nmax/max. rmse_type 1 weights
// each element by x^2 (the only mode the reference quantizers use); returns the scale.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0.f, amax = 0.f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) { amax = ax; max = x[i]; }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  auto quant = [&](float iscale, int i) { return std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i]))); };
  float iscale = -float(nmax) / max;
  float sumlx = 0.f, suml2 = 0.f;
  for (int i = 0; i < n; ++i) {
    const int l = quant(iscale, i);
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0.f;
    for (int i = 0; i < n; ++i) {
      const int l = quant(iscale, i);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0.f && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = int8_t(nmax + quant(iscale, i));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's group search: start from -nmax/max, then (do_rmse) up to 5 rounds of coordinate descent on
// the x^2-weighted fit. L is offset by nmax on return.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L, bool do_rmse) {
  float max = 0.f, amax = 0.f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) { amax = ax; max = x[i]; }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -float(nmax) / max;
  if (do_rmse) {
    float sumlx = 0.f, suml2 = 0.f;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
      L[i] = int8_t(l);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    for (int itry = 0; itry < 5; ++itry) {
      int n_changed = 0;
      for (int i = 0; i < n; ++i) {
        const float w = x[i] * x[i];
        float slx = sumlx - w * x[i] * float(L[i]);
        if (slx > 0.f) {
          float sl2 = suml2 - w * float(L[i]) * float(L[i]);
          int new_l = nearest_int(x[i] * sl2 / slx);
          new_l = std::max(-nmax, std::min(nmax - 1, new_l));
          if (new_l != L[i]) {
            slx += w * x[i] * float(new_l);
            sl2 += w * float(new_l) * float(new_l);
            if (sl2 > 0.f && slx * slx * suml2 > sumlx * sumlx * sl2) {
              L[i] = int8_t(new_l);
              sumlx = slx;
              suml2 = sl2;
              ++n_changed;
            }
          }
        }
      }
      if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
  }
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale * x[i])));
    L[i] = int8_t(l + nmax);
  }
  return 1 / iscale;
}

// Asymmetric quants L[i] in [0, nmax] with value = scale*L + min (min <= 0): start from the min/max
// range, then try nstep+1 inverse scales (rmin + rdelta*is + nmax)/(max - min), refitting scale and
// min by weighted least squares and keeping the lowest weighted error (|e| if use_mad, else e^2).
// Returns the scale and stores -min in *the_min.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0.f) min = 0.f;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0.f;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * float(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0.f, sum_l2 = 0.f, sum_xl = 0.f;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min))));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * float(l);
      sum_l2 += w * float(l) * float(l);
      sum_xl += w * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0.f) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0.f) {
        this_min = 0.f;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0.f;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * float(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Packs 2-bit quants L[0..255]: byte 32h + l holds values 128h + l + 32s at bits 2s (s = 0..3).
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// ---- K-quants ----

void quant_q2_k(const float* x, BlockQ2_K* y, int64_t nb) {
  uint8_t L[kQK_K], Laux[16];
  float weights[16], mins[kQK_K / 16], scales[kQK_K / 16];
  const float q4scale = 15.f;
  for (int64_t b = 0; b < nb; ++b, x += kQK_K) {
    float max_scale = 0.f, max_min = 0.f;
    for (int j = 0; j < kQK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0.f) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) y[b].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      y[b].d = f2h(max_scale / q4scale);
    } else {
      for (int j = 0; j < kQK_K / 16; ++j) y[b].scales[j] = 0;
      y[b].d = f2h(0.f);
    }
    if (max_min > 0.f) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < kQK_K / 16; ++j) y[b].scales[j] = uint8_t(y[b].scales[j] | (nearest_int(iscale * mins[j]) << 4));
      y[b].dmin = f2h(max_min / q4scale);
    } else {
      y[b].dmin = f2h(0.f);
    }
    // Requantize against the rounded (fp16, 4-bit) scales actually stored.
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = h2f(y[b].d) * float(y[b].scales[j] & 0xF);
      if (d == 0.f) continue;
      const float dm = h2f(y[b].dmin) * float(y[b].scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int((x[16 * j + ii] + dm) / d);
        L[16 * j + ii] = uint8_t(std::max(0, std::min(3, l)));
      }
    }
    pack_2bit(L, y[b].qs);
  }
}

void quant_q3_k(const float* x, BlockQ3_K* y, int64_t nb) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  for (int64_t b = 0; b < nb; ++b, x += kQK_K) {
    float max_scale = 0.f, amax = 0.f;
    for (int j = 0; j < kQK_K / 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, true);
      const float a = std::fabs(scales[j]);
      if (a > amax) { amax = a; max_scale = scales[j]; }
    }
    std::memset(y[b].scales, 0, 12);
    if (max_scale != 0.f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < kQK_K / 16; ++j) {
        // ggml narrows to int8 before clamping; |iscale*scale| <= 32 so nothing wraps.
        int8_t l = int8_t(nearest_int(iscale * scales[j]));
        l = int8_t(std::max(-32, std::min(31, int(l))) + 32);
        if (j < 8) y[b].scales[j] = uint8_t(l & 0xF);
        else y[b].scales[j - 8] = uint8_t(y[b].scales[j - 8] | ((l & 0xF) << 4));
        l = int8_t(l >> 4);
        y[b].scales[j % 4 + 8] = uint8_t(y[b].scales[j % 4 + 8] | (l << (2 * (j / 4))));
      }
      y[b].d = f2h(1 / iscale);
    } else {
      y[b].d = f2h(0.f);
    }
    for (int j = 0; j < kQK_K / 16; ++j) {
      const float d = h2f(y[b].d) * float(q3k_scale(j, y[b].scales));
      if (d == 0.f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = std::max(-4, std::min(3, nearest_int(x[16 * j + ii] / d)));
        L[16 * j + ii] = int8_t(l + 4);
      }
    }
    // High bit of value j goes to hmask[j % 32], bit j / 32.
    std::memset(y[b].hmask, 0, kQK_K / 8);
    uint8_t Lu[kQK_K];
    for (int j = 0; j < kQK_K; ++j) {
      int v = L[j];
      if (v > 3) {
        y[b].hmask[j % 32] = uint8_t(y[b].hmask[j % 32] | (1u << (j / 32)));
        v -= 4;
      }
      Lu[j] = uint8_t(v);
    }
    pack_2bit(Lu, y[b].qs);
  }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-group asymmetric fit, 6-bit scales/mins relative
// to the super-block maxima, then requantization against the stored scales. Fills L[256].
template <typename Block>
void quant_k4_common(const float* x, Block& y, int nmax, float rmin, float rdelta, int nstep, uint8_t* L) {
  uint8_t Laux[32];
  float weights[32], mins[kQK_K / 32], scales[kQK_K / 32];
  float max_scale = 0.f, max_min = 0.f;
  for (int j = 0; j < kQK_K / 32; ++j) {
    float sum_x2 = 0.f;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0.f ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0.f ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < kQK_K / 32; ++j) {
    // ggml narrows to uint8 before the clamp to 63.
    ls[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
  }
  pack_k4_scales(ls, lm, y.scales);
  y.d = f2h(max_scale / 63.f);
  y.dmin = f2h(max_min / 63.f);
  for (int j = 0; j < kQK_K / 32; ++j) {
    uint8_t sc, m;
    k4_scale_min(j, y.scales, &sc, &m);
    const float d = h2f(y.d) * float(sc);
    if (d == 0.f) continue;
    const float dm = h2f(y.dmin) * float(m);
    for (int ii = 0; ii < 32; ++ii) {
      const int l = nearest_int((x[32 * j + ii] + dm) / d);
      L[32 * j + ii] = uint8_t(std::max(0, std::min(nmax, l)));
    }
  }
}

void quant_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t b = 0; b < nb; ++b, x += kQK_K) {
    quant_k4_common(x, y[b], 15, -1.f, 0.1f, 20, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) y[b].qs[32 * c + l] = uint8_t(L[64 * c + l] | (L[64 * c + l + 32] << 4));
  }
}

void quant_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
  uint8_t L[kQK_K];
  for (int64_t b = 0; b < nb; ++b, x += kQK_K) {
    quant_k4_common(x, y[b], 31, -0.5f, 0.1f, 15, L);
    std::memset(y[b].qh, 0, kQK_K / 8);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        int l1 = L[64 * c + l], l2 = L[64 * c + l + 32];
        if (l1 > 15) { l1 -= 16; y[b].qh[l] = uint8_t(y[b].qh[l] | (1u << (2 * c))); }
        if (l2 > 15) { l2 -= 16; y[b].qh[l] = uint8_t(y[b].qh[l] | (2u << (2 * c))); }
        y[b].qs[32 * c + l] = uint8_t(l1 | (l2 << 4));
      }
    }
  }
}

void quant_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  for (int64_t b = 0; b < nb; ++b, x += kQK_K) {
    float max_scale = 0.f, max_abs_scale = 0.f;
    for (int g = 0; g < kQK_K / 16; ++g) {
      scales[g] = make_qx_quants(16, 32, x + 16 * g, L + 16 * g);
      const float a = std::fabs(scales[g]);
      if (a > max_abs_scale) { max_abs_scale = a; max_scale = scales[g]; }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&y[b], 0, sizeof(BlockQ6_K));
      continue;
    }
    const float iscale = -128.f / max_scale;
    y[b].d = f2h(1 / iscale);
    for (int g = 0; g < kQK_K / 16; ++g) y[b].scales[g] = int8_t(std::min(127, nearest_int(iscale * scales[g])));
    for (int g = 0; g < kQK_K / 16; ++g) {
      const float d = h2f(y[b].d) * float(y[b].scales[g]);
      if (d == 0.f) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = std::max(-32, std::min(31, nearest_int(x[16 * g + ii] / d)));
        L[16 * g + ii] = int8_t(l + 32);
      }
    }
    for (int half = 0; half < 2; ++half) {
      const int8_t* Lh = L + 128 * half;
      uint8_t* ql = y[b].ql + 64 * half;
      uint8_t* qh = y[b].qh + 32 * half;
      for (int l = 0; l < 32; ++l) {
        ql[l] = uint8_t((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        ql[l + 32] = uint8_t((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        qh[l] = uint8_t((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

void quant_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += kQK_K) {
    float max = 0.f, amax = 0.f;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (amax == 0.f) {
      // ggml leaves bsums unwritten here; zero them so the output is deterministic.
      std::memset(&y[b], 0, sizeof(BlockQ8_K));
      continue;
    }
    // -127 (not -128) as in ggml, so qs stays within [-127, 127].
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) y[b].qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int ii = 0; ii < 16; ++ii) sum += y[b].qs[16 * g + ii];
      y[b].bsums[g] = int16_t(sum);
    }
    y[b].d = 1 / iscale;
  }
}

}  // namespace

bool can_quantize(GgmlType type) {
  switch (type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q8_0: case GgmlType::Q8_1:
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K:
    case GgmlType::Q6_K: case GgmlType::Q8_K:
      return true;
  }
  return false;
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  const auto tr = ggml_type_traits(type);
  if (n < 0 || n % tr.block_size != 0)
    throw std::invalid_argument("quantize_row: " + std::to_string(n) + " is not a multiple of the " +
                                std::string(tr.name) + " block size");
  const int64_t nb = n / tr.block_size;
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, size_t(n) * sizeof(float)); return;
    case GgmlType::F16: {
      auto* y = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_fp16(src[i]);
      return;
    }
    case GgmlType::BF16: {
      auto* y = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) y[i] = fp32_to_bf16(src[i]);
      return;
    }
    case GgmlType::Q4_0: quant_q4_0(src, static_cast<BlockQ4_0*>(dst), nb); return;
    case GgmlType::Q4_1: quant_q4_1(src, static_cast<BlockQ4_1*>(dst), nb); return;
    case GgmlType::Q5_0: quant_q5_0(src, static_cast<BlockQ5_0*>(dst), nb); return;
    case GgmlType::Q5_1: quant_q5_1(src, static_cast<BlockQ5_1*>(dst), nb); return;
    case GgmlType::Q8_0: quant_q8_0(src, static_cast<BlockQ8_0*>(dst), nb); return;
    case GgmlType::Q8_1: quant_q8_1(src, static_cast<BlockQ8_1*>(dst), nb); return;
    case GgmlType::Q2_K: quant_q2_k(src, static_cast<BlockQ2_K*>(dst), nb); return;
    case GgmlType::Q3_K: quant_q3_k(src, static_cast<BlockQ3_K*>(dst), nb); return;
    case GgmlType::Q4_K: quant_q4_k(src, static_cast<BlockQ4_K*>(dst), nb); return;
    case GgmlType::Q5_K: quant_q5_k(src, static_cast<BlockQ5_K*>(dst), nb); return;
    case GgmlType::Q6_K: quant_q6_k(src, static_cast<BlockQ6_K*>(dst), nb); return;
    case GgmlType::Q8_K: quant_q8_k(src, static_cast<BlockQ8_K*>(dst), nb); return;
  }
  throw std::invalid_argument("quantize_row: unsupported type");
}

std::vector<size_t> fp16_scale_offsets(GgmlType type) {
  using namespace quant;
  switch (type) {
    case GgmlType::Q4_0: return {offsetof(BlockQ4_0, d)};
    case GgmlType::Q5_0: return {offsetof(BlockQ5_0, d)};
    case GgmlType::Q8_0: return {offsetof(BlockQ8_0, d)};
    case GgmlType::Q4_1: return {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)};
    case GgmlType::Q5_1: return {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)};
    case GgmlType::Q2_K: return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)};
    case GgmlType::Q3_K: return {offsetof(BlockQ3_K, d)};
    case GgmlType::Q4_K: return {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)};
    case GgmlType::Q5_K: return {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)};
    case GgmlType::Q6_K: return {offsetof(BlockQ6_K, d)};
    default: return {};
  }
}

}  // namespace g3n
