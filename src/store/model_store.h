// The model store, laid out exactly like Ollama's so either tool can read the other's files:
//   <root>/manifests/<host>/<namespace>/<model>/<tag>   manifest JSON
//   <root>/blobs/sha256-<hex>                            content-addressed blobs
// g3n writes only to its own root ($G3N_MODELS, default ~/.g3n/models). Ollama's store ($OLLAMA_MODELS,
// default ~/.ollama/models) is consulted read-only when a model or blob is not in g3n's store, so users
// who already pulled a model with Ollama use it in place.
// Crash safety: blobs appear only by rename after they are complete and verified, manifests are written
// (atomically) after every blob they name is present, so a reader never sees a half-written model.
#pragma once
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/file_util.h"
#include "store/model_name.h"

namespace g3n::store {

namespace media {
inline constexpr std::string_view kManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kModel = "application/vnd.ollama.image.model";
inline constexpr std::string_view kProjector = "application/vnd.ollama.image.projector";
inline constexpr std::string_view kAdapter = "application/vnd.ollama.image.adapter";
inline constexpr std::string_view kTemplate = "application/vnd.ollama.image.template";
inline constexpr std::string_view kPrompt = "application/vnd.ollama.image.prompt";  // legacy template
inline constexpr std::string_view kSystem = "application/vnd.ollama.image.system";
inline constexpr std::string_view kParams = "application/vnd.ollama.image.params";
inline constexpr std::string_view kMessages = "application/vnd.ollama.image.messages";
inline constexpr std::string_view kLicense = "application/vnd.ollama.image.license";
}  // namespace media

// Where the stores are. Built explicitly (tests use temp dirs); from_environment() is the CLI default.
struct StoreConfig {
  std::filesystem::path root;                         // g3n's writable store
  std::optional<std::filesystem::path> ollama_root;   // read-only fallback; nullopt disables it
  bool prune = true;                                  // delete unreferenced blobs after pull/rm

  // $G3N_MODELS or ~/.g3n/models; $OLLAMA_MODELS or ~/.ollama/models. Values are trimmed of spaces and
  // quotes, as Ollama does. Null arguments mean "unset".
  static StoreConfig from_values(const char* g3n_models, const char* ollama_models, const char* home);
  static StoreConfig from_environment();  // reads the process environment (no caching)
};

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = 0;
  std::string from;  // optional: the model/path a layer was inherited from
};

struct Manifest {
  int schema_version = 2;
  std::string media_type = std::string(media::kManifest);
  Descriptor config;
  std::vector<Descriptor> layers;

  // Throws StoreError on malformed JSON, missing fields or an invalid digest.
  static Manifest parse(std::string_view json);
  // Ollama's compact form (fixed key order, no trailing newline): byte-identical manifests give the
  // same ID in both tools' `list`.
  std::string serialize() const;
  // Every digest referenced (config + layers), in order, duplicates removed.
  std::vector<std::string> digests() const;
  int64_t total_size() const;  // config + layers, as Ollama's list computes it
  const Descriptor* find_layer(std::string_view media_type) const;
};

// Everything a run needs from a stored model.
struct ResolvedModel {
  ModelName name;                       // on-disk spelling
  std::filesystem::path manifest_path;
  bool from_ollama = false;             // manifest found in Ollama's store
  Manifest manifest;
  std::filesystem::path model_path;     // the GGUF (model layer)
  std::vector<std::filesystem::path> projectors, adapters;
  std::optional<std::string> template_text;
  std::optional<std::string> system;
  std::vector<std::string> licenses;
  nlohmann::json params = nlohmann::json::object();   // params layer (default options)
  nlohmann::json messages = nlohmann::json::array();
  nlohmann::json config = nlohmann::json::object();   // config blob (tolerates missing fields)
};

struct ListEntry {
  ModelName name;
  std::string id;  // first 12 hex of sha256(manifest bytes)
  int64_t size = 0;
  std::filesystem::file_time_type modified;
  bool from_ollama = false;
};

class ModelStore {
 public:
  explicit ModelStore(StoreConfig cfg);
  const StoreConfig& config() const { return cfg_; }

  std::filesystem::path blobs_dir() const { return cfg_.root / "blobs"; }
  std::filesystem::path manifests_dir() const { return cfg_.root / "manifests"; }
  // Path a blob has (or will have) in g3n's store.
  std::filesystem::path blob_path(std::string_view digest) const;
  // Existing blob in g3n's store, else Ollama's; nullopt when absent from both.
  std::optional<std::filesystem::path> find_blob(std::string_view digest) const;

  // The manifest path for `name` in g3n's store, using the on-disk spelling when a manifest already
  // exists under a different case (so `LLAMA3.2` overwrites `llama3.2` instead of forking it).
  ModelName canonical_name(const ModelName& name) const;
  // Finds a manifest: g3n's store first, then Ollama's. Case-insensitive.
  struct Found {
    ModelName name;
    std::filesystem::path path;
    bool from_ollama = false;
  };
  std::optional<Found> find_manifest(const ModelName& name) const;
  std::optional<Manifest> read_manifest(const ModelName& name) const;
  // Writes (atomically) a manifest into g3n's store after checking that every blob it names exists.
  void write_manifest(const ModelName& name, const Manifest& m);

  // Adds content as a blob (hashing while copying, then rename); returns "sha256:<hex>".
  std::string put_blob(std::string_view data);
  std::string put_blob_file(const std::filesystem::path& src);
  // Makes a blob that exists only in Ollama's store available in g3n's (hard link when on the same
  // filesystem; otherwise it stays where it is and find_blob keeps finding it there). Returns whether
  // the blob is now reachable.
  bool adopt_blob(std::string_view digest);

  // Throws StoreError("model 'x' not found") when absent, or when a referenced blob is missing.
  ResolvedModel resolve(const ModelName& name) const;
  std::vector<ListEntry> list() const;  // g3n's models, then Ollama's not shadowed; newest first each
  // Removes the manifest from g3n's store and, if pruning, the blobs no other manifest uses.
  // Throws StoreError when the model is absent or only in Ollama's (read-only) store.
  void remove(const ModelName& name);
  // Copies a manifest (blobs are shared); the source may come from Ollama's store.
  void copy(const ModelName& src, const ModelName& dst);
  // Deletes blobs of g3n's store that no manifest references; leaves in-progress downloads alone.
  // Returns the digests removed.
  std::vector<std::string> prune_unreferenced(const std::vector<std::string>& candidates) const;

 private:
  std::optional<Found> find_in(const std::filesystem::path& root, const ModelName& name) const;
  std::vector<std::pair<ModelName, std::filesystem::path>> manifests_in(
      const std::filesystem::path& root) const;
  StoreConfig cfg_;
};

}  // namespace g3n::store
