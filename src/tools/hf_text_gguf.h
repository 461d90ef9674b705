// The text GGUF of a Hugging Face Gemma 3n checkpoint, in the llama.cpp or the Ollama layout, at any
// target of tools/quant_plan.h. Tensors stream from the mapped shards row run by row run (decoded to
// F32, re-encoded, written, the source pages dropped), so memory stays bounded whatever the size.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tools/hf_checkpoint.h"
#include "tools/quant_plan.h"

namespace g3n {

struct HfConvertOptions {
  QuantTarget target = QuantTarget::Q4_K_M;
  GgufLayout layout = GgufLayout::Ollama;
  int n_threads = 0;         // 0: all cores
  std::string name;          // general.name (llama.cpp layout); empty: the checkpoint directory's name
  bool vision = true, audio = true;  // towers into the mmproj (when the checkpoint has them)
  bool towers_f32 = false;           // towers in F32 instead of F16
  // Called after each run of rows with the source bytes read so far and the total to read.
  std::function<void(uint64_t done, uint64_t total)> progress;
};

// One text tensor of the GGUF and where its rows come from.
struct HfTextTensor {
  std::string name;                  // GGUF name
  std::vector<int64_t> ne;           // GGUF shape
  std::vector<std::string> sources;  // HF tensors whose rows are concatenated (several: the stacked altup projections)
  int layer = -1;
  bool clamp = false;                // Ollama clamps the altup coefficients to +-altup_coef_clip
};

// The text tensors in the layout's order, with their shapes from config.json (llama.cpp: token rows =
// vocab_size_per_layer_input, the tokenizer's size; Ollama: vocab_size and vocab_size_per_layer_input).
std::vector<HfTextTensor> hf_text_tensors(const HfTextConfig& c, GgufLayout layout);

// The gemma3n.* and general.* keys of the layout (tokenizer keys come from tools/hf_tokenizer.h).
std::vector<GgufKV> hf_text_metadata(const HfTextConfig& c, GgufLayout layout, QuantTarget target, const std::string& name);

// Writes the text GGUF (atomically); tokenizer_kvs are added to the metadata (sorted in with the rest in
// the Ollama layout). Throws HfCheckpointError naming the file and tensor for a missing tensor, a shape
// that disagrees with config.json or a dtype other than BF16/F16/F32.
void write_hf_text_gguf(const HfCheckpoint& ck, const std::string& out_path, const HfConvertOptions& opt,
                        const std::vector<GgufKV>& tokenizer_kvs);

// The HF name of every text tensor the conversion reads ("model.language_model." ...).
std::string hf_text_prefix();

}  // namespace g3n
