// Tool calling over real HTTP on the tiny fixture (random weights: only the constraint makes it call a
// tool, so calls are forced with tool_choice "required" or a named tool, one per turn, at temperature 0;
// its vocabulary is nearly bytes, so a call takes some 60 tokens): both APIs,
// whole and streamed, the history's calls and results, and every malformed request.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gguf/gguf.h"
#include "server/prompt.h"
#include "server/requests.h"
#include "server_util.h"
#include "tokenizer/tokenizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace g3n;

namespace {

const std::string kModel = test::kTinyModel;

const json kWeather = {{"type", "function"},
                       {"function",
                        {{"name", "get_weather"},
                         {"description", "The weather in a city"},
                         {"parameters",
                          {{"type", "object"},
                           {"properties", {{"city", {{"type", "string"}, {"enum", {"Paris", "Oslo"}}}}}},
                           {"required", {"city"}}}}}}};
const json kTime = {{"type", "function"},
                    {"function",
                     {{"name", "get_time"},
                      {"parameters", {{"type", "object"}, {"properties", {{"utc", {{"type", "boolean"}}}}}, {"required", {"utc"}}}}}}};

class ToolsServer : public test::ServerTest {
 protected:
  test::ServerSetup setup() const override {
    test::ServerSetup s;
    s.num_ctx = 2048;
    return s;
  }
  json openai_body(const json& tools, const json& choice, bool stream = false) const {
    return {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "Weather in Paris?"}}}}, {"tools", tools},
            {"tool_choice", choice}, {"parallel_tool_calls", false}, {"temperature", 0}, {"max_tokens", 200}, {"stream", stream}};
  }
  json ollama_body(const json& tools, const json& choice, bool stream = false) const {
    return {{"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", "Weather in Paris?"}}}}, {"tools", tools},
            {"tool_choice", choice}, {"parallel_tool_calls", false}, {"options", {{"temperature", 0}, {"num_predict", 200}}}, {"stream", stream}};
  }

  fs::path root_;
  std::unique_ptr<server::Server> srv_;
  int port_ = 0;
};

// A tool's arguments come out in the order its `parameters` declare them: the definition is shown to the
// model in that order, the constraint writes the properties so, and OpenAI's arguments string keeps it
// (Ollama's arguments object has its keys sorted, as Ollama's Go server writes a map).
TEST_F(ToolsServer, ArgumentsInDeclaredOrder) {
  const std::string tool =
      R"({"type":"function","function":{"name":"convert","parameters":{"type":"object","properties":{"unit":{"type":"string","enum":["c","f"]},"city":{"type":"string","enum":["Paris","Oslo"]}},"required":["unit","city"]}}})";
  const std::string body = R"({"model":"tiny","messages":[{"role":"user","content":"Weather?"}],"tools":[)" + tool +
                           R"(],"tool_choice":"required","parallel_tool_calls":false,"temperature":0,"max_tokens":200})";
  const server::OpenAIRequest r = server::parse_openai_chat(json::parse(body), body);
  ASSERT_EQ(r.tools.tools.size(), 1u);
  const std::string shown = chat::tools_preamble(r.tools.tools);
  EXPECT_LT(shown.find("\"unit\""), shown.find("\"city\"")) << shown;
  EXPECT_LT(shown.find("\"name\""), shown.find("\"parameters\"")) << shown;
  auto [status, text] = post_raw("/v1/chat/completions", body);
  ASSERT_EQ(status, 200) << text;
  const json out = json::parse(text);
  const std::string args = out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"];
  EXPECT_LT(args.find("\"unit\""), args.find("\"city\"")) << args;
  EXPECT_NE(args.find("\"city\""), std::string::npos) << args;
}

}  // namespace

TEST_F(ToolsServer, OpenAIRequiredCallWholeAndStreamedThenTheAnswer) {
  auto [s, r] = post("/v1/chat/completions", openai_body(json::array({kWeather}), "required"));
  ASSERT_EQ(s, 200) << r.dump();
  const json& choice = r["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls") << r.dump();
  EXPECT_TRUE(choice["message"]["content"].is_null());
  ASSERT_GE(choice["message"]["tool_calls"].size(), 1u) << r.dump();
  const json call = choice["message"]["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(call["function"]["name"], "get_weather");
  const json args = json::parse(call["function"]["arguments"].get<std::string>());
  EXPECT_TRUE(args["city"] == "Paris" || args["city"] == "Oslo") << args;

  // Streamed: the same calls, each one delta.tool_calls entry with its index, id, name and arguments.
  auto [ss, text] = post_text("/v1/chat/completions", openai_body(json::array({kWeather}), "required", true));
  ASSERT_EQ(ss, 200);
  json streamed = json::array();
  std::string finish;
  for (const json& chunk : lines(text)) {
    const json& delta = chunk["choices"][0]["delta"];
    if (delta.contains("tool_calls"))
      for (const json& c : delta["tool_calls"]) {
        EXPECT_EQ(c["index"], streamed.size());
        streamed.push_back(c);
      }
    if (delta.contains("content")) {
      EXPECT_EQ(delta["content"], "");  // no text besides the calls
    }
    if (!chunk["choices"][0]["finish_reason"].is_null()) finish = chunk["choices"][0]["finish_reason"];
  }
  EXPECT_EQ(finish, "tool_calls");
  ASSERT_EQ(streamed.size(), choice["message"]["tool_calls"].size());
  EXPECT_EQ(streamed[0]["function"], call["function"]);

  // The call and its result go back; with tool_choice none the model answers in text.
  json body = openai_body(json::array({kWeather}), "none");
  body["messages"].push_back({{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array({call})}});
  body["messages"].push_back({{"role", "tool"}, {"tool_call_id", call["id"]}, {"content", "Sunny, 21 C"}});
  body["max_tokens"] = 8;
  auto [sa, ra] = post("/v1/chat/completions", body);
  ASSERT_EQ(sa, 200) << ra.dump();
  EXPECT_EQ(ra["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(ra["choices"][0]["message"]["content"].is_string());
  EXPECT_FALSE(ra["choices"][0]["message"].contains("tool_calls"));
  // The call (about 60 bytes) and the result are in the prompt, on top of the question alone.
  auto [sq, rq] = post("/v1/chat/completions", openai_body(json::array({kWeather}), "none"));
  ASSERT_EQ(sq, 200);
  EXPECT_GT(ra["usage"]["prompt_tokens"].get<int>(), rq["usage"]["prompt_tokens"].get<int>() + 50) << ra.dump();
}

TEST_F(ToolsServer, OllamaChatToolChoiceExtensionWholeAndStreamed) {
  auto [s, r] = post("/api/chat", ollama_body(json::array({kWeather, kTime}), json{{"type", "function"}, {"function", {{"name", "get_time"}}}}));
  ASSERT_EQ(s, 200) << r.dump();
  ASSERT_EQ(r["message"]["tool_calls"].size(), 1u) << r.dump();
  const json call = r["message"]["tool_calls"][0];
  EXPECT_EQ(call["function"]["name"], "get_time");  // the named tool
  EXPECT_EQ(call["function"]["index"], 0);
  EXPECT_TRUE(call["function"]["arguments"]["utc"].is_boolean()) << call.dump();
  EXPECT_EQ(r["message"]["content"], "");
  EXPECT_EQ(r["done_reason"], "stop");

  // Streamed: the call arrives in a chunk of its own before the final one.
  auto [ss, text] = post_text("/api/chat", ollama_body(json::array({kWeather, kTime}), json{{"type", "function"}, {"function", {{"name", "get_time"}}}}, true));
  ASSERT_EQ(ss, 200);
  const auto chunks = lines(text);
  ASSERT_GE(chunks.size(), 2u);
  int with_calls = 0;
  for (size_t i = 0; i < chunks.size(); ++i)
    if (chunks[i]["message"].contains("tool_calls")) {
      ++with_calls;
      EXPECT_FALSE(chunks[i]["done"].get<bool>());
      EXPECT_EQ(chunks[i]["message"]["tool_calls"][0]["function"], call["function"]);
    }
  EXPECT_EQ(with_calls, 1);
  EXPECT_TRUE(chunks.back()["done"].get<bool>());
}

TEST_F(ToolsServer, ParallelCallsAndNoneAndAuto) {
  // One call only without parallel calls.
  json one = ollama_body(json::array({kWeather, kTime}), "required");
  auto [s1, r1] = post("/api/chat", one);
  ASSERT_EQ(s1, 200) << r1.dump();
  EXPECT_EQ(r1["message"]["tool_calls"].size(), 1u);
  // With them, every call is whole and valid, whatever the model chose.
  json many = openai_body(json::array({kWeather, kTime}), "required");
  many["parallel_tool_calls"] = true;
  auto [s2, r2] = post("/v1/chat/completions", many);
  ASSERT_EQ(s2, 200) << r2.dump();
  ASSERT_GE(r2["choices"][0]["message"]["tool_calls"].size(), 1u) << r2.dump();
  for (const json& c : r2["choices"][0]["message"]["tool_calls"]) {
    const std::string name = c["function"]["name"];
    EXPECT_TRUE(name == "get_weather" || name == "get_time") << name;
    EXPECT_TRUE(json::parse(c["function"]["arguments"].get<std::string>()).is_object());
  }
  // none: the tools are not in the prompt at all; auto (Ollama's default) has them.
  auto [s3, r3] = post("/api/chat", ollama_body(json::array({kWeather}), "none"));
  json plain = ollama_body(json::array({kWeather}), nullptr);
  plain.erase("tool_choice");
  auto [s4, r4] = post("/api/chat", plain);
  ASSERT_EQ(s3, 200);
  ASSERT_EQ(s4, 200);
  EXPECT_FALSE(r3["message"].contains("tool_calls"));
  EXPECT_GT(r4["prompt_eval_count"].get<int>(), r3["prompt_eval_count"].get<int>() + 50);
}

TEST_F(ToolsServer, ShowListsTheToolsCapability) {
  auto [s, r] = post("/api/show", {{"model", "tiny"}});
  ASSERT_EQ(s, 200);
  EXPECT_NE(std::find(r["capabilities"].begin(), r["capabilities"].end(), "tools"), r["capabilities"].end()) << r["capabilities"];
}

TEST_F(ToolsServer, MalformedToolRequestsAre400WithAReason) {
  const json user = {{{"role", "user"}, {"content", "x"}}};
  for (const std::string path : {"/api/chat", "/v1/chat/completions"}) {
    const auto expect = [&](const json& extra, const std::string& text) {
      json body = {{"model", "tiny"}, {"messages", user}};
      body.update(extra);
      auto [s, r] = post(path, body);
      EXPECT_EQ(s, 400) << path << " " << body.dump() << " -> " << r.dump();
      const std::string msg = path == "/api/chat" ? r.value("error", std::string()) : r["error"].value("message", std::string());
      EXPECT_NE(msg.find(text), std::string::npos) << path << ": " << msg;
    };
    expect({{"tools", {{"name", "x"}}}}, "tools");
    expect({{"tools", "get_weather"}}, "invalid type for \"tools\"");
    expect({{"tools", {{{"type", "function"}}}}}, "tools[0].function");
    expect({{"tools", {{{"type", "retrieval"}, {"function", {{"name", "x"}}}}}}}, "tools[0].type");
    expect({{"tools", {{{"type", "function"}, {"function", {{"name", "two words"}}}}}}}, "tools[0].function.name");
    expect({{"tools", {kWeather, kWeather}}}, "defined twice");
    expect({{"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "string"}}}}}}}}},
           "tools[0].function.parameters");
    expect({{"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", {"string", "object"}}}}}}}}}},
           "the arguments must be an object");
    expect({{"tools", {{{"type", "function"}, {"function", {{"name", "f"}, {"parameters", {{"type", "object"}, {"properties", {{"a", {{"type", "array"}, {"minItems", 3}, {"maxItems", 1}}}}}}}}}}}}},
           "invalid JSON schema in tools[0].function.parameters");
    expect({{"tools", json::array({kWeather})}, {"tool_choice", "always"}}, "invalid tool_choice");
    expect({{"tools", json::array({kWeather})}, {"tool_choice", {{"type", "function"}, {"function", {{"name", "get_time"}}}}}}, "no tool named \"get_time\"");
    expect({{"tool_choice", "required"}}, "needs tools");
    expect({{"tools", json::array({kWeather})}, {"parallel_tool_calls", "yes"}}, "parallel_tool_calls");
    expect({{"tools", json::array({kWeather})}, {"format", "json"}, {"response_format", {{"type", "json_object"}}}}, "cannot be combined with tools");
    expect({{"messages", {{{"role", "user"}, {"content", "x"}},
                          {{"role", "assistant"}, {"content", ""}, {"tool_calls", {{{"function", {{"name", "f"}, {"arguments", "{not json"}}}}}}}}}},
           "messages[1].tool_calls[0].function.arguments");
  }
  // A type list whose first non-null type is "object" is an object schema.
  json ok = openai_body(json::array({{{"type", "function"},
                                      {"function", {{"name", "f"}, {"parameters", {{"type", {"null", "object"}}, {"properties", {{"a", {{"type", "boolean"}}}}}, {"required", {"a"}}}}}}}}),
                        "required");
  auto [s, r] = post("/v1/chat/completions", ok);
  ASSERT_EQ(s, 200) << r.dump();
  EXPECT_TRUE(json::parse(r["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"].get<std::string>())["a"].is_boolean()) << r.dump();
}

// The prompt: the preamble and definitions open the first user turn (after the system text), earlier
// calls read as the model wrote them, and results as user turns with their prefix.
TEST(ToolsPrompt, RendersToolsCallsAndResults) {
  const json body = {{"model", "tiny"},
                     {"messages",
                      {{{"role", "system"}, {"content", "Be brief."}},
                       {{"role", "user"}, {"content", "Weather?"}},
                       {{"role", "assistant"}, {"content", nullptr},
                        {"tool_calls", {{{"id", "call_1"}, {"type", "function"}, {"function", {{"name", "get_weather"}, {"arguments", "{\"city\": \"Oslo\"}"}}}}}}},
                       {{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "Rain"}}}},
                     {"tools", json::array({kWeather})}};
  const server::OpenAIRequest r = server::parse_openai_chat(body);
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::open(kModel));
  const server::BuiltPrompt p = server::build_chat_prompt(r.messages, std::nullopt, &r.tools.tools, tok, 4096, false);
  const std::string text = tok.decode(p.rows.tokens(), true);
  const std::string expected = "<start_of_turn>user\nBe brief.\n\n" + chat::tools_preamble(r.tools.tools) +
                               "\n\nWeather?<end_of_turn>\n<start_of_turn>model\n"
                               "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Oslo\"}}<end_of_turn>\n"
                               "<start_of_turn>user\nTool result (get_weather):\nRain<end_of_turn>\n<start_of_turn>model\n";
  EXPECT_NE(text.find(expected), std::string::npos) << text;
}

// Ollama's history: arguments as an object, the result named by tool_name; the same text as OpenAI's.
TEST(ToolsPrompt, OllamaHistoryRendersTheSame) {
  const json body = {{"model", "tiny"},
                     {"messages",
                      {{{"role", "user"}, {"content", "Weather?"}},
                       {{"role", "assistant"}, {"content", "Checking."},
                        {"tool_calls", json::array({{{"function", {{"name", "get_weather"}, {"arguments", {{"city", "Oslo"}}}}}}})}},
                       {{"role", "tool"}, {"tool_name", "get_weather"}, {"content", "Rain"}}}},
                     {"tools", json::array({kWeather})},
                     {"tool_choice", "none"}};
  const server::ChatRequest r = server::parse_chat(body);
  EXPECT_FALSE(r.tools.active());  // none: nothing rendered, nothing parsed
  const Tokenizer tok = Tokenizer::from_gguf(GgufFile::open(kModel));
  const server::BuiltPrompt p = server::build_chat_prompt(r.messages, std::nullopt, nullptr, tok, 4096, false);
  const std::string text = tok.decode(p.rows.tokens(), true);
  EXPECT_EQ(text.find("You can call tools"), std::string::npos) << text;
  const std::string expected = "<start_of_turn>user\nWeather?<end_of_turn>\n<start_of_turn>model\nChecking.\n"
                               "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Oslo\"}}<end_of_turn>\n"
                               "<start_of_turn>user\nTool result (get_weather):\nRain<end_of_turn>\n<start_of_turn>model\n";
  EXPECT_NE(text.find(expected), std::string::npos) << text;
}
