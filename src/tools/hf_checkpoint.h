// A Hugging Face Gemma 3n checkpoint directory: config.json, the safetensors shards (through
// model.safetensors.index.json, or one model.safetensors) mapped read-only, generation_config.json and
// the tokenizer files. Opening validates what the conversion relies on: the architecture, every shard
// named by the index, every tensor inside the shard the index names; errors name the file (and tensor).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tools/safetensors.h"

namespace g3n {

class HfCheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One of a checkpoint's JSON files (config, index, tokenizer); HfCheckpointError naming it when it cannot be
// read, is not JSON or nests more than kMaxJsonNesting deep (base/json_nesting.h).
nlohmann::json read_hf_json(const std::string& path);

// text_config of a Gemma 3n config.json (Gemma3nTextConfig), every value the GGUF needs.
struct HfTextConfig {
  int hidden_size = 0, num_hidden_layers = 0, num_attention_heads = 0, num_key_value_heads = 0, head_dim = 0;
  std::vector<int> intermediate_size;  // per layer (a scalar is repeated)
  int vocab_size = 0, vocab_size_per_layer_input = 0, hidden_size_per_layer_input = 0;
  int sliding_window = 0, num_kv_shared_layers = 0, altup_active_idx = 0, altup_num_inputs = 0, laurel_rank = 0;
  int max_position_embeddings = 0;
  double rms_norm_eps = 0, rope_theta = 0, rope_local_base_freq = 0, final_logit_softcapping = 0;
  double altup_coef_clip = 0, altup_lr_multiplier = 1;
  bool altup_correct_scale = true;
  std::vector<bool> layer_is_sliding;              // from layer_types
  std::vector<double> activation_sparsity_pattern; // per layer
};

// What the mmproj metadata needs from vision_config, audio_config and preprocessor_config.json.
struct HfMmprojConfig {
  int image_size = 768;       // preprocessor_config.json size.height
  double vision_eps = 1e-6;   // vision_config.rms_norm_eps
  int audio_mel_bins = 128;   // audio_config.input_feat_size
  double audio_eps = 1e-6;    // audio_config.rms_norm_eps
};

struct HfTensorRef {
  const SafetensorsFile* file;
  const SafetensorsTensor* tensor;
};

class HfCheckpoint {
 public:
  static HfCheckpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const HfTextConfig& text() const { return text_; }
  const HfMmprojConfig& mmproj_config() const { return mm_; }
  bool has_vision_config() const { return has_vision_; }
  bool has_audio_config() const { return has_audio_; }
  // eos_token_id of generation_config.json (a list or a number), empty when the file is absent.
  const std::vector<int>& generation_eos() const { return eos_; }
  // The tensor `name`, or nullptr.
  std::optional<HfTensorRef> find(const std::string& name) const;
  // The tensor `name`; HfCheckpointError naming the index or shard when it is absent.
  HfTensorRef get(const std::string& name) const;
  std::vector<std::string> tensor_names() const;  // sorted
  uint64_t total_bytes() const;                   // sum of every shard's size
  std::string path_of(const std::string& file) const { return dir_ + "/" + file; }

 private:
  std::string dir_;
  HfTextConfig text_;
  HfMmprojConfig mm_;
  bool has_vision_ = false, has_audio_ = false;
  std::vector<int> eos_;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> where_;  // tensor name -> shard
};

}  // namespace g3n
