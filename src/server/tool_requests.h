// The tool-calling fields of a chat request (docs/server.md "Tools"): `tools`, `tool_choice` (OpenAI's
// values; on /api/chat a g3n extension) and `parallel_tool_calls`, each checked here (HttpError 400),
// and the tool calls of assistant messages in the history, rendered as the model writes them.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/tool_prompt.h"
#include "server/declared_order.h"
#include "sampling/tool_call_constraint.h"

namespace g3n::server {

enum class ToolChoice { Auto, None, Required, Named };

struct ToolRequest {
  std::vector<chat::ToolSpec> tools;
  ToolChoice choice = ToolChoice::Auto;
  std::string named;     // ToolChoice::Named: the tool that must be called
  bool parallel = true;  // more than one call per turn
  // Tools are shown to the model and its calls parsed (tool_choice none turns both off).
  bool active() const { return !tools.empty() && choice != ToolChoice::None; }
  // The constraint for the model's calls (only when active()).
  std::shared_ptr<const ToolCallGrammar> grammar() const;
};

// `order` gives each tool's definition (shown to the model) and `parameters` schema (its arguments' order) as sent.
ToolRequest parse_tool_request(const nlohmann::json& body, const DeclaredOrder& order = DeclaredOrder());

// An assistant message's `tool_calls` (`where` names it in errors: "messages[2].tool_calls") as the text
// the model would have written; each call's arguments may be an object (Ollama) or a JSON string
// (OpenAI). Sets `names` (tool_call id -> function name) for the tool results that follow.
std::string render_history_calls(const nlohmann::json& tool_calls, const std::string& where, std::vector<std::pair<std::string, std::string>>* names);

}  // namespace g3n::server
