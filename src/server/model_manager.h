// Loaded models, by the name requests use. A model loads on first use and stays while requests hold a
// lease on it; when the last lease ends it stays loaded for its keep_alive (default 5m, 0: unload now,
// negative: forever), after which a reaper thread unloads it.
#pragma once
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "media/audio_encoder.h"
#include "media/image_encoder.h"
#include "model/model.h"
#include "registry/resolve.h"
#include "sampling/json_constraint.h"
#include "server/options.h"
#include "server/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace g3n::server {

class ModelNotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LoadedModel {
  std::string key;   // identity: the full store name, lower case
  std::string name;  // display name
  registry::ResolveResult resolved;
  std::unique_ptr<Model> model;
  bool speculative = false;  // loaded for speculation (its parameters speculate): Model::LoadOptions::speculative
  std::unique_ptr<Tokenizer> tok;
  std::unique_ptr<TokenTexts> texts;
  // Draft models of requests that speculate with spec draft or self (ModelManager::draft_model), by
  // "mode|name". The scheduler's slots draft with them, so they are declared before `sched` and outlive it.
  std::map<std::string, std::unique_ptr<Model>> drafts;  // guarded by drafts_mu
  std::mutex drafts_mu;
  // The draft models' own file bytes (separate drafts; a self slice maps m's file): /api/ps counts them.
  int64_t draft_file_bytes();
  std::unique_ptr<Scheduler> sched;
  // The projector's towers (the model's first projector layer), loaded with the model on the fast paths,
  // each with its own thread pool. Null when the projector lacks that tower, or when it could not be loaded
  // (projector_error / audio_error say why; text requests still work).
  std::unique_ptr<ImageEncoder> images;
  std::unique_ptr<AudioEncoder> audio;
  std::string projector_error, audio_error;
  bool has_projector = false;  // the model has a projector layer
  uint64_t projector_bytes = 0;  // estimate_projector_memory: weights plus one encode's activations
  int64_t file_size = 0;
  std::chrono::system_clock::time_point loaded_at;
  // Guarded by the manager's mutex.
  int users = 0;
  std::optional<std::chrono::nanoseconds> keep_alive;  // nullopt: forever
  std::chrono::system_clock::time_point expires_at;
  uint64_t keep_alive_arrival = 0;  // the arrival of the request whose keep_alive applies (the latest one ended)

  // The encoder for a request with images: HttpError(400) when the model has no projector, or when its
  // projector could not be loaded (with the reason: another width, a bad file). 400, not 500: asking
  // again cannot help, and clients retry 5xx answers.
  ImageEncoder& image_encoder() const;
  // The same for a request with audio ("model has no audio encoder").
  AudioEncoder& audio_encoder() const;
};

class ModelManager {
 public:
  // image_threads: each projector's own pool (0: the machine's physical cores).
  ModelManager(store::StoreConfig store, SchedulerConfig sched, std::optional<std::chrono::nanoseconds> default_keep_alive,
               int image_threads = 0);
  ~ModelManager();

  // Keeps a model loaded while alive; on destruction starts its keep_alive timer.
  class Lease {
   public:
    Lease(ModelManager* m, std::shared_ptr<LoadedModel> lm, std::optional<std::chrono::nanoseconds> keep_alive, uint64_t arrival)
        : mgr_(m), lm_(std::move(lm)), keep_alive_(keep_alive), arrival_(arrival) {}
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    LoadedModel& operator*() const { return *lm_; }
    LoadedModel* operator->() const { return lm_.get(); }

   private:
    ModelManager* mgr_;
    std::shared_ptr<LoadedModel> lm_;
    std::optional<std::chrono::nanoseconds> keep_alive_;
    uint64_t arrival_;  // the order requests asked for the model: the last to ask sets its keep_alive
  };

  // Resolves `name` (a store name, never a path; never pulls) and loads it if needed. keep_alive is
  // the request's (not given: the default); load_s receives the time spent getting the model.
  // Throws ModelNotFound, or std::exception for load failures.
  std::unique_ptr<Lease> acquire(const std::string& name, const KeepAlive& keep_alive, double* load_s = nullptr);
  // Resolution only (for /api/show): throws ModelNotFound.
  registry::ResolveResult resolve(const std::string& name) const;
  // The model a request speculating with `spec draft` or `spec self` drafts with (docs/speculative.md), loaded on
  // first use and kept with `m`: for draft, `draft` names a model in the store (never a path; its own
  // PARAMETER matformer applies) with m's vocabulary; for self, a slice of m's own file (default e2b; its pages
  // and packed matrices shared with m): a MatFormer preset, or, when `from_model` (the value is the model's own
  // PARAMETER draft, not a request's), any slice Model::load takes. HttpError(400) when it cannot draft for m (an
  // unknown name, another vocabulary, a slice that does not fit the file, more than kMaxDrafts kinds),
  // std::exception for load failures.
  const Model& draft_model(LoadedModel& m, SpecMode mode, const std::string& draft, bool from_model);
  static constexpr size_t kMaxDrafts = 4;  // distinct drafts per loaded model: each holds its own weights or slices
  // Forgets the loaded model of this name (it was deleted or re-created): the next request loads the store's model
  // again; requests in flight finish on the instance they hold, which is freed with the last of them. Returns
  // whether it was loaded.
  bool unload(const std::string& name);
  std::vector<std::shared_ptr<LoadedModel>> loaded() const;
  bool is_loaded(const std::string& name) const;  // false for names that are no store name
  // When the model will be unloaded (while in use: now + its keep_alive; far future for forever).
  std::chrono::system_clock::time_point expires_at(const LoadedModel& m) const;
  std::optional<std::chrono::nanoseconds> default_keep_alive() const { return default_keep_alive_; }
  const store::StoreConfig& store_config() const { return store_; }
  // Jobs waiting in every loaded model's queue.
  int queued() const;
  int active() const;
  // The identity key for a name, as acquire() uses it.
  std::string key_for(const std::string& name) const;

 private:
  void release(const std::shared_ptr<LoadedModel>& lm, std::optional<std::chrono::nanoseconds> keep_alive, uint64_t arrival);
  void reap();

  store::StoreConfig store_;
  SchedulerConfig sched_cfg_;
  int image_threads_ = 0;
  std::optional<std::chrono::nanoseconds> default_keep_alive_;
  mutable std::mutex mu_;
  std::mutex load_mu_;  // one load at a time; lookups of loaded models never wait for it
  std::condition_variable cv_;
  std::map<std::string, std::shared_ptr<LoadedModel>> models_;
  uint64_t arrivals_ = 0;  // leases handed out (guarded by mu_)
  bool stop_ = false;
  std::thread reaper_;
};

}  // namespace g3n::server
