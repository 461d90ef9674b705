#include "store/modelfile.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <sstream>

#include "gguf/gguf.h"
#include "runtime/parameters.h"
#include "audio/audio_mmproj.h"
#include "media/projector.h"
#include "model/gemma3n_config.h"
#include "model/matformer.h"
#include "vision/mmproj.h"

namespace g3n::store {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::string upper(std::string s) {
  for (auto& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

// Splits off the first whitespace-delimited word.
std::pair<std::string, std::string> split_word(const std::string& s) {
  std::string t = trim(s);
  size_t p = 0;
  while (p < t.size() && !std::isspace(static_cast<unsigned char>(t[p]))) ++p;
  return {t.substr(0, p), trim(t.substr(p))};
}

// llama.cpp's file-type numbering (general.file_type), as Ollama prints it.
std::string file_type_name(int64_t ft) {
  static const std::map<int64_t, const char*> kNames = {
      {0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},    {8, "Q5_0"},
      {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"},
      {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},   {32, "BF16"}};
  auto it = kNames.find(ft);
  return it == kNames.end() ? "unknown" : it->second;
}

}  // namespace

json parameter_value(const std::string& name, const std::string& value) {
  const ParamSpec* spec = find_parameter(name);
  if (!spec) throw StoreError("unknown parameter '" + name + "'");
  try {
    const ParamValue v = parse_parameter(*spec, std::string_view(value));
    return spec->type == ParamType::StringList ? json(value) : parameter_json(v);
  } catch (const ParameterError& e) {
    throw StoreError(std::string("PARAMETER ") + e.what());
  }
}

Modelfile parse_modelfile(const std::string& text) {
  Modelfile mf;
  std::vector<std::string> lines;
  {
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) {
      if (!l.empty() && l.back() == '\r') l.pop_back();
      lines.push_back(l);
    }
  }
  // Reads a value starting at `rest` on line i; """ blocks may span lines (i is advanced).
  auto read_value = [&](std::string rest, size_t& i) -> std::string {
    rest = trim(rest);
    if (rest.rfind("\"\"\"", 0) == 0) {
      std::string body = rest.substr(3);
      for (;;) {
        if (auto end = body.find("\"\"\""); end != std::string::npos) {
          if (!trim(body.substr(end + 3)).empty())
            throw StoreError("Modelfile line " + std::to_string(i + 1) + ": text after closing \"\"\"");
          return body.substr(0, end);
        }
        if (++i >= lines.size()) throw StoreError("Modelfile: unterminated \"\"\" block");
        body += "\n" + lines[i];
      }
    }
    if (rest.size() >= 2 && rest.front() == '"') {
      std::string out;
      size_t k = 1;
      for (; k < rest.size() && rest[k] != '"'; ++k) {
        if (rest[k] == '\\' && k + 1 < rest.size()) ++k;
        out += rest[k];
      }
      if (k >= rest.size()) throw StoreError("Modelfile line " + std::to_string(i + 1) + ": unterminated quote");
      return out;
    }
    return rest;
  };
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string line = trim(lines[i]);
    if (line.empty() || line[0] == '#') continue;
    auto [word, rest] = split_word(line);
    const std::string cmd = upper(word);
    const std::string where = "Modelfile line " + std::to_string(i + 1) + ": ";
    if (cmd == "FROM") {
      std::string v = read_value(rest, i);
      if (v.empty()) throw StoreError(where + "FROM needs a model name or a file");
      if (mf.from.empty()) mf.from = std::move(v);
      else mf.extra_from.push_back(std::move(v));
    } else if (cmd == "TEMPLATE") {
      mf.template_text = read_value(rest, i);
    } else if (cmd == "SYSTEM") {
      mf.system = read_value(rest, i);
    } else if (cmd == "LICENSE") {
      mf.licenses.push_back(read_value(rest, i));
    } else if (cmd == "PARAMETER") {
      auto [pname, pvalue] = split_word(rest);
      for (auto& c : pname) c = char(std::tolower(static_cast<unsigned char>(c)));
      if (pname.empty()) throw StoreError(where + "PARAMETER needs a name and a value");
      const std::string v = read_value(pvalue, i);
      try {
        json jv = parameter_value(pname, v);
        if (pname == "stop") {
          if (!mf.params.contains("stop")) mf.params["stop"] = json::array();
          mf.params["stop"].push_back(jv);
        } else {
          mf.params[pname] = jv;
        }
      } catch (const StoreError& e) {
        throw StoreError(where + e.what());
      }
    } else if (cmd == "MESSAGE") {
      auto [role, content] = split_word(rest);
      if (role != "system" && role != "user" && role != "assistant")
        throw StoreError(where + "MESSAGE role must be system, user or assistant");
      mf.messages.push_back({{"role", role}, {"content", read_value(content, i)}});
    } else if (cmd == "ADAPTER") {
      throw StoreError(where + "ADAPTER is not supported yet");
    } else {
      throw StoreError(where + "unknown command '" + word + "'");
    }
  }
  if (mf.from.empty()) throw StoreError("Modelfile: no FROM line");
  return mf;
}

std::string human_parameter_count(int64_t n) {
  struct Unit {
    double div;
    const char* suffix;
  };
  static const Unit kUnits[] = {{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "K"}};
  for (const auto& u : kUnits) {
    if (double(n) >= u.div) {
      char buf[32];
      const double v = double(n) / u.div;
      if (v >= 100 || std::fabs(v - std::round(v)) < 0.05) std::snprintf(buf, sizeof buf, "%.0f%s", v, u.suffix);
      else std::snprintf(buf, sizeof buf, "%.1f%s", v, u.suffix);
      return buf;
    }
  }
  return std::to_string(n);
}

std::optional<GgufSummary> summarize_gguf(const fs::path& path) {
  try {
    GgufFile f = GgufFile::open(path.string());
    GgufSummary s;
    s.architecture = f.get_string("general.architecture").value_or("");
    for (const auto& t : f.tensors()) s.parameter_count += t.n_elements();
    if (auto ft = f.get_int("general.file_type")) s.quantization = file_type_name(*ft);
    if (!s.architecture.empty()) {
      s.context_length = f.get_int(s.architecture + ".context_length").value_or(0);
      s.embedding_length = f.get_int(s.architecture + ".embedding_length").value_or(0);
    }
    return s;
  } catch (const std::exception&) {
    return std::nullopt;  // not a GGUF (or unreadable): callers fall back to the config blob
  }
}

fs::path modelfile_path(const std::string& from, const fs::path& base_dir) {
  if (from.rfind("~/", 0) == 0) {
    if (const char* home = std::getenv("HOME")) return fs::path(home) / from.substr(2);
  }
  const fs::path p = from;
  return p.is_relative() ? base_dir / p : p;
}

namespace {

// The file a FROM names, or nullopt for a model name. Relative paths are from base_dir.
std::optional<fs::path> from_file(const std::string& from, const fs::path& base_dir) {
  const fs::path p = modelfile_path(from, base_dir);
  std::error_code ec;
  if (!looks_like_gguf_path(from) && !fs::is_regular_file(p, ec)) return std::nullopt;
  if (!fs::is_regular_file(p, ec)) throw StoreError("FROM: file not found: " + p.string());
  return p;
}

// general.architecture of a GGUF; nullopt when the file is not a readable GGUF.
std::optional<std::string> gguf_architecture(const fs::path& p) {
  try {
    return GgufFile::open(p.string()).get_string("general.architecture").value_or("");
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Refuses a projector whose towers (vision, audio or both) do not load, or whose text width is not the
// model's n_embd.
void check_projector(const fs::path& projector, const fs::path& model) {
  ProjectorParts parts;
  try {
    parts = probe_projector(projector.string());
  } catch (const std::exception& e) {
    throw StoreError("FROM " + projector.string() + ": not a valid gemma3nv vision projector or gemma3na audio projector: " + e.what());
  }
  const auto sum = summarize_gguf(model);
  if (!sum || sum->embedding_length <= 0)
    throw StoreError("cannot check the projector against the model: the model's embedding length (n_embd) is unknown");
  const auto check_width = [&](int64_t text_width, const char* tensor) {
    if (text_width != sum->embedding_length)
      throw StoreError("FROM " + projector.string() + ": the projector's text width (" + tensor + " ne[1]) is " +
                       std::to_string(text_width) + " but the model's n_embd is " + std::to_string(sum->embedding_length) +
                       ": this projector belongs to another model");
  };
  if (parts.vision) {
    int64_t w = 0;
    try {
      w = load_mmproj(projector.string()).config.text_width;
    } catch (const std::exception& e) {
      throw StoreError("FROM " + projector.string() + ": not a valid gemma3nv vision projector: " + e.what());
    }
    check_width(w, "mm.input_projection");
  }
  if (parts.audio) {
    int64_t w = 0;
    try {
      w = load_audio_mmproj(projector.string()).config.text_width;
    } catch (const std::exception& e) {
      throw StoreError("FROM " + projector.string() + ": not a valid gemma3na audio projector: " + e.what());
    }
    check_width(w, "mm.a.input_projection");
  }
}

}  // namespace

std::optional<ProjectorSummary> summarize_projector(const fs::path& path) {
  try {
    GgufFile f = GgufFile::open(path.string());
    ProjectorSummary s;
    s.architecture = f.get_string("general.architecture").value_or("");
    if (s.architecture != "clip") return std::nullopt;
    const ProjectorParts parts = probe_projector(path.string());
    s.vision = parts.vision;
    s.audio = parts.audio;
    if (s.vision) s.projector_type = f.get_string("clip.vision.projector_type").value_or(f.get_string("clip.projector_type").value_or(""));
    s.audio_projector_type = f.get_string("clip.audio.projector_type").value_or("");
    s.audio_embedding_length = f.get_int("clip.audio.embedding_length").value_or(0);
    s.image_size = f.get_int("clip.vision.image_size").value_or(0);
    s.embedding_length = f.get_int("clip.vision.embedding_length").value_or(0);
    s.projection_dim = f.get_int("clip.vision.projection_dim").value_or(f.get_int("clip.audio.projection_dim").value_or(0));
    for (const auto& t : f.tensors()) s.parameter_count += t.n_elements();
    return s;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void ModelSources::add_file(SourceFile f) {
  const auto arch = gguf_architecture(f.path);
  if (arch && *arch == "clip") {
    if (projector) throw StoreError("FROM " + f.label + ": a second projector; a model takes one");
    projector = std::move(f);
    return;
  }
  if (model || parent) {
    const std::string what = arch ? "architecture \"" + *arch + "\"" : "not a GGUF";
    throw StoreError("FROM " + f.label + ": a second model (" + what +
                     "); only a projector (a vision projector and/or audio encoder: a GGUF with general.architecture \"clip\") may join it");
  }
  model = std::move(f);
}

void ModelSources::add_parent(const std::string& name) {
  if (model || parent)
    throw StoreError("FROM " + name + ": a second model (a model name); only a projector (a vision projector and/or audio encoder: a "
                     "GGUF with general.architecture \"clip\") may join it");
  parent = name;
}

Manifest create_model(ModelStore& store, const ModelName& name, const Modelfile& mf, const fs::path& base_dir,
                      const std::function<void(const std::string&)>& log) {
  if (log) log("gathering model components");
  // Sort the FROMs into the text model (a file or a parent model) and the projector, as Ollama does by
  // architecture.
  ModelSources src;
  std::vector<std::string> froms = {mf.from};
  froms.insert(froms.end(), mf.extra_from.begin(), mf.extra_from.end());
  for (const auto& f : froms) {
    if (const auto file = from_file(f, base_dir)) src.add_file({*file, "", f});
    else src.add_parent(f);
  }
  // A slice file (PARAMETER matformer, or draft for spec self) is relative to the Modelfile, as FROM is, and is
  // stored absolute: the model then means the same slice from any working directory.
  Modelfile anchored = mf;
  for (const char* key : {"matformer", "draft"}) {
    auto it = anchored.params.find(key);
    if (it == anchored.params.end() || !it->is_string()) continue;
    const std::string v = it->get<std::string>();
    if (const size_t n = matformer_file_path_length(v); n != std::string::npos)
      *it = fs::absolute(modelfile_path(v.substr(0, n), base_dir)).lexically_normal().string() + v.substr(n);
  }
  return create_model_from(store, name, src, anchored, log);
}

namespace {
// A slice the model is to run (PARAMETER matformer) or draft with (draft, when it names a slice file) must be
// one of its file: checked here rather than failing at every later load.
void check_slice_parameters(const json& params, const fs::path& model_file) {
  std::optional<Gemma3nConfig> config;
  for (const char* key : {"matformer", "draft"}) {
    const auto it = params.find(key);
    if (it == params.end() || !it->is_string() || it->get<std::string>().empty()) continue;
    const std::string v = it->get<std::string>();
    if (std::string(key) == "draft" && !is_matformer_file(v)) continue;  // a draft model's name, or a preset for spec self
    try {
      if (!config) config = read_gemma3n_config(GgufFile::open(model_file.string()));
      resolve_matformer(v, *config);
    } catch (const std::exception& e) {
      throw StoreError("PARAMETER " + std::string(key) + " " + v + ": " + e.what());
    }
  }
}
}  // namespace

void check_sources(const ModelStore& store, const ModelSources& src) {
  if (!src.model && !src.parent) throw StoreError("FROM: only a projector was given; the text model is missing");
  std::optional<ResolvedModel> base;
  if (src.parent) base = store.resolve(parse_model_name(*src.parent));
  if (src.projector) check_projector(src.projector->path, src.model ? src.model->path : base->model_path);
  // The whole header and tensor table, as a load reads them: a file only the magic calls GGUF is refused now,
  // not stored to fail every load.
  if (src.model) {
    try {
      (void)GgufFile::open(src.model->path.string());
    } catch (const std::exception& e) {
      throw StoreError(src.model->label + ": not a valid GGUF file: " + e.what());
    }
  }
}

Manifest create_model_from(ModelStore& store, const ModelName& name, const ModelSources& src, const Modelfile& mf,
                           const std::function<void(const std::string&)>& log) {
  auto say = [&](const std::string& s) {
    if (log) log(s);
  };
  // Everything is checked before the first blob is written.
  check_sources(store, src);
  std::optional<ResolvedModel> base;
  if (src.parent) base = store.resolve(parse_model_name(*src.parent));
  fs::path model_file = src.model ? src.model->path : base->model_path;
  check_slice_parameters(mf.params, model_file);
  // A source that is already a blob of the store is used as it is; a file is copied in (hashed on the way).
  auto layer_of = [&](const SourceFile& f, std::string_view media_type) {
    Descriptor d;
    d.media_type = std::string(media_type);
    if (!f.digest.empty()) {
      d.digest = f.digest;
      say((f.created ? "creating new layer " : "using existing layer ") + d.digest);
    } else {
      say("copying file " + f.label);
      d.digest = store.put_blob_file(f.path);
      say("creating new layer " + d.digest);
    }
    d.size = int64_t(fs::file_size(store.blob_path(d.digest)));
    return d;
  };
  Manifest m;
  json params = json::object();
  std::optional<Descriptor> model_layer;
  if (src.model) {
    model_layer = layer_of(*src.model, media::kModel);
    model_file = store.blob_path(model_layer->digest);
  }
  if (base) {
    // FROM another model: inherit its layers; the Modelfile then overrides them. A model of its own (a
    // quantized copy) takes the place of the parent's.
    for (auto l : base->manifest.layers) {
      if (l.media_type == media::kModel && model_layer) {
        if (!m.find_layer(media::kModel)) m.layers.push_back(*model_layer);
        continue;
      }
      if (l.media_type == media::kModel && l.from.empty()) l.from = base->name.display();
      if (l.media_type == media::kParams) continue;  // merged below
      if (l.media_type == media::kProjector && src.projector) continue;  // replaced below
      store.adopt_blob(l.digest);
      say("using existing layer " + l.digest);
      m.layers.push_back(l);
    }
    params = base->params;
  }
  if (model_layer && !m.find_layer(media::kModel)) m.layers.insert(m.layers.begin(), *model_layer);
  if (src.projector) {
    const Descriptor d = layer_of(*src.projector, media::kProjector);
    // Right after the model layer, where Ollama's create puts a second FROM.
    auto at = std::find_if(m.layers.begin(), m.layers.end(), [](const Descriptor& l) { return l.media_type == media::kModel; });
    m.layers.insert(at == m.layers.end() ? at : at + 1, d);
  }
  auto set_text_layer = [&](std::string_view mt, const std::string& text, bool replace) {
    if (replace) {
      std::erase_if(m.layers, [&](const Descriptor& l) {
        return l.media_type == mt || (mt == media::kTemplate && l.media_type == media::kPrompt);
      });
    }
    Descriptor d;
    d.media_type = std::string(mt);
    d.digest = store.put_blob(text);
    d.size = int64_t(text.size());
    say("creating new layer " + d.digest);
    m.layers.push_back(d);
  };
  if (mf.template_text) set_text_layer(media::kTemplate, *mf.template_text, true);
  if (mf.system) set_text_layer(media::kSystem, *mf.system, true);
  if (!mf.messages.empty()) set_text_layer(media::kMessages, mf.messages.dump(), true);
  for (auto it = mf.params.begin(); it != mf.params.end(); ++it) params[it.key()] = it.value();
  if (!params.empty()) set_text_layer(media::kParams, params.dump(), true);
  for (const auto& lic : mf.licenses) set_text_layer(media::kLicense, lic, false);

  // The config blob carries what `list`/`show` print without opening the weights.
  nlohmann::ordered_json cfg;
  auto sum = summarize_gguf(model_file);
  cfg["model_format"] = "gguf";
  cfg["model_family"] = sum ? sum->architecture : "";
  cfg["model_families"] = sum && !sum->architecture.empty() ? json::array({sum->architecture}) : json(nullptr);
  // Ollama lists every GGUF layer's architecture: a projector adds "clip".
  if (m.find_layer(media::kProjector)) {
    if (cfg["model_families"].is_null()) cfg["model_families"] = json::array();
    cfg["model_families"].push_back("clip");
  }
  cfg["model_type"] = sum && sum->parameter_count ? human_parameter_count(sum->parameter_count) : "";
  cfg["file_type"] = sum ? sum->quantization : "";
#if defined(__x86_64__)
  cfg["architecture"] = "amd64";
#elif defined(__aarch64__)
  cfg["architecture"] = "arm64";
#else
  cfg["architecture"] = "unknown";
#endif
  cfg["os"] = "linux";
  cfg["rootfs"] = {{"type", "layers"}, {"diff_ids", json::array()}};
  for (const auto& l : m.layers) cfg["rootfs"]["diff_ids"].push_back(l.digest);
  const std::string cfg_text = cfg.dump();
  m.config = {std::string(media::kConfig), store.put_blob(cfg_text), int64_t(cfg_text.size()), ""};
  say("writing manifest");
  store.write_manifest(name, m);
  say("success");
  return m;
}

}  // namespace g3n::store
