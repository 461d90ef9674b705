// Internal to the conv kernels: the per-instruction-set tables conv.cpp chooses from.
#pragma once
#include <cstdint>

#include "kernels/conv.h"

namespace g3n::conv {

const ConvKernelSet& scalar_set();
// The AVX2+FMA+F16C set (conv_avx2.cpp), or nullptr when not compiled for this target. Only call its
// kernels after checking cpu_features().
const ConvKernelSet* avx2_set();
// The AVX-512F set (conv_avx512.cpp: the AVX2 set with a zmm GEMM), or nullptr when not compiled for this
// target. Only call its kernels after checking cpu_features().
const ConvKernelSet* avx512_set();
// The plain ARMv8-A NEON set (conv_neon.cpp), or nullptr when not compiled for AArch64. Only call its
// kernels after checking cpu_features().neon.
const ConvKernelSet* neon_set();
// Weight row r, inputs k0 .. k0+kc-1, decoded to f32 (k0 on a block boundary of the type).
void decode_weight_span(const WeightMatrix& w, int64_t r, int64_t k0, int64_t kc, float* dst);

}  // namespace g3n::conv
