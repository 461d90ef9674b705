// Gemma 3n hyperparameters, read from GGUF metadata (both llama.cpp and Ollama spellings) with the
// documented fallbacks, and checked against the tensor shapes (docs/model.md §1.2).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace g3n {

class GgufFile;

struct Gemma3nConfig {
  int n_layer = 0;
  int n_embd = 0;          // D
  int n_head = 0;          // H
  int n_head_kv = 0;       // Hkv
  int head_dim = 0;        // Dh
  int n_embd_per_layer = 0;  // P, width of one layer's per-layer-embedding slice
  int n_altup = 4;         // N streams
  int altup_active = 0;    // a
  int laurel_rank = 0;     // R
  int n_vocab = 0;         // rows of token_embd (also the logits width)
  int n_vocab_per_layer = 0;  // ids >= this use per-layer row 0 (HF semantics)
  int context_length = 0;
  int sliding_window = 0;
  float rope_base_global = 1e6f;
  float rope_base_local = 1e4f;
  float rms_eps = 1e-6f;
  float final_logit_softcap = 30.0f;  // <= 0: none
  int n_layer_kv = 0;      // layers [0, n_layer_kv) own a KV cache

  std::vector<int> n_ff;             // per layer
  std::vector<bool> is_sliding;      // per layer
  std::vector<float> sparsity_std_multiplier;  // per layer; 0 = dense FFN
  std::vector<int> kv_source;        // per layer: the layer whose cache it reads (itself if it owns one)
  // MatFormer slices (model/matformer.h) run a subset of the file's layers: each layer's blk.N index in the
  // file, and the file's layer count (the per-layer tables hold one block per file layer).
  std::vector<int> file_layer;
  int n_layer_file = 0;

  bool owns_kv(int layer) const { return layer < n_layer_kv; }
  std::string describe() const;  // one line per notable value, for `g3n show` and debugging
};

// Reads and validates the configuration. Throws std::runtime_error with a clear message when the file
// is not a Gemma 3n model (naming its architecture) or its metadata contradicts its tensors.
Gemma3nConfig read_gemma3n_config(const GgufFile& file);

// Fills kv_source from n_layer_kv and is_sliding: a layer past the owners reads the last owner of its
// type. Throws std::runtime_error when some sharing layer has no owner of its type.
void assign_kv_sources(Gemma3nConfig& c);

}  // namespace g3n
