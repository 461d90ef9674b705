// AVX-VNNI (VEX-encoded vpdpwssd and vpdpbusd on ymm: Intel since Alder Lake, AMD since Zen 5) for the
// K-quants, overlaid on the AVX2 set: the AVX2 cores of kquant_ymm.h with the fused multiply-add of int16 pairs
// into int32 as their madd_add, as avx512vnni-256 does with the EVEX form on CPUs that have AVX-512, and the
// AVX2 packed kernels (kquant_packed_ymm.h) with vpdpbusd + vpmulld as their product. The int32 totals are
// the same exact integers, so the bits are the AVX2 set's. For CPUs with AVX-VNNI but no AVX-512 (Alder
// Lake, Raptor Lake, Arrow Lake, Lunar Lake laptops and desktops): the dispatcher prefers the AVX-512 sets
// where they run.
#include "kernels/vec_dot_impl.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define G3N_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define G3N_KQ_TARGET G3N_AVXVNNI
#include "kernels/kquant_x86.h"
#include "kernels/kquant_packed_ymm.h"
#include "kernels/kquant_ymm.h"

namespace g3n::vecdot {
namespace {

struct AvxVnniMadd {
  G3N_AVXVNNI static __m256i madd_add(__m256i acc, __m256i pairs, __m256i scales) {
    return _mm256_dpwssd_avx_epi32(acc, pairs, scales);
  }
};

// The packed kernels' product (kquant_packed_ymm.h): one vpdpbusd per 4 quants of 8 rows and token, summed in
// int32 over a whole group (Q4_K's 32 values, Q6_K's 16), then one vpmulld by the group's 8 scales: per 32-value
// group and token 8 + 1 multiply instructions (vpmulld is two), 1 add, where AVX2 spends 8 + 1 and 8 adds.
struct AvxVnniPackedProduct {
  static constexpr int kQ6KSteps = 4;
  static constexpr bool kQ6KSplitHalves = false;
  G3N_AVXVNNI static __m256i first(__m256i x, __m256i a) { return _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), x, a); }
  G3N_AVXVNNI static __m256i next(__m256i s, __m256i x, __m256i a) { return _mm256_dpbusd_avx_epi32(s, x, a); }
  G3N_AVXVNNI static __m256i scales_u8(const uint8_t* sc) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc)));
  }
  G3N_AVXVNNI static __m256i scales_s8(const int8_t* sc) {
    return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc)));
  }
  G3N_AVXVNNI static __m256i apply(__m256i tot, __m256i s, __m256i scales) {
    return _mm256_add_epi32(tot, _mm256_mullo_epi32(s, scales));
  }
};

KernelSet make_avxvnni() {
  KernelSet k;
  set_kquant_kernels<YmmSums<AvxVnniMadd>, YmmRows<AvxVnniMadd>>(k);
  set_decode_rows<AvxVnniMadd>(k);
  set_packed_kernels_ymm<AvxVnniPackedProduct>(k);
  return k;
}

}  // namespace

const KernelSet* avxvnni_kernels() {
  static const KernelSet k = make_avxvnni();  // addresses only; nothing runs before the cpuid check
  return &k;
}

}  // namespace g3n::vecdot

#else

namespace g3n::vecdot {
const KernelSet* avxvnni_kernels() { return nullptr; }
}  // namespace g3n::vecdot

#endif
