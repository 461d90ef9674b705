// The tensor type table of a Gemma 3n text GGUF for each target quantization, in the llama.cpp or the
// Ollama layout: llama.cpp's llama_tensor_get_type (no importance matrix) as it applies to gemma3n, plus
// convert_hf_to_gguf.py's rule for the float targets. docs/convert.md documents the table.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf.h"
#include "quant/ggml_type.h"

namespace g3n {

// LlamaCpp: llama.cpp's converter and quantizer. Ollama: the registry blob (gemma3n:e2b), which keeps
// per_layer_token_embd in F16 whatever the target.
enum class GgufLayout { LlamaCpp, Ollama };

enum class QuantTarget { F32, F16, BF16, Q8_0, Q4_0, Q4_K_M, Q5_K_M, Q6_K };

// "q4_k_m", "Q4_K_M", "f16", ... (case-insensitive); nullopt for anything else.
std::optional<QuantTarget> parse_quant_target(std::string_view name);
std::string_view quant_target_name(QuantTarget t);  // lower case, as parsed
// general.file_type (llama_ftype): 0 F32, 1 F16, 2 Q4_0, 7 Q8_0, 15 Q4_K_M, 17 Q5_K_M, 18 Q6_K, 32 BF16.
int quant_target_file_type(QuantTarget t);
bool is_float_type(GgmlType t);  // F32, F16, BF16

// The type tensor `name` of shape ne (ggml order) gets in a model of n_layers layers.
// Float targets: 1-D tensors and *_norm.weight F32, the rest the target type. Quantized targets:
// 1-D, *_norm.weight, altup*, laurel*, per_layer_model_proj F32; token_embd (the tied output) Q6_K
// (Q8_0 for the q8_0 target); attn_v and ffn_down Q6_K on llama.cpp's use-more-bits layers for
// q4_k_m/q5_k_m; the rest the target's base type, with llama.cpp's fallback when a row is not a
// whole number of blocks (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, then F16).
GgmlType plan_tensor_type(QuantTarget target, GgufLayout layout, std::string_view name,
                          const std::vector<int64_t>& ne, int layer, int n_layers);

// llama.cpp's use_more_bits: the first and last eighth of the layers and every third one between.
bool is_more_bits_layer(int layer, int n_layers);

// The layout a gemma3n GGUF is in: Ollama when it has Ollama's gemma3n.head_dim key or a per-layer
// table with fewer rows than token_embd.
GgufLayout detect_gguf_layout(const GgufFile& in);

// Re-encodes a float (F32/F16/BF16) gemma3n text GGUF at `target` following the table, metadata kept
// (general.file_type and general.quantization_version updated). Throws std::invalid_argument for an
// already-quantized source, another architecture or a missing block_count; writes atomically.
void quantize_gemma3n_gguf(const GgufFile& in, const std::string& out_path, QuantTarget target,
                           GgufLayout layout);

}  // namespace g3n
