// The NEON kernel bodies, compiled three times from one -march=armv8-a build: plain ARMv8-A
// (vec_dot_neon.cpp), with SDOT (vec_dot_neon_dotprod.cpp, G3N_NEON_DOTPROD=1) and with SDOT + SMMLA
// (vec_dot_neon_i8mm.cpp, G3N_NEON_I8MM=1). Each including file first includes <arm_neon.h> and the
// quant headers, then sets its `#pragma GCC target`, then includes this: everything here is in an
// anonymous namespace, so the three copies never meet at link time (no shared inline function can be
// emitted with another file's instructions). The file ends with make_neon_set(), that copy's KernelSet.
//
// Exactness. Every quantized kernel computes each block's integer sums exactly (any order gives the
// same int32) and closes the block with one float step: the K-quants with kquant_step.h, the scalar
// dots' own step, so they return the scalar twins' bits; the legacy types with the steps below. The
// tile kernels (including the SMMLA ones) use the same steps in the same block order, so each (row,
// token) of a tile has the bits of this set's dot: batched prefill equals one-token decode.
//
// Header without include guard on purpose: it is meant to be included once per target file.
// NOLINT(build/header_guard)

#ifndef G3N_NEON_DOTPROD
#define G3N_NEON_DOTPROD 0
#endif
#ifndef G3N_NEON_I8MM
#define G3N_NEON_I8MM 0
#endif

namespace g3n::vecdot {
namespace {

using namespace quant;

// ---- integer building blocks -----------------------------------------------------------------------

// acc + the products x_i * y_i of 16 int8 pairs, as 4 int32 partial sums.
inline int32x4_t dot16(int32x4_t acc, int8x16_t x, int8x16_t y) {
#if G3N_NEON_DOTPROD
  return vdotq_s32(acc, x, y);
#else
  // |x_i * y_i| <= 128 * 127 fits int16; the pairwise add-accumulate widens to int32.
  const int16x8_t lo = vmull_s8(vget_low_s8(x), vget_low_s8(y));
  const int16x8_t hi = vmull_high_s8(x, y);
  return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

inline int32x4_t zero4() { return vdupq_n_s32(0); }

// 0x10 in byte j where bit j of m is set (j < 16): the 5th bit of the Q5_0/Q5_1 values.
inline uint8x16_t bits_to_0x10(uint32_t m) {
  static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  const uint8x16_t sel = vcombine_u8(vdup_n_u8(uint8_t(m)), vdup_n_u8(uint8_t(m >> 8)));
  return vandq_u8(vtstq_u8(sel, vld1q_u8(kBit)), vdupq_n_u8(0x10));
}

inline float f16(uint16_t h) { return fp16_to_fp32(h); }

// ---- the legacy float steps (this set's dots and tiles share them) ---------------------------------

inline float step_d(float sum, int32_t isum, float wd, float ad) { return sum + float(isum) * (wd * ad); }
inline float step_dm(float sum, int32_t isum, float wd, float ad, float wm, float as) {
  return sum + (float(isum) * (wd * ad) + wm * as);
}

// ---- unpacked weight blocks: the int8 quants in activation order, the scales, the float factors ----

struct Legacy {
  alignas(16) int8_t q[32];
  float d = 0, m = 0;
};

template <class WBlock>
inline void unpack(const WBlock& w, Legacy& u);

template <>
inline void unpack(const BlockQ4_0& w, Legacy& u) {
  const uint8x16_t b = vld1q_u8(w.qs);
  const int8x16_t k8 = vdupq_n_s8(8);
  vst1q_s8(u.q, vsubq_s8(vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0F))), k8));
  vst1q_s8(u.q + 16, vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(b, 4)), k8));
  u.d = f16(w.d);
}
template <>
inline void unpack(const BlockQ4_1& w, Legacy& u) {
  const uint8x16_t b = vld1q_u8(w.qs);
  vst1q_s8(u.q, vreinterpretq_s8_u8(vandq_u8(b, vdupq_n_u8(0x0F))));
  vst1q_s8(u.q + 16, vreinterpretq_s8_u8(vshrq_n_u8(b, 4)));
  u.d = f16(w.d);
  u.m = f16(w.m);
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
template <>
inline void unpack(const BlockQ5_0& w, Legacy& u) {
  const uint8x16_t b = vld1q_u8(w.qs);
  const uint32_t qh = load_u32(w.qh);
  const int8x16_t k16 = vdupq_n_s8(16);
  const uint8x16_t lo = vorrq_u8(vandq_u8(b, vdupq_n_u8(0x0F)), bits_to_0x10(qh));
  const uint8x16_t hi = vorrq_u8(vshrq_n_u8(b, 4), bits_to_0x10(qh >> 16));
  vst1q_s8(u.q, vsubq_s8(vreinterpretq_s8_u8(lo), k16));
  vst1q_s8(u.q + 16, vsubq_s8(vreinterpretq_s8_u8(hi), k16));
  u.d = f16(w.d);
}
template <>
inline void unpack(const BlockQ5_1& w, Legacy& u) {
  const uint8x16_t b = vld1q_u8(w.qs);
  const uint32_t qh = load_u32(w.qh);
  vst1q_s8(u.q, vreinterpretq_s8_u8(vorrq_u8(vandq_u8(b, vdupq_n_u8(0x0F)), bits_to_0x10(qh))));
  vst1q_s8(u.q + 16, vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(b, 4), bits_to_0x10(qh >> 16))));
  u.d = f16(w.d);
  u.m = f16(w.m);
}
template <>
inline void unpack(const BlockQ8_0& w, Legacy& u) {
  vst1q_s8(u.q, vld1q_s8(w.qs));
  vst1q_s8(u.q + 16, vld1q_s8(w.qs + 16));
  u.d = f16(w.d);
}

inline int32_t isum32(const int8_t* q, const int8_t* a) {
  return vaddvq_s32(dot16(dot16(zero4(), vld1q_s8(q), vld1q_s8(a)), vld1q_s8(q + 16), vld1q_s8(a + 16)));
}

// One legacy block against one activation block: the step of its pair type.
inline float close(float sum, const Legacy& u, const BlockQ8_0& a) { return step_d(sum, isum32(u.q, a.qs), u.d, f16(a.d)); }
inline float close(float sum, const Legacy& u, const BlockQ8_1& a) {
  return step_dm(sum, isum32(u.q, a.qs), u.d, f16(a.d), u.m, f16(a.s));
}

// K-quants: 256 quants, kGroups scale groups (8 of 32 or 16 of 16), mins where the type has them.
struct KQuant {
  alignas(16) int8_t q[256];
  int32_t sc[16];
  int32_t mn[16];
  float d = 0, dmin = 0;
};

inline void unpack(const BlockQ2_K& w, KQuant& u) {
  const uint8x16_t m3 = vdupq_n_u8(3);
  for (int half = 0; half < 2; ++half) {
    const uint8x16_t q0 = vld1q_u8(w.qs + 32 * half), q1 = vld1q_u8(w.qs + 32 * half + 16);
    for (int s = 0; s < 4; ++s) {
      const int8x16_t sh = vdupq_n_s8(int8_t(-2 * s));
      int8_t* o = u.q + 128 * half + 32 * s;
      vst1q_s8(o, vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, sh), m3)));
      vst1q_s8(o + 16, vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, sh), m3)));
    }
  }
  for (int g = 0; g < 16; ++g) u.sc[g] = w.scales[g] & 0x0F, u.mn[g] = w.scales[g] >> 4;
  u.d = f16(w.d);
  u.dmin = f16(w.dmin);
}

inline void unpack(const BlockQ3_K& w, KQuant& u) {
  const uint8x16_t m3 = vdupq_n_u8(3);
  const uint8x16_t h0 = vld1q_u8(w.hmask), h1 = vld1q_u8(w.hmask + 16);
  const int8x16_t k4 = vdupq_n_s8(4);
  for (int half = 0; half < 2; ++half) {
    const uint8x16_t q0 = vld1q_u8(w.qs + 32 * half), q1 = vld1q_u8(w.qs + 32 * half + 16);
    for (int s = 0; s < 4; ++s) {
      const int8x16_t sh = vdupq_n_s8(int8_t(-2 * s));
      const uint8x16_t hb = vdupq_n_u8(uint8_t(1u << (4 * half + s)));
      // value - 4 where the high bit is clear: subtract 4 AND (hmask bit clear).
      const int8x16_t sub0 = vreinterpretq_s8_u8(vbicq_u8(vreinterpretq_u8_s8(k4), vtstq_u8(h0, hb)));
      const int8x16_t sub1 = vreinterpretq_s8_u8(vbicq_u8(vreinterpretq_u8_s8(k4), vtstq_u8(h1, hb)));
      int8_t* o = u.q + 128 * half + 32 * s;
      vst1q_s8(o, vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q0, sh), m3)), sub0));
      vst1q_s8(o + 16, vsubq_s8(vreinterpretq_s8_u8(vandq_u8(vshlq_u8(q1, sh), m3)), sub1));
    }
  }
  for (int g = 0; g < 16; ++g) u.sc[g] = q3k_scale(g, w.scales);
  u.d = f16(w.d);
}

template <class WBlock, bool kFive>
inline void unpack_q45(const WBlock& w, KQuant& u) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  uint8x16_t h0 = vdupq_n_u8(0), h1 = h0;
  if constexpr (kFive) h0 = vld1q_u8(w.qh), h1 = vld1q_u8(w.qh + 16);
  for (int c = 0; c < 4; ++c) {
    const uint8x16_t q0 = vld1q_u8(w.qs + 32 * c), q1 = vld1q_u8(w.qs + 32 * c + 16);
    uint8x16_t l0 = vandq_u8(q0, m4), l1 = vandq_u8(q1, m4), u0 = vshrq_n_u8(q0, 4), u1 = vshrq_n_u8(q1, 4);
    if constexpr (kFive) {
      const uint8x16_t b1 = vdupq_n_u8(uint8_t(1u << (2 * c))), b2 = vdupq_n_u8(uint8_t(2u << (2 * c)));
      const uint8x16_t k16 = vdupq_n_u8(16);
      l0 = vorrq_u8(l0, vandq_u8(vtstq_u8(h0, b1), k16));
      l1 = vorrq_u8(l1, vandq_u8(vtstq_u8(h1, b1), k16));
      u0 = vorrq_u8(u0, vandq_u8(vtstq_u8(h0, b2), k16));
      u1 = vorrq_u8(u1, vandq_u8(vtstq_u8(h1, b2), k16));
    }
    int8_t* o = u.q + 64 * c;
    vst1q_s8(o, vreinterpretq_s8_u8(l0));
    vst1q_s8(o + 16, vreinterpretq_s8_u8(l1));
    vst1q_s8(o + 32, vreinterpretq_s8_u8(u0));
    vst1q_s8(o + 48, vreinterpretq_s8_u8(u1));
  }
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    k4_scale_min(j, w.scales, &s, &m);
    u.sc[j] = s;
    u.mn[j] = m;
  }
  u.d = f16(w.d);
  u.dmin = f16(w.dmin);
}
inline void unpack(const BlockQ4_K& w, KQuant& u) { unpack_q45<BlockQ4_K, false>(w, u); }
inline void unpack(const BlockQ5_K& w, KQuant& u) { unpack_q45<BlockQ5_K, true>(w, u); }

inline void unpack(const BlockQ6_K& w, KQuant& u) {
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
  const int8x16_t k32 = vdupq_n_s8(32);
  const auto centred = [&](uint8x16_t v) { return vsubq_s8(vreinterpretq_s8_u8(v), k32); };
  for (int half = 0; half < 2; ++half) {
    const uint8_t* ql = w.ql + 64 * half;
    const uint8_t* qh = w.qh + 32 * half;
    int8_t* o = u.q + 128 * half;
    for (int s = 0; s < 2; ++s) {
      const uint8x16_t l0 = vld1q_u8(ql + 16 * s), l1 = vld1q_u8(ql + 32 + 16 * s), h = vld1q_u8(qh + 16 * s);
      vst1q_s8(o + 16 * s, centred(vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(h, m3), 4))));
      vst1q_s8(o + 32 + 16 * s, centred(vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4))));
      vst1q_s8(o + 64 + 16 * s, centred(vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4))));
      vst1q_s8(o + 96 + 16 * s, centred(vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4))));
    }
  }
  for (int g = 0; g < 16; ++g) u.sc[g] = w.scales[g];
  u.d = f16(w.d);
}

// sum_g sc[g] * (quants of group g . activations of group g), groups of 32 (8) or of 16 (16).
template <int kGroups>
inline int32_t kquant_isum(const KQuant& u, const int8_t* a) {
  int32x4_t acc = zero4();
  constexpr int kLen = 256 / kGroups;
  for (int g = 0; g < kGroups; ++g) {
    int32x4_t p = dot16(zero4(), vld1q_s8(u.q + kLen * g), vld1q_s8(a + kLen * g));
    if constexpr (kLen == 32) p = dot16(p, vld1q_s8(u.q + kLen * g + 16), vld1q_s8(a + kLen * g + 16));
    acc = vmlaq_n_s32(acc, p, u.sc[g]);
  }
  return vaddvq_s32(acc);
}

// The min term sum_g mn[g] * (activation sum of group g): 8 groups use the bsums in pairs.
template <int kGroups>
inline int32_t kquant_summ(const KQuant& u, const BlockQ8_K& a) {
  int32_t summ = 0;
  if constexpr (kGroups == 8) {
    for (int j = 0; j < 8; ++j) summ += u.mn[j] * (a.bsums[2 * j] + a.bsums[2 * j + 1]);
  } else {
    for (int j = 0; j < 16; ++j) summ += u.mn[j] * a.bsums[j];
  }
  return summ;
}

// Closes one K-quant block: the scalar dots' float step, with or without the min term.
template <int kGroups, bool kMin>
inline float close_k_sums(float sum, const KQuant& u, const BlockQ8_K& a, int32_t isum) {
  if constexpr (kMin) return kquant_step_min(sum, a.d, u.d, u.dmin, isum, kquant_summ<kGroups>(u, a));
  else return kquant_step(sum, a.d, u.d, isum);
}
template <int kGroups, bool kMin>
inline float close_k(float sum, const KQuant& u, const BlockQ8_K& a) {
  return close_k_sums<kGroups, kMin>(sum, u, a, kquant_isum<kGroups>(u, a.qs));
}

// Per weight type: its block, unpacked form, activation block and closing step.
template <class W> struct Traits;
template <> struct Traits<BlockQ4_0> { using U = Legacy; using A = BlockQ8_0; static constexpr int kBlock = 32; };
template <> struct Traits<BlockQ4_1> { using U = Legacy; using A = BlockQ8_1; static constexpr int kBlock = 32; };
template <> struct Traits<BlockQ5_0> { using U = Legacy; using A = BlockQ8_0; static constexpr int kBlock = 32; };
template <> struct Traits<BlockQ5_1> { using U = Legacy; using A = BlockQ8_1; static constexpr int kBlock = 32; };
template <> struct Traits<BlockQ8_0> { using U = Legacy; using A = BlockQ8_0; static constexpr int kBlock = 32; };
template <class W, int G, bool M>
struct KTraits {
  using U = KQuant;
  using A = BlockQ8_K;
  static constexpr int kBlock = 256, kGroups = G;
  static constexpr bool kMin = M;
};
template <> struct Traits<BlockQ2_K> : KTraits<BlockQ2_K, 16, true> {};
template <> struct Traits<BlockQ3_K> : KTraits<BlockQ3_K, 16, false> {};
template <> struct Traits<BlockQ4_K> : KTraits<BlockQ4_K, 8, true> {};
template <> struct Traits<BlockQ5_K> : KTraits<BlockQ5_K, 8, true> {};
template <> struct Traits<BlockQ6_K> : KTraits<BlockQ6_K, 16, false> {};

template <class W>
inline float close_any(float sum, const typename Traits<W>::U& u, const typename Traits<W>::A& a) {
  if constexpr (std::is_same_v<typename Traits<W>::U, Legacy>) return close(sum, u, a);
  else return close_k<Traits<W>::kGroups, Traits<W>::kMin>(sum, u, a);
}

// ---- dots --------------------------------------------------------------------------------------------

// Any quantized type: unpack each block, then close it against the activation block.
template <class W>
float dot_unpacked(const void* vw, const void* va, int64_t n) {
  using T = Traits<W>;
  const auto* w = static_cast<const W*>(vw);
  const auto* a = static_cast<const typename T::A*>(va);
  typename T::U u;
  float sum = 0.0f;
  for (int64_t b = 0; b < n / T::kBlock; ++b) {
    unpack(w[b], u);
    sum = close_any<W>(sum, u, a[b]);
  }
  return sum;
}

// The hot decode dots, fused (no store and reload of the unpacked quants); same integer sums and step.
float dot_q8_0(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ8_0*>(vw);
  const auto* a = static_cast<const BlockQ8_0*>(va);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) sum = step_d(sum, isum32(w[b].qs, a[b].qs), f16(w[b].d), f16(a[b].d));
  return sum;
}

float dot_q4_0(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ4_0*>(vw);
  const auto* a = static_cast<const BlockQ8_0*>(va);
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  const int8x16_t k8 = vdupq_n_s8(8);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / 32; ++b) {
    const uint8x16_t q = vld1q_u8(w[b].qs);
    const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), k8);
    const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), k8);
    const int32_t isum = vaddvq_s32(dot16(dot16(zero4(), lo, vld1q_s8(a[b].qs)), hi, vld1q_s8(a[b].qs + 16)));
    sum = step_d(sum, isum, f16(w[b].d), f16(a[b].d));
  }
  return sum;
}

float dot_q4_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ4_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    uint8_t sc[8], mn[8];
    for (int j = 0; j < 8; ++j) k4_scale_min(j, w[b].scales, &sc[j], &mn[j]);
    // Min term: the 16 bsums paired into 8 group sums, times the 8 mins.
    const int16x8_t pair = vpaddq_s16(vld1q_s16(a[b].bsums), vld1q_s16(a[b].bsums + 8));
    const int16x8_t mins = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
    const int32_t summ = vaddvq_s32(vaddq_s32(vmull_s16(vget_low_s16(pair), vget_low_s16(mins)),
                                              vmull_high_s16(pair, mins)));
    int32x4_t acc = zero4();
    for (int c = 0; c < 4; ++c) {
      const uint8x16_t q0 = vld1q_u8(w[b].qs + 32 * c), q1 = vld1q_u8(w[b].qs + 32 * c + 16);
      const int8_t* qa = a[b].qs + 64 * c;
      const int32x4_t lo = dot16(dot16(zero4(), vreinterpretq_s8_u8(vandq_u8(q0, m4)), vld1q_s8(qa)),
                                 vreinterpretq_s8_u8(vandq_u8(q1, m4)), vld1q_s8(qa + 16));
      const int32x4_t hi = dot16(dot16(zero4(), vreinterpretq_s8_u8(vshrq_n_u8(q0, 4)), vld1q_s8(qa + 32)),
                                 vreinterpretq_s8_u8(vshrq_n_u8(q1, 4)), vld1q_s8(qa + 48));
      acc = vmlaq_n_s32(vmlaq_n_s32(acc, lo, sc[2 * c]), hi, sc[2 * c + 1]);
    }
    sum = kquant_step_min(sum, a[b].d, f16(w[b].d), f16(w[b].dmin), vaddvq_s32(acc), summ);
  }
  return sum;
}

float dot_q6_k(const void* vw, const void* va, int64_t n) {
  const auto* w = static_cast<const BlockQ6_K*>(vw);
  const auto* a = static_cast<const BlockQ8_K*>(va);
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(0x03);
  const int8x16_t k32 = vdupq_n_s8(32);
  const auto centred = [&](uint8x16_t v) { return vsubq_s8(vreinterpretq_s8_u8(v), k32); };
  float sum = 0.0f;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32x4_t acc = zero4();
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = w[b].ql + 64 * half;
      const uint8_t* qh = w[b].qh + 32 * half;
      const int8_t* sc = w[b].scales + 8 * half;
      const int8_t* qa = a[b].qs + 128 * half;
      for (int s = 0; s < 2; ++s) {  // values l = 16s..16s+15 of each quarter: scale groups s, s+2, s+4, s+6
        const uint8x16_t l0 = vld1q_u8(ql + 16 * s), l1 = vld1q_u8(ql + 32 + 16 * s), h = vld1q_u8(qh + 16 * s);
        const uint8x16_t v0 = vorrq_u8(vandq_u8(l0, m4), vshlq_n_u8(vandq_u8(h, m3), 4));
        const uint8x16_t v1 = vorrq_u8(vandq_u8(l1, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4));
        const uint8x16_t v2 = vorrq_u8(vshrq_n_u8(l0, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4));
        const uint8x16_t v3 = vorrq_u8(vshrq_n_u8(l1, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4));
        acc = vmlaq_n_s32(acc, dot16(zero4(), centred(v0), vld1q_s8(qa + 16 * s)), sc[s]);
        acc = vmlaq_n_s32(acc, dot16(zero4(), centred(v1), vld1q_s8(qa + 32 + 16 * s)), sc[s + 2]);
        acc = vmlaq_n_s32(acc, dot16(zero4(), centred(v2), vld1q_s8(qa + 64 + 16 * s)), sc[s + 4]);
        acc = vmlaq_n_s32(acc, dot16(zero4(), centred(v3), vld1q_s8(qa + 96 + 16 * s)), sc[s + 6]);
      }
    }
    sum = kquant_step(sum, a[b].d, f16(w[b].d), vaddvq_s32(acc));
  }
  return sum;
}

// ---- tiles -------------------------------------------------------------------------------------------

// out[t*ldo + r] for one weight row against n_tok activation rows: each weight block is unpacked once
// and closed against every token's block, in block order (the dot's order).
template <class W>
void tile_row(const W* wr, const uint8_t* act, uint64_t as, int64_t nt, int64_t nb, float* out, int64_t ldo) {
  using T = Traits<W>;
  typename T::U u;
  for (int64_t t = 0; t < nt; ++t) out[t * ldo] = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    unpack(wr[b], u);
    for (int64_t t = 0; t < nt; ++t)
      out[t * ldo] = close_any<W>(out[t * ldo], u, reinterpret_cast<const typename T::A*>(act + t * as)[b]);
  }
}

template <class W>
void tile_unpacked(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
                   float* out, int64_t ldo) {
  for (int64_t r = 0; r < nr; ++r)
    tile_row(reinterpret_cast<const W*>(static_cast<const uint8_t*>(w) + r * ws), static_cast<const uint8_t*>(act), as,
             nt, n / Traits<W>::kBlock, out + r, ldo);
}

// The masked tile: row r against the 8-token groups g with need[r*ldn + g] != 0 only (other outputs
// untouched); each needed row's blocks are unpacked once for all its needed groups.
template <class W>
void masked_tile_unpacked(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
                          float* out, int64_t ldo, const uint8_t* need, int64_t ldn) {
  using T = Traits<W>;
  const int64_t groups = (nt + 7) / 8, nb = n / T::kBlock;
  const auto* ab = static_cast<const uint8_t*>(act);
  typename T::U u;
  for (int64_t r = 0; r < nr; ++r) {
    const uint8_t* nd = need + r * ldn;
    bool any = false;
    for (int64_t g = 0; g < groups; ++g) any |= nd[g] != 0;
    if (!any) continue;
    const W* wr = reinterpret_cast<const W*>(static_cast<const uint8_t*>(w) + r * ws);
    for (int64_t g = 0; g < groups; ++g)
      if (nd[g])
        for (int64_t t = 8 * g; t < std::min(nt, 8 * g + 8); ++t) out[t * ldo + r] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      unpack(wr[b], u);
      for (int64_t g = 0; g < groups; ++g) {
        if (!nd[g]) continue;
        for (int64_t t = 8 * g; t < std::min(nt, 8 * g + 8); ++t)
          out[t * ldo + r] = close_any<W>(out[t * ldo + r], u, reinterpret_cast<const typename T::A*>(ab + t * as)[b]);
      }
    }
  }
}

#if G3N_NEON_I8MM
// SMMLA tiles: 2 weight rows x 2 tokens per instruction. vmmlaq_s32(acc, x, y) adds the 2x2 int32 matrix
// x (2 rows of 8 int8) times y^T (2 rows of 8 int8): lanes (row0,tok0) (row0,tok1) (row1,tok0) (row1,tok1).
// The two rows' unpacked quants are interleaved 8 bytes at a time once per block; each token pair's
// activations are interleaved as they are read. Integer sums as exact as the dot's, same float steps.

// Interleaves two 256- (or 32-) quant arrays by 8: out = x[0..8) y[0..8) x[8..16) y[8..16) ...
inline void interleave8(const int8_t* x, const int8_t* y, int8_t* out, int len) {
  for (int i = 0; i < len; i += 16) {
    const int64x2_t a = vreinterpretq_s64_s8(vld1q_s8(x + i)), b = vreinterpretq_s64_s8(vld1q_s8(y + i));
    vst1q_s8(out + 2 * i, vreinterpretq_s8_s64(vzip1q_s64(a, b)));
    vst1q_s8(out + 2 * i + 16, vreinterpretq_s8_s64(vzip2q_s64(a, b)));
  }
}

// 2x2 sums over `len` quants (multiple of 16): wi = interleaved weights of the row pair, a0/a1 the two
// tokens' activations.
inline int32x4_t mm_sums(const int8_t* wi, const int8_t* a0, const int8_t* a1, int len) {
  int32x4_t acc = zero4();
  for (int i = 0; i < len; i += 16) {
    const int64x2_t x = vreinterpretq_s64_s8(vld1q_s8(a0 + i)), y = vreinterpretq_s64_s8(vld1q_s8(a1 + i));
    acc = vmmlaq_s32(acc, vld1q_s8(wi + 2 * i), vreinterpretq_s8_s64(vzip1q_s64(x, y)));
    acc = vmmlaq_s32(acc, vld1q_s8(wi + 2 * i + 16), vreinterpretq_s8_s64(vzip2q_s64(x, y)));
  }
  return acc;
}

// Per-group scaled 2x2 sums of a K-quant row pair: lanes 0,1 take row 0's scales, lanes 2,3 row 1's.
template <int kGroups>
inline int32x4_t mm_kquant(const int8_t* wi, const KQuant& u0, const KQuant& u1, const int8_t* a0, const int8_t* a1) {
  constexpr int kLen = 256 / kGroups;
  int32x4_t acc = zero4();
  for (int g = 0; g < kGroups; ++g) {
    const int32x4_t p = mm_sums(wi + 2 * kLen * g, a0 + kLen * g, a1 + kLen * g, kLen);
    const int32x4_t s = vcombine_s32(vdup_n_s32(u0.sc[g]), vdup_n_s32(u1.sc[g]));
    acc = vmlaq_s32(acc, p, s);
  }
  return acc;
}

template <class W>
void tile_mmla(const void* w, uint64_t ws, int64_t nr, const void* act, uint64_t as, int64_t nt, int64_t n,
               float* out, int64_t ldo) {
  using T = Traits<W>;
  using A = typename T::A;
  constexpr int kLen = T::kBlock;
  const int64_t nb = n / kLen;
  const auto* ab = static_cast<const uint8_t*>(act);
  const auto row = [&](int64_t r) { return reinterpret_cast<const W*>(static_cast<const uint8_t*>(w) + r * ws); };
  const auto tok = [&](int64_t t, int64_t b) -> const A& { return reinterpret_cast<const A*>(ab + t * as)[b]; };
  int64_t r = 0;
  for (; r + 2 <= nr; r += 2) {
    const W* w0 = row(r);
    const W* w1 = row(r + 1);
    for (int64_t t = 0; t < nt; ++t) out[t * ldo + r] = out[t * ldo + r + 1] = 0.0f;
    typename T::U u0, u1;
    alignas(16) int8_t wi[2 * kLen];
    for (int64_t b = 0; b < nb; ++b) {
      unpack(w0[b], u0);
      unpack(w1[b], u1);
      interleave8(u0.q, u1.q, wi, kLen);
      int64_t t = 0;
      for (; t + 2 <= nt; t += 2) {
        const A& x0 = tok(t, b);
        const A& x1 = tok(t + 1, b);
        float* o0 = out + t * ldo + r;
        float* o1 = out + (t + 1) * ldo + r;
        if constexpr (std::is_same_v<typename T::U, Legacy>) {
          static_assert(std::is_same_v<A, BlockQ8_0>, "SMMLA tiles: legacy types paired with Q8_0 only");
          int32_t s[4];
          vst1q_s32(s, mm_sums(wi, x0.qs, x1.qs, 32));
          const float d0 = f16(x0.d), d1 = f16(x1.d);
          o0[0] = step_d(o0[0], s[0], u0.d, d0);
          o1[0] = step_d(o1[0], s[1], u0.d, d1);
          o0[1] = step_d(o0[1], s[2], u1.d, d0);
          o1[1] = step_d(o1[1], s[3], u1.d, d1);
        } else {
          int32_t s[4];
          vst1q_s32(s, mm_kquant<T::kGroups>(wi, u0, u1, x0.qs, x1.qs));
          o0[0] = close_k_sums<T::kGroups, T::kMin>(o0[0], u0, x0, s[0]);
          o1[0] = close_k_sums<T::kGroups, T::kMin>(o1[0], u0, x1, s[1]);
          o0[1] = close_k_sums<T::kGroups, T::kMin>(o0[1], u1, x0, s[2]);
          o1[1] = close_k_sums<T::kGroups, T::kMin>(o1[1], u1, x1, s[3]);
        }
      }
      for (; t < nt; ++t) {  // odd last token: the one-token closing
        out[t * ldo + r] = close_any<W>(out[t * ldo + r], u0, tok(t, b));
        out[t * ldo + r + 1] = close_any<W>(out[t * ldo + r + 1], u1, tok(t, b));
      }
    }
  }
  if (r < nr) tile_row(row(r), ab, as, nt, nb, out + r, ldo);  // odd last row
}
#endif

// ---- activation quantization (byte-identical to the scalar twins) ------------------------------------

inline float amax_v(const float* x, int n) {
  float32x4_t m = vdupq_n_f32(0.0f);
  for (int j = 0; j < n; j += 4) m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + j)));
  return vmaxvq_f32(m);
}

// 16 values times id, rounded to nearest-even (the scalar lrint), clamped to [-127, 127].
inline int8x16_t round16(const float* x, float id) {
  const int32x4_t a = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x), id));
  const int32x4_t b = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 4), id));
  const int32x4_t c = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 8), id));
  const int32x4_t d = vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 12), id));
  const int16x8_t ab = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
  const int16x8_t cd = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
  return vmaxq_s8(vcombine_s8(vqmovn_s16(ab), vqmovn_s16(cd)), vdupq_n_s8(-127));
}

void quant_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    const float d = amax_v(x, kQK_K) / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = d;
    for (int g = 0; g < 16; ++g) {
      const int8x16_t q = round16(x + 16 * g, id);
      vst1q_s8(y[b].qs + 16 * g, q);
      y[b].bsums[g] = int16_t(vaddlvq_s8(q));
    }
  }
}

template <class B, bool kSum>
void quant_q8_legacy(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<B*>(dst);
  for (int64_t b = 0; b < n / kQK; ++b, x += kQK) {
    const uint16_t dh = fp32_to_fp16(amax_v(x, kQK) / 127.0f);
    const float d = f16(dh);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const int8x16_t q0 = round16(x, id), q1 = round16(x + 16, id);
    vst1q_s8(y[b].qs, q0);
    vst1q_s8(y[b].qs + 16, q1);
    y[b].d = dh;
    if constexpr (kSum) y[b].s = fp32_to_fp16(d * float(vaddlvq_s8(q0) + vaddlvq_s8(q1)));
  }
}

// ---- float weights, KV-cache helpers, attention --------------------------------------------------------

inline float32x4_t load4(const float* p) { return vld1q_f32(p); }
inline float32x4_t load4(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
inline float load1(float x) { return x; }
inline float load1(uint16_t x) { return fp16_to_fp32(x); }
struct Bf16 {
  uint16_t bits;
};
inline float32x4_t load4(const Bf16* p) {
  return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(reinterpret_cast<const uint16_t*>(p)), 16));
}
inline float load1(Bf16 x) { return bf16_to_fp32(x.bits); }

// sum x_i * y_i: four vector accumulators, then a scalar tail.
template <class T>
float dot_v(const T* x, const float* y, int64_t n) {
  float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = vfmaq_f32(s0, load4(x + i), vld1q_f32(y + i));
    s1 = vfmaq_f32(s1, load4(x + i + 4), vld1q_f32(y + i + 4));
    s2 = vfmaq_f32(s2, load4(x + i + 8), vld1q_f32(y + i + 8));
    s3 = vfmaq_f32(s3, load4(x + i + 12), vld1q_f32(y + i + 12));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, load4(x + i), vld1q_f32(y + i));
  float sum = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; ++i) sum = std::fma(load1(x[i]), y[i], sum);  // one rounding for F32, F16 and BF16 alike
  return sum;
}

// y += alpha * x.
template <class T>
void axpy_v(float alpha, const T* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), load4(x + i), alpha));
  for (; i < n; ++i) y[i] += alpha * load1(x[i]);
}

float dot_f32(const void* w, const void* a, int64_t n) {
  return dot_v(static_cast<const float*>(w), static_cast<const float*>(a), n);
}
float dot_f16(const void* w, const void* a, int64_t n) {
  return dot_v(static_cast<const uint16_t*>(w), static_cast<const float*>(a), n);
}
float dot_bf16(const void* w, const void* a, int64_t n) {
  return dot_v(static_cast<const Bf16*>(w), static_cast<const float*>(a), n);
}

// Scores of G query heads against n keys: each key row is loaded and converted once for all heads.
template <class T>
void attn_scores_v(const T* k, int64_t stride, int64_t n, const float* q, int G, int64_t d, float* s, int64_t ld) {
  for (int64_t j = 0; j < n; ++j) {
    const T* kj = k + j * stride;
    float32x4_t acc[8];
    for (int h = 0; h < G; ++h) acc[h] = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= d; i += 4) {
      const float32x4_t kv = load4(kj + i);
      for (int h = 0; h < G; ++h) acc[h] = vfmaq_f32(acc[h], kv, vld1q_f32(q + h * d + i));
    }
    for (int h = 0; h < G; ++h) {
      float sum = vaddvq_f32(acc[h]);
      for (int64_t t = i; t < d; ++t) sum += load1(kj[t]) * q[h * d + t];
      s[h * ld + j] = sum;
    }
  }
}

// out_h += sum_j p_h[j] * V_j: each value row is loaded and converted once for all heads.
template <class T>
void attn_values_v(const T* v, int64_t stride, int64_t n, const float* p, int64_t ld, int G, int64_t d, float* o) {
  for (int64_t j = 0; j < n; ++j) {
    const T* vj = v + j * stride;
    float pj[8];
    for (int h = 0; h < G; ++h) pj[h] = p[h * ld + j];
    int64_t i = 0;
    for (; i + 4 <= d; i += 4) {
      const float32x4_t vv = load4(vj + i);
      for (int h = 0; h < G; ++h) vst1q_f32(o + h * d + i, vfmaq_n_f32(vld1q_f32(o + h * d + i), vv, pj[h]));
    }
    for (; i < d; ++i) {
      const float x = load1(vj[i]);
      for (int h = 0; h < G; ++h) o[h * d + i] += pj[h] * x;
    }
  }
}

// ---- elementwise: GELU and the logit soft-cap ----------------------------------------------------------
// tanh(a) for a >= 0, the method of the AVX2 set: below 0.25 the odd Taylor series to a^11; above,
// (1 - e) / (1 + e) with e = exp(-2a) (exp_neon, neon_exp.h). Past 9, tanh is 1 in f32.
inline float32x4_t tanh_nonneg(float32x4_t a) {
  a = vminq_f32(a, vdupq_n_f32(9.0f));
  const float32x4_t z = vmulq_f32(a, a);
  float32x4_t p = vdupq_n_f32(-1382.0f / 155925.0f);
  p = vfmaq_f32(vdupq_n_f32(62.0f / 2835.0f), p, z);
  p = vfmaq_f32(vdupq_n_f32(-17.0f / 315.0f), p, z);
  p = vfmaq_f32(vdupq_n_f32(2.0f / 15.0f), p, z);
  p = vfmaq_f32(vdupq_n_f32(-1.0f / 3.0f), p, z);
  const float32x4_t small = vfmaq_f32(a, vmulq_f32(p, z), a);
  const float32x4_t e = exp_neon(vmulq_n_f32(a, -2.0f));
  const float32x4_t one = vdupq_n_f32(1.0f);
  const float32x4_t large = vdivq_f32(vsubq_f32(one, e), vaddq_f32(one, e));
  return vbslq_f32(vcltq_f32(a, vdupq_n_f32(0.25f)), small, large);
}

inline float32x4_t tanh_v(float32x4_t x) {
  const uint32x4_t sign = vdupq_n_u32(0x80000000u);
  const float32x4_t t = tanh_nonneg(vabsq_f32(x));
  return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(t), vandq_u32(sign, vreinterpretq_u32_f32(x))));
}

// gelu_tanh(x) [* u] on 4 values, in the scalar formula's order: 0.5 x (1 + tanh(k0 x (1 + k1 x x))).
inline float32x4_t gelu4(float32x4_t x) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  const float32x4_t inner = vmulq_f32(vmulq_n_f32(x, 0.79788456080286535587989211986876f),
                                     vaddq_f32(one, vmulq_f32(vmulq_n_f32(x, 0.044715f), x)));
  return vmulq_f32(vmulq_n_f32(x, 0.5f), vaddq_f32(one, tanh_v(inner)));
}

// Tails go through the same 4-wide code (zero-padded), so no value depends on where a chunk ends.
void gelu_mul_v(float* g, const float* u, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float32x4_t y = gelu4(vld1q_f32(g + i));
    vst1q_f32(g + i, u ? vmulq_f32(y, vld1q_f32(u + i)) : y);
  }
  if (i < n) {
    float gx[4] = {}, ux[4] = {};
    std::memcpy(gx, g + i, sizeof(float) * size_t(n - i));
    if (u) std::memcpy(ux, u + i, sizeof(float) * size_t(n - i));
    const float32x4_t y = gelu4(vld1q_f32(gx));
    vst1q_f32(gx, u ? vmulq_f32(y, vld1q_f32(ux)) : y);
    std::memcpy(g + i, gx, sizeof(float) * size_t(n - i));
  }
}

void soft_cap_v(float* x, int64_t n, float cap) {
  const float32x4_t c = vdupq_n_f32(cap);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_f32(c, tanh_v(vdivq_f32(vld1q_f32(x + i), c))));
  if (i < n) {
    float v[4] = {};
    std::memcpy(v, x + i, sizeof(float) * size_t(n - i));
    vst1q_f32(v, vmulq_f32(c, tanh_v(vdivq_f32(vld1q_f32(v), c))));
    std::memcpy(x + i, v, sizeof(float) * size_t(n - i));
  }
}

// ---- the set -----------------------------------------------------------------------------------------

KernelSet make_neon_set() {
  KernelSet k;
  auto set = [&](GgmlType t, VecDotFn dot, QuantizeActFn q, VecDotTileFn tile, VecDotMaskedTileFn masked) {
    k.dot[type_index(t)] = dot;
    k.quant_act[type_index(t)] = q;
    k.tile[type_index(t)] = tile;
    k.masked_tile[type_index(t)] = masked;
  };
  set(GgmlType::Q4_0, dot_q4_0, quant_q8_legacy<BlockQ8_0, false>, tile_unpacked<BlockQ4_0>, masked_tile_unpacked<BlockQ4_0>);
  set(GgmlType::Q4_1, dot_unpacked<BlockQ4_1>, quant_q8_legacy<BlockQ8_1, true>, tile_unpacked<BlockQ4_1>, masked_tile_unpacked<BlockQ4_1>);
  set(GgmlType::Q5_0, dot_unpacked<BlockQ5_0>, quant_q8_legacy<BlockQ8_0, false>, tile_unpacked<BlockQ5_0>, masked_tile_unpacked<BlockQ5_0>);
  set(GgmlType::Q5_1, dot_unpacked<BlockQ5_1>, quant_q8_legacy<BlockQ8_1, true>, tile_unpacked<BlockQ5_1>, masked_tile_unpacked<BlockQ5_1>);
  set(GgmlType::Q8_0, dot_q8_0, quant_q8_legacy<BlockQ8_0, false>, tile_unpacked<BlockQ8_0>, masked_tile_unpacked<BlockQ8_0>);
  set(GgmlType::Q2_K, dot_unpacked<BlockQ2_K>, quant_q8_k, tile_unpacked<BlockQ2_K>, masked_tile_unpacked<BlockQ2_K>);
  set(GgmlType::Q3_K, dot_unpacked<BlockQ3_K>, quant_q8_k, tile_unpacked<BlockQ3_K>, masked_tile_unpacked<BlockQ3_K>);
  set(GgmlType::Q4_K, dot_q4_k, quant_q8_k, tile_unpacked<BlockQ4_K>, masked_tile_unpacked<BlockQ4_K>);
  set(GgmlType::Q5_K, dot_unpacked<BlockQ5_K>, quant_q8_k, tile_unpacked<BlockQ5_K>, masked_tile_unpacked<BlockQ5_K>);
  set(GgmlType::Q6_K, dot_q6_k, quant_q8_k, tile_unpacked<BlockQ6_K>, masked_tile_unpacked<BlockQ6_K>);
#if G3N_NEON_I8MM
  k.tile[type_index(GgmlType::Q8_0)] = tile_mmla<BlockQ8_0>;
  k.tile[type_index(GgmlType::Q4_K)] = tile_mmla<BlockQ4_K>;
  k.tile[type_index(GgmlType::Q6_K)] = tile_mmla<BlockQ6_K>;
#endif
  // Float weights: no tile (prefill loops these dots; decoding a float is too cheap for reuse to pay).
  k.dot[type_index(GgmlType::F32)] = dot_f32;
  k.dot[type_index(GgmlType::F16)] = dot_f16;
  k.dot[type_index(GgmlType::BF16)] = dot_bf16;
  k.dot_f16_f32 = dot_v<uint16_t>;
  k.axpy_f16 = axpy_v<uint16_t>;
  k.dot_f32 = dot_v<float>;
  k.axpy_f32 = axpy_v<float>;
  k.attn_scores_f16 = attn_scores_v<uint16_t>;
  k.attn_scores_f32 = attn_scores_v<float>;
  k.attn_values_f16 = attn_values_v<uint16_t>;
  k.attn_values_f32 = attn_values_v<float>;
  k.gelu_mul = gelu_mul_v;
  k.soft_cap = soft_cap_v;
  return k;
}

}  // namespace
}  // namespace g3n::vecdot
