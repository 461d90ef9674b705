#include "model/model.h"

namespace g3n {

Model::Model(GgufFile file)
    : file_(std::move(file)), config_(read_gemma3n_config(file_)), weights_(bind_gemma3n_weights(file_, config_)) {}

std::unique_ptr<Model> Model::load(const std::string& path) { return from_gguf(GgufFile::open(path)); }

std::unique_ptr<Model> Model::from_gguf(GgufFile file) { return std::unique_ptr<Model>(new Model(std::move(file))); }

}  // namespace g3n
