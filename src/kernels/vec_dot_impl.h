// Internal to the vec_dot kernels: the per-type kernel tables the dispatcher (vec_dot.cpp) chooses from.
#pragma once
#include <cstdint>

#include "kernels/vec_dot.h"

namespace g3n::vecdot {

// One entry per weight type; null members mean "no kernel in this set, use the scalar one".
struct KernelSet {
  VecDotFn dot[32] = {};            // indexed by GgmlType value (all supported ids are < 32)
  QuantizeActFn quant_act[32] = {};
  VecDotTileFn tile[32] = {};       // must match dot[] of the same set bit for bit (null: none)
  VecDotMaskedTileFn masked_tile[32] = {};  // tile[] that skips (row, 8-token group) pairs (null: none)
  VecDotRowsFn rows[32] = {};       // decode: several rows x one token, dot[]'s bits (null: loop dot[])
  VecDotPackedFn packed[32] = {};   // packed matrices (packed_panels.h), dot[]'s bits (null: unpack rows)
  int16_t tile_tokens[32] = {};     // tokens per tile call that amortize its per-call work (0: any)
  int16_t packed_tokens[32] = {};   // the same for packed[] (0: matmul's own cache blocking)
  float (*dot_f16_f32)(const uint16_t*, const float*, int64_t) = nullptr;
  void (*axpy_f16)(float, const uint16_t*, float*, int64_t) = nullptr;
  float (*dot_f32)(const float*, const float*, int64_t) = nullptr;
  void (*axpy_f32)(float, const float*, float*, int64_t) = nullptr;
  void (*gelu_mul)(float*, const float*, int64_t) = nullptr;
  void (*soft_cap)(float*, int64_t, float) = nullptr;
  void (*attn_scores_f16)(const uint16_t*, int64_t, int64_t, const float*, int, int64_t, float*, int64_t) = nullptr;
  void (*attn_scores_f32)(const float*, int64_t, int64_t, const float*, int, int64_t, float*, int64_t) = nullptr;
  void (*attn_values_f16)(const uint16_t*, int64_t, int64_t, const float*, int64_t, int, int64_t, float*) = nullptr;
  void (*attn_values_f32)(const float*, int64_t, int64_t, const float*, int64_t, int, int64_t, float*) = nullptr;
  // Decode reads a packed Q6_K matrix faster than its rows on this set's CPUs, so models pack Q6_K for plain
  // decoding too, not only for speculation (model.cpp).
  bool pack_q6k_for_decode = false;
};

inline int type_index(GgmlType t) {
  const auto v = static_cast<uint32_t>(t);
  return v < 32 ? int(v) : -1;
}

// Copies one weight type's kernels (dot, tiles, rows, packed and their token hints) from a base set, so a set
// that replaces only some of them keeps the rest: vec_dot.cpp's overlay moves them together with the dot.
inline void take_type_kernels(KernelSet& k, const KernelSet& from, GgmlType t) {
  const int i = type_index(t);
  k.dot[i] = from.dot[i];
  k.tile[i] = from.tile[i];
  k.masked_tile[i] = from.masked_tile[i];
  k.rows[i] = from.rows[i];
  k.packed[i] = from.packed[i];
  k.tile_tokens[i] = from.tile_tokens[i];
  k.packed_tokens[i] = from.packed_tokens[i];
}

// The scalar references (vec_dot_scalar.cpp); every supported type is present.
const KernelSet& scalar_kernels();
// The AVX2+FMA+F16C kernels (vec_dot_avx2.cpp), or nullptr when not compiled for this target.
// Only call the returned functions after checking cpu_features().
const KernelSet* avx2_kernels();
// The AVX-512 F/BW/VL + VNNI K-quant kernels (vec_dot_avx512.cpp), overlaid on the AVX2 set; nullptr off
// x86-64. Bit-identical to the AVX2 set's.
const KernelSet* avx512_kernels();
// The same instructions on 256-bit registers (vec_dot_avx512.cpp): AVX2's K-quant cores with VNNI's
// vpdpwssd; for CPUs that split 512-bit operations in two (CpuFeatures::avx512_split). Same bits again.
const KernelSet* avx512_256_kernels();
// AVX-VNNI (VEX vpdpwssd on ymm) K-quant cores (vec_dot_avxvnni.cpp), overlaid on the AVX2 set; nullptr off
// x86-64. Same bits.
const KernelSet* avxvnni_kernels();
// The AMX-INT8 tiles for Q4_K/Q6_K prefill (vec_dot_amx.cpp), overlaid on the AVX-512 VNNI set; nullptr off
// x86-64. Same bits again; only call after cpu_features() says the tile state was granted.
const KernelSet* amx_kernels();
// The NEON kernels on AArch64, else nullptr: plain ARMv8-A NEON (vec_dot_neon.cpp), with the dot-product
// extension's SDOT (vec_dot_neon_dotprod.cpp, overlaid on neon), with the int8 matrix multiply SMMLA
// (vec_dot_neon_i8mm.cpp, overlaid on neon+dotprod). All three are built from one -march=armv8-a
// compile (per-file target pragmas); only call them after checking cpu_features().
const KernelSet* neon_kernels();
const KernelSet* neon_dotprod_kernels();
const KernelSet* neon_i8mm_kernels();

}  // namespace g3n::vecdot
