// Request parsing helpers shared by the Ollama and OpenAI routes: options -> SamplingParams, keep_alive,
// the listen address, timestamps. Errors are HttpError so handlers can answer with the right status.
#pragma once
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sampling/sampler.h"

namespace g3n::server {

// An error with the HTTP status it should be answered with.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& msg) : std::runtime_error(msg), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// Everything a request's "options" object can set.
struct RequestOptions {
  SamplingParams sampling;
  int num_ctx = 0;     // 0: the server's default
  int num_thread = 0;  // 0: the server's default
};

// Ollama's built-in defaults (api/types.go DefaultOptions), which model params layers then override.
RequestOptions ollama_default_options();

// Merges an options object (request "options" or a model's params layer) into `out`. Unknown keys are
// ignored as Ollama does; a known key with the wrong type or an unusable value throws HttpError(400).
void apply_options(const nlohmann::json& opts, RequestOptions& out);

// keep_alive as Ollama reads it: a number of seconds or a Go duration string. Negative = forever
// (returned as nullopt); throws HttpError(400) when unparsable.
std::optional<std::chrono::nanoseconds> parse_keep_alive(const nlohmann::json& v);
// Go time.ParseDuration ("5m", "1h30m", "300ms", "-1s", "0"); nullopt when malformed.
std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view s);

struct ListenAddress {
  std::string host = "127.0.0.1";
  int port = 11434;
};
// "host:port", "http://host:port", ":port", "host" (OLLAMA_HOST rules; ":port" listens everywhere).
ListenAddress parse_listen_address(std::string_view value);
// G3N_HOST, else OLLAMA_HOST, else 127.0.0.1:11434. Null arguments mean unset.
ListenAddress listen_address_from(const char* g3n_host, const char* ollama_host);

// RFC 3339 with nanoseconds in UTC, as Go's time.Time marshals: 2025-11-20T10:11:12.123456789Z.
std::string rfc3339(std::chrono::system_clock::time_point t);

// Typed field access for request bodies: absent or null -> nullopt; wrong type -> HttpError(400).
std::optional<std::string> get_string(const nlohmann::json& body, const char* key);
std::optional<bool> get_bool(const nlohmann::json& body, const char* key);

}  // namespace g3n::server
