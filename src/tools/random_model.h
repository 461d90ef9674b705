// Random-weight Gemma 3n GGUFs of any shape (tiny, the real E2B/E4B shapes), in the llama.cpp layout or
// the Ollama registry-blob layout, quantized as chosen. Benchmarks and tests use them: the real
// weights are not needed to exercise every code path at full size.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "quant/ggml_type.h"
#include "tools/quant_plan.h"

namespace g3n {

struct RandomModelSpec {
  std::string name = "tiny";
  int n_layer = 25;
  int n_embd = 256;
  int n_head = 4;
  int n_head_kv = 2;
  int head_dim = 64;
  int n_ff = 512;
  int n_vocab = 448;            // token_embd rows (and logits width)
  int n_vocab_per_layer = 448;  // per_layer_token_embd rows
  int n_embd_per_layer = 256;
  int laurel_rank = 64;
  int n_altup = 4;
  int sliding_window = 16;
  int shared_kv_layers = 5;
  int sparse_layers = 10;
  int context_length = 32768;
  GgufLayout layout = GgufLayout::LlamaCpp;
  // "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "q6_k" (llama.cpp's mixtures for *_m).
  std::string quant = "q4_k_m";
  uint64_t seed = 1;
  // Optional vocab-only GGUF whose tokenizer.* keys are copied (its token count must not exceed n_vocab);
  // without one, a small synthetic SentencePiece-style vocabulary is written.
  std::string vocab_path;
};

// Presets: "tiny" (the fixture's shape), "e4b-mini" (E4B's 35 layers and KV sharing from layer 20 at the
// tiny width, for MatFormer slicing), "e2b", "e4b" (the real shapes, docs/model.md §1.1).
std::optional<RandomModelSpec> random_model_preset(const std::string& name);

// Writes the model (atomically: temp file + rename). Work is spread over n_threads (0 = all cores).
void write_random_gemma3n(const RandomModelSpec& spec, const std::string& path, int n_threads = 0);

}  // namespace g3n
