// AVX-VNNI (VEX-encoded vpdpwssd on ymm: Intel since Alder Lake, AMD since Zen 5) for the K-quants, overlaid
// on the AVX2 set: the AVX2 cores of kquant_ymm.h with the fused multiply-add of int16 pairs into int32 as
// their madd_add, as avx512vnni-256 does with the EVEX form on CPUs that have AVX-512. The int32 totals are
// the same exact integers, so the bits are the AVX2 set's. For CPUs with AVX-VNNI but no AVX-512 (Alder
// Lake, Raptor Lake, Arrow Lake, Lunar Lake laptops and desktops): the dispatcher prefers the AVX-512 sets
// where they run.
#include "kernels/vec_dot_impl.h"

#if defined(__x86_64__)

#include <immintrin.h>

#define G3N_AVXVNNI __attribute__((target("avx2,fma,f16c,avxvnni")))
#define G3N_KQ_TARGET G3N_AVXVNNI
#include "kernels/kquant_x86.h"
#include "kernels/kquant_ymm.h"

namespace g3n::vecdot {
namespace {

struct AvxVnniMadd {
  G3N_AVXVNNI static __m256i madd_add(__m256i acc, __m256i pairs, __m256i scales) {
    return _mm256_dpwssd_avx_epi32(acc, pairs, scales);
  }
};

KernelSet make_avxvnni() {
  KernelSet k;
  set_kquant_kernels<YmmSums<AvxVnniMadd>, YmmRows<AvxVnniMadd>>(k);
  set_decode_rows<AvxVnniMadd>(k);
  // The packed kernels stay the AVX2 set's (int16 group sums, one vpmaddwd per group: no pair left to fuse
  // an add into); same bits, and the overlay would otherwise drop them with the dots they sit beside.
  const KernelSet& avx2 = *avx2_kernels();
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q6_K}) k.packed[type_index(t)] = avx2.packed[type_index(t)];
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
