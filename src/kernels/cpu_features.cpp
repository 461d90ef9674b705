#include "kernels/cpu_features.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <cstdint>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace g3n {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// XCR0 via xgetbv, as raw bytes so this file needs no -mxsave.
uint64_t read_xcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
}

// Linux (5.16+) gives a process the AMX tile data (8 KB of XSAVE state per thread) only on request; an
// AMX instruction without it is a SIGILL. Asked once, before any thread can run a tile kernel; a refusal
// (older kernel, a VM or seccomp policy that forbids it) leaves g3n on its AVX-512 kernels.
bool request_amx_tile_data() {
#if defined(__x86_64__) && defined(__linux__)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}
#endif

CpuFeatures probe() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  // Leaf 0: the highest leaf and the vendor ("Auth" "enti" "cAMD" in ebx, edx, ecx).
  unsigned max_leaf = 0, vb = 0, vc = 0, vd = 0;
  if (!__get_cpuid(0, &max_leaf, &vb, &vc, &vd) || max_leaf < 1) return f;  // no cpuid (old i386), or no leaf 1
  const bool amd = vb == 0x68747541u && vd == 0x69746e65u && vc == 0x444d4163u;
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid(1, a, b, c, d);
  const unsigned family = ((a >> 8) & 0xF) == 0xF ? 0xF + ((a >> 20) & 0xFF) : (a >> 8) & 0xF;
  const bool osxsave = (c >> 27) & 1;
  // The CPU may support AVX while the OS does not save YMM/ZMM state: then it must not be used.
  const uint64_t xcr0 = osxsave ? read_xcr0() : 0;
  const bool ymm_os = (xcr0 & 0x6) == 0x6;
  const bool zmm_os = (xcr0 & 0xE6) == 0xE6;
  f.avx = ymm_os && ((c >> 28) & 1);
  f.fma = f.avx && ((c >> 12) & 1);
  f.f16c = f.avx && ((c >> 29) & 1);
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = f.avx && ((b >> 5) & 1);
    f.avx512f = zmm_os && ((b >> 16) & 1);
    f.avx512bw = f.avx512f && ((b >> 30) & 1);
    f.avx512vl = f.avx512f && ((b >> 31) & 1);
    f.avx512vnni = f.avx512f && ((c >> 11) & 1);
    unsigned a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __cpuid_count(7, 1, a1, b1, c1, d1);
    f.avx512bf16 = f.avx512f && ((a1 >> 5) & 1);
    f.avx_vnni = f.avx2 && ((a1 >> 4) & 1);
    // AMX-TILE (edx bit 24) and AMX-INT8 (bit 25); the OS must enable XTILECFG and XTILEDATA (XCR0 17, 18).
    const bool amx_cpu = ((d >> 24) & 1) && ((d >> 25) & 1) && f.avx512vnni;
    const bool amx_os = (xcr0 & (3ull << 17)) == (3ull << 17);
    if (amx_cpu && amx_os && request_amx_tile_data()) f.amx_int8 = true;
    else if (amx_cpu) f.amx_refused = true;
  }
  // AMD family 19h is Zen 3 (no AVX-512) and Zen 4, which splits 512-bit operations in two.
  f.avx512_split = f.avx512f && amd && family == 0x19;
#endif
#if defined(__aarch64__) && defined(__linux__)
  // Bit numbers from the Linux arm64 ABI (asm/hwcap.h), spelled out so older headers build too.
  constexpr unsigned long kHwcapAsimd = 1ul << 1, kHwcapAsimdDp = 1ul << 20, kHwcap2I8mm = 1ul << 13;
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  f.neon = (hw & kHwcapAsimd) != 0;
  f.neon_dotprod = f.neon && (hw & kHwcapAsimdDp) != 0;
  f.neon_i8mm = f.neon && (hw2 & kHwcap2I8mm) != 0;
#elif defined(__aarch64__)
  // Other AArch64 systems: NEON is part of the base ISA; the extensions only when the build assumes them.
  f.neon = true;
#if defined(__ARM_FEATURE_DOTPROD)
  f.neon_dotprod = true;
#endif
#if defined(__ARM_FEATURE_MATMUL_INT8)
  f.neon_i8mm = true;
#endif
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = probe();
  return features;
}

std::string cpu_features_string() {
  const CpuFeatures& f = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (!on) return;
    if (!s.empty()) s += ' ';
    s += name;
  };
  add(f.avx, "avx");
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  add(f.f16c, "f16c");
  add(f.avx_vnni, "avx-vnni");
  add(f.avx512f, "avx512f");
  add(f.avx512bw, "avx512bw");
  add(f.avx512vl, "avx512vl");
  add(f.avx512vnni, "avx512vnni");
  add(f.avx512bf16, "avx512bf16");
  add(f.amx_int8, "amx-int8");
  add(f.amx_refused, "amx-refused-by-os");
  add(f.avx512_split, "avx512-split");
  add(f.neon, "neon");
  add(f.neon_dotprod, "dotprod");
  add(f.neon_i8mm, "i8mm");
  return s.empty() ? "baseline" : s;
}

}  // namespace g3n
