#include "server/create_request.h"

#include <filesystem>

#include "model/matformer.h"
#include "server/options.h"
#include "store/blob_upload.h"
#include "store/file_util.h"

namespace g3n::server {
namespace {

using json = nlohmann::json;

// A string field; absent or null: nullopt; another type: 400.
std::optional<std::string> string_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw HttpError(400, std::string("invalid type for \"") + key + "\": expected a string");
  return it->get<std::string>();
}

// An object field ({name: value}); absent or null: empty.
json object_field(const json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return json::object();
  if (!it->is_object()) throw HttpError(400, std::string("invalid type for \"") + key + "\": expected an object");
  return *it;
}

// Ollama's rule for the names in `files`: relative, and inside the folder they describe.
bool is_local_file_name(const std::string& name) {
  if (name.empty()) return false;
  const std::filesystem::path p(name);
  if (p.is_absolute() || p.has_root_name() || p.has_root_directory()) return false;
  int depth = 0;
  for (const auto& part : p) {
    if (part == "..") --depth;
    else if (part != "." && !part.empty()) ++depth;
    if (depth < 0) return false;
  }
  return true;
}

// One JSON parameter value as the text a Modelfile PARAMETER line would hold, typed by the table.
json parameter(const std::string& key, const json& v) {
  std::string text;
  if (v.is_string()) text = v.get<std::string>();
  else if (v.is_boolean() || v.is_number()) text = v.dump();
  else throw HttpError(400, "invalid value for parameter \"" + key + "\": expected a string, number or boolean");
  try {
    return store::parameter_value(key, text);
  } catch (const store::StoreError& e) {
    throw HttpError(400, e.what());
  }
}

// A model made over HTTP names its MatFormer slices by preset only: `matformer` (the size it loads) and `draft`
// (spec self's slice) could otherwise name a file on the server (FILE.json, FILE.csv:ROW) that every later load
// would open and quote in its errors. Slice files stay available to Modelfiles given to `g3n create`.
void refuse_slice_file(const std::string& key, const json& v) {
  if ((key != "matformer" && key != "draft") || !v.is_string()) return;
  const std::string s = v.get<std::string>();
  if (is_matformer_file(s) || (key == "matformer" && !s.empty() && !find_matformer_preset(s)))
    throw HttpError(400, "invalid value for parameter \"" + key + "\": over HTTP a MatFormer slice is a preset (e2b, e2.54b, ...; "
                         "docs/matformer.md), not a file");
}

}  // namespace

CreateRequest parse_create(const json& body) {
  CreateRequest r;
  r.model = string_field(body, "model").value_or("");
  if (r.model.empty()) r.model = string_field(body, "name").value_or("");  // legacy field
  if (r.model.empty()) throw HttpError(400, "model is required");
  if (!store::try_parse_model_name(r.model, &r.name)) throw HttpError(400, "invalid model name");
  if (auto it = body.find("stream"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) throw HttpError(400, "invalid type for \"stream\": expected a boolean");
    r.stream = it->get<bool>();
  }
  r.from = string_field(body, "from");
  if (r.from && r.from->empty()) r.from.reset();
  const json files = object_field(body, "files");
  for (auto it = files.begin(); it != files.end(); ++it) {
    if (!is_local_file_name(it.key())) throw HttpError(400, "file path must be relative");
    if (!it->is_string()) throw HttpError(400, "invalid type for \"files\": expected file names mapped to digests");
    try {
      r.files.emplace_back(it.key(), store::normalize_digest(it->get<std::string>()));
    } catch (const store::StoreError& e) {
      throw HttpError(400, e.what());
    }
  }
  // LoRA adapters: the model runs none, so a model made with one would not be what was asked for.
  if (!object_field(body, "adapters").empty()) throw HttpError(400, "adapters are not supported");
  if (!r.from && r.files.empty()) throw HttpError(400, "neither 'from' or 'files' was specified");
  r.quantize = string_field(body, "quantize");
  if (!r.quantize) r.quantize = string_field(body, "quantization");  // legacy field
  if (r.quantize && r.quantize->empty()) r.quantize.reset();
  r.fields.template_text = string_field(body, "template");
  r.fields.system = string_field(body, "system");
  if (auto it = body.find("license"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      r.fields.licenses.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      for (const auto& l : *it) {
        if (!l.is_string()) throw HttpError(400, "invalid type for \"license\": expected a string or strings");
        r.fields.licenses.push_back(l.get<std::string>());
      }
    } else {
      throw HttpError(400, "invalid type for \"license\": expected a string or strings");
    }
  }
  const json params = object_field(body, "parameters");
  for (auto it = params.begin(); it != params.end(); ++it) {
    if (it.key() == "stop") {  // always a list, as a Modelfile's PARAMETER stop lines make it
      json stops = json::array();
      for (const auto& v : it->is_array() ? *it : json::array({*it})) stops.push_back(parameter("stop", v));
      r.fields.params["stop"] = stops;
    } else {
      if (it->is_array()) throw HttpError(400, "invalid value for parameter \"" + it.key() + "\": expected one value");
      r.fields.params[it.key()] = parameter(it.key(), *it);
      refuse_slice_file(it.key(), r.fields.params[it.key()]);
    }
  }
  if (auto it = body.find("messages"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) throw HttpError(400, "invalid type for \"messages\": expected an array");
    for (const auto& m : *it) {
      if (!m.is_object()) throw HttpError(400, "invalid message: expected an object");
      const std::string role = string_field(m, "role").value_or("");
      if (role != "system" && role != "user" && role != "assistant")
        throw HttpError(400, "invalid message role \"" + role + "\": expected system, user or assistant");
      r.fields.messages.push_back({{"role", role}, {"content", string_field(m, "content").value_or("")}});
    }
  }
  return r;
}

}  // namespace g3n::server
