// g3n's tool-call format (chat/tool_prompt.h): the prompt text, the streaming parser, and the lazy
// constraint (sampling/tool_call_constraint.h), the last driven over Gemma 3's real vocabulary.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/tool_call_parser.h"
#include "chat/tool_prompt.h"
#include "gguf/gguf.h"
#include "sampling/tool_call_constraint.h"
#include "tokenizer/tokenizer.h"

using namespace g3n;
using json = nlohmann::json;

namespace {

std::vector<chat::ToolSpec> weather_tools() {
  const json weather = {{"type", "object"},
                        {"properties", {{"city", {{"type", "string"}, {"maxLength", 8}}}, {"days", {{"type", "integer"}}}}},
                        {"required", {"city", "days"}}};
  const json time = {{"type", "object"}, {"properties", {{"zone", {{"enum", {"utc", "local"}}}}}}, {"required", {"zone"}}};
  return {{"get_weather", {{"name", "get_weather"}, {"description", "Weather"}, {"parameters", weather}}, JsonSchema::compile(weather)},
          {"get_time", {{"name", "get_time"}, {"parameters", time}}, JsonSchema::compile(time)}};
}

std::shared_ptr<const ToolCallGrammar> grammar(bool lazy, bool parallel) {
  return std::make_shared<ToolCallGrammar>(chat::tool_call_grammar(weather_tools(), lazy, parallel));
}

const Tokenizer& vocab() {
  static Tokenizer t = Tokenizer::from_gguf(GgufFile::open(std::string(G3N_FIXTURES_DIR) + "/gemma3-vocab/vocab.gguf"));
  return t;
}

}  // namespace

TEST(ToolPrompt, PreambleListsTheDefinitionsAndTheFormat) {
  const auto tools = weather_tools();
  const std::string p = chat::tools_preamble(tools);
  // The function objects keep the order of their keys (the request's; here the initializer's).
  EXPECT_EQ(p.rfind("You can call tools. Their definitions, as a JSON list:\n[{\"name\":\"get_weather\",\"description\":\"Weather\"", 0), 0u) << p;
  // The whole text, as docs/server.md ("Tools") gives it.
  const std::vector<chat::ToolSpec> one = {{"f", {{"name", "f"}, {"parameters", {{"type", "object"}}}}, JsonSchema::any_object()}};
  EXPECT_EQ(chat::tools_preamble(one),
            "You can call tools. Their definitions, as a JSON list:\n"
            "[{\"name\":\"f\",\"parameters\":{\"type\":\"object\"}}]\n"
            "To call a tool, write a line holding only <tool_call> and on the next line a JSON object "
            "{\"name\": <the tool's name>, \"arguments\": <an object of its parameters>}. For several calls, write one such "
            "pair of lines per call. Write nothing after your calls: their results come back in the next user turn, each "
            "after \"Tool result (<name>):\". When no tool is needed, answer in plain text.");
}

TEST(ToolPrompt, CallsAndResultsRenderAsTheModelWritesThem) {
  const std::vector<chat::ToolCall> calls = {{"get_weather", {{"city", "Paris"}, {"days", 2}}}, {"get_time", {{"zone", "utc"}}}};
  EXPECT_EQ(chat::render_tool_calls(calls),
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\",\"days\":2}}\n"
            "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\":\"utc\"}}");
  EXPECT_EQ(chat::tool_result_text("get_time", "12:00"), "Tool result (get_time):\n12:00");
  EXPECT_EQ(chat::tool_result_text("", "x"), "Tool result:\nx");
  // The rendered text is exactly what the constraint lets the model write.
  ToolCallMatcher m(grammar(false, true));
  EXPECT_TRUE(m.feed(chat::render_tool_calls(calls)));
  EXPECT_EQ(m.calls(), 2);
  EXPECT_TRUE(m.may_end());
}

TEST(ToolCallParser, SplitsContentAndCallsByteByByteAsWhole) {
  const std::string out =
      "Let me look <tool that up.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Pa}ri\\\"s\", \"days\": 2}}\n"
      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"utc\"}}";
  chat::ToolCallParser whole;
  auto w = whole.push(out);
  const auto w_end = whole.finish();
  EXPECT_EQ(w.content + w_end.content, "Let me look <tool that up.");  // the line break before the call is not content
  ASSERT_EQ(w.calls.size(), 2u);
  EXPECT_EQ(w.calls[0].name, "get_weather");
  EXPECT_EQ(json(w.calls[0].arguments), (json{{"city", "Pa}ri\"s"}, {"days", 2}}));
  EXPECT_EQ(json(w.calls[1].arguments), (json{{"zone", "utc"}}));

  chat::ToolCallParser bytes;
  std::string content;
  std::vector<chat::ToolCall> calls;
  for (char c : out) {
    auto u = bytes.push(std::string(1, c));
    content += u.content;
    // A marker's first bytes are never passed on as content while they may still be a marker.
    EXPECT_EQ(content.find("<tool_"), std::string::npos) << content;
    for (auto& call : u.calls) calls.push_back(call);
  }
  content += bytes.finish().content;
  EXPECT_EQ(content, w.content + w_end.content);
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].name, "get_time");
  EXPECT_EQ(bytes.calls(), 2);
}

TEST(ToolCallParser, UnfinishedOrMalformedCallsAreContent) {
  chat::ToolCallParser cut;  // num_predict ran out inside the call
  auto u = cut.push("<tool_call>\n{\"name\": \"get_ti");
  EXPECT_EQ(u.content, "");
  EXPECT_EQ(cut.finish().content, "<tool_call>\n{\"name\": \"get_ti");
  chat::ToolCallParser bad;  // a marker in unconstrained text
  auto b = bad.push("see <tool_call> here <tool");
  b.content += bad.finish().content;
  EXPECT_EQ(b.content, "see <tool_call> here <tool");
  EXPECT_TRUE(b.calls.empty());
  chat::ToolCallParser blanks;  // held blanks that no call follows are content after all
  auto k = blanks.push("Done.\n\n");
  EXPECT_EQ(k.content, "Done.");
  EXPECT_EQ(blanks.finish().content, "\n\n");
  chat::ToolCallParser no_name;
  auto n = no_name.push("<tool_call>\n{\"arguments\": {}}");
  EXPECT_TRUE(n.calls.empty());
  EXPECT_EQ(n.content + no_name.finish().content, "<tool_call>\n{\"arguments\": {}}");
}

TEST(ToolCallMatcher, LazyIsFreeUntilTheMarkerThenHoldsToTheSchema) {
  const std::string call = "\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"local\"}}";
  ToolCallMatcher m(grammar(true, false));
  EXPECT_TRUE(m.feed("Free text, even <tool or <tool_cal and {\"json\"}. "));
  EXPECT_TRUE(m.free());
  EXPECT_TRUE(m.feed("<tool_call>"));
  EXPECT_FALSE(m.free());
  EXPECT_TRUE(m.feed(call));
  EXPECT_TRUE(m.complete());  // one call only: nothing may follow
  EXPECT_FALSE(m.feed("\n"));

  const auto rejects = [&](const std::string& text) {
    ToolCallMatcher r(grammar(true, false));
    return !r.feed(text);
  };
  EXPECT_TRUE(rejects("<tool_call> {"));                                                             // the marker is a line
  EXPECT_TRUE(rejects("<tool_call>\n{\"name\": \"get_date\""));                                      // no such tool
  EXPECT_TRUE(rejects("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"mars\"}}"));  // enum
  EXPECT_TRUE(rejects("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"));  // days required
  EXPECT_TRUE(rejects("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Parisienne\", \"days\": 1}}"));  // maxLength
}

TEST(ToolCallMatcher, RequiredStartsAtOnceAndParallelCallsMayFollow) {
  ToolCallMatcher m(grammar(false, true));
  EXPECT_FALSE(m.free());
  EXPECT_FALSE(m.may_end());  // a call is required
  ToolCallMatcher text = m;
  EXPECT_FALSE(text.feed("Sure"));
  EXPECT_TRUE(m.feed("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\", \"days\": 3}}"));
  EXPECT_TRUE(m.may_end());
  EXPECT_FALSE(m.complete());
  ToolCallMatcher after = m;
  EXPECT_FALSE(after.feed(" and"));  // only another call may follow
  EXPECT_TRUE(m.feed("\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"utc\"}}"));
  EXPECT_EQ(m.calls(), 2);
  EXPECT_TRUE(m.may_end());
}

// Greedy decoding under random logits: whatever the model prefers, the constraint yields a call the
// parser reads back, with a known name and arguments of its schema. Odd runs are lazy (tool_choice
// auto): the model has written some text and the marker before the random logits take over.
TEST(ToolCallConstraint, RandomLogitsStillGiveAValidCall) {
  const Tokenizer& tok = vocab();
  const TokenTexts texts(tok);
  std::mt19937 rng(7);
  std::normal_distribution<float> noise(0.0f, 3.0f);
  for (int run = 0; run < 4; ++run) {
    const bool lazy = run % 2 == 1;
    ToolCallConstraint c(grammar(lazy, false), texts, tok.stop_ids());
    std::vector<float> logits(static_cast<size_t>(tok.n_vocab())), masked;
    std::string out;
    if (lazy) {
      for (int32_t id : tok.encode("Let me check.\n<tool_call>", false, false)) {
        c.accept(id);
        out += texts.text(id);
      }
    }
    for (int step = 0; step < 200 && !c.complete(); ++step) {
      for (float& l : logits) l = noise(rng);
      c.mask(logits, 1, masked);
      int32_t best = 0;
      for (int32_t id = 1; id < static_cast<int32_t>(masked.size()); ++id)
        if (masked[static_cast<size_t>(id)] > masked[static_cast<size_t>(best)]) best = id;
      ASSERT_FALSE(tok.is_stop(best)) << "ended before the call was complete: " << out;
      c.accept(best);
      out += texts.text(best);
    }
    ASSERT_TRUE(c.complete()) << out;
    chat::ToolCallParser p;
    auto u = p.push(out);
    u.content += p.finish().content;
    EXPECT_EQ(u.content, lazy ? "Let me check." : "") << out;
    ASSERT_EQ(u.calls.size(), 1u) << out;
    const auto& call = u.calls[0];
    if (call.name == "get_weather") {
      EXPECT_TRUE(call.arguments["city"].is_string()) << out;
      EXPECT_TRUE(call.arguments["days"].is_number_integer()) << out;
    } else {
      ASSERT_EQ(call.name, "get_time") << out;
      EXPECT_TRUE(call.arguments["zone"] == "utc" || call.arguments["zone"] == "local") << out;
    }
  }
}

// Free text costs nothing but the marker's tokens; once the marker is written the mask holds.
TEST(ToolCallConstraint, LazyMaskPassesFreeTextAndConstrainsAfterTheMarker) {
  const Tokenizer& tok = vocab();
  const TokenTexts texts(tok);
  ToolCallConstraint c(grammar(true, false), texts, tok.stop_ids());
  std::vector<float> logits(static_cast<size_t>(tok.n_vocab()), 1.0f), masked;
  c.mask(logits, 40, masked);
  size_t open = 0;
  for (float v : masked) open += v == 1.0f;
  EXPECT_GT(open, logits.size() - 100);  // at most the few tokens that would write the marker and break the call
  for (int32_t id : tok.stop_ids()) EXPECT_EQ(masked[static_cast<size_t>(id)], 1.0f);  // free text may end
  for (int32_t id : tok.encode("Checking.<tool_call>", false, false)) c.accept(id);
  c.mask(logits, 40, masked);
  for (int32_t id : tok.stop_ids()) EXPECT_LT(masked[static_cast<size_t>(id)], 0.0f);  // inside a call: no end
  size_t allowed = 0;
  for (int32_t id = 0; id < static_cast<int32_t>(masked.size()); ++id)
    if (masked[static_cast<size_t>(id)] == 1.0f) {
      ++allowed;
      EXPECT_EQ(texts.text(id).front(), '\n') << texts.text(id);
    }
  EXPECT_GT(allowed, 0u);
  EXPECT_FALSE(c.complete());
}
