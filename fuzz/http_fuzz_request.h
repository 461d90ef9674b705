// The HTTP fuzz target's request framing and bounds (fuzz/http_fuzz.cpp), shared with the unit test that
// replays its seeds and regressions (tests/fuzz_inputs_test.cpp). See http_fuzz.cpp for the format.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "server/http_types.h"
#include "server/options.h"

namespace g3n::http_fuzz {

using json = nlohmann::json;

// A streamed answer's client: keeps what arrives, hangs up after `drop` chunks (never when negative).
class Sink : public g3n::server::ChunkSink {
 public:
  explicit Sink(long drop) : drop_(drop) {}
  bool write(std::string_view data) override {
    if (gone()) return false;
    ++chunks_;
    text += data;
    return true;
  }
  bool writable() const override { return !gone(); }
  bool gone() const { return drop_ >= 0 && chunks_ >= drop_; }
  std::string text;

 private:
  long drop_;
  long chunks_ = 0;
};

// Bounds the work a JSON body asks for (see the file comment).
inline void bound(json& body, const std::string& path) {
  if (auto it = body.find("keep_alive"); it != body.end()) {
    try {
      (void)g3n::server::parse_keep_alive(*it);
    } catch (const std::exception&) {
    }
    *it = -1;
  }
  auto clamp = [](json& obj, const char* key, int64_t hi, bool add) {
    auto it = obj.find(key);
    if (it == obj.end()) {
      if (add) obj[key] = hi;
    } else if (it->is_number()) {
      const double v = it->get<double>();
      if (!(v >= 0 && v <= double(hi))) *it = hi;
    }
  };
  if (path.rfind("/api/", 0) == 0) {
    if (!body.contains("options")) body["options"] = json::object();
    if (body["options"].is_object()) {
      clamp(body["options"], "num_predict", 3, true);
      clamp(body["options"], "num_ctx", 1024, false);
    }
  } else {
    clamp(body, "max_tokens", 3, true);
    clamp(body, "max_completion_tokens", 3, false);
    clamp(body, "n", 2, false);
  }
}

inline bool valid_lines(const std::string& text, bool sse) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (sse) {
      if (line.rfind("data: ", 0) != 0) continue;  // event:, id:, comments
      line.erase(0, 6);
      if (line == "[DONE]") continue;
    }
    if (!json::accept(line)) return false;
  }
  return true;
}

inline g3n::server::HttpRequest frame(std::string_view in, long& drop) {
  g3n::server::HttpRequest req;
  auto take_line = [&in]() {
    const size_t nl = in.find('\n');
    std::string line(in.substr(0, nl));
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
  };
  const std::string first = take_line();
  const size_t sp = first.find(' ');
  req.method = first.substr(0, sp);
  req.path = sp == std::string::npos ? "/" : first.substr(sp + 1);
  if (const size_t q = req.path.find('?'); q != std::string::npos) req.path.resize(q);  // the HTTP layer splits off the query
  while (!in.empty()) {
    const std::string line = take_line();
    if (line.empty()) break;
    const size_t colon = line.find(':');
    std::string name = line.substr(0, colon), value = colon == std::string::npos ? "" : line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
    if (name == "X-Fuzz-Drop") drop = std::strtol(value.c_str(), nullptr, 10);
    else req.headers.emplace_back(std::move(name), std::move(value));
  }
  static constexpr std::string_view kPart = "\n--part\n";
  size_t p = in.find(kPart);
  req.body = std::string(in.substr(0, p));
  if (p != std::string_view::npos) req.body.clear();  // a form's fields are the parts
  while (p != std::string_view::npos) {
    in.remove_prefix(p + kPart.size());
    p = in.find(kPart);
    std::string_view part = in.substr(0, p);
    g3n::server::FormPart f;
    std::string* fields[] = {&f.name, &f.filename, &f.content_type};
    for (std::string* field : fields) {
      const size_t nl = part.find('\n');
      *field = std::string(part.substr(0, nl));
      part = nl == std::string_view::npos ? std::string_view() : part.substr(nl + 1);
    }
    f.content = std::string(part);
    req.form.push_back(std::move(f));
  }
  return req;
}

}  // namespace g3n::http_fuzz
