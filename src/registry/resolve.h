// The one call `g3n run` (and the server) makes to turn what the user typed into a GGUF file plus the
// model's defaults: a path to a .gguf is used as is; a name is looked up in the store (g3n's, then
// Ollama's) and pulled first when missing and allowed.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "registry/registry_client.h"
#include "store/model_store.h"

namespace g3n::registry {

struct ResolveResult {
  std::filesystem::path gguf_path;
  nlohmann::json params = nlohmann::json::object();  // params layer: the run's default options
  std::optional<std::string> template_text;         // Go text/template from the template layer
  std::optional<std::string> system;                // default system prompt
  std::vector<std::string> licenses;
  nlohmann::json messages = nlohmann::json::array();
  std::vector<std::filesystem::path> projectors;
  std::optional<store::ResolvedModel> model;        // set when resolved by name
};

// Throws store::StoreError / store::NameError / RegistryError with a user-facing message.
ResolveResult resolve_model(const std::string& name_or_path, const store::StoreConfig& cfg,
                            bool pull_if_missing, const ProgressFn& progress,
                            const RegistryOptions& opts = {});

}  // namespace g3n::registry
