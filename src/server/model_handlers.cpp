// Ollama's model management: GET /api/tags, POST /api/show, /api/pull, DELETE /api/delete, POST /api/copy.
#include <cstdio>
#include <filesystem>

#include "gguf/gguf.h"
#include "registry/registry_client.h"
#include "server/handlers.h"
#include "server/options.h"
#include "server/requests.h"
#include "server/responses.h"
#include "store/modelfile.h"

namespace g3n::server {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json gguf_value_json(const GgufValue& v, bool verbose) {
  switch (v.type) {
    case GgufValueType::UINT8: case GgufValueType::UINT16: case GgufValueType::UINT32: case GgufValueType::UINT64:
      return v.u;
    case GgufValueType::INT8: case GgufValueType::INT16: case GgufValueType::INT32: case GgufValueType::INT64:
      return v.i;
    case GgufValueType::FLOAT32: case GgufValueType::FLOAT64:
      return v.f;
    case GgufValueType::BOOL:
      return v.u != 0;
    case GgufValueType::STRING:
      return v.s;
    case GgufValueType::ARRAY: {
      json a = json::array();
      if (!verbose && v.array.size() > 5) return a;  // Ollama elides long arrays (vocabularies) unless verbose
      for (const auto& e : v.array) a.push_back(gguf_value_json(e, verbose));
      return a;
    }
  }
  return nullptr;
}

// Calls f(name, value) for every parameter of a params layer, once per element of an array.
template <class F>
void each_param(const json& params, F f) {
  for (auto it = params.begin(); it != params.end(); ++it) {
    if (it->is_array())
      for (const auto& v : *it) f(it.key(), v);
    else
      f(it.key(), *it);
  }
}

// A GGUF's metadata as Ollama's model_info/projector_info: every key but the name and chat template, plus
// general.parameter_count; tensors (name, type, shape) into *tensors when given.
json gguf_info(const fs::path& path, bool verbose, json* tensors) {
  const GgufFile f = GgufFile::open(path.string());
  json info = json::object();
  for (const auto& kv : f.metadata()) {
    if (kv.key == "general.name" || kv.key == "tokenizer.chat_template") continue;
    info[kv.key] = gguf_value_json(kv.value, verbose);
  }
  int64_t params_count = 0;
  if (tensors) *tensors = json::array();
  for (const auto& t : f.tensors()) {
    params_count += t.n_elements();
    if (tensors)
      tensors->push_back(json{{"name", t.name}, {"type", std::string(ggml_type_traits(t.type).name)}, {"shape", t.ne}});
  }
  if (!info.contains("general.parameter_count")) info["general.parameter_count"] = params_count;
  return info;
}

json progress_json(const registry::PullProgress& p) {
  json j{{"status", p.status}};
  if (!p.digest.empty()) j["digest"] = p.digest;
  if (p.total) j["total"] = p.total;
  if (p.completed) j["completed"] = p.completed;
  return j;
}

}  // namespace

std::chrono::system_clock::time_point to_system_time(fs::file_time_type t) {
  using SysClock = std::chrono::system_clock;
  return std::chrono::time_point_cast<SysClock::duration>(t - fs::file_time_type::clock::now() + SysClock::now());
}

json model_details(const store::ResolvedModel* r, const fs::path& gguf) {
  json d{{"parent_model", ""}, {"format", "gguf"}, {"family", ""}, {"families", nullptr}, {"parameter_size", ""},
         {"quantization_level", ""}};
  if (r) {
    auto s = [&](const char* k) { return r->config.contains(k) && r->config[k].is_string() ? r->config[k].get<std::string>() : std::string(); };
    d["family"] = s("model_family");
    if (r->config.contains("model_families") && r->config["model_families"].is_array()) d["families"] = r->config["model_families"];
    d["parameter_size"] = s("model_type");
    d["quantization_level"] = s("file_type");
    if (const auto* layer = r->manifest.find_layer(store::media::kModel)) d["parent_model"] = layer->from;
  }
  if (d["family"] == "" || d["parameter_size"] == "" || d["quantization_level"] == "") {
    if (auto sum = store::summarize_gguf(gguf)) {
      if (d["family"] == "") d["family"] = sum->architecture;
      if (d["parameter_size"] == "" && sum->parameter_count) d["parameter_size"] = store::human_parameter_count(sum->parameter_count);
      if (d["quantization_level"] == "") d["quantization_level"] = sum->quantization;
    }
  }
  if (d["families"].is_null() && d["family"] != "") d["families"] = json::array({d["family"]});
  return d;
}

void ollama_tags(ServerState& s, const HttpRequest&, HttpResponse& res) {
  store::ModelStore st(s.cfg.store);
  json models = json::array();
  for (const auto& e : st.list()) {
    try {
      const store::ResolvedModel r = st.resolve(e.name);
      models.push_back(json{{"name", e.name.display()},
                            {"model", e.name.display()},
                            {"modified_at", rfc3339(to_system_time(e.modified))},
                            {"size", e.size},
                            {"digest", store::sha256_file_hex(r.manifest_path)},
                            {"details", model_details(&r, r.model_path)}});
    } catch (const std::exception& ex) {  // an incomplete model is left out, as Ollama does
      std::fprintf(stderr, "warning: %s: %s\n", e.name.display().c_str(), ex.what());
    }
  }
  set_json(res, 200, json{{"models", models}});
}

void ollama_show(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const ShowRequest q = parse_show(parse_json_body(req.body));
  const registry::ResolveResult r = s.models.resolve(q.model);
  const store::ResolvedModel* rm = r.model ? &*r.model : nullptr;
  json j;
  std::string params;
  each_param(r.params, [&](const std::string& key, const json& v) {
    char k[64];
    std::snprintf(k, sizeof k, "%-30s ", key.c_str());
    params += k + (v.is_string() ? json(v.get<std::string>()).dump() : v.dump()) + "\n";
  });
  if (!params.empty()) params.pop_back();
  std::string license;
  for (const auto& l : r.licenses) license += (license.empty() ? "" : "\n") + l;
  std::string mf = "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM " +
                   (rm ? rm->name.display() : q.model) + "\n\nFROM " + r.gguf_path.string() + "\n";
  for (const auto& p : r.projectors) mf += "FROM " + p.string() + "\n";
  if (r.template_text) mf += "TEMPLATE \"\"\"" + *r.template_text + "\"\"\"\n";
  const std::optional<std::string> system = q.system ? q.system : r.system;
  if (system) mf += "SYSTEM \"\"\"" + *system + "\"\"\"\n";
  each_param(r.params, [&](const std::string& key, const json& v) {
    mf += "PARAMETER " + key + " " + (v.is_string() ? v.get<std::string>() : v.dump()) + "\n";
  });
  for (const auto& l : r.licenses) mf += "LICENSE \"\"\"" + l + "\"\"\"\n";
  if (!license.empty()) j["license"] = license;
  j["modelfile"] = mf;
  if (!params.empty()) j["parameters"] = params;
  j["template"] = r.template_text.value_or("{{ .Prompt }}");
  if (system && !system->empty()) j["system"] = *system;
  j["details"] = model_details(rm, r.gguf_path);
  if (!r.messages.empty()) j["messages"] = r.messages;
  j["capabilities"] = json::array({"completion"});
  if (!r.projectors.empty()) {
    const auto proj = store::summarize_projector(r.projectors.front());
    if (proj && proj->vision) j["capabilities"].push_back("vision");
    if (proj && proj->audio) j["capabilities"].push_back("audio");
  }
  j["capabilities"].push_back("tools");      // g3n's tool-call format (docs/server.md "Tools")
  j["capabilities"].push_back("embedding");  // /api/embed, /v1/embeddings: mean final hidden vector
  std::error_code ec;
  const auto mtime = rm ? fs::last_write_time(rm->manifest_path, ec) : fs::last_write_time(r.gguf_path, ec);
  if (!ec) j["modified_at"] = rfc3339(to_system_time(mtime));
  try {
    json tensors;
    j["model_info"] = gguf_info(r.gguf_path, q.verbose, &tensors);
    if (q.verbose) j["tensors"] = tensors;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "warning: %s: cannot read GGUF metadata: %s\n", q.model.c_str(), e.what());
  }
  if (!r.projectors.empty()) {
    try {  // Ollama's projector_info: the first projector's keys, the same way
      j["projector_info"] = gguf_info(r.projectors.front(), q.verbose, nullptr);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warning: %s: cannot read the projector's metadata: %s\n", q.model.c_str(), e.what());
    }
  }
  set_json(res, 200, j);
}

void ollama_pull(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const PullRequest q = parse_pull(parse_json_body(req.body));
  ServerState* st = &s;
  if (!q.stream) {
    try {
      store::ModelStore ms(s.cfg.store);
      registry::RegistryOptions ro;
      ro.insecure = q.insecure;
      ro.cancelled = [st] { return st->stopping.load(); };
      registry::RegistryClient(ms, ro).pull(q.name, {});
      set_json(res, 200, json{{"status", "success"}});
    } catch (const std::exception& e) {
      set_error(res, ErrorStyle::Ollama, 500, e.what());
    }
    return;
  }
  res.content_type = "application/x-ndjson";
  res.stream = [st, q](ChunkSink& sink) {
    bool gone = false;
    auto write = [&](const json& j) {
      if (!gone && !sink.write(dump(j) + "\n")) gone = true;
    };
    try {
      store::ModelStore ms(st->cfg.store);
      registry::RegistryOptions ro;
      ro.insecure = q.insecure;
      ro.cancelled = [&] { return gone || st->stopping.load(); };
      registry::RegistryClient(ms, ro).pull(q.name, [&](const registry::PullProgress& p) { write(progress_json(p)); });
    } catch (const std::exception& e) {
      write(json{{"error", e.what()}});  // in-band, as Ollama does once the stream has started
    }
    return !gone;
  };
}

void ollama_delete(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const DeleteRequest q = parse_delete(parse_json_body(req.body));
  store::ModelStore st(s.cfg.store);
  const auto found = st.find_manifest(q.name);
  if (!found || found->from_ollama) throw HttpError(404, "model '" + q.model + "' not found");
  s.models.unload(q.model);
  st.remove(q.name);
  res.status = 200;
}

void ollama_copy(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  const CopyRequest q = parse_copy(parse_json_body(req.body));
  store::ModelStore st(s.cfg.store);
  if (!st.find_manifest(q.source)) throw HttpError(404, "model \"" + q.source_text + "\" not found");
  st.copy(q.source, q.destination);
  res.status = 200;
}

}  // namespace g3n::server
