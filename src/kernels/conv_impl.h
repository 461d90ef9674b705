// Internal to the conv kernels: the per-instruction-set tables conv.cpp chooses from.
#pragma once
#include <algorithm>
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

// The taps of a depthwise output column x that land inside the input row: input column ix0 + kx for
// kx_lo <= kx < kx_hi (the others are zero padding).
struct DepthwiseTaps {
  int64_t ix0;
  int kx_lo, kx_hi;
};
inline DepthwiseTaps depthwise_taps(int64_t x, int stride, int64_t pad_left, int k, int64_t w_in) {
  const int64_t ix0 = x * stride - pad_left;
  return {ix0, static_cast<int>(std::max<int64_t>(0, -ix0)), static_cast<int>(std::min<int64_t>(k, w_in - ix0))};
}

}  // namespace g3n::conv
