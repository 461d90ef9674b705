// The mmproj GGUF (vision + audio towers and their embedders) of a Hugging Face Gemma 3n checkpoint,
// named as llama.cpp's converter names them (the vision and audio fixtures' names: vision layer scales and
// the stem bias as ne [1, 1, C, 1], the audio SSCP norms a.conv1d.{0,1}.norm.weight that llama.cpp lacks).
// Tensors stream from the shards like the text model's.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "tools/hf_checkpoint.h"

namespace g3n {

struct HfMmprojOptions {
  bool vision = true, audio = true;
  bool f32 = false;   // towers in F32 instead of F16 (norms, scales, the stem and SSCP convs are F32 always)
  int n_threads = 0;
  // Called after each run of rows with the checkpoint bytes read so far (of hf_mmproj_bytes in all).
  std::function<void(uint64_t done)> progress;
};

struct HfMmprojTensor {
  std::string name, source;  // GGUF and HF names
  std::vector<int64_t> ne;
  GgmlType type;
};

// The GGUF name of an HF tower/embedder tensor, or "" when the name is not one.
std::string hf_mmproj_name(const std::string& hf_name);
// The inverse (for writing test checkpoints), or "".
std::string hf_mmproj_source(const std::string& gguf_name);

// The tensors the options select, in checkpoint name order.
std::vector<HfMmprojTensor> hf_mmproj_tensors(const HfCheckpoint& ck, const HfMmprojOptions& opt);

// The checkpoint bytes the selected tensors hold: what converting them reads.
uint64_t hf_mmproj_bytes(const HfCheckpoint& ck, const HfMmprojOptions& opt);

// Writes the mmproj (atomically). Throws HfCheckpointError naming the file and tensor for a bad dtype,
// or when a selected tower has no tensors.
void write_hf_mmproj_gguf(const HfCheckpoint& ck, const std::string& out_path, const HfMmprojOptions& opt);

}  // namespace g3n
