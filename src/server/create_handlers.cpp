// POST /api/create: a model made over HTTP from blobs uploaded with /api/blobs (`files`) and models already
// in the store (`from`), never from paths, with the store's create (store/modelfile.h): the same sorting
// (a "clip" GGUF is the projector layer), the same checks, all made before anything is written and
// answered with their status; then the writing, streamed as Ollama's progress lines.
#include <cstdio>
#include <cstring>
#include <strings.h>
#include <filesystem>
#include <fstream>

#include "server/create_quantize.h"
#include "server/create_request.h"
#include "server/handlers.h"
#include "server/model_manager.h"
#include "server/options.h"
#include "server/requests.h"
#include "server/responses.h"
#include "store/blob_upload.h"

namespace g3n::server {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

bool ends_with_ci(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && strncasecmp(s.data() + s.size() - suffix.size(), suffix.data(), suffix.size()) == 0;
}

// The first bytes of a file (fewer when it is shorter).
std::string head_of(const fs::path& p, size_t n) {
  std::ifstream in(p, std::ios::binary);
  std::string s(n, '\0');
  in.read(s.data(), std::streamsize(n));
  s.resize(size_t(in.gcount()));
  return s;
}

bool is_gguf(const fs::path& p) { return head_of(p, 4) == "GGUF"; }

// A safetensors file: an 8-byte little-endian header length, then the JSON header.
bool looks_like_safetensors(const fs::path& p) {
  const std::string h = head_of(p, 9);
  if (h.size() < 9 || h[8] != '{') return false;
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(h[size_t(i)]);
  std::error_code ec;
  const auto size = fs::file_size(p, ec);
  return !ec && n > 0 && n <= size - 8;
}

// Everything the writing needs, checked.
struct CreatePlan {
  CreateRequest q;
  store::ModelSources sources;
  std::optional<QuantizePlan> quantize;
  fs::path model_file;  // the text model's GGUF (the file, or the parent's model layer)
};

// Sorts and checks the request's sources; every refusal happens here, before a byte is written.
CreatePlan plan_create(ServerState& s, CreateRequest q) {
  CreatePlan p;
  store::ModelStore st(s.cfg.store);
  if (q.from) {
    // A model name only: a path (or anything that is not a name in the store) is a model that is not there.
    const std::string& from = *q.from;
    store::ModelName parent;
    if (store::looks_like_gguf_path(from) || !store::try_parse_model_name(from, &parent) || !st.find_manifest(parent))
      throw ModelNotFound("model '" + from + "' not found");
    p.sources.add_parent(from);
  }
  for (const auto& [file, digest] : q.files)
    if (!store::has_own_blob(st, digest))
      throw HttpError(400, "file \"" + file + "\": blob " + digest + " not found; upload it first (POST /api/blobs/" + digest + ")");
  for (const auto& [file, digest] : q.files)
    if (ends_with_ci(file, ".safetensors") || looks_like_safetensors(st.blob_path(digest)))
      throw HttpError(400, "safetensors checkpoints are not supported yet");
  try {
    for (const auto& [file, digest] : q.files) {
      const fs::path blob = st.blob_path(digest);
      if (!is_gguf(blob)) throw HttpError(400, "file \"" + file + "\" is not a GGUF file");
      p.sources.add_file({blob, digest, file});
    }
    store::check_sources(st, p.sources);
    p.model_file = p.sources.model ? p.sources.model->path : st.resolve(store::parse_model_name(*p.sources.parent)).model_path;
  } catch (const store::StoreError& e) {
    throw HttpError(400, e.what());
  }
  if (q.quantize) p.quantize = plan_quantize(p.model_file, *q.quantize);
  p.q = std::move(q);
  return p;
}

// The writing: quantizes when asked, then the store's create. Progress goes to `say` as Ollama's
// statuses ("success" last). Throws on failure; a quantized blob made here is removed again then.
void run_create(const ServerConfig& cfg, CreatePlan p, const std::function<void(const std::string&)>& progress) {
  auto say = [&](const std::string& status) {
    if (progress) progress(status);
  };
  store::ModelStore st(cfg.store);
  if (!p.q.files.empty()) say("parsing GGUF");
  std::optional<fs::path> made;  // a blob this create added
  try {
    if (p.quantize) {
      say("quantizing " + p.quantize->from_type + " model to " + p.quantize->to_type);
      const QuantizeResult r = run_quantize(st, p.model_file, *p.quantize);
      if (r.created) made = st.blob_path(r.digest);
      p.sources.model = store::SourceFile{st.blob_path(r.digest), r.digest, p.quantize->to_type, r.created};
    }
    store::create_model_from(st, p.q.name, p.sources, p.q.fields, progress);
  } catch (...) {
    std::error_code ec;
    if (made) fs::remove(*made, ec);
    throw;
  }
}

}  // namespace

void ollama_create(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  CreatePlan plan = plan_create(s, parse_create(parse_json_body(req.body)));
  const std::string model = plan.q.model;
  if (!plan.q.stream) {
    try {
      run_create(s.cfg, std::move(plan), {});
    } catch (const HttpError&) {
      throw;
    } catch (const std::exception& e) {
      throw HttpError(500, e.what());
    }
    s.models.unload(model);  // a model loaded under this name reloads as the new one
    set_json(res, 200, json{{"status", "success"}});
    return;
  }
  res.content_type = "application/x-ndjson";
  ServerState* st = &s;
  auto shared = std::make_shared<CreatePlan>(std::move(plan));
  res.stream = [st, shared, model](ChunkSink& sink) {
    bool gone = false;
    auto write = [&](const json& j) {
      if (!gone && !sink.write(dump(j) + "\n")) gone = true;
    };
    try {
      // The work finishes even when the client leaves: a half-made model is never left behind.
      run_create(st->cfg, std::move(*shared), [&](const std::string& status) { write(json{{"status", status}}); });
      st->models.unload(model);
    } catch (const std::exception& e) {
      write(json{{"error", e.what()}});  // in-band, as Ollama does once the stream has started
    }
    return !gone;
  };
}

}  // namespace g3n::server
