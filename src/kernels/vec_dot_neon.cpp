// The plain ARMv8-A NEON kernel set ("neon"): every weight type's dot, tile and activation quantizer,
// the KV-cache helpers and attention (bodies in vec_dot_neon_body.h, shared with the SDOT and SMMLA
// sets). NEON is part of the AArch64 base ISA; cpu_features() still checks HWCAP's asimd bit.
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

#include "kernels/vec_dot_neon_body.h"

namespace g3n::vecdot {
const KernelSet* neon_kernels() {
  static const KernelSet k = make_neon_set();
  return &k;
}
}  // namespace g3n::vecdot

#else

namespace g3n::vecdot {
const KernelSet* neon_kernels() { return nullptr; }
}  // namespace g3n::vecdot

#endif
