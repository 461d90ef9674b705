// Ollama's blob upload, for making models over HTTP: HEAD /api/blobs/:digest (is the blob in the store?)
// and POST /api/blobs/:digest (the raw body, streamed to disk and verified, becomes that blob). Only g3n's
// own store counts: it is the one an HTTP create reads.
#include <cstdio>

#include "server/handlers.h"
#include "server/options.h"
#include "store/blob_upload.h"

namespace g3n::server {
namespace {

// The route's digest, checked ("sha256:<hex>"; Ollama's message for anything else).
std::string digest_param(const HttpRequest& req) {
  const std::string d = req.params.empty() ? std::string() : req.params[0];
  if (!store::is_valid_digest(d)) throw HttpError(400, "invalid digest format");
  return store::normalize_digest(d);
}

}  // namespace

void ollama_blob_head(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const std::string digest = digest_param(req);
  if (!store::has_own_blob(store::ModelStore(s.cfg.store), digest)) throw HttpError(404, "blob \"" + digest + "\" not found");
  res.status = 200;
}

void ollama_blob_upload(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const std::string digest = digest_param(req);
  store::ModelStore st(s.cfg.store);
  if (store::has_own_blob(st, digest)) {  // as Ollama: already there, the body is not needed
    res.status = 200;
    return;
  }
  // Destroyed without commit() (any error below), the upload removes its temporary file.
  store::BlobUpload up(st, digest);
  std::string write_error;
  const bool whole = req.read_body([&](std::string_view piece) {
    try {
      up.write(piece);
      return true;
    } catch (const std::exception& e) {
      write_error = e.what();
      return false;
    }
  });
  // The store's own failures (disk full, a failed rename) name server paths: the log gets them, the client the fact.
  auto store_failed = [&](const std::string& why) {
    std::fprintf(stderr, "g3n serve: blob %s: %s\n", digest.c_str(), why.c_str());
    return HttpError(500, "cannot store the blob " + digest + " (the server's log says why)");
  };
  if (!write_error.empty()) throw store_failed(write_error);
  if (!whole) throw HttpError(400, "the upload of " + digest + " was interrupted");
  try {
    up.commit();
  } catch (const store::StoreError& e) {
    const std::string why = e.what();
    if (why.rfind("digest mismatch", 0) == 0) throw HttpError(400, why);
    throw store_failed(why);
  }
  res.status = 201;
}

}  // namespace g3n::server
