// The tokenizer.ggml.* keys of a converted Gemma 3n, built from the checkpoint's tokenizer.json (and
// tokenizer_config.json, generation_config.json) the way each layout's converter builds them:
// llama.cpp (convert_hf_to_gguf.py's SentencePiece rules: 262,144 entries, NORMAL scores -rank, BYTE
// pieces, added tokens CONTROL/USER_DEFINED at -1000) or Ollama (its tokenizer.json path: vocab_size
// entries with the multimodal specials and [PADn], score = id, merges). See docs/convert.md.
#pragma once
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tools/hf_checkpoint.h"
#include "tools/quant_plan.h"

namespace g3n {

struct HfVocab {
  std::string model;  // "llama" or "gpt2"
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // llama_token_type: 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE
  std::vector<std::string> merges;
  int bos = 2, eos = 1, unk = 3, pad = 0;
  bool add_bos = true, add_eos = false;
  std::vector<int> eos_ids;  // Ollama: generation_config.json's eos_token_id list
};

// Reads dir/tokenizer.json (required) and dir/tokenizer_config.json (optional). vocab_size and
// vocab_size_per_layer_input come from config.json. Throws HfCheckpointError naming the file.
HfVocab read_hf_vocab(const std::string& dir, const HfTextConfig& c, GgufLayout layout, const std::vector<int>& generation_eos);

// The vocabulary as GGUF keys of the layout.
std::vector<GgufKV> hf_vocab_kvs(const HfVocab& v, GgufLayout layout);

}  // namespace g3n
