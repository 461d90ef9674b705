// Splits a model's output, as it streams, into content and the tool calls of chat/tool_prompt.h's format:
// text before a `<tool_call>` marker is content, less the blanks just before the marker (held back only
// while it could be the start of a marker, or blanks before one);
// each marker's JSON object becomes a call once its closing brace arrives.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "chat/tool_prompt.h"

namespace g3n::chat {

class ToolCallParser {
 public:
  struct Update {
    std::string content;          // new content to pass on
    std::vector<ToolCall> calls;  // calls completed by this piece
  };
  Update push(std::string_view text);
  // The output has ended: what was held back is content, an unfinished call included (marker and all,
  // e.g. when num_predict ran out inside it).
  Update finish();
  int calls() const { return n_calls_; }

 private:
  void scan(Update& u);
  std::string buf_;       // text not yet passed on
  bool in_call_ = false;  // buf_ follows a marker
  std::string before_marker_;  // the blanks that preceded that marker
  int n_calls_ = 0;
};

}  // namespace g3n::chat
