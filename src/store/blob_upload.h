// A blob sent by a client that names its digest first (HTTP POST /api/blobs/:digest): the bytes are hashed
// while they go to a temporary file in the store's blob folder, and the blob appears, by rename, only when
// the whole content has the promised digest. An upload that fails, is abandoned or does not match leaves
// nothing behind.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "base/file.h"
#include "store/file_util.h"
#include "store/model_store.h"

namespace g3n::store {

// "sha256:<64 lowercase hex>" for a digest in either accepted spelling; throws StoreError("invalid
// digest format: ...") for anything else.
std::string normalize_digest(std::string_view digest);

// Whether the blob is in g3n's own store (not Ollama's): what HEAD /api/blobs answers, and what an
// HTTP create may use.
bool has_own_blob(const ModelStore& store, std::string_view digest);

// A finished file the server wrote on the store's filesystem (a converted or quantized model, written beside
// the blobs) made a blob: hashed, then renamed to the blob's name, so the blob appears whole or not at all.
// When the store has that blob already the file is removed instead. Throws StoreError (the file is then left
// for the caller to remove).
struct AdoptedFile {
  std::string digest;    // "sha256:<hex>"
  bool created = false;  // false: the store had that blob already
};
AdoptedFile adopt_file_as_blob(ModelStore& store, const std::filesystem::path& file);

class BlobUpload {
 public:
  // Throws StoreError for an invalid digest or when the temporary file cannot be created.
  BlobUpload(ModelStore& store, std::string_view digest);
  // Appends to the temporary file; throws StoreError (disk full, ...).
  void write(std::string_view data);
  // Checks the digest and renames the file to the blob's name (an existing blob of that name is kept).
  // Throws StoreError("digest mismatch, expected \"...\", got \"...\"") and removes the file otherwise.
  void commit();
  int64_t size() const { return size_; }
  const std::string& digest() const { return digest_; }

 private:
  ModelStore& store_;
  std::string digest_;
  Sha256 hash_;
  int64_t size_ = 0;
  std::unique_ptr<AtomicFileWriter> out_;
};

}  // namespace g3n::store
