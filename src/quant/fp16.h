// IEEE half and bfloat16 <-> float conversions (scalar, exact, round-to-nearest-even).
#pragma once
#include <cstdint>
#include <cstring>

namespace g3n {

inline float fp32_from_bits(uint32_t w) { float f; std::memcpy(&f, &w, 4); return f; }
inline uint32_t fp32_to_bits(float f) { uint32_t w; std::memcpy(&w, &f, 4); return w; }

float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
// fp16_to_fp32 of every half, as a 64Ki-entry table built once and never freed (so it outlives any static
// destructor that uses it): hot loops and the scalar kernels (the fallback on CPUs without F16C) decode a
// half with one load instead of a branchy conversion.
const float* fp16_table();
inline float fp16_to_fp32_fast(uint16_t h) { return fp16_table()[h]; }
inline float bf16_to_fp32(uint16_t h) { return fp32_from_bits(uint32_t(h) << 16); }
uint16_t fp32_to_bf16(float f);

// fp32_to_fp16 of x[0..n) into out: with F16C where the CPU has it (vcvtps2ph, round to nearest even; NaNs
// then made fp32_to_fp16's quiet NaN), else the scalar twin fp32_to_fp16_row_ref. The same bits either way.
void fp32_to_fp16_row(const float* x, uint16_t* out, int64_t n);
void fp32_to_fp16_row_ref(const float* x, uint16_t* out, int64_t n);
bool fp32_to_fp16_row_is_f16c();  // which of the two fp32_to_fp16_row runs here

// Lossless narrowing: writes x[0..n) to out as bfloat16 (fp16) bit patterns and returns true when every
// value converts back to the same 32 bits (bf16: the low 16 bits are zero, as in a tensor widened from a
// bf16 checkpoint); returns false at the first value that would change (out is then partly written).
bool pack_bf16_exact(const float* x, int64_t n, uint16_t* out);
bool pack_fp16_exact(const float* x, int64_t n, uint16_t* out);

}  // namespace g3n
