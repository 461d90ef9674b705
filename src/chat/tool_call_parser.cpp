#include "chat/tool_call_parser.h"

#include <algorithm>

#include "base/json_nesting.h"

namespace g3n::chat {
namespace {

bool is_blank(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

// Length of the longest end of `s` that begins the marker (text that may yet become one).
size_t marker_prefix_at_end(std::string_view s) {
  for (size_t k = std::min(s.size(), kToolCallMarker.size() - 1); k > 0; --k)
    if (s.substr(s.size() - k) == kToolCallMarker.substr(0, k)) return k;
  return 0;
}

// End (one past the closing brace) of the JSON object at s[0], or npos while it is unfinished.
size_t object_end(std::string_view s) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
    }
  }
  return std::string_view::npos;
}

}  // namespace

ToolCallParser::Update ToolCallParser::push(std::string_view text) {
  buf_ += text;
  Update u;
  scan(u);
  return u;
}

void ToolCallParser::scan(Update& u) {
  for (;;) {
    if (!in_call_) {
      // After a call only blanks separate it from the next marker: they are not content.
      if (n_calls_ > 0) buf_.erase(0, std::find_if_not(buf_.begin(), buf_.end(), is_blank) - buf_.begin());
      const size_t at = buf_.find(kToolCallMarker);
      if (at == std::string::npos) {
        // What may begin a marker waits, and so do the blanks before it: a marker or the end decides
        // whether they are content (the line break before a call is not).
        size_t pass = buf_.size() - marker_prefix_at_end(buf_);
        while (pass > 0 && is_blank(buf_[pass - 1])) --pass;
        u.content += buf_.substr(0, pass);
        buf_.erase(0, pass);
        return;
      }
      size_t end = at;
      while (end > 0 && is_blank(buf_[end - 1])) --end;
      u.content += buf_.substr(0, end);
      before_marker_ = buf_.substr(end, at - end);  // content again if no call follows
      buf_.erase(0, at + kToolCallMarker.size());
      in_call_ = true;
    }
    const size_t start = buf_.find_first_not_of(" \n\t\r");
    if (start == std::string::npos) return;
    if (buf_[start] != '{') {  // not a call after all (unconstrained output): the marker was text
      u.content += before_marker_ + std::string(kToolCallMarker) + buf_.substr(0, start + 1);
      buf_.erase(0, start + 1);
      in_call_ = false;
      continue;
    }
    const size_t end = object_end(std::string_view(buf_).substr(start));
    if (end == std::string_view::npos) return;
    const std::string object = buf_.substr(start, end);
    // Ordered: the arguments keep the order the model wrote them in (the schema's), for OpenAI's string.
    // Nested too deeply to handle safely (json_nesting.h): not a call, as invalid JSON is not.
    nlohmann::ordered_json j = json_nesting_exceeds(object) ? nlohmann::ordered_json(nlohmann::ordered_json::value_t::discarded)
                                                            : nlohmann::ordered_json::parse(object, nullptr, false);
    const bool ok = j.is_object() && j.contains("name") && j["name"].is_string() &&
                    (!j.contains("arguments") || j["arguments"].is_object());
    if (ok) {
      u.calls.push_back({j["name"].get<std::string>(), j.value("arguments", nlohmann::ordered_json::object())});
      ++n_calls_;
    } else {
      u.content += before_marker_ + std::string(kToolCallMarker) + buf_.substr(0, start + end);
    }
    buf_.erase(0, start + end);
    in_call_ = false;
  }
}

ToolCallParser::Update ToolCallParser::finish() {
  Update u;
  if (in_call_) u.content = before_marker_ + std::string(kToolCallMarker) + buf_;
  else if (n_calls_ == 0 || buf_.find_first_not_of(" \n\t\r") != std::string::npos) u.content = buf_;
  buf_.clear();
  in_call_ = false;
  return u;
}

}  // namespace g3n::chat
