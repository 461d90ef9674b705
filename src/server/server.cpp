// The server's composition: its state, the ONE route table, and the HTTP wiring that serves it.
#include "server/server.h"

#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "base/parse.h"
#include "server/create_checkpoint.h"
#include "server/handlers.h"
#include "server/http_server.h"
#include "server/options.h"

namespace g3n::server {
namespace {

std::string env_or(const char* a, const char* b) {
  if (const char* v = std::getenv(a); v && *v) return v;
  if (b)
    if (const char* v = std::getenv(b); v && *v) return v;
  return {};
}

// An integer variable in [lo, hi]; unset: def; unparsable or out of range: def, with a warning.
int env_int(const char* name, const char* alt, int def, int lo, int hi) {
  const std::string v = env_or(name, alt);
  if (v.empty()) return def;
  if (const auto n = parse_int(v, lo, hi)) return static_cast<int>(*n);
  std::fprintf(stderr, "warning: invalid %s=%s (expected %d..%d), using %d\n", name, v.c_str(), lo, hi, def);
  return def;
}

// Every endpoint, once: method, path pattern (also the metrics label), error style, handler.
std::vector<Route> route_table(ServerState& s) {
  auto h = [&s](void (*f)(ServerState&, const HttpRequest&, HttpResponse&)) {
    return [&s, f](const HttpRequest& req, HttpResponse& res) { f(s, req, res); };
  };
  constexpr auto O = ErrorStyle::Ollama;
  constexpr auto A = ErrorStyle::OpenAI;
  return {
      {Method::Get, "/", O, h(admin_root)},
      {Method::Get, "/api/version", O, h(admin_version)},
      {Method::Post, "/api/generate", O, h(ollama_generate)},
      {Method::Post, "/api/chat", O, h(ollama_chat)},
      {Method::Post, "/api/embed", O, h(ollama_embed)},
      {Method::Post, "/api/embeddings", O, h(ollama_embeddings)},
      {Method::Get, "/api/tags", O, h(ollama_tags)},
      {Method::Post, "/api/show", O, h(ollama_show)},
      {Method::Post, "/api/pull", O, h(ollama_pull)},
      {Method::Delete, "/api/delete", O, h(ollama_delete)},
      {Method::Post, "/api/copy", O, h(ollama_copy)},
      {Method::Head, "/api/blobs/{digest}", O, h(ollama_blob_head)},
      {Method::Post, "/api/blobs/{digest}", O, h(ollama_blob_upload), true},  // streams its body to disk
      {Method::Post, "/api/create", O, h(ollama_create)},
      {Method::Get, "/api/ps", O, h(admin_ps)},
      {Method::Post, "/v1/chat/completions", A, h(openai_chat)},
      {Method::Post, "/v1/completions", A, h(openai_completions)},
      {Method::Post, "/v1/embeddings", A, h(openai_embeddings)},
      {Method::Post, "/v1/audio/transcriptions", A, h(openai_transcriptions)},
      {Method::Post, "/v1/audio/translations", A, h(openai_translations)},
      {Method::Get, "/v1/models", A, h(openai_models)},
      {Method::Get, "/v1/models/{model}", A, h(openai_models)},
      {Method::Get, "/metrics", O, h(admin_metrics)},
  };
}

HttpServerOptions http_options(const ServerConfig& c) {
  HttpServerOptions o;
  o.max_body_bytes = c.max_body_bytes;
  o.threads = static_cast<size_t>(std::max(32, c.sched.num_parallel + c.sched.max_queue + 16));
  o.log_requests = c.log_requests;
  return o;
}

}  // namespace

ServerConfig ServerConfig::from_environment() {
  ServerConfig c;
  const ListenAddress a = listen_address_from(std::getenv("G3N_HOST"), std::getenv("OLLAMA_HOST"));
  c.host = a.host;
  c.port = a.port;
  c.store = store::StoreConfig::from_environment();
  c.sched.num_parallel = env_int("G3N_NUM_PARALLEL", "OLLAMA_NUM_PARALLEL", 2, 1, 1024);
  c.sched.max_queue = env_int("G3N_MAX_QUEUE", nullptr, 16, 0, 1 << 20);
  c.num_ctx = env_int("G3N_CONTEXT_LENGTH", "OLLAMA_CONTEXT_LENGTH", kDefaultContext, kMinContext, kMaxContext);
  if (const char* t = std::getenv("G3N_TRANSCRIBE_MODEL"); t && *t) c.transcribe_model = t;
  const std::string ka = env_or("G3N_KEEP_ALIVE", "OLLAMA_KEEP_ALIVE");
  if (!ka.empty()) {
    try {
      // Integer seconds or a Go duration, like OLLAMA_KEEP_ALIVE.
      const auto secs = parse_double(ka);
      c.keep_alive = parse_keep_alive(secs ? nlohmann::json(*secs) : nlohmann::json(ka));
    } catch (...) {
      std::fprintf(stderr, "warning: invalid keep-alive '%s', using 5m\n", ka.c_str());
    }
  }
  return c;
}

struct Server::Impl {
  explicit Impl(ServerConfig c) : state(std::move(c)), http(route_table(state), http_options(state.cfg), state.metrics) {}
  ServerState state;
  HttpServer http;
  std::thread thread;
};

Server::Server(ServerConfig cfg) : impl_(std::make_unique<Impl>(std::move(cfg))) {
  // A client that disconnects mid-stream must cost an error code, not the process.
  ::signal(SIGPIPE, SIG_IGN);
}

Server::~Server() { stop(); }

int Server::bind() {
  const ServerConfig& c = impl_->state.cfg;
  const int port = impl_->http.bind(c.host, c.port);
  if (port <= 0) {
    if (c.port == 0) throw std::runtime_error("cannot listen on " + c.host);
    throw std::runtime_error("cannot listen on " + c.host + ":" + std::to_string(c.port) + " (is another server running?)");
  }
  // What a killed server was converting (POST /api/create of a checkpoint) is of no use to anyone now.
  remove_stale_staging(store::ModelStore(c.store));
  return port;
}

void Server::serve() { impl_->http.serve(); }

HttpResponse Server::handle(HttpRequest req) { return impl_->http.dispatch(std::move(req)); }

int Server::start() {
  const int port = bind();
  impl_->thread = std::thread([this] { serve(); });
  // The HTTP library's stop() is a no-op until the accept loop runs: wait for it so a quick stop() cannot be lost.
  while (!impl_->http.running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return port;
}

void Server::stop() {
  if (!impl_) return;
  impl_->state.stopping.store(true);
  impl_->http.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace g3n::server
