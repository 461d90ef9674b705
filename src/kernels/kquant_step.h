// The float step that closes one K-quant super-block in the scalar dot products. Every kernel that
// promises the scalar dots' exact bits (their NEON siblings, the sparse-column twin) calls these same
// inline functions, so a compiler that fuses multiply-adds (GCC does by default on ARM) fuses them
// the same way everywhere.
#pragma once
#include <cstdint>

namespace g3n::vecdot {

// Q2_K..Q5_K: scale term minus min term. ad = activation scale; wd/wdmin = the block's d and dmin.
inline float kquant_step_min(float sum, float ad, float wd, float wdmin, int32_t isum, int32_t summ) {
  const float dall = ad * wd, dmin = ad * wdmin;
  return sum + (dall * float(isum) - dmin * float(summ));
}

// Q6_K (no min term).
inline float kquant_step(float sum, float ad, float wd, int32_t isum) { return sum + (ad * wd) * float(isum); }

}  // namespace g3n::vecdot
