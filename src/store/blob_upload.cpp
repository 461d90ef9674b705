#include "store/blob_upload.h"

#include <filesystem>

namespace g3n::store {
namespace fs = std::filesystem;

std::string normalize_digest(std::string_view digest) {
  std::string name = digest_to_filename(digest);  // validates; "sha256-<lowercase hex>"
  name[6] = ':';
  return name;
}

bool has_own_blob(const ModelStore& store, std::string_view digest) {
  std::error_code ec;
  return fs::is_regular_file(store.blob_path(digest), ec);
}

AdoptedFile adopt_file_as_blob(ModelStore& store, const fs::path& file) {
  std::error_code ec;
  fs::create_directories(store.blobs_dir(), ec);
  if (ec) throw StoreError("cannot create " + store.blobs_dir().string() + ": " + ec.message());
  AdoptedFile r;
  r.digest = "sha256:" + sha256_file_hex(file);
  r.created = !has_own_blob(store, r.digest);
  if (r.created) {
    fs::rename(file, store.blob_path(r.digest), ec);
    if (ec) throw StoreError("cannot store " + file.string() + " as " + r.digest + ": " + ec.message());
    fsync_dir(store.blobs_dir());
  } else {
    fs::remove(file, ec);
  }
  return r;
}

BlobUpload::BlobUpload(ModelStore& store, std::string_view digest) : store_(store), digest_(normalize_digest(digest)) {
  std::error_code ec;
  fs::create_directories(store_.blobs_dir(), ec);
  if (ec) throw StoreError("cannot create " + store_.blobs_dir().string() + ": " + ec.message());
  try {
    out_ = std::make_unique<AtomicFileWriter>(store_.blob_path(digest_));
  } catch (const IoError& e) {
    throw StoreError(e.what());
  }
}

void BlobUpload::write(std::string_view data) {
  hash_.update(data.data(), data.size());
  try {
    out_->write(data.data(), data.size());
  } catch (const IoError& e) {
    throw StoreError(e.what());
  }
  size_ += int64_t(data.size());
}

void BlobUpload::commit() {
  const std::string got = "sha256:" + hash_.hex();
  if (got != digest_) {
    out_->discard();
    throw StoreError("digest mismatch, expected \"" + digest_ + "\", got \"" + got + "\"");
  }
  try {
    if (has_own_blob(store_, digest_)) out_->discard();  // another upload of the same content won
    else out_->commit();
  } catch (const IoError& e) {
    throw StoreError(e.what());
  }
}

}  // namespace g3n::store
