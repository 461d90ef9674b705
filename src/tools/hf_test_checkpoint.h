// Writes a Hugging Face-format Gemma 3n checkpoint (config.json, sharded safetensors with an index,
// generation_config.json) from a text GGUF: the inverse of tools/hf_text_gguf.h, for the tests (tiny
// checkpoints from the fixtures) and the real-shape benchmark (random weights). Not a conversion users need.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf.h"

namespace g3n {

struct HfTestCheckpointOptions {
  int n_shards = 2;
  std::string dtype = "F32";  // of the written tensors: F32 (exact for any GGUF), F16, BF16
  // Optional: a second text GGUF whose token_embd has more rows; rows past the first file's come from it
  // (the Ollama fixture's 512-row table over the F16 fixture's 448), and config vocab_size follows.
  std::string extra_embedding_rows_from;
  // Optional mmproj GGUFs (vision and/or audio towers) whose tensors join the checkpoint under their HF
  // names (model.vision_tower.timm_model.*, model.audio_tower.*, model.embed_*), with vision_config,
  // audio_config and preprocessor_config.json from their clip.* keys.
  std::vector<std::string> mmproj_from;
  int n_threads = 1;  // threads that decode and encode the tensors (the writing overlaps them)
};

// Writes the checkpoint into dir (created if needed), streaming: memory stays at the write buffers and
// the source GGUFs' pages are dropped once read. Throws on a GGUF that is not gemma3n.
void write_hf_test_checkpoint(const GgufFile& text, const std::string& dir, const HfTestCheckpointOptions& opt);

}  // namespace g3n
