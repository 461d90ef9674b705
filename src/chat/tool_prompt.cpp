#include "chat/tool_prompt.h"

#include <algorithm>

namespace g3n::chat {
namespace {
// The fixed text around a call's name and arguments; the grammar and the renderer share them, so a
// rendered call is byte for byte what the constraint lets the model write.
constexpr std::string_view kOpen = "\n{\"name\": ";
constexpr std::string_view kBetween = ", \"arguments\": ";
constexpr std::string_view kClose = "}";
constexpr std::string_view kSeparator = "\n";

std::string dump(const nlohmann::ordered_json& j) { return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace); }
}  // namespace

std::string tools_preamble(std::span<const ToolSpec> tools) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (const auto& t : tools) list.push_back(t.function);
  return "You can call tools. Their definitions, as a JSON list:\n" + dump(list) +
         "\nTo call a tool, write a line holding only " + std::string(kToolCallMarker) +
         " and on the next line a JSON object {\"name\": <the tool's name>, \"arguments\": <an object of its parameters>}. "
         "For several calls, write one such pair of lines per call. Write nothing after your calls: their results come "
         "back in the next user turn, each after \"Tool result (<name>):\". When no tool is needed, answer in plain text.";
}

std::string render_tool_calls(std::span<const ToolCall> calls) {
  std::string out;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (i > 0) out += kSeparator;
    out += kToolCallMarker;
    out += kOpen;
    out += dump(nlohmann::ordered_json(calls[i].name));
    out += kBetween;
    out += dump(calls[i].arguments);
    out += kClose;
  }
  return out;
}

std::string tool_result_text(std::string_view name, std::string_view content) {
  return (name.empty() ? std::string("Tool result:\n") : "Tool result (" + std::string(name) + "):\n") + std::string(content);
}

ToolCallGrammar tool_call_grammar(std::span<const ToolSpec> tools, bool lazy, bool parallel) {
  ToolCallGrammar g;
  g.trigger = kToolCallMarker;
  g.open = kOpen;
  g.between = kBetween;
  g.close = kClose;
  g.separator = kSeparator;
  g.lazy = lazy;
  g.parallel = parallel;
  for (const auto& t : tools) g.tools.emplace_back(dump(nlohmann::ordered_json(t.name)), t.arguments ? t.arguments : JsonSchema::any_object());
  std::sort(g.tools.begin(), g.tools.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return g;
}

}  // namespace g3n::chat
