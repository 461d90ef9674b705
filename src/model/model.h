// A loaded Gemma 3n model: the mmapped GGUF, its configuration and bound weights. Immutable after
// load, so any number of contexts (sequences) can share one Model across threads.
#pragma once
#include <memory>
#include <string>

#include "gguf/gguf.h"
#include "model/gemma3n_config.h"
#include "model/gemma3n_weights.h"

namespace g3n {

class Model {
 public:
  // Opens and validates the file; weights stay in the mapping (nothing is copied but 1-D vectors).
  static std::unique_ptr<Model> load(const std::string& path);
  // Same over a file the caller already opened.
  static std::unique_ptr<Model> from_gguf(GgufFile file);

  const GgufFile& file() const { return file_; }
  const Gemma3nConfig& config() const { return config_; }
  const Gemma3nWeights& weights() const { return weights_; }

 private:
  explicit Model(GgufFile file);
  GgufFile file_;
  Gemma3nConfig config_;
  Gemma3nWeights weights_;
};

}  // namespace g3n
