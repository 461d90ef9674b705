// What the running CPU can execute, probed once with cpuid (x86) or the kernel's HWCAP words (AArch64
// Linux: getauxval(AT_HWCAP/AT_HWCAP2), which is what the kernel lets user space run).
// SIMD kernels are compiled per function for their instruction set and chosen at run time from this,
// so one binary runs on any x86-64 and uses AVX2/AVX-512 where present.
#pragma once
#include <string>

namespace g3n {

struct CpuFeatures {
  bool avx = false, avx2 = false, fma = false, f16c = false;       // x86 (AVX usable = OS saves YMM)
  bool avx_vnni = false;  // VEX vpdpbusd/vpdpwssd on xmm/ymm (cpuid 7.1 eax bit 4)
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  // AMX-INT8 tiles usable: the CPU has AMX-TILE and AMX-INT8, the OS enables the tile state in XCR0, and
  // Linux granted this process the tile data (arch_prctl ARCH_REQ_XCOMP_PERM, asked once at the probe).
  // amx_refused: the CPU has them but the OS would not let this process use them (then g3n runs without).
  bool amx_int8 = false, amx_refused = false;
  bool neon = false, neon_dotprod = false, neon_i8mm = false;       // ARM: asimd, asimddp, i8mm
  // AVX-512 executed as two 256-bit halves (AMD Zen 4, cpuid family 19h): 512-bit kernels gain nothing
  // per instruction there, so the dispatcher prefers the 256-bit VNNI set.
  bool avx512_split = false;
};

// Probed on first use (thread-safe static); never changes afterwards.
const CpuFeatures& cpu_features();
// "avx avx2 fma f16c ..." for logs and bench reports.
std::string cpu_features_string();

}  // namespace g3n
