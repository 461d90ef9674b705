// The tool calls of one chat answer in each API's shape: the output is parsed as it streams
// (chat::ToolCallParser) and every call gets an id, "call_" and hex digits, unique within the server's run.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/tool_call_parser.h"

namespace g3n::server {

class ToolCallOutput {
 public:
  explicit ToolCallOutput(uint64_t id_seed) : seed_(id_seed) {}
  // New content and calls in this piece of output / at its end. Calls are numbered in order from 0.
  chat::ToolCallParser::Update push(std::string_view text) { return parser_.push(text); }
  chat::ToolCallParser::Update finish() { return parser_.finish(); }
  int count() const { return parser_.calls(); }

  // Ollama's message.tool_calls: [{"id", "function": {"index", "name", "arguments": {...}}}].
  nlohmann::json ollama(const std::vector<chat::ToolCall>& calls, int first) const;
  // OpenAI's tool_calls: [{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}];
  // in stream chunks each also has its "index".
  nlohmann::json openai(const std::vector<chat::ToolCall>& calls, int first, bool chunk) const;

 private:
  std::string id(int index) const;
  chat::ToolCallParser parser_;
  uint64_t seed_;
};

}  // namespace g3n::server
