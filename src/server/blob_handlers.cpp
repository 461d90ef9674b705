// Ollama's blob upload, for making models over HTTP: HEAD /api/blobs/:digest (is the blob in the store?)
// and POST /api/blobs/:digest (the raw body, streamed to disk and verified, becomes that blob). Only g3n's
// own store counts: it is the one an HTTP create reads.
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
  if (!write_error.empty()) throw HttpError(500, "cannot store the blob: " + write_error);
  if (!whole) throw HttpError(400, "the upload of " + digest + " was interrupted");
  try {
    up.commit();
  } catch (const store::StoreError& e) {
    throw HttpError(400, e.what());  // digest mismatch
  }
  res.status = 201;
}

}  // namespace g3n::server
