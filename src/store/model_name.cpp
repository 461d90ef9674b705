#include "store/model_name.h"


namespace g3n::store {
namespace {

enum class Part { Host, Namespace, Model, Tag };

const char* part_label(Part p) {
  switch (p) {
    case Part::Host: return "host";
    case Part::Namespace: return "namespace";
    case Part::Model: return "model";
    case Part::Tag: return "tag";
  }
  return "part";
}

bool is_alnum_us(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Returns an empty string when valid, else the reason.
std::string check_part(Part p, std::string_view s) {
  const size_t max_len = p == Part::Host ? 350 : 80;
  if (s.empty()) return "is empty";
  if (s.size() > max_len) return "is longer than " + std::to_string(max_len) + " characters";
  if (!is_alnum_us(s[0])) return "must start with a letter, digit or '_'";
  for (char c : s.substr(1)) {
    if (is_alnum_us(c) || c == '-') continue;
    if (c == '.' && p != Part::Namespace) continue;
    if (c == ':' && p == Part::Host) continue;  // host:port
    return std::string("contains invalid character '") + c + "'";
  }
  return {};
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c; }

bool parse_impl(std::string_view text, ModelName* out, std::string* err) {
  ModelName n;
  std::string_view rest = text;
  if (auto p = rest.find("://"); p != std::string_view::npos) {
    n.scheme = std::string(rest.substr(0, p));
    for (auto& c : n.scheme) c = lower(c);
    if (n.scheme != "http" && n.scheme != "https") {
      *err = "unsupported scheme '" + n.scheme + "' in model name '" + std::string(text) + "'";
      return false;
    }
    rest = rest.substr(p + 3);
  }
  // The tag separator must come after the last '/', so host:port is not taken for a tag.
  const size_t last_slash = rest.rfind('/');
  const size_t last_colon = rest.rfind(':');
  bool have_tag = false;
  if (last_colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || last_colon > last_slash)) {
    n.tag = std::string(rest.substr(last_colon + 1));
    rest = rest.substr(0, last_colon);
    have_tag = true;
  }
  // Split the remainder from the right into at most host/ns/model; extra '/' stay in the host and
  // fail its validation.
  std::string_view parts[3];
  int count = 0;
  while (count < 2) {
    size_t s = rest.rfind('/');
    if (s == std::string_view::npos) break;
    parts[count++] = rest.substr(s + 1);
    rest = rest.substr(0, s);
  }
  parts[count++] = rest;
  n.model = std::string(parts[0]);
  if (count >= 2) n.ns = std::string(parts[1]);
  if (count >= 3) n.host = std::string(parts[2]);

  // Present-but-empty parts are errors; absent parts take defaults.
  auto check = [&](Part p, const std::string& v, bool present) {
    if (!present) return true;
    std::string why = check_part(p, v);
    if (why.empty()) return true;
    *err = "invalid model name '" + std::string(text) + "': " + part_label(p) + " '" + v + "' " + why;
    return false;
  };
  if (!check(Part::Host, n.host, count >= 3)) return false;
  if (!check(Part::Namespace, n.ns, count >= 2)) return false;
  if (!check(Part::Model, n.model, true)) return false;
  if (!check(Part::Tag, n.tag, have_tag)) return false;
  if (count < 3) n.host = std::string(kDefaultHost);
  if (count < 2) n.ns = std::string(kDefaultNamespace);
  if (!have_tag) n.tag = std::string(kDefaultTag);
  *out = std::move(n);
  return true;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

std::string ModelName::full() const { return host + "/" + ns + "/" + model + ":" + tag; }

std::string ModelName::display() const {
  if (!iequals(host, kDefaultHost)) return full();
  if (ns != kDefaultNamespace) return ns + "/" + model + ":" + tag;
  return model + ":" + tag;
}

std::filesystem::path ModelName::manifest_relpath() const {
  return std::filesystem::path("manifests") / host / ns / model / tag;
}

bool ModelName::same_as(const ModelName& o) const {
  return iequals(host, o.host) && iequals(ns, o.ns) && iequals(model, o.model) && iequals(tag, o.tag);
}

ModelName parse_model_name(std::string_view text) {
  ModelName n;
  std::string err;
  if (!parse_impl(text, &n, &err)) throw NameError(err);
  return n;
}

bool try_parse_model_name(std::string_view text, ModelName* out) {
  std::string err;
  ModelName n;
  if (!parse_impl(text, &n, &err)) return false;
  if (out) *out = std::move(n);
  return true;
}

bool looks_like_gguf_path(std::string_view text) {
  auto ends_with_ci = [&](std::string_view suf) {
    return text.size() >= suf.size() && iequals(text.substr(text.size() - suf.size()), suf);
  };
  if (ends_with_ci(".gguf")) return true;
  if (text.starts_with("/") || text.starts_with("./") || text.starts_with("../") ||
      text.starts_with("~/"))
    return true;
  // An existing file without these markers is deliberately not enough: a stray file named like a
  // model in the working directory must not shadow the model.
  return false;
}

}  // namespace g3n::store
