// `g3n serve`: the Ollama- and OpenAI-compatible HTTP server (src/server/). Configuration comes from the
// environment, as with `ollama serve`; flags override it.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "runtime/parameters.h"
#include "server/options.h"
#include "server/server.h"

namespace g3n::cli {
namespace {

struct ServeOpts {
  std::string host;  // empty: G3N_HOST / OLLAMA_HOST / 127.0.0.1:11434
  int parallel = 0, queue = -1, num_ctx = 0, threads = 0;
  bool quiet = false;
};

void cmd_serve(const ServeOpts& o) {
  server::ServerConfig cfg = server::ServerConfig::from_environment();
  if (!o.host.empty()) {
    const server::ListenAddress a = server::parse_listen_address(o.host);
    cfg.host = a.host;
    cfg.port = a.port;
  }
  if (o.parallel > 0) cfg.sched.num_parallel = o.parallel;
  if (o.queue >= 0) cfg.sched.max_queue = o.queue;
  if (o.num_ctx > 0) cfg.num_ctx = o.num_ctx;
  if (o.threads > 0) cfg.num_threads = o.threads;
  cfg.log_requests = !o.quiet;
  server::Server srv(cfg);
  const int port = srv.bind();
  std::fprintf(stderr, "g3n serve: listening on %s:%d (parallel %d, queue %d, num_ctx %d, models in %s)\n", cfg.host.c_str(), port,
               cfg.sched.num_parallel, cfg.sched.max_queue, cfg.num_ctx, cfg.store.root.c_str());
  // SIGINT/SIGTERM end the process; the kernel closes the sockets. Nothing needs flushing: the store
  // is only ever written atomically.
  srv.serve();
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOpts>();
  auto* cmd = app.add_subcommand("serve", "Serve models over Ollama's and OpenAI's HTTP APIs");
  cmd->add_option("--host", o->host, "listen address, host:port or :port (default $G3N_HOST, $OLLAMA_HOST, 127.0.0.1:11434)");
  cmd->add_option("--parallel", o->parallel, "sequences generated at once per model (default $G3N_NUM_PARALLEL or 2)");
  cmd->add_option("--max-queue", o->queue, "requests waiting beyond that before 503 (default $G3N_MAX_QUEUE or 16)");
  cmd->add_option("--num-ctx", o->num_ctx, "default context length (default $G3N_CONTEXT_LENGTH or " + std::to_string(kDefaultContext) + ")")
      ->check(CLI::Range(kMinContext, kMaxContext));
  cmd->add_option("--threads", o->threads, "threads per sequence (default: physical cores)");
  cmd->add_flag("--quiet", o->quiet, "no per-request log lines");
  cmd->callback([o] { cmd_serve(*o); });
}

}  // namespace g3n::cli
