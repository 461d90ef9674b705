// `g3n create --from-hf`: converts a Hugging Face Gemma 3n checkpoint directory into the text GGUF
// (weights + tokenizer) in a staging directory, ready to be stored as the model layer. Streaming and
// restartable: each output appears by atomic rename only when complete, and a finished output whose
// stamp matches the checkpoint and options is reused after an interruption (kill -9 included).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "tools/hf_text_gguf.h"

namespace g3n {

struct HfConvertReport {
  std::filesystem::path text_gguf;
  std::filesystem::path mmproj_gguf;  // empty when no tower is converted
  uint64_t bytes_read = 0;   // checkpoint bytes converted (0 when a finished output was reused)
  double seconds = 0;
  int64_t peak_rss_bytes = 0;  // of this process, at the end
  bool reused = false;
};

// Converts `dir` into `staging`/<stamp>-text.gguf and, when the checkpoint has towers and the options
// keep one, `staging`/<stamp>-mmproj.gguf (vision + audio). staging is created. Throws HfCheckpointError for a
// bad checkpoint (the message names the file and tensor); nothing but a temporary file, removed on
// failure, is written before that.
HfConvertReport convert_hf_checkpoint(const std::string& dir, const std::filesystem::path& staging, const HfConvertOptions& opt);

// True when `dir` looks like a Hugging Face checkpoint (has config.json) rather than a GGUF or a name.
bool is_hf_checkpoint_dir(const std::filesystem::path& dir);

}  // namespace g3n
