// Scalar reference (de)quantizers. Block layouts are byte-identical to ggml's, so files written by
// g3n load in llama.cpp and the reverse; quantizers reproduce ggml's reference quantizers bit for bit
// (quantize_row_*_ref, as used by llama_model_quantize without an importance matrix).
#pragma once
#include <cstdint>

#include "quant/ggml_type.h"

namespace g3n {

// Decodes n elements (a multiple of the block size) from src into dst.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// True for types quantize_row can produce: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K (at least).
bool can_quantize(GgmlType type);
// Encodes n floats (a multiple of the block size) into dst, which holds ggml_row_bytes(type, n) bytes.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

}  // namespace g3n
