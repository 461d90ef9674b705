// What an uploaded blob is, from its first bytes: POST /api/create sorts `files` by content as well as by
// name (a client may name a file anything).
#pragma once
#include <filesystem>

namespace g3n::server {

bool is_gguf_file(const std::filesystem::path& p);         // starts with "GGUF"
bool is_safetensors_file(const std::filesystem::path& p);  // an 8-byte header length that fits the file, then '{'

}  // namespace g3n::server
