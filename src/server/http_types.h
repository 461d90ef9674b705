// What handlers see of HTTP: a request, a response (whole or streamed), and the route table row that
// binds them. Only http_server.cpp knows the HTTP library behind these.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace g3n::server {

// Per-request figures for the log line and metrics, filled while the request is served.
struct RequestStats {
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  std::atomic<int> tokens{0};
};

// One part of a multipart/form-data body (file uploads: OpenAI's /v1/audio endpoints).
struct FormPart {
  std::string name, filename, content_type, content;
};

struct HttpRequest {
  std::string method, path, body;
  std::vector<FormPart> form;  // the parts of a multipart/form-data body, by name (body is then empty)
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::string> params;  // the route pattern's {captures}, in order
  std::shared_ptr<RequestStats> stats = std::make_shared<RequestStats>();
  // Whether the client has closed (or reset) its connection, read without consuming anything. For work
  // a handler does before its response starts (encoding a request's images), when no write can probe
  // the connection. Callable from any thread while the handler runs; null when the wiring cannot tell.
  std::function<bool()> client_gone;
  // Only for a route that streams its body (Route::streams_body; `body` and `form` are then empty): reads the
  // body once, in pieces as they arrive, handing each to `piece` until it returns false (the rest is read
  // and dropped, so the connection stays usable). Returns whether the whole body arrived and every piece
  // was taken; false when the client went away mid-body. Not calling it drops the body unread. Callable
  // only while the handler runs (not from a response's `stream`).
  std::function<bool(const std::function<bool(std::string_view)>& piece)> read_body;

  // A header's value (names compare without case); empty when absent.
  std::string header(std::string_view name) const;
  // The first form part of that name, or null.
  const FormPart* part(std::string_view name) const;
};

// Where a streamed body goes.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  virtual bool write(std::string_view data) = 0;  // false: the client is gone
  virtual bool writable() const = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // A body produced while it is sent (chunked): called once; returns true when it finished the body,
  // false when it gave up (the client went away). Set instead of `body`.
  std::function<bool(ChunkSink&)> stream;
  // Called once the response is finished with: sent, failed, or dropped unsent.
  std::function<void()> on_close;

  void set_header(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
};

enum class Method { Get, Post, Delete, Head };  // a Get route answers HEAD too; a Head route only HEAD
enum class ErrorStyle { Ollama, OpenAI };  // {"error": "..."} or {"error": {"message", "type", ...}}

using Handler = std::function<void(const HttpRequest&, HttpResponse&)>;

// One row of the route table. The pattern is the path with {name} for a capture (matching the rest of
// the path, '/' included, as model names have them); it is also the route's metrics label.
struct Route {
  Method method;
  std::string pattern;
  ErrorStyle errors;
  Handler handler;
  // The handler reads the body itself (HttpRequest::read_body), of any size: uploads that go to disk.
  // Other routes get the whole body in memory, up to the server's max_body_bytes.
  bool streams_body = false;
};

}  // namespace g3n::server
