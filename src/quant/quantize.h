// Scalar reference (de)quantizers. Block layouts are byte-identical to ggml's, so files written by
// g3n load in llama.cpp and the reverse; quantizers reproduce ggml's reference quantizers bit for bit
// (quantize_row_*_ref, as used by llama_model_quantize without an importance matrix).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "quant/ggml_type.h"

namespace g3n {

// Decodes n elements (a multiple of the block size) from src into dst.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// True for types quantize_row can produce: every GgmlType enumerator (F32, F16, BF16, Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, Q8_1, Q2_K..Q6_K, and the activation format Q8_K).
bool can_quantize(GgmlType type);
// Encodes n floats (a multiple of the block size) into dst, which holds ggml_row_bytes(type, n) bytes.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// Byte offsets within one block of a quantized weight type's fp16 scale fields (d, then dmin or m where
// the type has one): what code that fills blocks with random bytes (kernel tests, benchmarks) sets to
// finite values. Empty for the float types and the activation formats.
std::vector<size_t> fp16_scale_offsets(GgmlType type);

}  // namespace g3n
