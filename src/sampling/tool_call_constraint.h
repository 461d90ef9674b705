// Constrained decoding of tool calls. A call is fixed text around a tool's name and its arguments:
//   <trigger><open><name as a JSON string><between><arguments: a JSON value of that tool's schema><close>
// and further calls follow as <separator><trigger><open>... . Lazy: text is free until the model writes
// the trigger, and constrained from there on (after a call only another call or the end may follow).
// Not lazy: the trigger is forced from the first token. The strings are the chat layer's (chat/tool_prompt.h);
// this layer only knows their shape.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sampling/constraint.h"
#include "sampling/json_constraint.h"

namespace g3n {

struct ToolCallGrammar {
  std::string trigger, open, between, close, separator;
  // Each tool: its name as JSON text ("\"get_weather\"") and its arguments' schema; names sorted.
  std::vector<std::pair<std::string, std::shared_ptr<const JsonSchema>>> tools;
  bool lazy = true;      // free text until the trigger
  bool parallel = true;  // another call may follow a call
};

// The automaton over the output's bytes; cheap to copy while the arguments' JSON is shallow.
class ToolCallMatcher {
 public:
  explicit ToolCallMatcher(std::shared_ptr<const ToolCallGrammar> g);
  bool feed(unsigned char c);
  bool feed(std::string_view s);
  // In free text (lazy, before the trigger): every byte is allowed.
  bool free() const { return stage_ == Stage::Free; }
  // Between calls: the output may end here (with parallel calls, another may still follow).
  bool may_end() const { return stage_ == Stage::Done || boundary_; }
  // No byte may follow.
  bool complete() const { return stage_ == Stage::Done; }
  int calls() const { return calls_; }

 private:
  enum class Stage : uint8_t { Free, Text, Name, Arguments, Done };
  enum class Text : uint8_t { Trigger, Open, Between, Close, Next };  // which fixed text is being matched
  const std::string& text() const;
  void enter(Text t);  // starts matching a fixed text (an empty one is passed at once)
  void after_text();
  std::shared_ptr<const ToolCallGrammar> g_;
  Stage stage_ = Stage::Free;
  Text text_ = Text::Trigger;
  size_t pos_ = 0;         // bytes of the fixed text or the name matched; Free: of the trigger
  size_t lo_ = 0, hi_ = 0;  // Name: the tools whose names still match
  int calls_ = 0;
  bool boundary_ = false;  // a call has just been closed (parallel calls): the end may come here
  std::optional<JsonMatcher> args_;
};

class ToolCallConstraint final : public LogitsConstraint {
 public:
  ToolCallConstraint(std::shared_ptr<const ToolCallGrammar> g, const TokenTexts& texts, std::vector<int32_t> stop_ids);
  void mask(std::span<const float> logits, int need, std::vector<float>& out) override;
  void accept(int32_t id) override;
  bool complete() const override { return state_.complete(); }

 private:
  const TokenTexts& texts_;
  std::vector<int32_t> stop_ids_;
  std::vector<int32_t> risky_;  // tokens holding the trigger's last byte: in free text only these can start a call
  ToolCallMatcher state_, scratch_;
  std::vector<std::pair<float, int32_t>> order_;
};

}  // namespace g3n
