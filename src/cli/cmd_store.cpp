// `g3n pull | list | show | rm | cp | create`: the model store from the command line. Output follows
// Ollama's CLI so users find what they know.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <initializer_list>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/format.h"
#include "gguf/gguf.h"
#include "model/gemma3n_config.h"
#include "model/matformer.h"
#include "registry/registry_client.h"
#include "store/model_store.h"
#include "store/modelfile.h"
#include "tools/hf_convert.h"
#include "tools/matformer_export.h"

namespace g3n::cli {
namespace {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string relative_time(fs::file_time_type t) {
  const auto now = fs::file_time_type::clock::now();
  const double s = std::chrono::duration<double>(now - t).count();
  auto plural = [](long n, const char* unit) {
    return std::to_string(n) + " " + unit + (n == 1 ? "" : "s") + " ago";
  };
  if (s < 1) return "Less than a second ago";
  if (s < 60) return plural(long(s), "second");
  if (s < 120) return "About a minute ago";
  if (s < 3600) return plural(long(s / 60), "minute");
  if (s < 7200) return "About an hour ago";
  if (s < 86400) return plural(long(s / 3600), "hour");
  if (s < 14 * 86400) return plural(long(s / 86400), "day");
  if (s < 60 * 86400) return plural(long(s / (7 * 86400)), "week");
  if (s < 730 * 86400) return plural(long(s / (30 * 86400)), "month");
  return plural(long(s / (365 * 86400)), "year");
}

store::ModelName parse_name_or_throw(const std::string& s) { return store::parse_model_name(s); }

void print_kv(const char* k, const std::string& v) { std::printf("    %-20s%s\n", k, v.c_str()); }

std::string param_value_text(const nlohmann::json& v) {
  if (v.is_string()) return "\"" + v.get<std::string>() + "\"";
  return v.dump();
}

// --- commands ---

struct PullOpts {
  std::string name;
  bool insecure = false;
  int parallel = 4;
  int stall = 30;
};

void cmd_pull(const PullOpts& o) {
  store::ModelStore st(store::StoreConfig::from_environment());
  registry::RegistryOptions ro;
  ro.insecure = o.insecure;
  ro.max_parallel = std::max(1, o.parallel);
  ro.stall_timeout = std::chrono::seconds(std::max(1, o.stall));
  registry::RegistryClient client(st, ro);
  client.pull(parse_name_or_throw(o.name), pull_progress_printer());
}

void cmd_list(const std::string& filter) {
  store::ModelStore st(store::StoreConfig::from_environment());
  auto entries = st.list();
  std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "SIZE", "MODIFIED"}};
  for (const auto& e : entries) {
    const std::string n = e.name.display();
    if (!filter.empty() && !(n.size() >= filter.size() && store::iequals(n.substr(0, filter.size()), filter)))
      continue;
    std::string mod = relative_time(e.modified);
    if (e.from_ollama) mod += "    (ollama)";
    rows.push_back({n, e.id, human_bytes(double(e.size)), mod});
  }
  std::vector<size_t> w(4, 0);
  for (const auto& r : rows)
    for (size_t i = 0; i < 4; ++i) w[i] = std::max(w[i], r[i].size());
  for (const auto& r : rows)
    std::printf("%-*s    %-*s    %-*s    %s\n", int(w[0]), r[0].c_str(), int(w[1]), r[1].c_str(), int(w[2]),
                r[2].c_str(), r[3].c_str());
}

// The MatFormer sizes the file offers (docs/matformer.md): every preset that applies to it, with the
// parameters that run per token. Files of another topology (already sliced, E2B, tiny) list none.
// Parameters (elements) of the tensors of a GGUF whose names start with one of the prefixes and none of
// the exclusions; 0 when the file is unreadable.
int64_t count_params(const fs::path& gguf, std::initializer_list<const char*> prefixes, std::initializer_list<const char*> except = {}) {
  try {
    const auto f = GgufFile::open(gguf.string());
    int64_t n = 0;
    for (const auto& t : f.tensors()) {
      auto starts = [&](const char* p) { return t.name.rfind(p, 0) == 0; };
      if (prefixes.size() && std::none_of(prefixes.begin(), prefixes.end(), starts)) continue;
      if (std::any_of(except.begin(), except.end(), starts)) continue;
      n += t.n_elements();
    }
    return n;
  } catch (const std::exception&) {
    return 0;
  }
}

std::string with_commas(int64_t n) {
  const std::string digits = std::to_string(n);
  const size_t lead = digits[0] == '-' ? 1 : 0;
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > lead && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

// The model's parts with their exact parameter counts: the text decoder, then each tower and embedder
// of the projector.
void print_parts(const fs::path& model, const std::vector<fs::path>& projectors) {
  std::printf("\n  Parts\n");
  print_kv("text", with_commas(count_params(model, {})));
  for (const auto& p : projectors) {
    const int64_t v = count_params(p, {"v."}), ve = count_params(p, {"mm."}, {"mm.a."});
    const int64_t a = count_params(p, {"a."}), ae = count_params(p, {"mm.a."});
    if (v) print_kv("vision", with_commas(v) + " + embedder " + with_commas(ve));
    if (a) print_kv("audio", with_commas(a) + " + embedder " + with_commas(ae));
  }
}

void print_matformer_sizes(const std::filesystem::path& gguf) {
  std::optional<Gemma3nConfig> full;
  try {
    full = read_gemma3n_config(GgufFile::open(gguf.string()));
  } catch (const std::exception&) {
    return;  // not a readable Gemma 3n file: the summary above says what it is
  }
  std::vector<std::pair<std::string, int64_t>> sizes;
  for (const auto& p : matformer_presets()) {
    try {
      sizes.emplace_back(p.name, effective_parameters(slice_config(*full, preset_slice(p, *full))));
    } catch (const std::invalid_argument&) {
      // Not a size of this file (the presets need E4B's depth; a file whose KV sharing starts elsewhere
      // refuses the ones that skip its producers): the others are still listed.
    }
  }
  if (sizes.empty()) return;
  std::printf("\n  MatFormer sizes (--matformer NAME, PARAMETER matformer NAME)\n");
  for (const auto& [name, n] : sizes) std::printf("    %-20s %.2fB effective parameters%s\n", name.c_str(), n / 1e9, name == "e4b" ? " (the whole model)" : "");
}

struct ShowOpts {
  std::string name;
  bool tmpl = false, params = false, license = false, modelfile = false, system = false;
};

void cmd_show(const ShowOpts& o) {
  store::ModelStore st(store::StoreConfig::from_environment());
  store::ResolvedModel r = st.resolve(parse_name_or_throw(o.name));
  if (o.tmpl) {
    std::printf("%s\n", r.template_text.value_or("{{ .Prompt }}").c_str());
    return;
  }
  if (o.system) {
    std::printf("%s\n", r.system.value_or("").c_str());
    return;
  }
  if (o.license) {
    for (const auto& l : r.licenses) std::printf("%s\n", l.c_str());
    return;
  }
  if (o.params) {
    for (auto it = r.params.begin(); it != r.params.end(); ++it) {
      if (it.value().is_array())
        for (const auto& v : it.value()) std::printf("%-30s %s\n", it.key().c_str(), param_value_text(v).c_str());
      else
        std::printf("%-30s %s\n", it.key().c_str(), param_value_text(it.value()).c_str());
    }
    return;
  }
  if (o.modelfile) {
    std::printf("# Modelfile generated by \"g3n show\"\n# To build a new Modelfile based on this, replace FROM with:\n"
                "# FROM %s\n\nFROM %s\n",
                r.name.display().c_str(), r.model_path.c_str());
    for (const auto& p : r.projectors) std::printf("FROM %s\n", p.c_str());  // recreates the projector layer
    if (r.template_text) std::printf("TEMPLATE \"\"\"%s\"\"\"\n", r.template_text->c_str());
    if (r.system) std::printf("SYSTEM \"\"\"%s\"\"\"\n", r.system->c_str());
    for (auto it = r.params.begin(); it != r.params.end(); ++it) {
      auto one = [&](const nlohmann::json& v) {
        std::printf("PARAMETER %s %s\n", it.key().c_str(), v.is_string() ? v.get<std::string>().c_str() : v.dump().c_str());
      };
      if (it.value().is_array())
        for (const auto& v : it.value()) one(v);
      else
        one(it.value());
    }
    for (const auto& l : r.licenses) std::printf("LICENSE \"\"\"%s\"\"\"\n", l.c_str());
    return;
  }
  // Summary: GGUF metadata when the weights are readable, else the config blob's fields.
  auto sum = store::summarize_gguf(r.model_path);
  auto cfg_str = [&](const char* k) {
    return r.config.contains(k) && r.config[k].is_string() ? r.config[k].get<std::string>() : std::string();
  };
  std::printf("  Model\n");
  print_kv("architecture", sum && !sum->architecture.empty() ? sum->architecture : cfg_str("model_family"));
  print_kv("parameters", sum && sum->parameter_count ? store::human_parameter_count(sum->parameter_count)
                                                     : cfg_str("model_type"));
  if (sum && sum->context_length) print_kv("context length", std::to_string(sum->context_length));
  if (sum && sum->embedding_length) print_kv("embedding length", std::to_string(sum->embedding_length));
  print_kv("quantization", sum && !sum->quantization.empty() ? sum->quantization : cfg_str("file_type"));
  if (r.from_ollama) print_kv("store", "ollama (read-only)");
  print_matformer_sizes(r.model_path);
  print_parts(r.model_path, r.projectors);
  const std::optional<store::ProjectorSummary> proj =
      r.projectors.empty() ? std::nullopt : store::summarize_projector(r.projectors.front());
  std::printf("\n  Capabilities\n    completion\n");
  if (proj && proj->vision) std::printf("    vision\n");
  if (proj && proj->audio) std::printf("    audio\n");
  std::printf("    tools\n    embedding\n");
  if (!r.projectors.empty()) {
    // Ollama's Projector section, from the first projector's clip.* keys.
    std::printf("\n  Projector\n");
    if (const auto& p = proj) {
      print_kv("architecture", p->architecture);
      if (!p->projector_type.empty()) print_kv("projector type", p->projector_type);
      if (!p->audio_projector_type.empty()) print_kv("audio projector", p->audio_projector_type);
      if (p->audio_embedding_length) print_kv("audio width", std::to_string(p->audio_embedding_length));
      print_kv("parameters", store::human_parameter_count(p->parameter_count));
      if (p->image_size) print_kv("image size", std::to_string(p->image_size));
      if (p->embedding_length) print_kv("embedding length", std::to_string(p->embedding_length));
      if (p->projection_dim) print_kv("dimensions", std::to_string(p->projection_dim));
    } else {
      print_kv("file", r.projectors.front().string() + " (unreadable)");
    }
  }
  if (!r.params.empty()) {
    std::printf("\n  Parameters\n");
    for (auto it = r.params.begin(); it != r.params.end(); ++it) {
      if (it.value().is_array())
        for (const auto& v : it.value()) std::printf("    %-20s%s\n", it.key().c_str(), param_value_text(v).c_str());
      else
        std::printf("    %-20s%s\n", it.key().c_str(), param_value_text(it.value()).c_str());
    }
  }
  if (r.system) std::printf("\n  System\n    %s\n", r.system->c_str());
  if (!r.licenses.empty()) {
    // Like Ollama, only the first lines: the full text is one --license away.
    std::printf("\n  License\n");
    std::string first = r.licenses.front();
    int shown = 0;
    for (size_t p = 0; p < first.size() && shown < 2;) {
      size_t q = first.find('\n', p);
      if (q == std::string::npos) q = first.size();
      std::string line = first.substr(p, q - p);
      if (!line.empty()) {
        std::printf("    %s\n", line.c_str());
        ++shown;
      }
      p = q + 1;
    }
    std::printf("    ...\n");
  }
  std::printf("\n");
}

struct CreateOpts {
  std::string name, file, from, mmproj, matformer, from_hf, quantize = "q4_k_m", layout = "ollama";
  bool no_vision = false, no_audio = false;
};

// Converts a Hugging Face checkpoint directory into the staging folder of the store with a progress
// line on stderr; returns the text GGUF to store as the model layer.
HfConvertReport convert_from_hf(const CreateOpts& o, const fs::path& dir, const HfStaging& staging) {
  HfConvertOptions opt;
  opt.vision = !o.no_vision;
  opt.audio = !o.no_audio;
  const auto target = parse_quant_target(o.quantize);
  if (!target) throw std::invalid_argument("--quantize " + o.quantize + ": expected q4_k_m, q5_k_m, q6_k, q8_0, f16, bf16 or f32");
  opt.target = *target;
  if (o.layout != "ollama" && o.layout != "llamacpp") throw std::invalid_argument("--layout " + o.layout + ": expected ollama or llamacpp");
  opt.layout = o.layout == "ollama" ? GgufLayout::Ollama : GgufLayout::LlamaCpp;
  const bool tty = isatty(STDERR_FILENO);
  auto last = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  opt.progress = [&](uint64_t done, uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (now - last < std::chrono::milliseconds(tty ? 200 : 5000) && done < total) return;
    last = now;
    std::fprintf(stderr, "%sconverting %s %3d%% (%s / %s)%s", tty ? "\r" : "", dir.filename().c_str(),
                 total ? int(100.0 * double(done) / double(total)) : 100, human_bytes(int64_t(done)).c_str(),
                 human_bytes(int64_t(total)).c_str(), tty ? "" : "\n");
  };
  std::fprintf(stderr, "converting %s (%s, %s layout)\n", dir.c_str(), o.quantize.c_str(), o.layout.c_str());
  const HfConvertReport r = convert_hf_checkpoint(dir.string(), staging, opt);
  if (tty) std::fprintf(stderr, "\n");
  if (r.stale_removed) std::fprintf(stderr, "removed %d stale file(s) of an interrupted conversion\n", r.stale_removed);
  if (r.reused) {
    std::fprintf(stderr, "reusing the finished conversion %s\n", r.text_gguf.c_str());
  } else {
    std::fprintf(stderr, "converted %s in %.1f s (%.0f MB/s), peak RSS %s\n", human_bytes(int64_t(r.bytes_read)).c_str(),
                 r.seconds, r.seconds > 0 ? double(r.bytes_read) / 1e6 / r.seconds : 0.0, human_bytes(r.peak_rss_bytes).c_str());
  }
  if (!r.mmproj_gguf.empty()) std::fprintf(stderr, "towers: %s\n", r.mmproj_gguf.c_str());
  return r;
}

void cmd_create(const CreateOpts& o) {
  store::Modelfile mf;
  fs::path base = fs::current_path();
  if (int(!o.from.empty()) + int(!o.file.empty()) + int(!o.from_hf.empty()) > 1)
    throw std::invalid_argument("use one of -f, --from and --from-hf");
  if (!o.from.empty()) {
    mf.from = o.from;
  } else if (!o.from_hf.empty()) {
    mf.from = fs::absolute(o.from_hf).string();
  } else {
    const fs::path f = o.file.empty() ? fs::path("Modelfile") : fs::path(o.file);
    mf = store::parse_modelfile(store::read_file(f));
    base = fs::absolute(f).parent_path();
  }
  store::ModelStore st(store::StoreConfig::from_environment());
  // FROM a Hugging Face checkpoint directory (--from-hf, or FROM DIR in a Modelfile): convert it first;
  // the towers become the projector layer.
  std::vector<fs::path> converted;
  // Held until the outputs are stored and removed: one conversion at a time uses the staging directory,
  // and whatever a killed one left there is cleaned up by the next (tools/hf_convert.h).
  std::optional<HfStaging> staging;
  if (const fs::path dir = store::modelfile_path(mf.from, base); is_hf_checkpoint_dir(dir)) {
    staging.emplace(st.config().root / "hf-convert", [] { std::fprintf(stderr, "waiting for another conversion to finish\n"); });
    const HfConvertReport r = convert_from_hf(o, dir, *staging);
    mf.from = r.text_gguf.string();
    converted.push_back(r.text_gguf);
    if (!r.mmproj_gguf.empty()) {
      if (!o.mmproj.empty()) throw std::invalid_argument("--mmproj: the checkpoint's towers are the projector; add --no-vision --no-audio to use another");
      mf.extra_from.push_back(r.mmproj_gguf.string());
      converted.push_back(r.mmproj_gguf);
    }
  } else if (!o.from_hf.empty()) {
    throw std::invalid_argument("--from-hf " + o.from_hf + ": not a Hugging Face checkpoint directory (no config.json)");
  }
  // Relative to the current directory, like --from (the Modelfile's directory is for its own FROMs).
  if (!o.mmproj.empty()) mf.extra_from.push_back(fs::absolute(o.mmproj).string());
  const store::ModelName name = parse_name_or_throw(o.name);
  fs::path sliced;  // --matformer: the standalone slice, written first and stored as the model layer
  // A locked staging directory (as the conversions'), one export at a time: whatever it holds when the lock
  // is taken is a killed export's (a signal skips the removal below) and goes first.
  std::optional<HfStaging> slice_staging;
  if (!o.matformer.empty()) {
    if (o.from.empty()) throw std::invalid_argument("--matformer exports a slice of the --from file (a Modelfile sets PARAMETER matformer instead)");
    slice_staging.emplace(st.config().root / "matformer-export", [] { std::fprintf(stderr, "waiting for another export to finish\n"); });
    for (const auto& e : fs::directory_iterator(slice_staging->dir())) fs::remove_all(e.path());
    sliced = slice_staging->dir() / "slice.gguf";
    std::fprintf(stderr, "slicing %s to %s\n", o.from.c_str(), o.matformer.c_str());
    export_matformer_slice(o.from, sliced.string(), o.matformer);
    mf.from = sliced.string();
  }
  try {
    store::create_model(st, name, mf, base, [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); });
  } catch (...) {
    if (!sliced.empty()) fs::remove(sliced);
    throw;
  }
  if (!sliced.empty()) fs::remove(sliced);
  for (const auto& c : converted) fs::remove(c);  // the store holds them now
}

}  // namespace

void add_store_commands(CLI::App& app) {
  auto po = std::make_shared<PullOpts>();
  auto* pull = app.add_subcommand("pull", "Pull a model from a registry (Ollama's, hf.co, or your own)");
  pull->add_option("name", po->name, "model name, e.g. gemma3n:e2b or hf.co/USER/REPO:QUANT")->required();
  pull->add_flag("--insecure", po->insecure, "use plain HTTP (local registries)");
  pull->add_option("--parallel", po->parallel, "concurrent ranged requests per blob")->capture_default_str();
  pull->add_option("--stall-timeout", po->stall, "seconds without data before a request is retried")
      ->capture_default_str();
  pull->callback([po] { cmd_pull(*po); });

  auto filter = std::make_shared<std::string>();
  auto* list = app.add_subcommand("list", "List models in the store (and Ollama's)");
  list->alias("ls");
  list->add_option("prefix", *filter, "only names starting with this");
  list->callback([filter] { cmd_list(*filter); });

  auto so = std::make_shared<ShowOpts>();
  auto* show = app.add_subcommand("show", "Show a model's details");
  show->add_option("name", so->name, "model name")->required();
  auto* g1 = show->add_flag("--template", so->tmpl, "print the prompt template");
  auto* g2 = show->add_flag("--parameters", so->params, "print the default parameters");
  auto* g3 = show->add_flag("--license", so->license, "print the license");
  auto* g4 = show->add_flag("--modelfile", so->modelfile, "print a Modelfile that recreates the model");
  auto* g5 = show->add_flag("--system", so->system, "print the system prompt");
  for (auto* a : {g1, g2, g3, g4, g5})
    for (auto* b : {g1, g2, g3, g4, g5})
      if (a != b) a->excludes(b);
  show->callback([so] { cmd_show(*so); });

  auto names = std::make_shared<std::vector<std::string>>();
  auto* rm = app.add_subcommand("rm", "Remove models from the store");
  rm->add_option("names", *names, "model names")->required();
  rm->callback([names] {
    store::ModelStore st(store::StoreConfig::from_environment());
    for (const auto& n : *names) {
      st.remove(parse_name_or_throw(n));
      std::printf("deleted '%s'\n", n.c_str());
    }
  });

  auto cp_src = std::make_shared<std::string>(), cp_dst = std::make_shared<std::string>();
  auto* cp = app.add_subcommand("cp", "Copy a model under a new name");
  cp->add_option("source", *cp_src, "existing model")->required();
  cp->add_option("destination", *cp_dst, "new name")->required();
  cp->callback([cp_src, cp_dst] {
    store::ModelStore st(store::StoreConfig::from_environment());
    st.copy(parse_name_or_throw(*cp_src), parse_name_or_throw(*cp_dst));
    std::printf("copied '%s' to '%s'\n", cp_src->c_str(), cp_dst->c_str());
  });

  auto co = std::make_shared<CreateOpts>();
  auto* create = app.add_subcommand("create", "Create a model from a Modelfile or a GGUF file");
  create->add_option("name", co->name, "name of the new model")->required();
  create->add_option("-f,--file", co->file, "Modelfile (default ./Modelfile)");
  create->add_option("--from", co->from, "a .gguf file (shortcut for a Modelfile with only FROM)");
  create->add_option("--mmproj", co->mmproj, "a vision projector .gguf (as a second FROM line)");
  create->add_option("--from-hf", co->from_hf, "a Hugging Face Gemma 3n checkpoint directory to convert (docs/convert.md)");
  create->add_option("--quantize", co->quantize, "with --from-hf or FROM DIR: q4_k_m (default), q5_k_m, q6_k, q8_0, f16, bf16, f32");
  create->add_option("--layout", co->layout, "with --from-hf or FROM DIR: ollama (default, the registry blob's) or llamacpp");
  create->add_flag("--no-vision", co->no_vision, "with --from-hf or FROM DIR: leave the vision tower out of the projector");
  create->add_flag("--no-audio", co->no_audio, "with --from-hf or FROM DIR: leave the audio tower out of the projector");
  create->add_option("--matformer", co->matformer, "store a standalone MatFormer slice of --from: a preset (e2b, ...), FILE.json "
                     "or FILE.csv:ROW (docs/matformer.md)");
  create->callback([co] { cmd_create(*co); });
}

}  // namespace g3n::cli
