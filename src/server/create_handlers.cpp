// POST /api/create: a model made over HTTP from blobs uploaded with /api/blobs (`files`) and models already
// in the store (`from`), never from paths, with the store's create (store/modelfile.h): the same sorting
// (a "clip" GGUF is the projector layer), the same checks, all made before anything is written and
// answered with their status; then the writing, streamed as Ollama's progress lines. `files` may instead
// be a Hugging Face safetensors checkpoint, converted first (create_checkpoint.h).
#include <chrono>
#include <filesystem>

#include "server/create_checkpoint.h"
#include "server/create_quantize.h"
#include "server/create_request.h"
#include "server/file_kind.h"
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
using Emit = std::function<void(const json&)>;  // one progress object of the stream

// Everything the writing needs, checked.
struct CreatePlan {
  CreateRequest q;
  store::ModelSources sources;
  std::optional<QuantizePlan> quantize;  // a GGUF model re-quantized
  fs::path model_file;  // the text model's GGUF (the file, or the parent's model layer)
  // A safetensors checkpoint (then `sources` is filled once it is converted), and the type it becomes:
  // `quantize`, else F16 as Ollama converts.
  std::shared_ptr<StagedCheckpoint> checkpoint;
  QuantTarget checkpoint_target = QuantTarget::F16;
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
  if (is_checkpoint_upload(st, q.files)) {
    if (q.from) throw HttpError(400, "'from' cannot be combined with a safetensors checkpoint in 'files': the checkpoint is the model");
    if (q.quantize) p.checkpoint_target = quant_target_or_400(*q.quantize);
    p.checkpoint = StagedCheckpoint::stage(st, q.files);
    p.q = std::move(q);
    return p;
  }
  try {
    for (const auto& [file, digest] : q.files) {
      const fs::path blob = st.blob_path(digest);
      if (!is_gguf_file(blob)) throw HttpError(400, "file \"" + file + "\" is not a GGUF file");
      p.sources.add_file({blob, digest, file});
    }
    store::check_sources(st, p.sources);
    p.model_file = p.sources.model ? p.sources.model->path : st.resolve(store::parse_model_name(*p.sources.parent)).model_path;
  } catch (const store::StoreError& e) {
    // The store names a file by its path; the client knows an uploaded one by the name it gave.
    std::string msg = e.what();
    for (const auto& [file, digest] : q.files) {
      const std::string path = st.blob_path(digest).string();
      for (size_t at = 0; (at = msg.find(path, at)) != std::string::npos; at += file.size()) msg.replace(at, path.size(), file);
    }
    throw HttpError(400, msg);
  }
  if (q.quantize) p.quantize = plan_quantize(p.model_file, *q.quantize);
  p.q = std::move(q);
  return p;
}

// The checkpoint converted (Ollama's "converting model" status, then the bytes converted at most once a
// second) and its outputs made blobs, the sources of the create. Blobs this adds go into `made`.
void convert_checkpoint(const ServerConfig& cfg, store::ModelStore& st, CreatePlan& p, const Emit& emit, std::vector<fs::path>& made) {
  if (emit) emit(json{{"status", "converting model"}});
  auto last = std::chrono::steady_clock::now();
  const HfConvertReport r = p.checkpoint->convert(p.checkpoint_target, p.q.name.model, cfg.num_threads, [&](uint64_t done, uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (!emit || (now - last < std::chrono::seconds(1) && done < total)) return;
    last = now;
    emit(json{{"status", "converting model"}, {"total", total}, {"completed", done}});
  });
  for (const auto& [file, label] : {std::pair{r.text_gguf, "the converted checkpoint"}, std::pair{r.mmproj_gguf, "the converted towers"}}) {
    if (file.empty()) continue;
    const store::AdoptedFile a = store::adopt_file_as_blob(st, file);
    if (a.created) made.push_back(st.blob_path(a.digest));
    p.sources.add_file({st.blob_path(a.digest), a.digest, label, a.created});
  }
}

// The writing: converts or quantizes when asked, then the store's create. Progress goes to `emit` as
// Ollama's status objects ("success" last). Throws on failure; blobs made here are removed again then.
void run_create(const ServerConfig& cfg, CreatePlan p, const Emit& emit) {
  auto say = [&](const std::string& status) {
    if (emit) emit(json{{"status", status}});
  };
  store::ModelStore st(cfg.store);
  std::vector<fs::path> made;  // blobs this create added
  try {
    if (p.checkpoint) {
      convert_checkpoint(cfg, st, p, emit, made);
    } else {
      if (!p.q.files.empty()) say("parsing GGUF");
      if (p.quantize) {
        say("quantizing " + p.quantize->from_type + " model to " + p.quantize->to_type);
        const QuantizeResult r = run_quantize(st, p.model_file, *p.quantize);
        if (r.created) made.push_back(st.blob_path(r.digest));
        p.sources.model = store::SourceFile{st.blob_path(r.digest), r.digest, p.quantize->to_type, r.created};
      }
    }
    store::create_model_from(st, p.q.name, p.sources, p.q.fields, say);
  } catch (...) {
    std::error_code ec;
    for (const auto& m : made) fs::remove(m, ec);
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
      run_create(st->cfg, std::move(*shared), write);
      st->models.unload(model);
    } catch (const std::exception& e) {
      write(json{{"error", e.what()}});  // in-band, as Ollama does once the stream has started
    }
    return !gone;
  };
}

}  // namespace g3n::server
