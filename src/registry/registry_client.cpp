#include "registry/registry_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/file.h"
#include "base/json_nesting.h"
#include "base/parse.h"

namespace g3n::registry {
namespace fs = std::filesystem;
using nlohmann::json;
using store::Descriptor;
using store::Manifest;
using store::ModelName;
using Clock = std::chrono::steady_clock;

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

std::string short_digest(const std::string& d) {
  const auto p = d.find(':');
  return d.substr(p == std::string::npos ? 0 : p + 1, 12);
}

// ---- a minimal synchronous HTTP layer over libcurl easy handles ----

struct CurlEasyCleanup {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct CurlSlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyCleanup>;
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistFree>;

struct HttpRequest {
  std::string method = "GET";  // GET or HEAD
  std::string url;
  std::vector<std::string> headers;
  std::string range;           // "start-end" (inclusive) or empty
  bool follow = true;          // follow redirects (blob storage answers 307)
  // Receives 2xx body bytes; return false to stop the transfer (counts as "stopped by us").
  std::function<bool(const char*, size_t)> on_body;
};

struct HttpResponse {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::map<std::string, std::string> headers;  // of the final response, lower-case keys
  std::string body;                            // error bodies / small bodies (capped)
  std::string curl_error;
  int64_t content_length = -1;
  bool stopped_by_callback = false;
  bool stalled = false;
  bool range_refused = false;  // a ranged download's answer did not start at the requested byte: nothing written
};

struct TransferCtx {
  const HttpRequest* req;
  HttpResponse* resp;
  CURL* curl;
  const std::atomic<bool>* abort;
  const std::function<bool()>* cancelled;
  Clock::duration stall_timeout;
  Clock::time_point last_activity;
  curl_off_t last_dl = 0;
  bool range_checked = false;
};

size_t header_cb(char* buf, size_t size, size_t n, void* ud) {
  auto* ctx = static_cast<TransferCtx*>(ud);
  std::string line(buf, size * n);
  ctx->last_activity = Clock::now();
  if (line.rfind("HTTP/", 0) == 0) {
    ctx->resp->headers.clear();  // a new response (after a redirect or 100-continue)
  } else if (auto p = line.find(':'); p != std::string::npos) {
    ctx->resp->headers[lower(trim(line.substr(0, p)))] = trim(line.substr(p + 1));
  }
  return size * n;
}

// A ranged download may write only what starts at the requested byte: a 206 whose Content-Range starts there,
// or a 200 (the whole blob) when the range starts at 0. A server or proxy that drops Range would otherwise put
// the blob's first bytes at the resume point.
bool range_honoured(const TransferCtx& ctx, long status) {
  const std::string& range = ctx.req->range;
  const std::optional<int64_t> start = parse_int(std::string_view(range).substr(0, range.find('-')), 0);
  if (!start) return false;
  if (status == 200) return *start == 0;
  if (status != 206) return false;
  const auto it = ctx.resp->headers.find("content-range");  // "bytes START-END/TOTAL"
  if (it == ctx.resp->headers.end() || it->second.rfind("bytes ", 0) != 0) return false;
  const size_t dash = it->second.find('-', 6);
  return dash != std::string::npos && parse_int(std::string_view(it->second).substr(6, dash - 6), 0) == start;
}

size_t body_cb(char* buf, size_t size, size_t n, void* ud) {
  auto* ctx = static_cast<TransferCtx*>(ud);
  const size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(ctx->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 200 && status < 300 && ctx->req->on_body) {
    if (!ctx->req->range.empty() && !ctx->range_checked) {
      ctx->range_checked = true;
      if (!range_honoured(*ctx, status)) {
        ctx->resp->range_refused = true;
        return 0;  // nothing written; curl stops with CURLE_WRITE_ERROR
      }
    }
    if (!ctx->req->on_body(buf, len)) {
      ctx->resp->stopped_by_callback = true;
      return 0;  // makes curl stop with CURLE_WRITE_ERROR
    }
    return len;
  }
  if (ctx->resp->body.size() < (1 << 20)) ctx->resp->body.append(buf, len);
  return len;
}

int xfer_cb(void* ud, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t) {
  auto* ctx = static_cast<TransferCtx*>(ud);
  // Stall detection by time since the last byte. curl's LOW_SPEED check averages over several
  // seconds, so a trickle before a stall would hide it for that long.
  const auto now = Clock::now();
  if (dlnow != ctx->last_dl) {
    ctx->last_dl = dlnow;
    ctx->last_activity = now;
  } else if (now - ctx->last_activity > ctx->stall_timeout) {
    ctx->resp->stalled = true;
    return 1;
  }
  if (ctx->abort && ctx->abort->load()) return 1;
  if (ctx->cancelled && *ctx->cancelled && (*ctx->cancelled)()) return 1;
  return 0;
}

HttpResponse perform(const HttpRequest& req, const RegistryOptions& opts, const std::atomic<bool>* abort) {
  HttpResponse resp;
  const CurlEasy handle(curl_easy_init());
  CURL* const c = handle.get();
  if (!c) {
    resp.code = CURLE_FAILED_INIT;
    resp.curl_error = "curl_easy_init failed";
    return resp;
  }
  TransferCtx ctx{&req, &resp, c, abort, &opts.cancelled, opts.stall_timeout, Clock::now(), 0};
  char errbuf[CURL_ERROR_SIZE] = {0};
  CurlSlist hdrs;
  for (const auto& h : req.headers) {
    // On failure curl_slist_append returns null and leaves the list as it was.
    if (curl_slist* l = curl_slist_append(hdrs.get(), h.c_str())) {
      (void)hdrs.release();
      hdrs.reset(l);
    }
  }
  curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs.get());
  curl_easy_setopt(c, CURLOPT_USERAGENT, opts.user_agent.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // worker threads: no SIGALRM-based DNS timeouts
  // HTTP(S) only, redirects included: a registry's auth realm or Location must not make curl read a local
  // file (whose "token" would then go back to the registry) or talk another protocol to an inner host.
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, req.follow ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, long(opts.connect_timeout.count()));
  // Backstop for the precise check in xfer_cb: under 1 byte/s for twice the stall timeout.
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, std::max<long>(1, 2 * long(opts.stall_timeout.count())));
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &ctx);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xfer_cb);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, &ctx);
  if (!opts.ca_bundle.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, opts.ca_bundle.c_str());
  if (req.method == "HEAD") curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  if (!req.range.empty()) curl_easy_setopt(c, CURLOPT_RANGE, req.range.c_str());
  resp.code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
  curl_off_t cl = -1;
  if (curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK) resp.content_length = cl;
  resp.curl_error = errbuf[0] ? errbuf : curl_easy_strerror(resp.code);
  if (resp.stalled) {
    resp.code = CURLE_OPERATION_TIMEDOUT;
    resp.curl_error = "stalled: no data for " + std::to_string(opts.stall_timeout.count()) + "s";
  }
  return resp;
}

// Retry only what can heal: network errors, timeouts, 408/429 and 5xx.
bool retryable(const HttpResponse& r) {
  if (r.code != CURLE_OK) return true;
  return r.status == 408 || r.status == 429 || r.status >= 500;
}

std::string describe(const HttpResponse& r) {
  if (r.code != CURLE_OK) return r.curl_error;
  std::string b = trim(r.body);
  if (b.size() > 300) b = b.substr(0, 300) + "...";
  return std::to_string(r.status) + ": " + b;
}

// Parses `Bearer realm="...",service="...",scope="..."`.
std::map<std::string, std::string> parse_challenge(std::string h) {
  std::map<std::string, std::string> out;
  if (lower(h.substr(0, 7)) == "bearer ") h = h.substr(7);
  size_t i = 0;
  while (i < h.size()) {
    while (i < h.size() && (h[i] == ' ' || h[i] == ',')) ++i;
    size_t eq = h.find('=', i);
    if (eq == std::string::npos) break;
    std::string key = lower(trim(h.substr(i, eq - i)));
    i = eq + 1;
    std::string val;
    if (i < h.size() && h[i] == '"') {
      ++i;
      while (i < h.size() && h[i] != '"') {
        if (h[i] == '\\' && i + 1 < h.size()) ++i;
        val += h[i++];
      }
      ++i;
    } else {
      size_t end = h.find(',', i);
      val = trim(h.substr(i, end == std::string::npos ? std::string::npos : end - i));
      i = end == std::string::npos ? h.size() : end;
    }
    out[key] = val;
  }
  return out;
}

std::string url_escape(const std::string& s) {
  const std::unique_ptr<char, CurlFree> e(curl_easy_escape(nullptr, s.c_str(), int(s.size())));
  return e ? std::string(e.get()) : std::string();
}

// Download state of one part, stored as Ollama does (capitalised keys) in <blob>-partial-<N>.
struct Part {
  int n = 0;
  int64_t offset = 0;
  int64_t size = 0;
  std::atomic<int64_t> completed{0};
};

void save_part(const fs::path& path, const Part& p) {
  json j = {{"N", p.n}, {"Offset", p.offset}, {"Size", p.size}, {"Completed", p.completed.load()}};
  store::atomic_write_file(path, j.dump() + "\n");
}

bool is_fatal_errno(int e) { return e != EINTR && e != EAGAIN; }

}  // namespace

// ---- client ----

struct RegistryClient::Impl {
  store::ModelStore& store;
  RegistryOptions opts;
  std::mutex auth_mu;
  std::string token;  // bearer token obtained from a challenge; kept for the rest of the pull

  Impl(store::ModelStore& s, RegistryOptions o) : store(s), opts(std::move(o)) {}

  std::vector<std::string> auth_headers() {
    std::lock_guard<std::mutex> lk(auth_mu);
    if (token.empty()) return {};
    return {"Authorization: Bearer " + token};
  }

  void sleep_backoff(int attempt, const std::atomic<bool>* abort) {
    // Exponential: initial, 2x, 4x ... capped; sliced so an abort is noticed quickly.
    auto d = opts.backoff_initial * (1LL << std::min(attempt - 1, 20));
    if (d > opts.backoff_max) d = opts.backoff_max;
    const auto until = Clock::now() + d;
    while (Clock::now() < until) {
      if (abort && abort->load()) return;
      std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::milliseconds(20), until - Clock::now()));
    }
  }

  // Answers a 401 by asking the challenge's realm for a token. Returns false when there is no usable
  // challenge. Token requests carry no credentials: anonymous pulls are what public models need.
  void refresh_token(const HttpResponse& r) {
    auto it = r.headers.find("www-authenticate");
    if (it == r.headers.end()) throw RegistryError("unauthorized: no authentication challenge", 401);
    auto ch = parse_challenge(it->second);
    if (ch["realm"].empty()) throw RegistryError("unauthorized: challenge without realm", 401);
    std::string url = ch["realm"];
    url += url.find('?') == std::string::npos ? '?' : '&';
    url += "service=" + url_escape(ch["service"]);
    std::string scopes = ch["scope"];
    for (size_t p = 0; p <= scopes.size();) {
      size_t q = scopes.find(' ', p);
      if (q == std::string::npos) q = scopes.size();
      if (q > p) url += "&scope=" + url_escape(scopes.substr(p, q - p));
      p = q + 1;
    }
    url += "&ts=" + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count());
    std::random_device rd;
    std::string nonce;
    static const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int i = 0; i < 22; ++i) nonce += kB64[rd() % 64];
    url += "&nonce=" + nonce;
    HttpRequest req;
    req.url = url;
    HttpResponse resp;
    for (int attempt = 1;; ++attempt) {
      resp = perform(req, opts, nullptr);
      if (!retryable(resp) || attempt >= opts.max_attempts) break;
      sleep_backoff(attempt, nullptr);
    }
    if (resp.code != CURLE_OK || resp.status >= 400)
      throw RegistryError("authentication failed: " + describe(resp), int(resp.status));
    if (json_nesting_exceeds(resp.body)) throw RegistryError("authentication failed: token response nested too deeply");
    json j;
    try {
      j = json::parse(resp.body);
    } catch (const json::exception&) {
      throw RegistryError("authentication failed: token response is not JSON");
    }
    std::string tok;
    if (j.contains("token") && j["token"].is_string()) tok = j["token"];
    else if (j.contains("access_token") && j["access_token"].is_string()) tok = j["access_token"];
    if (tok.empty()) throw RegistryError("authentication failed: no token in response");
    std::lock_guard<std::mutex> lk(auth_mu);
    token = tok;
  }

  // A small request (manifest, HEAD) with the retry, backoff and token flow.
  HttpResponse request(HttpRequest req) {
    const auto base_headers = req.headers;
    bool refreshed = false;
    for (int attempt = 1;; ++attempt) {
      req.headers = base_headers;
      for (auto& h : auth_headers()) req.headers.push_back(h);
      HttpResponse r = perform(req, opts, nullptr);
      if (r.code == CURLE_ABORTED_BY_CALLBACK) throw RegistryError("pull cancelled");
      if (r.code == CURLE_OK && r.status == 401) {
        if (refreshed) throw RegistryError("unauthorized: access denied", 401);
        refresh_token(r);
        refreshed = true;
        --attempt;  // the challenge round trip is not a failure
        continue;
      }
      if (!retryable(r) || attempt >= opts.max_attempts) return r;
      sleep_backoff(attempt, nullptr);
    }
  }

  std::string repo_url(const ModelName& n) const;

  // A blob downloaded completely into its -partial file, waiting for verification.
  struct Pending {
    std::string digest;
    fs::path partial;
    fs::path final_path;
    std::vector<fs::path> states;
    UniqueFd fd;  // held open (and flock'ed) until rename
  };

  Pending download(const ModelName& name, const Descriptor& d, const ProgressFn& progress);
  void finish(Pending& p);
};

RegistryClient::RegistryClient(store::ModelStore& st, RegistryOptions opts)
    : impl_(std::make_unique<Impl>(st, std::move(opts))) {
  curl_global_init(CURL_GLOBAL_DEFAULT);  // reference counted by libcurl
}

RegistryClient::~RegistryClient() {
  impl_.reset();
  curl_global_cleanup();
}

std::string RegistryClient::base_url(const ModelName& n) const {
  if (impl_->opts.insecure) return "http://" + n.host;
  if (n.scheme == "http") throw RegistryError("insecure protocol http (use --insecure to allow plain HTTP)");
  return "https://" + n.host;
}

std::string RegistryClient::Impl::repo_url(const ModelName& n) const {
  std::string scheme = opts.insecure ? "http://" : "https://";
  return scheme + n.host + "/v2/" + n.ns + "/" + n.model;
}

Manifest RegistryClient::fetch_manifest(const ModelName& name) {
  base_url(name);  // rejects http:// names without --insecure
  HttpRequest req;
  req.url = impl_->repo_url(name) + "/manifests/" + name.tag;
  req.headers = {"Accept: " + std::string(store::media::kManifest)};
  HttpResponse r = impl_->request(req);
  if (r.code != CURLE_OK) throw RegistryError("pull model manifest: " + r.curl_error);
  if (r.status == 404) throw RegistryError("pull model manifest: file does not exist", 404);
  if (r.status >= 400) throw RegistryError("pull model manifest: " + describe(r), int(r.status));
  try {
    return Manifest::parse(r.body);
  } catch (const store::StoreError& e) {
    throw RegistryError(std::string("pull model manifest: ") + e.what());
  }
}

RegistryClient::Impl::Pending RegistryClient::Impl::download(const ModelName& name, const Descriptor& d,
                                                            const ProgressFn& progress) {
  Pending p;
  p.digest = d.digest;
  p.final_path = store.blob_path(d.digest);
  p.partial = p.final_path.string() + "-partial";
  const std::string blob_url = repo_url(name) + "/blobs/" + d.digest;
  const std::string label = "pulling " + short_digest(d.digest);

  std::error_code ec;
  fs::create_directories(store.blobs_dir(), ec);
  if (ec) throw RegistryError("cannot create " + store.blobs_dir().string() + ": " + ec.message());
  p.fd.reset(::open(p.partial.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!p.fd) throw RegistryError(store::errno_message("cannot open", p.partial, errno));
  // Two pulls of the same blob would interleave writes; the second one waits its turn by failing.
  if (::flock(p.fd.get(), LOCK_EX | LOCK_NB) != 0)
    throw RegistryError("another download of " + d.digest + " is in progress");
  // p (and its fd) is dropped by the throw.
  auto fail = [&](const std::string& msg, int status = 0) { throw RegistryError(msg, status); };

  // Resume from part-state files when they describe this blob; otherwise start over.
  std::vector<std::unique_ptr<Part>> parts;
  int64_t total = 0;
  for (int n = 0;; ++n) {
    const fs::path sp = p.partial.string() + "-" + std::to_string(n);
    if (!fs::exists(sp, ec)) break;
    try {
      json j = json::parse(store::read_file(sp));
      auto part = std::make_unique<Part>();
      part->n = n;
      part->offset = j.at("Offset").get<int64_t>();
      part->size = j.at("Size").get<int64_t>();
      const int64_t completed = j.at("Completed").get<int64_t>();
      // Trusted only as far as consistent: parts contiguous from 0, sizes and progress not negative, no overflow.
      if (part->offset != total || part->size < 0 || completed < 0 || __builtin_add_overflow(total, part->size, &total))
        throw std::runtime_error("inconsistent part state");
      part->completed = std::min(completed, part->size);
      parts.push_back(std::move(part));
    } catch (const std::exception&) {
      parts.clear();
      break;
    }
  }
  struct stat st {};
  if (!parts.empty() && (total != d.size || ::fstat(p.fd.get(), &st) != 0 || st.st_size != total)) parts.clear();
  for (int n = 0;; ++n) {  // forget any stale state files; the live ones are rewritten below
    const fs::path sp = p.partial.string() + "-" + std::to_string(n);
    if (!fs::exists(sp, ec)) break;
    if (parts.empty()) fs::remove(sp, ec);
  }

  if (parts.empty()) {
    // Fresh start: HEAD the blob (following the redirect to storage) for its size.
    HttpRequest head;
    head.method = "HEAD";
    head.url = blob_url;
    HttpResponse r = request(head);
    if (r.code != CURLE_OK) fail("pull " + d.digest + ": " + r.curl_error);
    if (r.status == 404) fail("pull " + d.digest + ": file does not exist", 404);
    if (r.status >= 400) fail("pull " + d.digest + ": " + describe(r), int(r.status));
    total = d.size;
    if (r.content_length >= 0 && d.size > 0 && r.content_length != d.size)
      fail("pull " + d.digest + ": registry reports " + std::to_string(r.content_length) +
           " bytes, manifest says " + std::to_string(d.size));
    if (total <= 0 && r.content_length > 0) total = r.content_length;
    if (::ftruncate(p.fd.get(), 0) != 0) fail(store::errno_message("cannot truncate", p.partial, errno));
    // Reserve the space now so a full disk is reported before hours of downloading.
    if (total > 0) {
      int e = ::posix_fallocate(p.fd.get(), 0, total);
      if (e == ENOSPC || e == EDQUOT)
        fail("not enough disk space for " + d.digest + " (" + std::to_string(total) + " bytes) in " +
             store.blobs_dir().string());
      if (e != 0 && ::ftruncate(p.fd.get(), total) != 0) fail(store::errno_message("cannot size", p.partial, errno));
    }
    int64_t nparts = 1;
    if (opts.min_part_size > 0 && total >= 2 * opts.min_part_size)
      nparts = std::min<int64_t>(std::max(1, opts.max_parts), total / opts.min_part_size);
    const int64_t psize = nparts > 0 ? (total + nparts - 1) / nparts : total;
    for (int64_t off = 0, n = 0; n < nparts; ++n, off += psize) {
      auto part = std::make_unique<Part>();
      part->n = int(n);
      part->offset = off;
      part->size = std::min(psize, total - off);
      parts.push_back(std::move(part));
    }
    if (parts.empty()) parts.push_back(std::make_unique<Part>());  // an empty blob: one empty part
    try {
      for (auto& part : parts) save_part(p.partial.string() + "-" + std::to_string(part->n), *part);
    } catch (const store::StoreError& e) {
      fail(e.what());
    }
  }
  for (auto& part : parts) p.states.push_back(p.partial.string() + "-" + std::to_string(part->n));

  // ---- parallel ranged download ----
  std::atomic<bool> abort{false};
  std::mutex mu;
  std::condition_variable cv;
  std::string fatal;  // first fatal error (guarded by mu)
  int fatal_status = 0;
  std::deque<Part*> queue;
  for (auto& part : parts)
    if (part->completed < part->size) queue.push_back(part.get());
  int64_t already = 0;
  for (auto& part : parts) already += part->completed;
  int running = 0;

  auto set_fatal = [&](const std::string& msg, int status) {
    std::lock_guard<std::mutex> lk(mu);
    if (fatal.empty()) {
      fatal = msg;
      fatal_status = status;
    }
    abort = true;
    cv.notify_all();
  };

  auto run_part = [&](Part* part) {
    const std::string state_path = p.partial.string() + "-" + std::to_string(part->n);
    auto persist = [&]() {
      // Data first, then the state that claims it, so a crash never over-claims.
      ::fdatasync(p.fd.get());
      try {
        save_part(state_path, *part);
      } catch (const store::StoreError&) {
        // Losing a state update only costs re-downloading some bytes later.
      }
    };
    int failures = 0;
    int64_t refreshed_at = -1;  // part->completed when the token was last refreshed
    while (part->completed < part->size && !abort) {
      const int64_t start = part->offset + part->completed;
      const int64_t end = part->offset + part->size - 1;
      const int64_t before = part->completed;
      int write_errno = 0;
      HttpRequest req;
      req.url = blob_url;
      req.range = std::to_string(start) + "-" + std::to_string(end);
      req.headers = auth_headers();
      req.on_body = [&](const char* data, size_t len) -> bool {
        const int64_t room = part->size - part->completed;
        const size_t take = size_t(std::min<int64_t>(room, int64_t(len)));
        size_t off = 0;
        while (off < take) {
          ssize_t w = ::pwrite(p.fd.get(), data + off, take - off, part->offset + part->completed);
          if (w < 0) {
            if (!is_fatal_errno(errno)) continue;
            write_errno = errno;
            return false;
          }
          off += size_t(w);
          part->completed += w;
        }
        return take == len;  // a server that ignores the range end is cut off at the part boundary
      };
      HttpResponse r = perform(req, opts, &abort);
      persist();
      if (write_errno != 0) {
        set_fatal(store::errno_message("cannot write", p.partial, write_errno) +
                      " (downloaded data is kept; pull again to resume)", 0);
        return;
      }
      if (r.range_refused) {
        set_fatal("pull " + d.digest + ": the server did not honour the Range request (HTTP " + std::to_string(r.status) +
                      "; downloaded data is kept)", int(r.status));
        return;
      }
      if (part->completed >= part->size) break;
      if (abort) return;
      if (r.code == CURLE_ABORTED_BY_CALLBACK) {
        set_fatal("pull cancelled", 0);
        return;
      }
      if (r.code == CURLE_OK && r.status == 401) {
        try {
          // Tokens expire during long pulls: refresh again once bytes arrived on the last one.
          if (refreshed_at == part->completed) throw RegistryError("unauthorized: access denied", 401);
          refresh_token(r);
          refreshed_at = part->completed;
          continue;
        } catch (const RegistryError& e) {
          set_fatal(e.what(), e.http_status());
          return;
        }
      }
      if (r.code == CURLE_OK && r.status >= 400 && !retryable(r)) {
        set_fatal("pull " + d.digest + ": " + describe(r), int(r.status));
        return;
      }
      // A dropped connection that delivered bytes starts the attempt count over: only repeated
      // failures with no progress give up.
      failures = part->completed > before ? 1 : failures + 1;
      if (failures >= opts.max_attempts) {
        std::string why = describe(r);
        set_fatal("pull " + d.digest + ": " + why + " (gave up after " + std::to_string(opts.max_attempts) +
                      " attempts; downloaded data is kept)", int(r.status));
        return;
      }
      sleep_backoff(failures, &abort);
    }
  };

  const int workers = std::max(1, std::min<int>(opts.max_parallel, int(queue.size())));
  std::vector<std::thread> threads;
  for (int i = 0; i < workers && !queue.empty(); ++i) {
    threads.emplace_back([&] {
      for (;;) {
        Part* part;
        {
          std::lock_guard<std::mutex> lk(mu);
          if (queue.empty() || abort) break;
          part = queue.front();
          queue.pop_front();
          ++running;
        }
        run_part(part);
        std::lock_guard<std::mutex> lk(mu);
        --running;
      }
      std::lock_guard<std::mutex> lk(mu);
      cv.notify_all();
    });
  }

  // Report progress from this thread so callers need no locking.
  std::deque<std::pair<Clock::time_point, int64_t>> window;
  auto completed_now = [&] {
    int64_t c = 0;
    for (auto& part : parts) c += part->completed;
    return c;
  };
  auto report = [&](bool done) {
    if (!progress) return;
    const auto now = Clock::now();
    const int64_t c = completed_now();
    window.emplace_back(now, c);
    while (window.size() > 2 && now - window.front().first > std::chrono::seconds(3)) window.pop_front();
    double bps = 0;
    const double dt = std::chrono::duration<double>(now - window.front().first).count();
    if (dt > 0.05) bps = double(c - window.front().second) / dt;
    PullProgress ev;
    ev.status = label;
    ev.digest = d.digest;
    ev.total = total;
    ev.completed = c;
    ev.bytes_per_sec = bps;
    ev.done = done;
    progress(ev);
  };
  (void)already;
  // Part states are saved here too, every half second, so that a kill -9 (even in the middle of a
  // stall, when no worker is running code) loses at most that much progress.
  std::vector<int64_t> saved;
  for (auto& part : parts) saved.push_back(part->completed);
  auto last_persist = Clock::now();
  auto persist_all = [&] {
    std::vector<int64_t> now_c;
    for (auto& part : parts) now_c.push_back(part->completed);  // read before syncing the data
    if (now_c == saved) return;
    ::fdatasync(p.fd.get());
    for (size_t i = 0; i < parts.size(); ++i) {
      if (now_c[i] == saved[i]) continue;
      Part snap;
      snap.n = parts[i]->n;
      snap.offset = parts[i]->offset;
      snap.size = parts[i]->size;
      snap.completed = now_c[i];
      try {
        save_part(p.states[i], snap);
      } catch (const store::StoreError&) {
        // Losing a state update only costs re-downloading some bytes later.
      }
    }
    saved = now_c;
  };
  report(false);
  for (;;) {
    std::unique_lock<std::mutex> lk(mu);
    const bool finished = cv.wait_for(lk, opts.progress_interval, [&] {
      return abort.load() || (queue.empty() && running == 0);
    });
    lk.unlock();
    if (opts.cancelled && opts.cancelled()) abort = true;
    if (finished || abort) break;
    report(false);
    if (Clock::now() - last_persist > std::chrono::milliseconds(500)) {
      persist_all();
      last_persist = Clock::now();
    }
  }
  for (auto& t : threads) t.join();
  {
    std::lock_guard<std::mutex> lk(mu);
    if (!fatal.empty()) fail(fatal, fatal_status);
  }
  if (abort || completed_now() != total) fail("pull " + d.digest + ": cancelled (downloaded data is kept)");
  report(true);
  return p;
}

void RegistryClient::Impl::finish(Pending& p) {
  // Verify before the blob becomes visible: a wrong byte anywhere means it must be fetched again.
  std::string got;
  try {
    got = "sha256:" + store::sha256_file_hex(p.partial);
  } catch (const store::StoreError& e) {
    p.fd.reset();
    throw RegistryError(e.what());
  }
  std::error_code ec;
  auto drop_partial = [&] {
    for (const auto& s : p.states) fs::remove(s, ec);
    fs::remove(p.partial, ec);
    p.fd.reset();
  };
  if (got != "sha256:" + store::digest_to_filename(p.digest).substr(7)) {
    drop_partial();
    throw RegistryError("digest mismatch, file must be downloaded again: want " + p.digest + ", got " + got);
  }
  if (::fsync(p.fd.get()) != 0) {
    int e = errno;
    p.fd.reset();
    throw RegistryError(store::errno_message("cannot sync", p.partial, e));
  }
  if (::rename(p.partial.c_str(), p.final_path.c_str()) != 0) {
    int e = errno;
    p.fd.reset();
    throw RegistryError(store::errno_message("cannot rename into", p.final_path, e));
  }
  fsync_dir(p.final_path.parent_path());
  for (const auto& s : p.states) fs::remove(s, ec);
  p.fd.reset();
}

void RegistryClient::pull(const ModelName& requested, const ProgressFn& progress) {
  auto status = [&](const std::string& s) {
    if (progress) progress(PullProgress{s, "", 0, 0, 0, false});
  };
  // Reuse the on-disk spelling so a differently cased pull updates the existing model.
  const ModelName name = impl_->store.canonical_name(requested);
  std::vector<std::string> old_digests;
  {
    store::StoreConfig own = impl_->store.config();
    own.ollama_root.reset();
    store::ModelStore mine(own);
    try {
      if (auto m = mine.read_manifest(name)) old_digests = m->digests();
    } catch (const store::StoreError&) {
      // A corrupt old manifest is simply replaced.
    }
  }

  status("pulling manifest");
  const Manifest m = fetch_manifest(name);

  std::vector<Descriptor> blobs;
  for (const auto& l : m.layers) blobs.push_back(l);
  blobs.push_back(m.config);
  std::vector<Impl::Pending> pending;
  std::vector<std::string> seen;
  // A throw below drops `pending`, which closes (and unlocks) its partial files.
  for (const auto& d : blobs) {
    const std::string key = store::digest_to_filename(d.digest);
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    seen.push_back(key);
    if (impl_->store.find_blob(d.digest)) {
      // Already here (maybe in Ollama's store): nothing to fetch and nothing to verify.
      impl_->store.adopt_blob(d.digest);
      if (progress) progress(PullProgress{"pulling " + short_digest(d.digest), d.digest, d.size, d.size, 0, true});
      continue;
    }
    pending.push_back(impl_->download(name, d, progress));
  }

  status("verifying sha256 digest");
  std::string first_error;
  for (auto& p : pending) {
    try {
      impl_->finish(p);
    } catch (const RegistryError& e) {
      if (first_error.empty()) first_error = e.what();
    }
  }
  pending.clear();
  if (!first_error.empty()) throw RegistryError(first_error);

  status("writing manifest");
  try {
    impl_->store.write_manifest(name, m);
  } catch (const store::StoreError& e) {
    throw RegistryError(e.what());
  }

  std::vector<std::string> stale;
  for (const auto& d : old_digests)
    if (std::none_of(seen.begin(), seen.end(), [&](const std::string& k) { return k == store::digest_to_filename(d); }))
      stale.push_back(d);
  if (!stale.empty() && impl_->store.config().prune) {
    status("removing unused layers");
    impl_->store.prune_unreferenced(stale);
  }
  status("success");
}

}  // namespace g3n::registry
