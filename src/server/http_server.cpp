#include "server/http_server.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <map>
#include <mutex>
#include <regex>
#include <strings.h>

#include "server/http.h"
#include "server/options.h"
#include "server/responses.h"

namespace g3n::server {

std::string HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), name.size()) == 0) return v;
  return {};
}

const FormPart* HttpRequest::part(std::string_view name) const {
  for (const FormPart& p : form)
    if (p.name == name) return &p;
  return nullptr;
}

namespace {

// "/v1/models/{model}" -> "/v1/models/(.+)": a capture takes the rest of the path, '/' included.
std::string pattern_regex(const std::string& pattern) {
  return std::regex_replace(pattern, std::regex(R"(\{[^}]*\})"), "(.+)");
}

class SinkAdapter : public ChunkSink {
 public:
  explicit SinkAdapter(httplib::DataSink& s) : s_(s) {}
  bool write(std::string_view data) override { return s_.write(data.data(), data.size()); }
  bool writable() const override { return s_.is_writable(); }

 private:
  httplib::DataSink& s_;
};

// A socket address as cpp-httplib writes Request::remote_addr/remote_port: numeric host and port.
bool endpoint_of(const sockaddr_storage& a, socklen_t len, std::string& host, int& port) {
  if (a.ss_family == AF_INET) port = ntohs(reinterpret_cast<const sockaddr_in&>(a).sin_port);
  else if (a.ss_family == AF_INET6) port = ntohs(reinterpret_cast<const sockaddr_in6&>(a).sin6_port);
  else return false;
  char buf[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) != 0) return false;
  host = buf;
  return true;
}

// The request's connection. cpp-httplib 0.11 does not give handlers its socket, but a handler runs
// while the connection is open, and the one socket of this process whose ends are the request's
// addresses is that connection. -1 when none is found (not Linux, or not TCP).
int connection_socket(const std::string& remote_addr, int remote_port, int local_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return -1;
  int found = -1;
  while (const dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0') continue;
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    std::string host;
    int port = -1;
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&a), &len) != 0 || !endpoint_of(a, len, host, port) ||
        port != remote_port || host != remote_addr)
      continue;
    if (local_port > 0) {
      len = sizeof a;
      if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&a), &len) != 0 || !endpoint_of(a, len, host, port) ||
          port != local_port)
        continue;
    }
    found = static_cast<int>(fd);
    break;
  }
  closedir(dir);
  return found;
}

// The CORS preflight's answer headers for a request from `origin` (empty: any).
std::vector<std::pair<std::string, std::string>> preflight_headers(const std::string& origin) {
  return {{"Access-Control-Allow-Origin", origin.empty() ? "*" : origin},
          {"Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"},
          {"Access-Control-Allow-Headers", "Authorization, Content-Type, User-Agent, Accept, X-Requested-With, OpenAI-Beta, x-stainless-arch, x-stainless-async, x-stainless-custom-poll-interval, x-stainless-helper-method, x-stainless-lang, x-stainless-os, x-stainless-package-version, x-stainless-poll-helper, x-stainless-retry-count, x-stainless-runtime, x-stainless-runtime-version, x-stainless-timeout"}};
}

const char* method_name(Method m) {
  switch (m) {
    case Method::Get: return "GET";
    case Method::Post: return "POST";
    case Method::Delete: return "DELETE";
    case Method::Head: return "HEAD";
  }
  return "";
}

// HttpRequest::client_gone for a request: a peek at its socket. An orderly close reads as end of file,
// a reset as an error; pending bytes (a pipelined next request) or nothing yet mean the client is there.
std::function<bool()> client_gone_probe(const httplib::Request& req) {
  struct Probe {
    std::mutex mu;
    bool looked = false;
    int fd = -1;
  };
  auto p = std::make_shared<Probe>();
  return [p, addr = req.remote_addr, port = req.remote_port, local = req.local_port] {
    std::lock_guard lk(p->mu);
    if (!p->looked) {
      p->fd = connection_socket(addr, port, local);
      p->looked = true;
    }
    if (p->fd < 0) return false;
    char c;
    const ssize_t n = recv(p->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  };
}

}  // namespace

struct HttpServer::Impl {
  struct Entry {
    Route route;
    std::regex re;
  };
  std::vector<Entry> routes;
  HttpServerOptions opts;
  Metrics& metrics;
  httplib::Server http;
  std::mutex stats_mu;
  std::map<const httplib::Request*, std::shared_ptr<RequestStats>> stats;  // while a request is served

  Impl(std::vector<Route> rs, HttpServerOptions o, Metrics& m) : opts(o), metrics(m) {
    for (auto& r : rs) {
      std::regex re(pattern_regex(r.pattern));
      routes.push_back({std::move(r), std::move(re)});
    }
    wire();
  }

  // The route whose pattern matches the path (any method); null when none does.
  const Route* route_for(const std::string& path) const {
    for (const auto& e : routes)
      if (std::regex_match(path, e.re)) return &e.route;
    return nullptr;
  }

  std::shared_ptr<RequestStats> stats_of(const httplib::Request& req) {
    std::lock_guard lk(stats_mu);
    auto& s = stats[&req];
    if (!s) s = std::make_shared<RequestStats>();
    return s;
  }

  static void send(HttpResponse&& res, httplib::Response& out) {
    out.status = res.status;
    for (auto& [k, v] : res.headers) out.set_header(k, v);
    if (res.stream) {
      out.set_chunked_content_provider(
          res.content_type,
          [stream = std::move(res.stream)](size_t, httplib::DataSink& sink) {
            SinkAdapter a(sink);
            if (!stream(a)) return false;
            sink.done();
            return true;
          },
          [on_close = std::move(res.on_close)](bool) {
            if (on_close) on_close();
          });
    } else if (!res.body.empty()) {
      out.set_content(std::move(res.body), res.content_type);
    }
  }

  // What a body reader makes of a request's body.
  enum class BodyRead { Whole, TooLarge, Broken };

  // Reads the body through the content reader into req.body, or req.form for a multipart body, up to
  // max_body_bytes. A larger body is read to its end and dropped, so the connection stays usable, as
  // cpp-httplib does for its own limit; Broken: the client went away or sent a malformed body.
  BodyRead read_whole_body(const httplib::Request& hreq, const httplib::ContentReader& reader, HttpRequest& req) const {
    const size_t limit = opts.max_body_bytes;
    size_t total = 0;
    bool over = false;
    if (hreq.has_header("Content-Length") && hreq.get_header_value<uint64_t>("Content-Length") > limit) over = true;
    // Counts every byte; past the limit keeps reading but keeps nothing.
    auto count = [&](size_t n) {
      total += n;
      if (total > limit && !over) {
        over = true;
        req.body.clear();
        req.body.shrink_to_fit();
        req.form.clear();
      }
      return !over;
    };
    bool ok;
    if (hreq.is_multipart_form_data()) {
      ok = reader(
          [&](const httplib::MultipartFormData& f) {
            if (over) return true;
            if (req.form.size() >= 1024) return false;  // cpp-httplib's own part limit
            req.form.push_back({f.name, f.filename, f.content_type, {}});
            return true;
          },
          [&](const char* d, size_t n) {
            if (count(n) && !req.form.empty()) req.form.back().content.append(d, n);
            return true;
          });
    } else {
      ok = reader([&](const char* d, size_t n) {
        if (count(n)) req.body.append(d, n);
        return true;
      });
    }
    if (over) return BodyRead::TooLarge;
    return ok ? BodyRead::Whole : BodyRead::Broken;
  }

  // HttpRequest::read_body over the content reader: one pass over the body; once `piece` declines, the
  // rest is read and dropped. *used records that the pass happened (else the wiring drops the body).
  static std::function<bool(const std::function<bool(std::string_view)>&)> body_streamer(const httplib::ContentReader& reader,
                                                                                         bool* used) {
    return [&reader, used](const std::function<bool(std::string_view)>& piece) {
      if (*used) return false;  // the body is gone: read once
      *used = true;
      bool taking = true;
      const bool whole = reader([&](const char* d, size_t n) {
        if (taking) taking = piece(std::string_view(d, n));
        return true;
      });
      return whole && taking;
    };
  }

  // Serves route i; `reader` is the body's content reader for methods with a body (POST, DELETE).
  void serve(size_t i, const httplib::Request& hreq, httplib::Response& hres, const httplib::ContentReader* reader) {
    const Route& route = routes[i].route;
    HttpRequest req;
    req.method = hreq.method;
    req.path = hreq.path;
    for (const auto& [k, v] : hreq.headers) req.headers.emplace_back(k, v);
    for (size_t m = 1; m < hreq.matches.size(); ++m) req.params.push_back(hreq.matches[m]);
    req.stats = stats_of(hreq);
    req.client_gone = client_gone_probe(hreq);
    HttpResponse res;
    bool body_used = false, body_ok = true;
    try {
      if (route.method == Method::Head && hreq.method != "HEAD")
        throw HttpError(405, "method " + hreq.method + " not allowed for " + hreq.path);
      if (reader && route.streams_body) {
        req.read_body = body_streamer(*reader, &body_used);
      } else if (reader) {
        switch (read_whole_body(hreq, *reader, req)) {
          case BodyRead::Whole: break;
          case BodyRead::TooLarge:
            throw HttpError(413, "request body too large (limit " + std::to_string(opts.max_body_bytes >> 20) + " MiB)");
          case BodyRead::Broken: throw HttpError(400, "could not read the request body");
        }
      }
    } catch (...) {
      body_ok = false;
      error_response(route, res);
    }
    if (body_ok) res = run(route, req);
    // A streamed body the handler left unread is read and dropped: its bytes must not be taken for the
    // next request on the connection.
    if (reader && route.streams_body && !body_used) (*reader)([](const char*, size_t) { return true; });
    send(std::move(res), hres);
  }

  httplib::Server::Handler handler(size_t i) {
    return [this, i](const httplib::Request& hreq, httplib::Response& hres) { serve(i, hreq, hres, nullptr); };
  }

  httplib::Server::HandlerWithContentReader reader_handler(size_t i) {
    return [this, i](const httplib::Request& hreq, httplib::Response& hres, const httplib::ContentReader& reader) {
      serve(i, hreq, hres, &reader);
    };
  }

  // A body sent to a path (or method) no route takes is read and dropped; the error handler answers.
  static void drop_body(const httplib::Request&, httplib::Response& res, const httplib::ContentReader& reader) {
    reader([](const char*, size_t) { return true; });
    res.status = 404;
  }

  // What a thrown error makes of the response: the route's JSON error (a stream's on_close runs first).
  static void error_response(const Route& route, HttpResponse& res) {
    const auto [status, msg] = error_status(std::current_exception());
    if (res.on_close) res.on_close();
    res = HttpResponse{};
    set_error(res, route.errors, status, msg);
  }

  // A route's handler on a request; a thrown error becomes its JSON answer in the route's style.
  static HttpResponse run(const Route& route, const HttpRequest& req) {
    HttpResponse res;
    try {
      route.handler(req, res);
    } catch (...) {  // every error becomes JSON with the right status, never a crash
      error_response(route, res);
    }
    return res;
  }

  void wire() {
    // Every body goes through a content reader (reader_handler, drop_body), which applies max_body_bytes
    // itself: uploads (Route::streams_body) have no limit, everything else is read into memory.
    http.set_payload_max_length(std::numeric_limits<size_t>::max());
    const size_t threads = opts.threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      stats_of(req);
      if (req.method == "OPTIONS") {  // CORS preflight
        for (auto& [k, v] : preflight_headers(req.get_header_value("Origin"))) res.set_header(k, v);
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
      if (req.method == "PRI") {  // the one method with a body that no content reader would take
        res.status = 405;
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    http.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty() || res.is_chunked_content_provider_) return;  // a handler already answered
      HttpResponse out;
      if (res.status == 404 && route_for(req.path)) {
        set_error(out, ErrorStyle::Ollama, 405, "method " + req.method + " not allowed for " + req.path);
      } else if (res.status == 404) {
        out.status = 404;
        out.content_type = "text/plain";
        out.body = "404 page not found";
      } else if (res.status == 413) {
        set_error(out, ErrorStyle::Ollama, 413, "request body too large (limit " + std::to_string(opts.max_body_bytes >> 20) + " MiB)");
      } else {
        set_error(out, ErrorStyle::Ollama, res.status, "request failed with status " + std::to_string(res.status));
      }
      send(std::move(out), res);
    });
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      HttpResponse out;
      set_error(out, ErrorStyle::Ollama, 500, ep ? error_status(ep).second : "internal error");
      send(std::move(out), res);
    });
    http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
      std::shared_ptr<RequestStats> st;
      {
        std::lock_guard lk(stats_mu);
        if (auto it = stats.find(&req); it != stats.end()) {
          st = it->second;
          stats.erase(it);
        }
      }
      const double secs = st ? std::chrono::duration<double>(std::chrono::steady_clock::now() - st->t0).count() : 0.0;
      const Route* r = route_for(req.path);
      metrics.record_request(r ? r->pattern : "other", res.status, secs);
      if (opts.log_requests)
        std::fprintf(stderr, "[g3n] %s %s %d tokens=%d %.3fs\n", req.method.c_str(), req.path.c_str(), res.status,
                     st ? st->tokens.load() : 0, secs);
    });
    for (size_t i = 0; i < routes.size(); ++i) {
      const std::string re = pattern_regex(routes[i].route.pattern);
      switch (routes[i].route.method) {
        case Method::Get:
        case Method::Head: http.Get(re, handler(i)); break;  // cpp-httplib answers HEAD with the GET handlers
        case Method::Post: http.Post(re, reader_handler(i)); break;
        case Method::Delete: http.Delete(re, reader_handler(i)); break;
      }
    }
    // Last, so every route above is tried first.
    http.Post(".*", drop_body);
    http.Put(".*", drop_body);
    http.Patch(".*", drop_body);
    http.Delete(".*", drop_body);
  }
};

HttpServer::HttpServer(std::vector<Route> routes, HttpServerOptions opts, Metrics& metrics)
    : impl_(std::make_unique<Impl>(std::move(routes), opts, metrics)) {}

HttpServer::~HttpServer() = default;

int HttpServer::bind(const std::string& host, int port) {
  if (port == 0) return impl_->http.bind_to_any_port(host);
  return impl_->http.bind_to_port(host, port) ? port : -1;
}

HttpResponse HttpServer::dispatch(HttpRequest req) {
  HttpResponse res;
  if (req.method == "OPTIONS") {
    for (auto& [k, v] : preflight_headers(req.header("Origin"))) res.set_header(k, v);
    res.status = 204;
    return res;
  }
  for (const auto& e : impl_->routes) {
    std::smatch m;
    // A Get route answers HEAD too; a Head route only HEAD (as over HTTP).
    const bool method_ok = req.method == method_name(e.route.method) || (req.method == "HEAD" && e.route.method == Method::Get);
    if (!method_ok || !std::regex_match(req.path, m, e.re)) continue;
    if (!e.route.streams_body && req.body.size() > impl_->opts.max_body_bytes) {
      set_error(res, e.route.errors, 413, "request body too large (limit " + std::to_string(impl_->opts.max_body_bytes >> 20) + " MiB)");
      return res;
    }
    req.params.clear();
    for (size_t i = 1; i < m.size(); ++i) req.params.push_back(m[i]);
    if (e.route.streams_body) {  // the whole body, handed over in one piece
      std::string body = std::move(req.body);
      auto used = std::make_shared<bool>(false);
      req.body.clear();
      req.read_body = [body = std::move(body), used](const std::function<bool(std::string_view)>& piece) {
        if (*used) return false;
        *used = true;
        return body.empty() || piece(body);
      };
    }
    return Impl::run(e.route, req);
  }
  if (impl_->route_for(req.path)) {
    set_error(res, ErrorStyle::Ollama, 405, "method " + req.method + " not allowed for " + req.path);
  } else {
    res.status = 404;
    res.content_type = "text/plain";
    res.body = "404 page not found";
  }
  return res;
}

void HttpServer::serve() { impl_->http.listen_after_bind(); }
bool HttpServer::running() const { return impl_->http.is_running(); }
void HttpServer::stop() { impl_->http.stop(); }

}  // namespace g3n::server
