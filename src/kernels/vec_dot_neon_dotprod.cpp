// The "neon+dotprod" kernel set: the NEON bodies (vec_dot_neon_body.h) with every 16-byte integer dot
// done by one SDOT (ARMv8.2-A dot-product extension) instead of two widening multiplies and two pairwise
// adds. Compiled for that extension by the target pragma below, inside a plain -march=armv8-a build;
// dispatched only where HWCAP reports asimddp (cpu_features).
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

// After every shared header: only this file's own (internal) kernels get the extension.
#pragma GCC push_options
#pragma GCC target("arch=armv8.2-a+dotprod")  // arm_neon.h declares SDOT for this arch string
#define G3N_NEON_DOTPROD 1
#include "kernels/vec_dot_neon_body.h"

namespace g3n::vecdot {
const KernelSet* neon_dotprod_kernels() {
  static const KernelSet k = make_neon_set();
  return &k;
}
}  // namespace g3n::vecdot
#pragma GCC pop_options

#else

namespace g3n::vecdot {
const KernelSet* neon_dotprod_kernels() { return nullptr; }
}  // namespace g3n::vecdot

#endif
