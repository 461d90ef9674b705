// The "neon+i8mm" kernel set: the SDOT bodies (vec_dot_neon_body.h) plus SMMLA prefill tiles for Q4_K,
// Q6_K and Q8_0 (2 weight rows x 2 tokens per instruction, ARMv8.6-A int8 matrix multiply). Compiled
// for dotprod+i8mm by the target pragma below, inside a plain -march=armv8-a build; dispatched only
// where HWCAP reports asimddp and HWCAP2 i8mm (cpu_features).
#include "kernels/vec_dot_impl.h"

#if defined(__aarch64__)

#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/kquant_step.h"
#include "kernels/neon_exp.h"
#include "quant/blocks.h"
#include "quant/fp16.h"

// After every shared header: only this file's own (internal) kernels get the extensions.
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod+i8mm")  // arm_neon.h declares SMMLA for armv8.2-a+i8mm
#define G3N_NEON_DOTPROD 1
#define G3N_NEON_I8MM 1
#include "kernels/vec_dot_neon_body.h"

namespace g3n::vecdot {
const KernelSet* neon_i8mm_kernels() {
  static const KernelSet k = make_neon_set();
  return &k;
}
}  // namespace g3n::vecdot
#pragma GCC pop_options

#else

namespace g3n::vecdot {
const KernelSet* neon_i8mm_kernels() { return nullptr; }
}  // namespace g3n::vecdot

#endif
