// Random inputs for the kernel tests: activation rows with outliers, and weight rows of random quant bytes
// (every bit pattern of the packed quants) with small finite fp16 scales, or rounded normals for float types.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/vec_dot.h"
#include "quant/fp16.h"
#include "quant/quantize.h"

namespace g3n {

// A float's bit pattern: the kernels' results are compared bit for bit.
inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline std::string type_name(GgmlType t) { return std::string(ggml_type_traits(t).name); }
inline bool is_float(GgmlType t) { return vec_dot_act_type(t) == GgmlType::F32; }

inline std::vector<float> randn(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nd(rng);
  for (int64_t i = 0; i < n; i += 97) v[size_t(i)] *= 6.0f;  // outliers set the block scales
  return v;
}

// Every quant and scale byte of K-quant rows (Q4_K, Q5_K, Q6_K) at its maximum, keeping the fp16 d/dmin: the
// worst case for the kernels' int16 pair sums (with activations all at 127). Q6_K's int8 scales are q6k_scale
// (127, or -128 for the largest magnitude).
inline void saturate_k_quant_rows(GgmlType t, std::vector<uint8_t>& w, int8_t q6k_scale = 127) {
  const auto tr = ggml_type_traits(t);
  for (size_t base = 0; base < w.size(); base += tr.block_bytes) {
    if (t == GgmlType::Q6_K) {
      std::memset(&w[base], 0xFF, 192);        // ql, qh
      std::memset(&w[base + 192], uint8_t(q6k_scale), 16);  // int8 scales
    } else {
      std::memset(&w[base + 4], 0xFF, tr.block_bytes - 4);  // scales, (qh,) qs after d, dmin
    }
  }
}

// Random quant bytes with small finite fp16 scales (every bit pattern of the packed quants), or
// rounded normals for float types.
inline std::vector<uint8_t> random_rows(GgmlType t, int64_t rows, int64_t n, std::mt19937& rng) {
  const uint64_t rb = *ggml_row_bytes(t, uint64_t(n));
  std::vector<uint8_t> w(rb * uint64_t(rows));
  if (is_float(t)) {
    for (int64_t r = 0; r < rows; ++r) quantize_row(t, randn(rng, n).data(), w.data() + r * rb, n);
    return w;
  }
  const auto tr = ggml_type_traits(t);
  for (auto& b : w) b = uint8_t(rng());
  std::uniform_real_distribution<float> ud(0.001f, 0.05f);
  const std::vector<size_t> scales = fp16_scale_offsets(t);
  if (scales.empty()) ADD_FAILURE() << "no layout for " << type_name(t);
  for (size_t base = 0; base < w.size(); base += tr.block_bytes)
    for (size_t off : scales) {
      const uint16_t h = fp32_to_fp16(ud(rng));
      std::memcpy(&w[base + off], &h, 2);
    }
  return w;
}

}  // namespace g3n
