#include "registry/resolve.h"

#include <cstdlib>

namespace g3n::registry {
namespace fs = std::filesystem;

ResolveResult resolve_model(const std::string& name_or_path, const store::StoreConfig& cfg,
                            bool pull_if_missing, const ProgressFn& progress, const RegistryOptions& opts) {
  ResolveResult out;
  if (store::looks_like_gguf_path(name_or_path)) {
    fs::path p = name_or_path;
    if (name_or_path.starts_with("~/")) {
      const char* home = std::getenv("HOME");
      if (home) p = fs::path(home) / name_or_path.substr(2);
    }
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) throw store::StoreError("model file not found: " + p.string());
    out.gguf_path = p;
    return out;
  }
  const store::ModelName name = store::parse_model_name(name_or_path);
  store::ModelStore st(cfg);
  if (!st.find_manifest(name)) {
    if (!pull_if_missing) throw store::StoreError("model '" + name.display() + "' not found");
    RegistryClient client(st, opts);
    client.pull(name, progress);
  }
  store::ResolvedModel r = st.resolve(name);
  out.gguf_path = r.model_path;
  out.params = r.params;
  out.template_text = r.template_text;
  out.system = r.system;
  out.licenses = r.licenses;
  out.messages = r.messages;
  out.projectors = r.projectors;
  out.model = std::move(r);
  return out;
}

}  // namespace g3n::registry
