// Model names as Ollama spells them: [scheme://][HOST/][NAMESPACE/]MODEL[:TAG].
// Defaults: host registry.ollama.ai, namespace library, tag latest. Names compare case-insensitively and
// keep their case on disk (see docs/store.md and the Ollama compatibility notes, section 1).
#pragma once
#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

namespace g3n::store {

inline constexpr std::string_view kDefaultHost = "registry.ollama.ai";
inline constexpr std::string_view kDefaultNamespace = "library";
inline constexpr std::string_view kDefaultTag = "latest";

class NameError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

struct ModelName {
  std::string scheme;  // "http" or "https" when the name carried one, else empty
  std::string host;
  std::string ns;
  std::string model;
  std::string tag;

  // host/ns/model:tag, always complete.
  std::string full() const;
  // Ollama's display form: drops the default host, then the default namespace; always keeps the tag.
  std::string display() const;
  // manifests/<host>/<ns>/<model>/<tag> relative to a store root.
  std::filesystem::path manifest_relpath() const;
  // Case-insensitive comparison of the four parts (the scheme is not part of identity).
  bool same_as(const ModelName& other) const;
};

// Parses and validates a name; throws NameError with a message naming the bad part.
ModelName parse_model_name(std::string_view text);
// Same without throwing: false when the name is invalid.
bool try_parse_model_name(std::string_view text, ModelName* out);

// True when `text` should be treated as a path to a GGUF file rather than a model name: it ends in
// .gguf or starts like a path (/, ./, ../, ~/).
bool looks_like_gguf_path(std::string_view text);

bool iequals(std::string_view a, std::string_view b);

}  // namespace g3n::store
