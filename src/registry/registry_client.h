// Pulls models from a Docker-Registry-v2-style registry (registry.ollama.ai, hf.co, or a local one)
// into the ModelStore, the way Ollama does: manifest, then every blob (ranged, parallel, resumable,
// verified), then the manifest written last.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

#include "store/model_name.h"
#include "store/model_store.h"

namespace g3n::registry {

class RegistryError : public std::runtime_error {
 public:
  RegistryError(const std::string& msg, int http_status = 0)
      : std::runtime_error(msg), http_status_(http_status) {}
  int http_status() const { return http_status_; }  // 0 when not an HTTP status error

 private:
  int http_status_;
};

// One progress report. Status lines have an empty digest; layer reports carry digest/total/completed.
struct PullProgress {
  std::string status;        // "pulling manifest", "pulling <12 hex>", "verifying sha256 digest", ...
  std::string digest;        // "sha256:..." for layer reports
  int64_t total = 0;         // bytes
  int64_t completed = 0;     // bytes present (includes bytes resumed from an earlier attempt)
  double bytes_per_sec = 0;  // recent transfer rate of this layer
  bool done = false;         // this layer is complete (downloaded or already present)
};
using ProgressFn = std::function<void(const PullProgress&)>;

struct RegistryOptions {
  bool insecure = false;             // plain http:// (for local registries), like `ollama pull --insecure`
  int max_parallel = 4;              // concurrent ranged requests per blob
  int64_t min_part_size = 100'000'000;  // blobs are split in parts no smaller than this
  int max_parts = 16;                // and in at most this many parts
  int max_attempts = 6;              // per part, counted only while no bytes arrive
  std::chrono::milliseconds backoff_initial{1000};  // doubled per failed attempt
  std::chrono::milliseconds backoff_max{16000};
  std::chrono::seconds stall_timeout{30};    // no bytes for this long -> restart the request
  std::chrono::seconds connect_timeout{30};
  std::chrono::milliseconds progress_interval{100};
  std::string user_agent = "g3n/0.1.0";
  std::string ca_bundle;             // optional CA file (tests, corporate proxies)
  std::function<bool()> cancelled;   // polled; true aborts the pull (partial data is kept)
};

class RegistryClient {
 public:
  RegistryClient(store::ModelStore& store, RegistryOptions opts = {});
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // GETs and parses the manifest. 404 -> RegistryError("pull model manifest: file does not exist").
  store::Manifest fetch_manifest(const store::ModelName& name);
  // Full pull. Blobs already in either store are not downloaded again. Throws RegistryError; whatever
  // was downloaded stays as a partial file for the next attempt, and nothing unverified is visible.
  void pull(const store::ModelName& name, const ProgressFn& progress = {});

  // Base URL for a name: scheme://host (http when insecure).
  std::string base_url(const store::ModelName& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace g3n::registry
