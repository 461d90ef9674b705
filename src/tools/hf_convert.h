// `g3n create --from-hf`: converts a Hugging Face Gemma 3n checkpoint directory into the text GGUF
// (weights + tokenizer) and the towers' mmproj in a staging directory, ready to be stored as the model
// and projector layers. Streaming and restartable: each output appears by atomic rename only when
// complete; a finished output whose stamp matches the checkpoint and options is reused after an
// interruption (kill -9 included); one conversion at a time uses the staging directory (a lock the
// kernel drops when its holder dies), and it removes what killed runs left there.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>

#include "base/file_lock.h"
#include "tools/hf_text_gguf.h"

namespace g3n {

struct HfConvertReport {
  std::filesystem::path text_gguf;
  std::filesystem::path mmproj_gguf;  // empty when no tower is converted
  uint64_t bytes_read = 0;   // checkpoint bytes converted, text and towers (0 when both outputs were reused)
  double seconds = 0;
  int64_t peak_rss_bytes = 0;  // of this process, at the end
  bool reused = false;         // the text GGUF of an earlier, interrupted run was reused
  int stale_removed = 0;       // files of killed runs removed from the staging directory
};

// Exclusive use of a staging directory, held from the conversion to the storing of its outputs: a flock
// on <dir>.lock (beside it, so the directory itself can be emptied and removed). A second `create` waits;
// the lock of a killed process is released by the kernel, so what the staging holds then is stale.
class HfStaging {
 public:
  // Creates dir and takes the lock, calling on_wait once if another process holds it.
  explicit HfStaging(std::filesystem::path dir, const std::function<void()>& on_wait = {});
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  FileLock lock_;
};

// Converts `dir` into <staging>/<stamp>-text.gguf and, when the checkpoint has towers and the options
// keep one, <staging>/<stamp>-mmproj.gguf (vision + audio). Everything else in the staging directory is
// left over from killed runs and removed first. opt.progress counts the text and tower bytes together.
// Throws HfCheckpointError for a bad checkpoint (the message names the file and tensor); nothing but a
// temporary file, removed on failure, is written before that.
HfConvertReport convert_hf_checkpoint(const std::string& dir, const HfStaging& staging, const HfConvertOptions& opt);
// The same, holding the staging lock for the call only.
HfConvertReport convert_hf_checkpoint(const std::string& dir, const std::filesystem::path& staging, const HfConvertOptions& opt);

// True when `dir` looks like a Hugging Face checkpoint (has config.json) rather than a GGUF or a name.
bool is_hf_checkpoint_dir(const std::filesystem::path& dir);

}  // namespace g3n
