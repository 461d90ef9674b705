// `g3n serve`: Ollama's REST API and the OpenAI-compatible /v1 API over HTTP/1.1. The Server owns
// everything it uses (models, schedulers, metrics); there is no global state, so tests run several in
// one process. Layout: server.cpp (the route table), http_server (the HTTP wiring), requests (parsing),
// *_handlers.cpp (the endpoints), generation (jobs and streamed answers), responses (the APIs' shapes).
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "runtime/parameters.h"
#include "server/http_types.h"
#include "server/scheduler.h"
#include "store/model_store.h"

namespace g3n::server {

struct ServerConfig {
  std::string host = "127.0.0.1";
  int port = 11434;                      // 0: any free port (tests)
  store::StoreConfig store;
  SchedulerConfig sched;                 // G3N_NUM_PARALLEL, G3N_MAX_QUEUE
  std::optional<std::chrono::nanoseconds> keep_alive = std::chrono::minutes(5);  // nullopt: forever
  int num_ctx = kDefaultContext;         // default context per sequence (options.num_ctx overrides)
  int num_threads = 0;                   // 0: physical cores (options.num_thread overrides)
  size_t max_body_bytes = 32u << 20;     // larger request bodies get 413
  bool log_requests = true;              // one line per request on stderr
  // A non-streamed generation still running after this long is answered as a chunked body that probes
  // the connection with spaces, so a client hanging up cancels it (generation.cpp, respond()).
  std::chrono::milliseconds sync_answer{1500};
  // Tests: called in the request's thread just before an image that is not in the encoder's cache is
  // encoded, with the flag that cancels that encode (set when the client goes away).
  std::function<void(const std::atomic<bool>& cancel)> before_image_encode;
  // The store model /v1/audio/* use for OpenAI's model names ("whisper-1", "gpt-4o-transcribe", ...):
  // G3N_TRANSCRIBE_MODEL. Empty: those names are looked up like any other.
  std::string transcribe_model;

  // G3N_HOST/OLLAMA_HOST, G3N_NUM_PARALLEL, G3N_MAX_QUEUE, G3N_KEEP_ALIVE/OLLAMA_KEEP_ALIVE,
  // G3N_CONTEXT_LENGTH/OLLAMA_CONTEXT_LENGTH, G3N_TRANSCRIBE_MODEL and the model store from the environment.
  static ServerConfig from_environment();
};

class Server {
 public:
  explicit Server(ServerConfig cfg);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening socket; returns the port. Throws std::runtime_error when it cannot.
  int bind();
  // Serves until stop(); bind() first.
  void serve();
  // bind() and serve() on a background thread; returns the port.
  int start();
  // Stops accepting, cancels running generations and waits for the handlers to finish.
  void stop();
  // One request through the route table in-process, no socket needed (HttpServer::dispatch); bind()
  // and serve() are not required. For the HTTP fuzz target.
  HttpResponse handle(HttpRequest req);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace g3n::server
