// Ollama's Modelfile (FROM, TEMPLATE, SYSTEM, PARAMETER, LICENSE, MESSAGE) and building a model from it
// into the store: blobs plus a manifest, the manifest written last. A GGUF whose general.architecture is
// "clip" (in any FROM position) is the vision projector, stored as Ollama does: a projector layer.
#pragma once
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/model_store.h"

namespace g3n::store {

struct Modelfile {
  std::string from;                       // the first FROM: a .gguf path or a model name
  std::vector<std::string> extra_from;    // later FROM lines (a projector .gguf)
  std::optional<std::string> template_text;
  std::optional<std::string> system;
  std::vector<std::string> licenses;
  nlohmann::json params = nlohmann::json::object();  // typed option values; "stop" is an array
  nlohmann::json messages = nlohmann::json::array();
};

// Parses Modelfile text. Values may be bare (rest of line), "quoted" or """multi-line""". Throws
// StoreError naming the line for an unknown command or parameter, or a missing FROM.
Modelfile parse_modelfile(const std::string& text);

// The path a FROM line names, as the Modelfile means it: "~/..." from $HOME, a relative path from
// base_dir (the Modelfile's directory), an absolute one as it is. Used for GGUF files and for Hugging
// Face checkpoint directories alike.
std::filesystem::path modelfile_path(const std::string& from, const std::filesystem::path& base_dir);

// Converts a PARAMETER value to the JSON type Ollama stores for that option (int, float, bool; one stop
// string), checked against the parameter table (runtime/parameters.h). Throws StoreError for unknown
// options and values of the wrong type or out of range.
nlohmann::json parameter_value(const std::string& name, const std::string& value);

// Summary of a GGUF for `show`/`list` and the config blob. Fields are empty/0 when unknown.
struct GgufSummary {
  std::string architecture;
  int64_t parameter_count = 0;
  std::string quantization;  // "Q4_K_M", "F16", ...
  int64_t context_length = 0;
  int64_t embedding_length = 0;
};
// Reads the metadata with g3n::GgufFile; nullopt when the file is not a readable GGUF.
std::optional<GgufSummary> summarize_gguf(const std::filesystem::path& path);
// A vision projector's (mmproj) clip.* metadata, for `show`. nullopt when the file is not a readable
// GGUF with general.architecture "clip".
struct ProjectorSummary {
  std::string architecture;    // "clip"
  bool vision = false, audio = false;  // the towers it holds (media/projector.h's rules)
  std::string projector_type;  // clip.vision.projector_type (or clip.projector_type)
  std::string audio_projector_type;  // clip.audio.projector_type
  int64_t audio_embedding_length = 0;  // audio tower width
  int64_t image_size = 0;
  int64_t embedding_length = 0;  // vision width
  int64_t projection_dim = 0;    // text width
  int64_t parameter_count = 0;
};
std::optional<ProjectorSummary> summarize_projector(const std::filesystem::path& path);
// "6.9B", "450M", "12K": Ollama's parameter-size style.
std::string human_parameter_count(int64_t n);

// Builds `name` from a Modelfile. FROM paths are relative to `base_dir`. Reports steps through `log`.
// Exactly one FROM is the text model (a file or a model name, whose layers are inherited); at most one
// is a projector, which must load as a gemma3nv vision tower whose text width equals the model's n_embd.
// Everything is checked before any blob is written; the manifest comes last. Returns the manifest.
Manifest create_model(ModelStore& store, const ModelName& name, const Modelfile& mf,
                      const std::filesystem::path& base_dir, const std::function<void(const std::string&)>& log);

// A file that becomes a layer: copied into the store, or, when `digest` is set, already that blob of
// g3n's store (an HTTP upload) and used as it is.
struct SourceFile {
  std::filesystem::path path;
  std::string digest;
  std::string label;  // how messages name it: the FROM text, or the uploaded file's name
  bool created = false;  // a blob this create made (a quantized copy): announced as a new layer
};

// What a model is made of, sorted as Ollama sorts it: one text model (a GGUF, or a parent model whose
// layers are inherited) and at most one projector (a GGUF whose general.architecture is "clip"). Both
// `model` and `parent` (set directly, not by add_*): the parent's layers with its model layer replaced.
struct ModelSources {
  std::optional<SourceFile> model, projector;
  std::optional<std::string> parent;  // a model name in the store
  // Each throws StoreError for a second model or a second projector.
  void add_file(SourceFile f);
  void add_parent(const std::string& name);
};

// The checks create_model_from makes before it writes anything: a text model is there, the parent model
// resolves, the projector loads and fits the model's n_embd. Throws StoreError.
void check_sources(const ModelStore& store, const ModelSources& sources);

// create_model's work once the sources are sorted: `fields` gives the template, system, parameters,
// messages and licenses (its FROMs are not read). The same checks, all before the first blob is written;
// the manifest comes last.
Manifest create_model_from(ModelStore& store, const ModelName& name, const ModelSources& sources, const Modelfile& fields,
                           const std::function<void(const std::string&)>& log);

}  // namespace g3n::store
