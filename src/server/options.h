// Request parsing helpers shared by the Ollama and OpenAI routes: options (checked against the parameter
// table, runtime/parameters.h), keep_alive, the listen address, timestamps. Errors are HttpError so
// handlers can answer with the right status.
#pragma once
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "runtime/parameters.h"

namespace g3n::server {

// An error with the HTTP status it should be answered with.
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& msg) : std::runtime_error(msg), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

// A request's "options" object, every value checked against the parameter table. Unknown keys are
// ignored as Ollama does; a known key with the wrong type or out of range throws HttpError(400)
// (`option "top_k" must be of type integer`).
ParamList parse_request_options(const nlohmann::json& opts);

// keep_alive as Ollama reads it: a number of seconds or a Go duration string. Negative = forever
// (returned as nullopt); throws HttpError(400) when unparsable.
std::optional<std::chrono::nanoseconds> parse_keep_alive(const nlohmann::json& v);
// A request's keep_alive, read with parse_keep_alive.
struct KeepAlive {
  bool given = false;                                // absent or null: the server's default
  std::optional<std::chrono::nanoseconds> duration;  // nullopt: forever
  bool unload_now() const { return given && duration && duration->count() == 0; }
};
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
