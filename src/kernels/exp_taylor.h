// The constants of every SIMD set's e^x (avx2_exp.h, conv_avx512.cpp, neon_exp.h): x = n ln2 + r with
// n = round(x log2(e)) and ln2 in two parts (n times the high part is exact, |r| <= ln2/2), e^r by its Taylor
// series to r^7 (truncation < 1e-8 relative) in Horner form, times 2^n built in the exponent bits. One table,
// so the sets compute each element with the same operations on the same constants.
#pragma once

namespace g3n::exp_taylor {

inline constexpr float kLog2e = 1.44269504088896341f;
inline constexpr float kLn2Hi = 0.693145751953125f;
inline constexpr float kLn2Lo = 1.4286068203094172e-6f;
// Horner's coefficients from the r^7 term down: e = kTerms[0], then e = e * r + kTerms[i] for i = 1..7.
inline constexpr int kNumTerms = 8;
inline constexpr float kTerms[kNumTerms] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f,
                                            1.0f / 6.0f,    0.5f,          1.0f,          1.0f};

}  // namespace g3n::exp_taylor
