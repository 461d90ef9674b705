// Small file helpers shared by the store and the registry client: crash-safe writes and SHA-256.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include <openssl/evp.h>

#include "base/file.h"

namespace g3n::store {

class StoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Streaming SHA-256 (OpenSSL EVP).
class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  std::string hex();  // finalizes; 64 lowercase hex characters

 private:
  struct Free {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};

std::string sha256_hex(std::string_view data);
// Hashes a whole file; throws StoreError when it cannot be read.
std::string sha256_file_hex(const std::filesystem::path& path);

// "sha256:<64 hex>" or "sha256-<64 hex>" (any case) -> true.
bool is_valid_digest(std::string_view digest);
// "sha256:ABC..." -> "sha256-abc..." (the blob file name). Throws StoreError on a bad digest.
std::string digest_to_filename(std::string_view digest);

// base's write_file_atomic (readers see the old file or the whole new one; creates parent dirs),
// failing with StoreError.
void atomic_write_file(const std::filesystem::path& path, std::string_view data);
using g3n::fsync_dir;
// Reads a whole (small) file; throws StoreError.
std::string read_file(const std::filesystem::path& path);
// strerror(errno) with the path, for messages.
std::string errno_message(const std::string& what, const std::filesystem::path& path, int err);

}  // namespace g3n::store
