// The HTTP wiring: serves a route table over HTTP/1.1. It registers each route, answers 405 for a known
// path with the wrong method and 404 for an unknown one, 413 for oversized bodies, CORS preflights,
// turns handler exceptions into JSON errors in the route's style, counts requests under their route's
// pattern, and logs one line per request. The only file that knows the HTTP library (cpp-httplib).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "server/http_types.h"
#include "server/metrics.h"

namespace g3n::server {

struct HttpServerOptions {
  size_t max_body_bytes = 32u << 20;
  size_t threads = 32;      // connections served at once
  bool log_requests = true;
};

class HttpServer {
 public:
  HttpServer(std::vector<Route> routes, HttpServerOptions opts, Metrics& metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket (port 0: any free port); returns the port, or -1 when it cannot.
  int bind(const std::string& host, int port);
  // Accepts connections until stop(); bind() first.
  void serve();
  bool running() const;
  void stop();
  // Serves one request in-process, without sockets (the HTTP fuzz target): the same routing, 404/405/413
  // and preflight answers and error mapping as over HTTP, but no metrics or log line. A streamed body is
  // left in the response for the caller to run.
  HttpResponse dispatch(HttpRequest req);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace g3n::server
