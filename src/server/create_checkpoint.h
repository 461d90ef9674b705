// POST /api/create from a Hugging Face checkpoint uploaded as blobs: Ollama's client uploads a checkpoint
// directory's files (config.json, the safetensors shards and their index, tokenizer.json, ...) and sends
// `files: {name: digest}`. The blobs are staged as a checkpoint directory in the store's scratch area
// (<store>/tmp/create-<pid>-*: hard links, a copy where linking fails), checked, and converted with the
// checkpoint converter (tools/hf_convert.h) into the text GGUF and, when the checkpoint has towers, the
// projector GGUF, both written in the staging directory. The staging directory goes with the object, so
// nothing of it outlives the request, whatever happens.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "store/model_store.h"
#include "tools/hf_convert.h"
#include "tools/quant_plan.h"

namespace g3n::server {

using UploadedFiles = std::vector<std::pair<std::string, std::string>>;  // file name -> digest

// Whether the uploaded files are a safetensors checkpoint rather than GGUF files: a file named
// *.safetensors, config.json or model.safetensors.index.json, or a blob that starts like a safetensors file.
bool is_checkpoint_upload(const store::ModelStore& st, const UploadedFiles& files);

class StagedCheckpoint {
 public:
  // Checks the files before any conversion: config.json and tokenizer.json are there, no GGUF is mixed in,
  // the checkpoint opens (a Gemma 3n config, every shard the index names or model.safetensors, every
  // tensor in the shard the index names) and its tokenizer reads. Throws HttpError(400) naming the file
  // (file names as uploaded, never the server's paths); nothing is left behind then.
  static std::unique_ptr<StagedCheckpoint> stage(const store::ModelStore& st, const UploadedFiles& files);
  ~StagedCheckpoint();  // removes the staging directory
  StagedCheckpoint(const StagedCheckpoint&) = delete;
  StagedCheckpoint& operator=(const StagedCheckpoint&) = delete;

  // Converts the checkpoint at `target` in Ollama's layout, the towers (when there are any) into the
  // projector; `progress` gets the bytes read and the total. The outputs lie in the staging directory.
  // Throws HttpError(400) for a checkpoint the conversion rejects.
  HfConvertReport convert(QuantTarget target, const std::string& name, int n_threads,
                          const std::function<void(uint64_t done, uint64_t total)>& progress) const;

  const std::filesystem::path& dir() const { return dir_; }

 private:
  explicit StagedCheckpoint(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::filesystem::path checkpoint_dir() const { return dir_ / "checkpoint"; }
  // A converter message with the staging paths taken out: files named as the client uploaded them.
  std::string client_message(std::string msg) const;
  std::filesystem::path dir_;
};

// Removes the staging directories a killed server left behind (those of processes no longer running).
void remove_stale_staging(const store::ModelStore& st);

}  // namespace g3n::server
