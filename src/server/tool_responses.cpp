#include "server/tool_responses.h"

#include <cstdio>

namespace g3n::server {

using json = nlohmann::json;

std::string ToolCallOutput::id(int index) const {
  // Distinct per answer (the seed) and per call (mixed in with an odd constant, so ids do not look serial).
  const uint64_t v = seed_ ^ (static_cast<uint64_t>(index) + 1) * 0x9E3779B97F4A7C15ull;
  char buf[32];
  std::snprintf(buf, sizeof buf, "call_%016llx", static_cast<unsigned long long>(v));
  return buf;
}

json ToolCallOutput::ollama(const std::vector<chat::ToolCall>& calls, int first) const {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const int index = first + static_cast<int>(i);
    out.push_back(json{{"id", id(index)}, {"function", {{"index", index}, {"name", calls[i].name}, {"arguments", json(calls[i].arguments)}}}});
  }
  return out;
}

json ToolCallOutput::openai(const std::vector<chat::ToolCall>& calls, int first, bool chunk) const {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    const int index = first + static_cast<int>(i);
    json c{{"id", id(index)}, {"type", "function"},
           {"function", {{"name", calls[i].name}, {"arguments", calls[i].arguments.dump(-1, ' ', false, json::error_handler_t::replace)}}}};
    if (chunk) c["index"] = index;
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace g3n::server
