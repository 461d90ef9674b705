// g3n's tool-call format for Gemma 3n, which has no official one (docs/server.md "Tools"):
//  - the tool definitions go in the first user turn, as a JSON list under a fixed preamble;
//  - the model calls a tool by writing the marker line `<tool_call>` and then
//    {"name": "<tool>", "arguments": {...}}; several calls are several such pairs, one per line;
//  - a tool's result comes back in a user turn, after the prefix `Tool result (<tool>):`.
// An assistant message that made calls is rendered exactly as the model writes them, and the grammar
// built here constrains generation to that same text.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sampling/json_constraint.h"
#include "sampling/tool_call_constraint.h"

namespace g3n::chat {

inline constexpr std::string_view kToolCallMarker = "<tool_call>";

struct ToolSpec {
  std::string name;
  nlohmann::ordered_json function;  // {"name", "description", "parameters"} as the request gave them (keys in its order), shown to the model
  std::shared_ptr<const JsonSchema> arguments;  // compiled from "parameters"
};

struct ToolCall {
  std::string name;
  nlohmann::ordered_json arguments;  // an object, its keys in the order written (the schema's order)
};

// The preamble and the definitions, a JSON list of the tools' `function` objects.
std::string tools_preamble(std::span<const ToolSpec> tools);

// Calls as the model writes them: `<tool_call>\n{"name": "x", "arguments": {...}}`, one per line.
std::string render_tool_calls(std::span<const ToolCall> calls);

// A tool's result as user text: "Tool result (name):\n" + content ("Tool result:\n" without a name).
std::string tool_result_text(std::string_view name, std::string_view content);

// The grammar of render_tool_calls' text over these tools. lazy: free text until the marker
// (tool_choice auto); else a call from the first token (required, or one named tool). parallel: more
// than one call per turn.
ToolCallGrammar tool_call_grammar(std::span<const ToolSpec> tools, bool lazy, bool parallel);

}  // namespace g3n::chat
