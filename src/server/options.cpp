#include "server/options.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>

namespace g3n::server {
namespace {

std::string trim_env(std::string_view s) {
  auto is_junk = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == '\''; };
  while (!s.empty() && is_junk(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_junk(s.back())) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

ParamList parse_request_options(const nlohmann::json& opts) {
  try {
    return parse_parameters(opts);
  } catch (const ParameterError& e) {
    const std::string msg = e.what();
    throw HttpError(400, msg.starts_with("\"") ? "option " + msg : msg);
  }
}

std::optional<std::chrono::nanoseconds> parse_go_duration(std::string_view s) {
  if (s.empty()) return std::nullopt;
  bool neg = false;
  if (s.front() == '-' || s.front() == '+') {
    neg = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return std::chrono::nanoseconds(0);
  if (s.empty()) return std::nullopt;
  long double total = 0;
  while (!s.empty()) {
    size_t i = 0;
    bool digits = false;
    while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) {
      digits = digits || s[i] != '.';
      ++i;
    }
    if (!digits) return std::nullopt;
    long double num = 0;
    try { num = std::stold(std::string(s.substr(0, i))); } catch (...) { return std::nullopt; }
    s.remove_prefix(i);
    size_t u = 0;
    while (u < s.size() && !std::isdigit(static_cast<unsigned char>(s[u])) && s[u] != '.') ++u;
    const std::string_view unit = s.substr(0, u);
    s.remove_prefix(u);
    long double scale;
    if (unit == "ns") scale = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") scale = 1e3;
    else if (unit == "ms") scale = 1e6;
    else if (unit == "s") scale = 1e9;
    else if (unit == "m") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else return std::nullopt;
    total += num * scale;
  }
  if (total > 9.2e18L) total = 9.2e18L;
  const auto ns = std::chrono::nanoseconds(static_cast<int64_t>(total));
  return neg ? -ns : ns;
}

std::optional<std::chrono::nanoseconds> parse_keep_alive(const nlohmann::json& v) {
  using std::chrono::nanoseconds;
  if (v.is_number()) {
    const double sec = v.get<double>();
    if (!std::isfinite(sec)) throw HttpError(400, "invalid keep_alive");
    if (sec < 0) return std::nullopt;
    return nanoseconds(static_cast<int64_t>(std::min(sec, 9.2e9) * 1e9));
  }
  if (v.is_string()) {
    auto d = parse_go_duration(v.get<std::string>());
    if (!d) throw HttpError(400, "time: invalid duration \"" + v.get<std::string>() + "\"");
    if (d->count() < 0) return std::nullopt;
    return *d;
  }
  throw HttpError(400, "keep_alive must be a number of seconds or a duration string");
}

ListenAddress parse_listen_address(std::string_view raw) {
  ListenAddress a;
  std::string v = trim_env(raw);
  int default_port = 11434;
  if (auto p = v.find("://"); p != std::string::npos) {
    const std::string scheme = v.substr(0, p);
    default_port = scheme == "https" ? 443 : 80;
    v = v.substr(p + 3);
  }
  if (auto slash = v.find('/'); slash != std::string::npos) v = v.substr(0, slash);  // base path: not ours
  a.port = default_port;
  std::string host = v, port;
  if (!v.empty() && v.front() == '[') {  // [ipv6]:port
    const auto close = v.find(']');
    if (close != std::string::npos) {
      host = v.substr(1, close - 1);
      if (close + 1 < v.size() && v[close + 1] == ':') port = v.substr(close + 2);
    }
  } else if (auto c = v.rfind(':'); c != std::string::npos && v.find(':') == c) {
    host = v.substr(0, c);
    port = v.substr(c + 1);
    if (host.empty()) host = "0.0.0.0";  // ":8080" listens on every interface, like Go's net.Listen
  }
  a.host = host.empty() ? "127.0.0.1" : host;
  if (!port.empty()) {
    try {
      size_t used = 0;
      const int p = std::stoi(port, &used);
      if (used == port.size() && p >= 0 && p <= 65535) a.port = p;
    } catch (...) {
    }
  }
  return a;
}

ListenAddress listen_address_from(const char* g3n_host, const char* ollama_host) {
  if (g3n_host && !trim_env(g3n_host).empty()) return parse_listen_address(g3n_host);
  if (ollama_host && !trim_env(ollama_host).empty()) return parse_listen_address(ollama_host);
  return ListenAddress{};
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  const long frac = static_cast<long>(ns % 1000000000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

std::optional<std::string> get_string(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) throw HttpError(400, std::string("invalid type for \"") + key + "\": expected a string");
  return it->get<std::string>();
}

std::optional<bool> get_bool(const nlohmann::json& body, const char* key) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) throw HttpError(400, std::string("invalid type for \"") + key + "\": expected a boolean");
  return it->get<bool>();
}

}  // namespace g3n::server
