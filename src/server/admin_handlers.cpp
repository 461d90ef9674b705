// GET /, /api/version, /api/ps and /metrics.
#include <algorithm>
#include <vector>

#include "server/handlers.h"
#include "server/options.h"
#include "server/responses.h"
#include "store/model_store.h"

namespace g3n::server {
namespace {
using json = nlohmann::json;
constexpr const char* kVersion = "0.13.0";  // the Ollama API version whose shapes this server speaks
}  // namespace

void admin_root(ServerState&, const HttpRequest&, HttpResponse& res) {
  res.content_type = "text/plain; charset=utf-8";
  res.body = "Ollama is running";
}

void admin_version(ServerState&, const HttpRequest&, HttpResponse& res) { set_json(res, 200, json{{"version", kVersion}}); }

void admin_ps(ServerState& s, const HttpRequest&, HttpResponse& res) {
  using SysClock = std::chrono::system_clock;
  std::vector<std::pair<SysClock::time_point, json>> rows;
  for (const auto& m : s.models.loaded()) {
    const SysClock::time_point exp = s.models.expires_at(*m);
    std::string digest;
    if (m->resolved.model) {
      try {
        digest = store::sha256_file_hex(m->resolved.model->manifest_path);
      } catch (...) {
      }
    }
    // The model's file, its sequences' KV caches (draft sequences included), its separate draft models' files,
    // and its vision projector (weights and one encode's activation allowance) when it has one.
    const int64_t size = m->file_size + static_cast<int64_t>(m->sched->kv_bytes()) + m->draft_file_bytes() +
                         static_cast<int64_t>(m->projector_bytes);
    rows.emplace_back(exp, json{{"name", m->name}, {"model", m->name}, {"size", size}, {"digest", digest},
                                {"details", model_details(m->resolved.model ? &*m->resolved.model : nullptr, m->resolved.gguf_path)},
                                {"expires_at", rfc3339(exp)}, {"size_vram", 0}, {"context_length", s.cfg.num_ctx}});
  }
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  json list = json::array();
  for (auto& r : rows) list.push_back(std::move(r.second));
  set_json(res, 200, json{{"models", list}});
}

void admin_metrics(ServerState& s, const HttpRequest&, HttpResponse& res) {
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  res.body = s.metrics.text(s.models.queued(), s.models.active(), s.models.loaded().size());
}

}  // namespace g3n::server
