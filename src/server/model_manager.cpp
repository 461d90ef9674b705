#include "server/model_manager.h"

#include "runtime/parameters.h"

#include <cstdio>
#include <filesystem>

#include "media/projector.h"
#include "model/matformer.h"
#include "runtime/drafter_model.h"
#include "runtime/memory_estimate.h"

#include "server/options.h"
#include "store/model_name.h"

namespace g3n::server {
namespace fs = std::filesystem;
using SysClock = std::chrono::system_clock;

namespace {
// The parameters a model's own params layer sets over the defaults (a bad value is skipped: requests report it).
Parameters layer_parameters(const registry::ResolveResult& r) {
  Parameters layer = default_parameters();
  apply_parameters(layer, parse_parameters(r.params, {}, [](const std::string&, const std::string&) {}));
  return layer;
}
}  // namespace

ModelManager::ModelManager(store::StoreConfig store, SchedulerConfig sched,
                           std::optional<std::chrono::nanoseconds> default_keep_alive, int image_threads)
    : store_(std::move(store)), sched_cfg_(sched), image_threads_(image_threads), default_keep_alive_(default_keep_alive) {
  reaper_ = std::thread([this] { reap(); });
}

ModelManager::~ModelManager() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (reaper_.joinable()) reaper_.join();
  std::map<std::string, std::shared_ptr<LoadedModel>> gone;
  {
    std::lock_guard lk(mu_);
    gone.swap(models_);
  }
}  // `gone` is destroyed here, outside the lock: schedulers join their workers

ImageEncoder& LoadedModel::image_encoder() const {
  if (images) return *images;
  if (!projector_error.empty()) throw HttpError(400, "model '" + name + "' has a vision projector that cannot be used: " + projector_error);
  throw HttpError(400, "model has no vision projector: '" + name + "' cannot take images");
}

AudioEncoder& LoadedModel::audio_encoder() const {
  if (audio) return *audio;
  if (!audio_error.empty()) throw HttpError(400, "model '" + name + "' has an audio encoder that cannot be used: " + audio_error);
  throw HttpError(400, "model has no audio encoder: '" + name + "' cannot take audio");
}

ModelManager::Lease::~Lease() { mgr_->release(lm_, keep_alive_, arrival_); }

std::string ModelManager::key_for(const std::string& name) const {
  // Over HTTP a model is a name in the store, never a filesystem path: a path answers exactly as a
  // missing model does, so the API is no file-existence oracle and loads no file it was not given.
  if (store::looks_like_gguf_path(name)) throw ModelNotFound("model '" + name + "' not found");
  store::ModelName n;
  if (!store::try_parse_model_name(name, &n)) throw ModelNotFound("model '" + name + "' not found");
  std::string k = n.full();
  for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));  // names are case-insensitive
  return k;
}

registry::ResolveResult ModelManager::resolve(const std::string& name) const {
  if (store::looks_like_gguf_path(name)) throw ModelNotFound("model '" + name + "' not found");  // see key_for
  try {
    return registry::resolve_model(name, store_, false, {});
  } catch (const store::NameError&) {
    throw ModelNotFound("model '" + name + "' not found");
  } catch (const store::StoreError& e) {
    const std::string msg = e.what();
    if (msg.find("not found") != std::string::npos) throw ModelNotFound("model '" + name + "' not found");
    throw;
  }
}

std::unique_ptr<ModelManager::Lease> ModelManager::acquire(const std::string& name, const KeepAlive& requested, double* load_s) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::optional<std::chrono::nanoseconds> keep_alive = requested.given ? requested.duration : default_keep_alive_;
  const std::string key = key_for(name);
  auto grab = [&](const std::shared_ptr<LoadedModel>& lm) {  // under mu_
    ++lm->users;
    if (load_s) *load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::make_unique<Lease>(this, lm, keep_alive, ++arrivals_);
  };
  {
    std::lock_guard lk(mu_);
    if (auto it = models_.find(key); it != models_.end()) return grab(it->second);
  }
  std::lock_guard load_lk(load_mu_);
  {
    std::lock_guard lk(mu_);  // another request may have loaded it while this one waited
    if (auto it = models_.find(key); it != models_.end()) return grab(it->second);
  }
  auto lm = std::make_shared<LoadedModel>();
  lm->key = key;
  lm->resolved = resolve(name);
  lm->name = lm->resolved.model ? lm->resolved.model->name.display() : name;
  // The model's parameters may name a MatFormer slice (PARAMETER matformer e2b): that is what loads. A model
  // whose parameters speculate by default (PARAMETER spec ngram) is laid out for verify passes; a request
  // asking to speculate with any other model finds it in the plain layout (G3N_PACK_Q6K=1 overrides).
  const Parameters layer = layer_parameters(lm->resolved);
  lm->speculative = layer.spec.mode != SpecMode::None;
  lm->model = Model::load(lm->resolved.gguf_path.string(),
                          Model::LoadOptions{.matformer = layer.engine.matformer, .speculative = lm->speculative});
  lm->tok = std::make_unique<Tokenizer>(Tokenizer::from_gguf(lm->model->file()));
  lm->texts = std::make_unique<TokenTexts>(*lm->tok);
  lm->sched = std::make_unique<Scheduler>(*lm->model, *lm->tok, *lm->texts, sched_cfg_);
  if (!lm->resolved.projectors.empty()) {
    // Only ever the store's projector layer: no request names a file. A tower that does not fit the model
    // (another text width) is refused here, once; the model still answers text.
    lm->has_projector = true;
    const std::string path = lm->resolved.projectors.front().string();
    ProjectorParts parts;
    try {
      parts = probe_projector(path);
    } catch (const std::exception& e) {
      lm->projector_error = lm->audio_error = e.what();
      std::fprintf(stderr, "warning: %s: projector not loaded: %s\n", lm->name.c_str(), e.what());
    }
    if (parts.vision) {
      try {
        lm->images = std::make_unique<ImageEncoder>(path, lm->model->config().n_embd, image_threads_, /*fast=*/true);
        lm->projector_bytes = estimate_projector_memory(lm->images->projector()).total();
      } catch (const std::exception& e) {
        lm->projector_error = e.what();
        std::fprintf(stderr, "warning: %s: vision projector not loaded: %s\n", lm->name.c_str(), e.what());
      }
    }
    if (parts.audio) {
      try {
        lm->audio = std::make_unique<AudioEncoder>(path, lm->model->config().n_embd, image_threads_, /*fast=*/true);
      } catch (const std::exception& e) {
        lm->audio_error = e.what();
        std::fprintf(stderr, "warning: %s: audio encoder not loaded: %s\n", lm->name.c_str(), e.what());
      }
    }
  }
  std::error_code ec;
  lm->file_size = static_cast<int64_t>(fs::file_size(lm->resolved.gguf_path, ec));
  lm->loaded_at = SysClock::now();
  std::lock_guard lk(mu_);
  models_[key] = lm;
  return grab(lm);
}

int64_t LoadedModel::draft_file_bytes() {
  std::lock_guard lk(drafts_mu);
  int64_t n = 0;
  for (const auto& [key, d] : drafts)
    if (key.starts_with("draft|")) n += static_cast<int64_t>(d->file().file_size());
  return n;
}

const Model& ModelManager::draft_model(LoadedModel& m, SpecMode mode, const std::string& draft, bool from_model) {
  const bool self = mode == SpecMode::Self;
  if (!self && mode != SpecMode::Draft) throw std::logic_error("draft_model: spec draft or self only");
  if (!self && draft.empty())
    throw HttpError(400, "spec draft needs a draft model: the option \"draft\" names one in the store (same vocabulary)");
  std::string key;
  if (self) {
    // A request names only the published presets: a slice file would be a path on the server.
    const MatformerPreset* preset = find_matformer_preset(draft.empty() ? "e2b" : draft);
    if (!preset && !from_model)
      throw HttpError(400, "spec self: '" + draft + "' is not a MatFormer preset (e2b, e2.54b, ...; docs/matformer.md)");
    key = "self|" + (preset ? preset->name : draft);
  } else {
    try {
      key = "draft|" + key_for(draft);
    } catch (const ModelNotFound&) {
      throw HttpError(400, "spec draft: draft model '" + draft + "' not found");
    }
  }
  std::lock_guard lk(m.drafts_mu);
  if (auto it = m.drafts.find(key); it != m.drafts.end()) return *it->second;
  if (m.drafts.size() >= kMaxDrafts)
    throw HttpError(400, "model '" + m.name + "' already holds " + std::to_string(kMaxDrafts) + " draft models; reload it to draft with another");
  std::unique_ptr<Model> d;
  try {
    if (self) {
      // The model's own layout (packed or not), so every matrix it moved is shared, not copied again.
      d = Model::load(m.resolved.gguf_path.string(),
                      Model::LoadOptions{.matformer = key.substr(5), .share_packed = m.model.get(), .speculative = m.speculative});
    } else {
      registry::ResolveResult r;
      try {
        r = resolve(draft);
      } catch (const ModelNotFound&) {
        throw HttpError(400, "spec draft: draft model '" + draft + "' not found");
      }
      d = Model::load(r.gguf_path.string(), Model::LoadOptions{.matformer = layer_parameters(r).engine.matformer});
      check_draft_vocabulary(*m.model, *d);
    }
  } catch (const std::invalid_argument& e) {
    throw HttpError(400, std::string("spec ") + spec_mode_name(mode) + ": " + e.what());
  }
  return *m.drafts.emplace(key, std::move(d)).first->second;
}

void ModelManager::release(const std::shared_ptr<LoadedModel>& lm, std::optional<std::chrono::nanoseconds> keep_alive,
                           uint64_t arrival) {
  std::shared_ptr<LoadedModel> unloading;
  {
    std::lock_guard lk(mu_);
    --lm->users;
    // Keep-alives apply in the order the requests came, as Ollama's do: a long generation ending after an unload
    // request (keep_alive 0) must not bring back its own 5 minutes.
    if (arrival >= lm->keep_alive_arrival) {
      lm->keep_alive_arrival = arrival;
      lm->keep_alive = keep_alive;
    }
    if (lm->keep_alive) lm->expires_at = SysClock::now() + std::chrono::duration_cast<SysClock::duration>(*lm->keep_alive);
    else lm->expires_at = SysClock::time_point::max();
    if (lm->users == 0 && lm->keep_alive && lm->keep_alive->count() == 0) {
      auto it = models_.find(lm->key);
      if (it != models_.end() && it->second == lm) {
        unloading = it->second;
        models_.erase(it);
      }
    }
  }
  cv_.notify_all();
}  // `unloading` may be the last reference: the model is freed here, outside the lock

bool ModelManager::unload(const std::string& name) {
  std::shared_ptr<LoadedModel> gone;
  {
    std::lock_guard lk(mu_);
    std::string key;
    try { key = key_for(name); } catch (...) { return false; }
    auto it = models_.find(key);
    if (it == models_.end()) return false;
    // Even in use: a new request must not get the deleted or replaced model (the leases keep their instance).
    gone = it->second;
    models_.erase(it);
  }
  return true;
}

bool ModelManager::is_loaded(const std::string& name) const {
  std::string key;
  try {
    key = key_for(name);
  } catch (const ModelNotFound&) {
    return false;
  }
  std::lock_guard lk(mu_);
  return models_.count(key) > 0;
}

std::vector<std::shared_ptr<LoadedModel>> ModelManager::loaded() const {
  std::lock_guard lk(mu_);
  std::vector<std::shared_ptr<LoadedModel>> out;
  for (const auto& [k, v] : models_) out.push_back(v);
  return out;
}

std::chrono::system_clock::time_point ModelManager::expires_at(const LoadedModel& m) const {
  std::lock_guard lk(mu_);
  const auto forever = SysClock::now() + std::chrono::hours(24 * 365 * 100);
  const std::optional<std::chrono::nanoseconds> ka = m.users > 0 ? default_keep_alive_ : m.keep_alive;
  if (m.users == 0) return ka ? m.expires_at : forever;
  return ka ? SysClock::now() + std::chrono::duration_cast<SysClock::duration>(*ka) : forever;
}

int ModelManager::queued() const {
  int n = 0;
  for (const auto& m : loaded()) n += m->sched->queued();
  return n;
}

int ModelManager::active() const {
  int n = 0;
  for (const auto& m : loaded()) n += m->sched->active();
  return n;
}

void ModelManager::reap() {
  std::unique_lock lk(mu_);
  while (!stop_) {
    cv_.wait_for(lk, std::chrono::milliseconds(250));
    if (stop_) break;
    std::vector<std::shared_ptr<LoadedModel>> gone;
    const auto now = SysClock::now();
    for (auto it = models_.begin(); it != models_.end();) {
      const LoadedModel& m = *it->second;
      if (m.users == 0 && m.keep_alive && m.expires_at <= now) {
        gone.push_back(it->second);
        it = models_.erase(it);
      } else {
        ++it;
      }
    }
    if (!gone.empty()) {
      lk.unlock();
      gone.clear();  // frees the models without holding the lock
      lk.lock();
    }
  }
}

}  // namespace g3n::server
